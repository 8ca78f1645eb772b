#!/usr/bin/env bash
# Builds aioloop's Python package into a venv and runs its tests:
#   1. python3 -m venv python/.venv; pip install maturin pytest
#   2. maturin develop (debug build by default: ~30 s clean, a few seconds incremental;
#      AIOLOOP_PY_RELEASE=1 builds --release, as the benchmarks do)
#   3. pytest python/tests
#   4. CPython's test_asyncio against aioloop.EventLoop (tests/run_test_asyncio.py), with
#      asyncio's Task and with the native Task; fails on a failure missing from
#      tests/test_asyncio_expected_failures.txt or on a listed test that now passes.
# Usage: python/run-tests.sh [--quick]   (--quick: skip the test_asyncio run)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check maturin pytest
profile=()
if [ "${AIOLOOP_PY_RELEASE:-0}" = 1 ]; then profile=(--release); fi
(source .venv/bin/activate && maturin develop -q "${profile[@]}")
.venv/bin/python -m pytest -q tests
if [ "${1:-}" != --quick ]; then
    .venv/bin/python tests/run_test_asyncio.py
    .venv/bin/python tests/run_test_asyncio.py --native-tasks
fi
