"""Tasks and Python's cycle collector (python/src/task_gc.rs), both ways: asyncio's C Task
(the reference) and aioloop's native Task. A pending task abandoned while it waits is in a
cycle (task -> awaited future -> its wakeup -> task): it must be collected and reported
(rule T11, CPython test_tasks: test_log_destroyed_pending_task, test_task_del_collect,
test_del__log_destroy_pending_segfault); a task the loop will still run must not be; an
error nobody retrieved is reported when the cycle holding it is collected (rule F6)."""

import asyncio
import gc
import weakref

import pytest


@pytest.fixture
def seen(loop):
    """The exception handler's contexts, without the objects (keeping a task there would
    resurrect it): (message, type of its task/future, exception type)."""
    out = []

    def handler(lp, ctx):
        obj = ctx.get("task", ctx.get("future"))
        exc = ctx.get("exception")
        out.append((ctx["message"], type(obj) if obj is not None else None, type(exc)))

    loop.set_exception_handler(handler)
    return out


async def wait_on(fut):
    await fut
    raise AssertionError("never resumed")


def start_waiting(loop):
    """A task suspended on a future nothing else will complete; returns both."""
    fut = loop.create_future()
    task = loop.create_task(wait_on(fut))
    loop.run_until_complete(asyncio.sleep(0))
    assert not task.done() and task._fut_waiter is fut
    return task, fut


def test_abandoned_pending_task_is_collected_and_reported(loop, seen):
    # rule T11
    task, fut = start_waiting(loop)
    ref, cls = weakref.ref(task), type(task)
    del task, fut
    gc.collect()
    assert ref() is None
    assert asyncio.all_tasks(loop) == set()
    assert seen == [("Task was destroyed but it is pending!", cls, type(None))]


def test_collected_when_loop_closed_with_its_wakeup_queued(loop, seen):
    # The future completes (the wakeup is queued as a handle), then the loop is closed:
    # the queue is dropped, the task is left in its cycle with its wakeup.
    task, fut = start_waiting(loop)
    fut.set_result(None)
    loop.close()
    ref = weakref.ref(task)
    del task, fut
    gc.collect()
    assert ref() is None
    assert [m for m, _, _ in seen] == ["Task was destroyed but it is pending!"]


def test_task_awaiting_a_task_abandoned_together(loop, seen):
    # outer's coroutine frame holds what `await inner` iterates (for the native Task, a
    # TaskIter), which holds inner; inner's done callback is outer's wakeup.
    fut = loop.create_future()
    inner = loop.create_task(wait_on(fut))

    async def outer_body():
        await inner

    outer = loop.create_task(outer_body())
    loop.run_until_complete(asyncio.sleep(0))
    refs = [weakref.ref(inner), weakref.ref(outer)]
    del inner, outer, fut
    gc.collect()
    assert [r() for r in refs] == [None, None]
    assert len(seen) == 2


def test_task_in_a_cycle_with_its_result(loop, seen):
    class Box:
        pass

    async def make():
        return Box()

    task = loop.create_task(make())
    box = loop.run_until_complete(task)
    box.task = task  # task -> result -> box.__dict__ -> task
    ref = weakref.ref(task)
    del task, box
    gc.collect()
    assert ref() is None
    assert seen == []


def test_unretrieved_error_in_a_cycle_is_reported_when_collected(loop, seen):
    # rule F6: the error's traceback holds the coroutine's frame, which holds the task.
    async def fail():
        me = asyncio.current_task()  # noqa: F841 (kept in the frame)
        raise ValueError("lost")

    task = loop.create_task(fail())
    loop.run_until_complete(asyncio.sleep(0))
    assert task.done()
    ref, cls = weakref.ref(task), type(task)
    del task
    gc.collect()
    assert ref() is None
    assert seen == [("Task exception was never retrieved", cls, ValueError)]


def test_instance_dict_is_visited(loop, seen):
    # An attribute pointing back at the task (asyncio's tasks take attributes).
    task, fut = start_waiting(loop)
    task.me = task
    ref = weakref.ref(task)
    del task, fut
    gc.collect()
    assert ref() is None


def test_a_scheduled_task_is_not_collected(loop, seen):
    # Referenced only by the loop's ready queue (its first step, then its queued wakeup),
    # a task in a cycle survives collection and runs; abandoned, it is collected.
    ran = []

    async def body(fut):
        ran.append(await fut)
        await asyncio.Future()  # never completed: abandoned here

    fut = loop.create_future()
    task = loop.create_task(body(fut))
    task.me = task
    ref = weakref.ref(task)
    del task
    gc.collect()
    assert ref() is not None
    loop.run_until_complete(asyncio.sleep(0))
    fut.set_result(7)  # queues the wakeup
    del fut
    gc.collect()
    assert ref() is not None
    loop.run_until_complete(asyncio.sleep(0))
    assert ran == [7]
    gc.collect()
    assert ref() is None
    assert [m for m, _, _ in seen] == ["Task was destroyed but it is pending!"]


def test_run_until_complete_task_is_not_reported(loop, seen):
    # run_until_complete turns _log_destroy_pending off for the task it makes: the caller
    # already got "Event loop stopped before Future completed."
    refs = []

    async def main():
        refs.append(weakref.ref(asyncio.current_task()))
        loop.stop()
        await loop.create_future()  # never completed: abandoned here

    # Not pytest.raises: its record of the error keeps run_until_complete's frame, and so
    # the task, alive.
    try:
        loop.run_until_complete(main())
    except RuntimeError as e:
        assert "stopped before Future completed" in str(e)
    else:
        pytest.fail("run_until_complete returned")
    gc.collect()
    assert refs[0]() is None
    assert seen == []


def test_log_destroy_pending_cannot_be_deleted(loop):
    # CPython test_del__log_destroy_pending_segfault
    async def coro():
        pass

    task = loop.create_task(coro())
    assert task._log_destroy_pending is True
    loop.run_until_complete(task)
    with pytest.raises(AttributeError):
        del task._log_destroy_pending


def test_handler_keeping_the_task_resurrects_it(loop):
    kept = []
    loop.set_exception_handler(lambda lp, ctx: kept.append(ctx["task"]))
    task, fut = start_waiting(loop)
    del task, fut
    gc.collect()
    assert len(kept) == 1
    task = kept.pop()
    assert not task.done() and "pending" in repr(task)
    # Reported once: finalizers run once per object (PEP 442).
    ref = weakref.ref(task)
    del task
    gc.collect()
    assert ref() is None and kept == []


def test_collection_while_the_task_holds_its_lock(loop):
    # The native Task's repr holds its state lock while it formats the result: a full
    # collection then traverses the task with the lock held, which must not block.
    class Result:
        def __repr__(self):
            gc.collect()
            return "Result()"

    async def make():
        return Result()

    task = loop.create_task(make())
    loop.run_until_complete(task)
    assert "result=Result()" in repr(task)


def test_collection_inside_the_task_machinery(loop, seen):
    # A collection on every allocation (threshold 1): some run while a task holds its own
    # state lock (a cancellation error built inside it), where traversal must not block;
    # destructors that collect run while tasks are freed (CPython test_task_del_collect).
    class Evil:
        def __del__(self):
            gc.collect()

    async def run():
        return Evil()

    async def cancelled():
        await asyncio.sleep(3600)

    async def main():
        ts = [loop.create_task(cancelled()) for _ in range(20)]
        await asyncio.sleep(0)
        for t in ts:
            t.cancel("stop")
        await asyncio.gather(*ts, return_exceptions=True)
        for t in ts:
            with pytest.raises(asyncio.CancelledError):
                t.result()
        await asyncio.gather(*[loop.create_task(run()) for _ in range(100)])

    old = gc.get_threshold()
    gc.set_threshold(1)
    try:
        loop.run_until_complete(main())
    finally:
        gc.set_threshold(*old)
    assert seen == []
