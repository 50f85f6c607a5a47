"""Run aiosqlite's own ``perf.py`` (from its wheel, unchanged) against aiosqlite and against
aiolite, interleaved, and print both tables plus a comparison of the medians.

Usage: ``python perf_compare.py [rounds]`` from the directory holding ``aiosqlite_smoke/``.
"""

import re
import statistics
import subprocess
import sys

RUNNER = """
import sys, unittest
if sys.argv[1] == "aiolite":
    import aiolite
    aiolite.install_as_aiosqlite()
import aiosqlite
print("implementation:", aiosqlite.__name__, flush=True)
unittest.main(module="aiosqlite_smoke.perf", argv=[sys.argv[0]], exit=False)
"""

LINE = re.compile(r"^(\S.*?)\s+(\d+)\s+([\d.]+)s\s+([\d.]+)/s$")


def run(impl):
    p = subprocess.run(
        [sys.executable, "-c", RUNNER, impl], capture_output=True, text=True, timeout=900
    )
    out = p.stdout
    if p.returncode != 0 or "Perf Test" not in out:
        sys.stderr.write(out + p.stderr)
        raise SystemExit(f"perf.py failed for {impl}")
    table = out[out.index("Perf Test") :].split("\n\n")[0].rstrip()
    rates = {}
    for line in table.splitlines()[1:]:
        m = LINE.match(line.strip())
        if m:
            rates[m.group(1)] = float(m.group(4))
    return table, rates


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    results = {"aiosqlite": [], "aiolite": []}
    for r in range(rounds):
        for impl in ("aiosqlite", "aiolite"):
            table, rates = run(impl)
            results[impl].append(rates)
            print(f"\n=== round {r + 1}/{rounds}: perf.py against {impl}\n{table}", flush=True)
    names = sorted(results["aiosqlite"][0])
    print(f"\n=== median of {rounds} interleaved rounds (ops/s; iterable_cursor: rows/s)\n")
    print(f"| {'case':<24} | {'aiosqlite 0.22.1':>16} | {'aiolite':>12} | {'ratio':>6} |")
    print(f"|{'-' * 26}|{'-' * 18}|{'-' * 14}|{'-' * 8}|")
    lost = []
    for name in names:
        a = statistics.median(x[name] for x in results["aiosqlite"])
        b = statistics.median(x[name] for x in results["aiolite"])
        print(f"| {name:<24} | {a:>16,.0f} | {b:>12,.0f} | {b / a:>5.1f}x |")
        if b <= a:
            lost.append(name)
    if lost:
        print(f"\naiolite did not win: {', '.join(lost)}")
        return 1
    print("\naiolite wins every case.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
