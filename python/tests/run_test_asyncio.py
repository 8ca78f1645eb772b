"""CPython's test_asyncio run against aioloop's event loop.

Hooks (as uvloop's suite does): the Unix default policy's ``_loop_factory`` becomes
``aioloop.EventLoop`` (a class attribute, so it survives the tests'
``set_event_loop_policy(None)`` teardowns), and ``test_events.EventLoopTestsMixin`` is run
with a ``create_event_loop()`` returning an aioloop loop. Tests that build a specific asyncio
loop class themselves (selector/proactor internals) still run on asyncio's loop.

Every failure must be listed in ``test_asyncio_expected_failures.txt`` with its reason; a
listed test that passes is reported too, so the list only shrinks.

Usage: python tests/run_test_asyncio.py [--native-tasks] [--write-expected] [module ...]
"""

import argparse
import asyncio
import os
import signal
import sys
import time
import unittest

import aioloop

HERE = os.path.dirname(os.path.abspath(__file__))
EXPECTED = os.path.join(HERE, "test_asyncio_expected_failures.txt")
# Failures only with the native Task (in addition to the list above).
EXPECTED_NATIVE = os.path.join(HERE, "test_asyncio_expected_failures_native.txt")

# Modules of test.test_asyncio that exercise the event loop through the policy or
# EventLoopTestsMixin (the ones testing asyncio's own selector/proactor/unix internals
# with mocks are left out: they never touch the swapped-in loop).
MODULES = [
    "test_base_events",
    "test_context",
    "test_events",
    "test_futures",
    "test_futures2",
    "test_locks",
    "test_pep492",
    "test_queues",
    "test_runners",
    "test_sleep",
    "test_streams",
    "test_taskgroups",
    "test_tasks",
    "test_threads",
    "test_timeouts",
    "test_waitfor",
    "test_asyncio_waitfor",
    "test_subprocess",
    "test_server",
    "test_sock_lowlevel",
    "test_sendfile",
    "test_buffered_proto",
    "test_protocols",
    "test_transports",
    "test_runners",
]


def load_expected(path):
    expected = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                test_id, _, reason = line.partition(" # ")
                expected[test_id.strip()] = reason.strip()
    return expected


def io_reason(text):
    for needle in (
        "NotImplementedError",
        "add_reader",
        "add_writer",
        "sock_",
        "create_connection",
        "create_server",
        "create_unix",
        "subprocess",
        "signal",
        "datagram",
        "getaddrinfo",
        "connect_read_pipe",
        "connect_write_pipe",
        "sendfile",
    ):
        if needle in text:
            return "part 2, needs network I/O"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--native-tasks", action="store_true")
    ap.add_argument("--write-expected", action="store_true")
    ap.add_argument(
        "--loop",
        choices=("aioloop", "uvloop", "rloop"),
        default="aioloop",
        help="run the same selection on another loop, for comparison (counts only)",
    )
    ap.add_argument("modules", nargs="*")
    args = ap.parse_args()

    native = args.native_tasks

    def factory():
        return aioloop.EventLoop(native_tasks=native)

    if args.loop != "aioloop":
        other = __import__(args.loop).new_event_loop

        def factory():  # noqa: F811 (the comparison loop replaces aioloop's)
            return other()

    asyncio.DefaultEventLoopPolicy._loop_factory = staticmethod(factory)

    from test.test_asyncio import test_events, utils as test_utils

    class AioloopEventLoopTests(test_events.EventLoopTestsMixin, test_utils.TestCase):
        def create_event_loop(self):
            return factory()

    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    suite.addTests(loader.loadTestsFromTestCase(AioloopEventLoopTests))
    for name in args.modules or sorted(set(MODULES)):
        try:
            mod = __import__(f"test.test_asyncio.{name}", fromlist=["_"])
        except ImportError:
            continue
        suite.addTests(loader.loadTestsFromModule(mod))

    # test_events.GetEventLoopTestsMixin.setUp swaps asyncio's running-loop functions for
    # their Python versions, then attaches a child watcher, which needs add_signal_handler
    # (part 2): the setUp fails, its tearDown never runs, and every later test would see
    # the swapped functions. Restore them after each test so one missing feature fails
    # only its own tests.
    from asyncio import events as _events

    names = ("_get_running_loop", "_set_running_loop", "get_running_loop", "get_event_loop")
    saved = {n: getattr(_events, n) for n in names}
    stop_test = unittest.TextTestResult.stopTest

    start_test = unittest.TextTestResult.startTest

    def alarmed_start_test(self, test):
        # A test that hangs on this loop fails after 60 s instead of stalling the run
        # (SIGALRM interrupts the loop's wait; the handler's exception surfaces there).
        signal.alarm(60)
        start_test(self, test)

    def restoring_stop_test(self, test):
        signal.alarm(0)
        stop_test(self, test)
        for n, f in saved.items():
            setattr(_events, n, f)
            setattr(asyncio, n, f)

    unittest.TextTestResult.stopTest = restoring_stop_test
    unittest.TextTestResult.startTest = alarmed_start_test

    def on_alarm(signum, frame):
        raise TimeoutError("test took over 60 s on aioloop (hung)")

    signal.signal(signal.SIGALRM, on_alarm)
    started = time.monotonic()
    result = unittest.TextTestRunner(stream=open(os.devnull, "w"), verbosity=0).run(suite)
    took = time.monotonic() - started

    failed = {}
    for test, text in result.failures + result.errors:
        failed[test.id()] = text
    for test, _ in result.unexpectedSuccesses:
        pass
    if args.loop != "aioloop":
        print(
            f"test_asyncio on {args.loop}: {result.testsRun} run, "
            f"{result.testsRun - len(failed) - len(result.skipped)} passed, "
            f"{len(failed)} failed, {len(result.skipped)} skipped, {took:.1f} s"
        )
        return 0
    expected = load_expected(EXPECTED)
    path = EXPECTED
    if native:
        base = expected
        expected = dict(base, **load_expected(EXPECTED_NATIVE))
        path = EXPECTED_NATIVE
    if args.write_expected:
        with open(path, "w") as f:
            if native:
                header = (
                    "# CPython test_asyncio tests (3.11) that fail on aioloop.EventLoop with its\n"
                    "# native Task only (the common list: test_asyncio_expected_failures.txt).\n"
                )
            else:
                header = "# CPython test_asyncio tests (3.11) that fail on aioloop.EventLoop, with why.\n"
            f.write(header + "# One per line: <test id> # <reason>. The list only shrinks.\n")
            for tid in sorted(failed):
                if native and tid in base:
                    continue
                reason = expected.get(tid) or io_reason(failed[tid]) or "TODO"
                f.write(f"{tid} # {reason}\n")
    unexpected = sorted(set(failed) - set(expected))
    fixed = sorted(t for t in expected if t not in failed and any(
        t.startswith(f"test.test_asyncio.{m}.") or t.startswith("__main__.") for m in (args.modules or MODULES)))
    print(
        f"test_asyncio on aioloop ({'native' if native else 'asyncio'} tasks): "
        f"{result.testsRun} run, {result.testsRun - len(failed) - len(result.skipped)} passed, "
        f"{len(failed)} failed ({len(set(failed) & set(expected))} expected), "
        f"{len(result.skipped)} skipped, {took:.1f} s"
    )
    for tid in unexpected:
        print(f"UNEXPECTED FAILURE: {tid}\n{failed[tid]}")
    for tid in fixed:
        print(f"NOW PASSES (remove from the list): {tid}")
    return 1 if unexpected or fixed else 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # A failing test can leave a ProcessPoolExecutor behind (test_events'
    # test_get_event_loop_new_process, listed): the interpreter's exit would join its
    # workers forever. Its workers exit on their own once this process is gone.
    os._exit(code)
