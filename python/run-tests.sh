#!/usr/bin/env bash
# Builds aioloop's Python package into a venv and runs its tests:
#   1. python3 -m venv python/.venv (created if missing); pip install maturin pytest
#   2. maturin develop (debug build by default: ~30 s clean, a few seconds incremental;
#      AIOLOOP_PY_RELEASE=1 builds --release, as the benchmarks do)
#   3. pytest python/tests (exit 5, "no tests collected", is a failure here: the suite
#      exists, so collecting nothing means it broke)
#   4. CPython's test_asyncio against aioloop.EventLoop (tests/run_test_asyncio.py), with
#      asyncio's Task and with the native Task; fails on a failure missing from
#      tests/test_asyncio_expected_failures.txt or on a listed test that now passes.
# Usage: python/run-tests.sh [--quick | --ci]
#   --quick  skip step 4
#   --ci     step 4 in both task modes, as the default (what .ci/test runs): one run takes
#            ~50 s on the 2-core build machine (debug build, 2026-12-04, loaded), so
#            both fit CI's time budget
# Exits non-zero on the first failing step.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
PY="${PYTHON:-python3}"
mode="${1:-}"
if [ ! -x .venv/bin/python ]; then
    echo "creating python/.venv ($("$PY" --version))"
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check maturin pytest
profile=()
if [ "${AIOLOOP_PY_RELEASE:-0}" = 1 ]; then profile=(--release); fi
(source .venv/bin/activate && maturin develop -q "${profile[@]}")
rc=0
# A hang fails the stage with exit 124 instead of eating CI's time limit.
timeout 300 .venv/bin/python -m pytest -q -p no:cacheprovider tests || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests (exit 5): python/tests is broken or missing" >&2
    exit 5
elif [ "$rc" -eq 124 ]; then
    echo "pytest did not finish within 300 s (a hung test)" >&2
    exit 124
elif [ "$rc" -ne 0 ]; then
    exit "$rc"
fi
case "$mode" in
--quick) ;;
*)
    timeout 900 .venv/bin/python tests/run_test_asyncio.py
    timeout 900 .venv/bin/python tests/run_test_asyncio.py --native-tasks
    ;;
esac
