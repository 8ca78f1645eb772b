"""A task awaiting each kind of future its step treats differently (python/src/task_await.rs):
asyncio's C Future, asyncio's C Task, aioloop's native Task, and any other future (a
Python subclass of Future: its attributes may be overridden, so it goes the generic way).
Each kind is checked for its result, its exception, cancellation through it, and the
different-loop check — asyncio's Task.__step (CPython test_tasks: test_task_await_future,
test_cancel_yield, test_step_result_future, test_task_set_methods)."""

import asyncio

import pytest

import aioloop


class PyFuture(asyncio.Future):
    """A Future subclass that counts get_loop() calls: the generic path must call it."""

    get_loop_calls = 0

    def get_loop(self):
        PyFuture.get_loop_calls += 1
        return super().get_loop()


def make_future(kind, loop):
    """A pending future of `kind` on `loop`, and a function that completes it with `how`."""
    if kind == "c-future":
        fut = loop.create_future()
        assert type(fut) is asyncio.Future
        return fut, lambda how, v: getattr(fut, how)(v)
    if kind == "py-future":
        fut = PyFuture(loop=loop)
        return fut, lambda how, v: getattr(fut, how)(v)
    gate = loop.create_future()

    async def inner():
        return await gate

    if kind == "c-task":
        task = asyncio.Task(inner(), loop=loop)
        assert type(task) is asyncio.Task
    else:
        task = aioloop.Task(inner(), loop=loop)
    return task, lambda how, v: getattr(gate, how)(v)


KINDS = ["c-future", "c-task", "native-task", "py-future"]


@pytest.mark.parametrize("kind", KINDS)
def test_result_reaches_the_awaiting_task(loop, kind):
    async def main():
        fut, complete = make_future(kind, loop)
        loop.call_soon(complete, "set_result", 42)
        return await fut

    assert loop.run_until_complete(main()) == 42


@pytest.mark.parametrize("kind", KINDS)
def test_exception_is_thrown_into_the_awaiting_task(loop, kind):
    async def main():
        fut, complete = make_future(kind, loop)
        loop.call_soon(complete, "set_exception", ValueError("boom"))
        try:
            await fut
        except ValueError as e:
            return str(e)

    assert loop.run_until_complete(main()) == "boom"


@pytest.mark.parametrize("kind", KINDS)
def test_cancelling_the_task_cancels_the_awaited_future(loop, kind):
    """test_tasks.test_cancel_yield: cancel() goes to the future the task waits on."""
    fut_box = []

    async def waiter():
        fut, _ = make_future(kind, loop)
        fut_box.append(fut)
        await fut

    async def main():
        t = loop.create_task(waiter())
        await asyncio.sleep(0)
        assert t.cancel("stop")
        with pytest.raises(asyncio.CancelledError):
            await t
        return t

    t = loop.run_until_complete(main())
    assert t.cancelled()
    assert fut_box[0].cancelled()


@pytest.mark.parametrize("kind", KINDS)
def test_future_of_another_loop_is_refused(loop, kind):
    other = aioloop.new_event_loop()
    try:
        fut, _ = make_future(kind, other)

        async def main():
            await fut

        with pytest.raises(RuntimeError, match="attached to a different loop"):
            loop.run_until_complete(main())
        if kind == "py-future":
            assert PyFuture.get_loop_calls > 0
    finally:
        if isinstance(fut, asyncio.Task) or isinstance(fut, aioloop.Task):
            fut.cancel()
            other.run_until_complete(asyncio.sleep(0))
        other.close()


@pytest.mark.parametrize("kind", ["c-future", "py-future"])
def test_yield_instead_of_yield_from(loop, kind):
    """test_tasks.test_yield_wait_does_not_shield_cancel's sibling: a future yielded bare
    (its blocking flag unset) is an error thrown into the coroutine."""

    fut_box = []

    class Bare:
        def __await__(self):
            fut, complete = make_future(kind, loop)
            fut_box.append(fut)
            yield fut

    async def main():
        await Bare()

    with pytest.raises(RuntimeError, match="yield was used instead of yield from"):
        loop.run_until_complete(main())


def test_blocking_flag_is_cleared_after_await(loop):
    """The step clears _asyncio_future_blocking on the future it waits on (exact C Future,
    set through its descriptor)."""
    seen = []

    async def main():
        fut = loop.create_future()

        def check():
            seen.append(fut._asyncio_future_blocking)
            fut.set_result(None)

        loop.call_soon(check)
        await fut

    loop.run_until_complete(main())
    assert seen == [False]


def test_wakeup_is_a_done_callback_of_the_future(loop):
    """The awaiting task is woken through a callback registered on the future, removable
    as asyncio's is (wait_for and shield rely on callbacks only)."""
    state = {}

    async def main():
        fut = loop.create_future()

        async def waiter():
            await fut

        t = loop.create_task(waiter())
        await asyncio.sleep(0)
        state["callbacks"] = len(fut._callbacks or [])
        fut.set_result(None)
        await t

    loop.run_until_complete(main())
    assert state["callbacks"] == 1


def test_finished_task_is_freed_after_awaiting_futures():
    """The wakeup a native task reuses across awaits refers back to the task; finishing
    drops it, so a finished task is freed by reference counting alone (no cycle left)."""
    import gc
    import weakref

    loop = aioloop.new_event_loop(native_tasks=True)
    try:

        async def waiter():
            for _ in range(3):
                fut = loop.create_future()
                loop.call_soon(fut.set_result, None)
                await fut
            await asyncio.sleep(0)
            fut = loop.create_future()
            loop.call_soon(fut.set_result, 7)
            return await fut

        t = loop.create_task(waiter())
        assert isinstance(t, aioloop.Task)
        assert loop.run_until_complete(t) == 7
        ref = weakref.ref(t)
        gc.disable()
        try:
            del t
            assert ref() is None
        finally:
            gc.enable()
    finally:
        loop.close()


@pytest.mark.parametrize("before", [False, True], ids=["first-callback", "after-another"])
def test_wakeup_keeps_its_place_among_callbacks(loop, before):
    """A C Future's callbacks run in the order they were added, whether the task's wakeup
    took the first slot (stored in place, python/src/cfuture.rs) or came after another
    (through add_done_callback); remove_done_callback and _callbacks see it either way."""
    order = []

    async def main():
        fut = loop.create_future()
        assert type(fut) is asyncio.Future
        ours = lambda f: order.append("ours")  # noqa: E731
        if before:
            fut.add_done_callback(ours)

        async def waiter():
            await fut
            order.append("task")

        t = loop.create_task(waiter())
        await asyncio.sleep(0)
        if not before:
            fut.add_done_callback(ours)
        assert len(fut._callbacks) == 2
        assert fut.remove_done_callback(ours) == 1
        assert len(fut._callbacks) == 1
        fut.add_done_callback(ours)
        fut.set_result(None)
        await t

    loop.run_until_complete(main())
    assert order == ["task", "ours"]


def test_result_is_read_once_done(loop):
    """The wakeup asks result() (in place for a finished C Future with no exception): the
    exception of a failed future still reaches the coroutine and counts as retrieved."""
    seen = []

    def handler(lp, ctx):
        seen.append(ctx["message"])

    loop.set_exception_handler(handler)

    async def main():
        for how in ("ok", "fail", "ok"):
            fut = loop.create_future()
            if how == "ok":
                loop.call_soon(fut.set_result, how)
                assert await fut == how
            else:
                loop.call_soon(fut.set_exception, KeyError(how))
                with pytest.raises(KeyError):
                    await fut
            del fut

    loop.run_until_complete(main())
    import gc

    gc.collect()
    assert seen == []
