#!/usr/bin/env bash
# CI for the Python package (aiolite-py): build and install it, run aiosqlite 0.22.1's own
# smoke tests (taken from the aiosqlite wheel on PyPI, unchanged) against it, the SQLAlchemy
# `sqlite+aiosqlite` check and aiolite's own Python tests. Exits non-zero on any failure.
#
# Needs: the Rust toolchain, Python >= 3.11 (`$PYTHON`, default python3), PyPI.
# `AIOLITE_CI_DIR` keeps the venv and downloads there (default: a fresh temporary dir).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
PYTHON=${PYTHON:-python3}
work=${AIOLITE_CI_DIR:-$(mktemp -d)}
mkdir -p "$work"
export PIP_DISABLE_PIP_VERSION_CHECK=1
step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' ||
  { echo "aiolite-py needs Python >= 3.11" >&2; exit 1; }

step "venv in $work/venv"
"$PYTHON" -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install -q --upgrade pip

step "pip install ./aiolite-py (release build)"
t=$SECONDS
"$py" -m pip install -q ./aiolite-py
echo "built and installed in $((SECONDS - t)) s"
"$py" -m pip install -q "sqlalchemy[asyncio]>=2"

step "aiosqlite 0.22.1's tests from its wheel (not vendored)"
rm -rf "$work/dl" "$work/suite"
mkdir -p "$work/dl" "$work/suite/aiosqlite_smoke"
"$py" -m pip download -q aiosqlite==0.22.1 --no-deps -d "$work/dl"
"$py" - "$work/dl" "$work/suite/aiosqlite_smoke" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("aiosqlite-0.22.1-*.whl"))
dest = pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    for name in ("smoke", "helpers", "perf"):
        (dest / f"{name}.py").write_bytes(z.read(f"aiosqlite/tests/{name}.py"))
(dest / "__init__.py").write_text("")
print("extracted", sorted(p.name for p in dest.iterdir()), "from", wheel.name)
PY
cp aiolite-py/tests/run_aiosqlite_suite.py "$work/suite/"

status=0
step "aiosqlite's smoke.py against aiolite (python -X dev)"
(cd "$work/suite" && "$py" -X dev run_aiosqlite_suite.py aiosqlite_smoke.smoke) || status=1

step "SQLAlchemy sqlite+aiosqlite dialect on aiolite"
(cd aiolite-py/tests && "$py" -X dev -m unittest -v test_sqlalchemy) || status=1

step "aiolite's Python tests"
(cd aiolite-py/tests && "$py" -X dev -m unittest -v test_aiolite) || status=1

echo
if [ "$status" -eq 0 ]; then
  echo "aiolite-py CI passed in $((SECONDS - started)) s."
else
  echo "aiolite-py CI FAILED (after $((SECONDS - started)) s)." >&2
fi
exit "$status"
