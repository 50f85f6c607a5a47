#!/usr/bin/env bash
# aiosqlite's own perf.py (from the aiosqlite 0.22.1 wheel, unchanged) against aiosqlite and
# against aiolite in the same run, interleaved: prints every table and the medians.
#
# Usage: aiolite-py/perf.sh [rounds]   (default 3; about 65 s per round)
# Needs what ci.sh needs. `AIOLITE_CI_DIR` keeps the venv between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=${AIOLITE_CI_DIR:-$(mktemp -d)}
mkdir -p "$work"
export PIP_DISABLE_PIP_VERSION_CHECK=1
rounds=${1:-3}

[ -x "$work/venv/bin/python" ] || "$PYTHON" -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install -q ./aiolite-py aiosqlite==0.22.1
rm -rf "$work/dl" "$work/perf"
mkdir -p "$work/dl" "$work/perf/aiosqlite_smoke"
"$py" -m pip download -q aiosqlite==0.22.1 --no-deps -d "$work/dl"
"$py" - "$work/dl" "$work/perf/aiosqlite_smoke" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("aiosqlite-0.22.1-*.whl"))
dest = pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    for name in ("smoke", "helpers", "perf"):
        (dest / f"{name}.py").write_bytes(z.read(f"aiosqlite/tests/{name}.py"))
(dest / "__init__.py").write_text("")
PY
cp aiolite-py/tests/perf_compare.py "$work/perf/"
echo "python: $("$py" -c 'import sys; print(sys.version.split()[0])'), aiolite SQLite $("$py" -c 'import aiolite; print(aiolite.sqlite_version)'), sqlite3 module SQLite $("$py" -c 'import sqlite3; print(sqlite3.sqlite_version)'), $(nproc) CPUs"
cd "$work/perf" && "$py" perf_compare.py "$rounds"
