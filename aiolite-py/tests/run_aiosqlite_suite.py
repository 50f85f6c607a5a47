"""Run aiosqlite's own test module (``aiosqlite_smoke.smoke`` by default: ``smoke.py`` and
``helpers.py`` from the aiosqlite wheel, unchanged, in a neutral package) with
``import aiosqlite`` resolving to aiolite.

Usage: ``python run_aiosqlite_suite.py [module] [--real]`` from the directory holding the
package; ``--real`` runs it against the installed aiosqlite instead (for comparison).
Exits non-zero unless every test passed; prints the counts.
"""

import sys
import unittest


def main(argv):
    real = "--real" in argv
    args = [a for a in argv if a != "--real"]
    module = args[0] if args else "aiosqlite_smoke.smoke"
    if not real:
        import aiolite

        aiolite.install_as_aiosqlite()
    import aiosqlite

    expected = "aiosqlite" if real else "aiolite.compat"
    if aiosqlite.__name__ != expected:
        print(f"aiosqlite resolves to {aiosqlite.__name__}, not {expected}", file=sys.stderr)
        return 2
    suite = unittest.defaultTestLoader.loadTestsFromName(module)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    print(
        f"\n{module} against {aiosqlite.__name__}: ran {result.testsRun}, "
        f"failures {len(result.failures)}, errors {len(result.errors)}, "
        f"skipped {len(result.skipped)}"
    )
    ok = result.wasSuccessful() and result.testsRun > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
