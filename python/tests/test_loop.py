"""The loop itself: scheduling, pass boundaries, lifecycle, threads, executor, errors.

Names follow asyncio's tests (test_events.EventLoopTestsMixin, test_base_events) where a
test is the same check."""

import asyncio
import concurrent.futures
import contextvars
import threading

import pytest

import aioloop


def test_is_an_abstract_event_loop(loop):
    assert isinstance(loop, asyncio.AbstractEventLoop)
    assert isinstance(loop, aioloop.EventLoop)


def test_call_soon_fifo_with_args(loop):
    log = []
    for i in range(5):
        loop.call_soon(log.append, i)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == [0, 1, 2, 3, 4]


def test_call_soon_arguments(loop):
    """call_soon(callback, *args, context=None) as asyncio's (base_events.call_soon): any
    number of positional arguments, context by keyword only; a missing callback or an
    unknown keyword is a TypeError (the method is a raw fastcall wrapper, fastcall.rs)."""
    log = []
    var = contextvars.ContextVar("var", default="outer")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "inner")
    loop.call_soon(log.append)  # TypeError inside: reported, not raised here
    loop.call_soon(lambda *a: log.append(a))
    loop.call_soon(lambda *a: log.append(a), 1, "two", None)
    loop.call_soon(lambda: log.append(var.get()), context=ctx)
    loop.call_soon(lambda: log.append(var.get()), context=None)
    with pytest.raises(TypeError, match="callback"):
        loop.call_soon()
    with pytest.raises(TypeError, match="unexpected keyword argument 'ctx'"):
        loop.call_soon(log.append, 1, ctx=ctx)
    errors = []
    loop.set_exception_handler(lambda lp, c: errors.append(c["exception"]))
    h = aioloop.EventLoop.call_soon(loop, loop.stop)
    assert isinstance(h, aioloop.Handle)
    loop.run_forever()
    assert log == [(), (1, "two", None), "inner", "outer"]
    assert len(errors) == 1 and isinstance(errors[0], TypeError)
    with pytest.raises(TypeError):
        aioloop.EventLoop.call_soon(object(), print)


def test_handle_cancel(loop):
    log = []
    h = loop.call_soon(log.append, 1)
    assert isinstance(h, aioloop.Handle) and not h.cancelled()
    h.cancel()
    assert h.cancelled()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == []


def test_call_later_order_and_when(loop):
    log = []
    t0 = loop.time()
    h2 = loop.call_later(0.02, log.append, 2)
    h1 = loop.call_later(0.01, log.append, 1)
    assert isinstance(h1, aioloop.TimerHandle)
    assert h1.when() == pytest.approx(t0 + 0.01, abs=0.005)
    h3 = loop.call_at(h2.when() + 0.01, log.append, 3)
    loop.call_at(h3.when(), loop.stop)
    loop.run_forever()
    assert log == [1, 2, 3]
    assert loop.time() >= h3.when()


def test_timer_cancel(loop):
    log = []
    h = loop.call_later(0.001, log.append, 1)
    h.cancel()
    assert h.cancelled()
    loop.call_later(0.005, loop.stop)
    loop.run_forever()
    assert log == []


def test_call_later_none_delay_is_type_error(loop):
    with pytest.raises(TypeError):
        loop.call_later(None, print)


def test_pass_runs_everything_ready_at_its_start(loop):
    """asyncio's _run_once: all callbacks ready when the pass began run (no 256 cap);
    what they schedule waits for the next pass, and stop() ends after this pass."""
    log = []

    def cb(i):
        log.append(i)
        loop.call_soon(log.append, "late")

    loop.call_soon(loop.stop)
    for i in range(1000):
        loop.call_soon(cb, i)
    loop.run_forever()
    assert log == list(range(1000))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log[1000:] == ["late"] * 1000


def test_stop_before_run_forever_runs_one_pass(loop):
    log = []
    loop.stop()
    loop.call_soon(log.append, 1)
    loop.run_forever()
    assert log == [1]


def test_context_is_copied_and_passed(loop):
    var = contextvars.ContextVar("var", default="default")
    seen = []
    var.set("outer")
    loop.call_soon(lambda: seen.append(var.get()))
    ctx = contextvars.Context()
    ctx.run(var.set, "inner")
    loop.call_soon(lambda: seen.append(var.get()), context=ctx)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ["outer", "inner"]


def test_run_until_complete_result_and_error(loop):
    async def ok():
        await asyncio.sleep(0)
        return 5

    async def bad():
        raise ValueError("x")

    assert loop.run_until_complete(ok()) == 5
    with pytest.raises(ValueError):
        loop.run_until_complete(bad())


def test_run_until_complete_stopped(loop):
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="Event loop stopped before Future completed."):
        loop.run_until_complete(fut)


def test_is_running_and_get_running_loop(loop):
    async def main():
        assert loop.is_running()
        assert asyncio.get_running_loop() is loop
        with pytest.raises(RuntimeError, match="already running"):
            loop.run_forever()

    assert not loop.is_running()
    loop.run_until_complete(main())
    assert not loop.is_running()


def test_close(loop):
    assert not loop.is_closed()
    loop.close()
    assert loop.is_closed()
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon(print)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_forever()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon_threadsafe(print)


def test_close_running_loop(loop):
    async def main():
        with pytest.raises(RuntimeError, match="Cannot close a running event loop"):
            loop.close()

    loop.run_until_complete(main())


def test_call_soon_threadsafe_wakes_a_waiting_loop(loop):
    got = []

    def worker():
        loop.call_soon_threadsafe(got.append, threading.get_ident())
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Timer(0.01, worker)
    t.start()
    loop.run_forever()  # waits with the GIL released until the thread posts
    t.join()
    assert got and got[0] != threading.get_ident()


def test_wrong_thread_is_runtime_error_not_panic(loop):
    errors = []

    def worker():
        for f in (lambda: loop.call_soon(print), loop.stop, loop.time, lambda: loop.call_later(1, print)):
            try:
                f()
            except RuntimeError as e:
                errors.append(str(e))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert len(errors) == 4
    assert all("other than the current one" in e for e in errors)


def test_callback_exception_goes_to_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    assert loop.get_exception_handler() is not None

    def boom():
        raise ZeroDivisionError

    h = loop.call_soon(boom)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], ZeroDivisionError)
    assert contexts[0]["handle"] is h
    assert "Exception in callback" in contexts[0]["message"]


@pytest.mark.parametrize("args", [(), ("one",), ("one", 2)], ids=["none", "one", "two"])
def test_callback_arguments_and_report(loop, args):
    """call_soon(cb, *args): the arguments reach the callback as given (one argument — a
    future's done callback, a task's wakeup — is kept without a tuple), a cancelled handle
    does not run, and a failure is reported with the callback and its arguments."""
    seen, contexts = [], []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def record(*a):
        seen.append(a)

    def boom(*a):
        raise ValueError(a)

    loop.call_soon(record, *args)
    loop.call_soon(record, *args).cancel()
    h = loop.call_soon(boom, *args)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [args]
    assert len(contexts) == 1 and contexts[0]["handle"] is h
    assert contexts[0]["exception"].args == (args,)
    assert f"Exception in callback {boom.__qualname__}{args}" == contexts[0]["message"]


def test_default_exception_handler_logs(loop, caplog):
    loop.call_exception_handler({"message": "hello there"})
    assert "hello there" in caplog.text
    loop.default_exception_handler({"message": "again"})
    assert "again" in caplog.text


def test_keyboard_interrupt_propagates_from_run_forever(loop):
    def ki():
        raise KeyboardInterrupt

    loop.call_soon(ki)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert not loop.is_running()


def test_debug(loop):
    loop.set_debug(True)
    assert loop.get_debug()
    loop.set_debug(False)
    assert not loop.get_debug()


def test_debug_attribute_and_get_debug_agree(loop):
    """asyncio's code reads and writes loop._debug; get_debug() is the Rust core's flag
    (asked by every C Future's creation): both are one flag, and debug mode reaches the
    handles (their _source_traceback)."""
    loop._debug = True
    assert loop.get_debug() is True
    h = loop.call_soon(print)
    assert h._source_traceback is not None
    h.cancel()
    loop.set_debug(False)
    assert loop._debug is False
    assert loop.call_soon(print)._source_traceback is None


def test_run_in_executor_default_is_thread_pool(loop):
    async def main():
        r = await loop.run_in_executor(None, threading.get_ident)
        assert isinstance(loop._default_executor, concurrent.futures.ThreadPoolExecutor)
        return r

    assert loop.run_until_complete(main()) != threading.get_ident()
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError):
        loop.run_in_executor(None, print)


def test_shutdown_asyncgens(loop):
    closed = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            closed.append(True)

    async def main():
        g = agen()
        await g.__anext__()
        return g

    g = loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert closed == [True]
    del g


def test_task_factory(loop):
    made = []

    def factory(lp, coro, **kw):
        t = asyncio.Task(coro, loop=lp, **kw)
        made.append(t)
        return t

    assert loop.get_task_factory() is None
    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory

    async def main():
        return 3

    assert loop.run_until_complete(main()) == 3
    assert len(made) == 1
    loop.set_task_factory(None)


def test_native_task_factory_selectable():
    lp = aioloop.new_event_loop()
    lp.set_task_factory(aioloop.task_factory)

    async def main():
        return type(asyncio.current_task())

    try:
        assert lp.run_until_complete(main()) is aioloop.Task
    finally:
        lp.close()


def test_run_and_policy():
    async def main():
        return type(asyncio.get_running_loop())

    assert aioloop.run(main()) is aioloop.EventLoop
    old = asyncio.get_event_loop_policy()
    try:
        aioloop.install()
        assert isinstance(asyncio.get_event_loop_policy(), aioloop.EventLoopPolicy)
        assert asyncio.run(main()) is aioloop.EventLoop
    finally:
        asyncio.set_event_loop_policy(old)


@pytest.fixture
def sigint_raises():
    """Python's own SIGINT handler for the test. A process started in the background by a
    non-interactive shell (as CI may start this suite) inherits SIGINT ignored, and then
    Python installs no KeyboardInterrupt handler: the signal would be lost and the loop
    wait forever."""
    import signal

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def test_ctrl_c_interrupts_a_waiting_loop(loop, sigint_raises):
    """The loop waits with the GIL released; SIGINT ends the wait and Python's handler
    raises KeyboardInterrupt out of run_forever (asyncio: the selector's EINTR)."""
    import os
    import signal

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    t = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
    t.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()  # nothing scheduled: waits until the signal
    finally:
        t.join()
    assert not loop.is_running()


def test_runner_cancels_main_task_on_ctrl_c(sigint_raises):
    """asyncio.Runner's SIGINT handler cancels the main task and wakes the loop through
    call_soon_threadsafe."""
    import os
    import signal

    async def main():
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
        await asyncio.sleep(10)

    with pytest.raises(KeyboardInterrupt):
        aioloop.run(main())


def _run_a_loop_in_child():
    loop = aioloop.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.sleep(0, result="ran"))
    finally:
        loop.close()


def test_process_forked_by_running_loop_can_run_a_loop(loop):
    """test_events.TestCGetEventLoop.test_get_event_loop_new_process: a ProcessPoolExecutor
    worker forked from inside the running loop does not inherit "a loop runs on this
    thread" (aioloop's fork hook, as asyncio's for its own running loop)."""
    import multiprocessing

    async def main():
        ctx = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
            return await loop.run_in_executor(pool, _run_a_loop_in_child)

    assert loop.run_until_complete(main()) == "ran"


def test_call_soon_threadsafe_posted_during_a_pass_runs(loop):
    """test_events' test_call_soon_threadsafe, with the post landing while the loop runs a
    pass: the wake-up is consumed by that pass, the callback must still run (it stops the
    loop; the 10 s timer only ends a loop that lost it)."""
    got = []

    def post():
        loop.call_soon_threadsafe(lambda: (got.append("posted"), loop.stop()))

    def during_pass():
        t = threading.Thread(target=post)
        t.start()
        t.join()

    loop.call_soon(during_pass)
    watchdog = loop.call_later(10, loop.stop)
    loop.run_forever()
    watchdog.cancel()
    assert got == ["posted"]


def test_call_soon_threadsafe_keeps_order_with_call_soon(loop):
    """test_events' test_call_soon_threadsafe and ..._same_thread: a callback posted from
    another thread (or this one) before a call_soon runs first."""
    log = []
    t = threading.Thread(target=lambda: loop.call_soon_threadsafe(log.append, "thread"))
    t.start()
    t.join()
    loop.call_soon_threadsafe(log.append, "same thread")
    loop.call_soon(log.append, "call_soon")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == ["thread", "same thread", "call_soon"]


def test_timer_runs_after_callbacks_queued_before_its_pass(loop):
    """asyncio's _run_once order: callbacks queued before a pass run before the timers that
    pass finds due (aioloop runs its own queue, then the LocalLoop's timers); what those
    queue runs in the next pass."""
    log = []

    def timer():
        log.append("timer")
        loop.call_soon(log.append, "after timer")
        loop.call_soon(loop.stop)

    loop.call_at(loop.time() - 1, timer)
    loop.call_soon(log.append, "soon")
    loop.call_soon(lambda: loop.call_soon(log.append, "next pass"))
    loop.run_forever()
    assert log == ["soon", "timer", "next pass", "after timer"]


def test_call_soon_attribute_is_one_bound_copy(loop):
    """asyncio's C Task looks `call_soon` up as an attribute on every step; the loop's
    descriptor returns one bound copy made on first use (fastcall.rs), which must behave as
    the method: same arguments, and no reference that keeps the loop alive. Called through
    the class, the loop is the first argument, and must be a loop."""
    import gc
    import weakref

    assert "call_soon" not in vars(loop)
    assert loop.call_soon is loop.call_soon
    log = []
    type(loop).call_soon(loop, log.append, 0)
    with pytest.raises(TypeError):
        type(loop).call_soon(object(), log.append, 0)
    with pytest.raises(TypeError):
        type(loop).call_soon()
    h = loop.call_soon(log.append, 1, context=contextvars.copy_context())
    assert not h.cancelled()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert log == [0, 1]

    lp = aioloop.new_event_loop()
    cs = lp.call_soon
    ref = weakref.ref(lp)
    lp.close()
    del lp
    gc.collect()
    assert ref() is None
    with pytest.raises(RuntimeError, match="closed"):
        cs(log.append, 2)


def test_call_soon_subclass_override_wins():
    """A subclass overriding call_soon is asked, not the base's descriptor: asyncio's Task
    then reaches the override (test_tasks' loops that count call_soon calls). The native
    Task queues its steps on the Rust core without asking call_soon: asyncio's Task here."""
    calls = []

    class Counting(aioloop.EventLoop):
        def call_soon(self, callback, *args, context=None):
            calls.append(callback)
            return super().call_soon(callback, *args, context=context)

    lp = Counting(native_tasks=False)
    try:

        async def main():
            await asyncio.sleep(0)
            return 7

        assert lp.run_until_complete(main()) == 7
        assert calls
    finally:
        lp.close()


def test_task_factory_attribute_is_the_loops():
    """`_task_factory` and `_native_tasks` are the Rust core's fields behind properties:
    asyncio's set_task_factory (which assigns `self._task_factory`) reaches create_task."""
    lp = aioloop.new_event_loop(native_tasks=True)
    try:
        assert lp._native_tasks is True
        assert lp._task_factory is None

        async def main():
            return type(asyncio.current_task())

        assert lp.run_until_complete(main()) is aioloop.Task
        lp._native_tasks = False
        assert lp.run_until_complete(main()) is asyncio.Task
        lp.set_task_factory(aioloop.task_factory)
        assert lp.get_task_factory() is aioloop.task_factory
        assert lp.run_until_complete(main()) is aioloop.Task
        lp.set_task_factory(None)
        assert lp._task_factory is None
    finally:
        lp.close()


def test_c_methods_check_self_and_answer():
    """get_debug, create_future (Loop) and write, is_closing (the socket transport) are C
    methods of their classes (python/src/rawmeth.rs): CPython's descriptor refuses another
    `self`, and they answer as the Python-level methods did."""
    from aioloop import _aioloop

    for cls, name, args in [
        (aioloop.EventLoop, "get_debug", ()),
        (aioloop.EventLoop, "create_future", ()),
        (_aioloop.SocketTransport, "write", (b"x",)),
        (_aioloop.SocketTransport, "is_closing", ()),
    ]:
        with pytest.raises(TypeError):
            getattr(cls, name)(object(), *args)
    lp = aioloop.new_event_loop()
    try:
        assert lp.get_debug() is False
        lp.set_debug(True)
        assert lp.get_debug() is True
        lp.set_debug(False)
        fut = lp.create_future()
        assert type(fut) is asyncio.Future and fut.get_loop() is lp
        with pytest.raises(TypeError):
            lp.get_debug(1)
    finally:
        lp.close()
