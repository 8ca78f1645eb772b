#!/usr/bin/env bash
# Builds aioloop's Python package (--release) into python/.venv, installs uvloop and rloop
# there, and runs benches/python/bench.py (asyncio vs aioloop vs uvloop vs rloop, one run).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root/python"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check maturin uvloop rloop
(source .venv/bin/activate && maturin develop -q --release)
.venv/bin/python "$root/benches/python/bench.py" "$@"
