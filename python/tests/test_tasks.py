"""Tasks both ways: asyncio's own Task (constructor with loop=self) and aioloop's native
Task (Rust; asyncio's _register_task/_enter_task/_leave_task/_unregister_task)."""

import asyncio
import contextvars
import gc
import reprlib
import subprocess
import sys

import pytest

import aioloop


def expected_type(native):
    return aioloop.Task if native else asyncio.Task


def test_task_type_and_all_tasks_current_task(loop, native):
    async def child():
        await asyncio.sleep(0.001)

    async def main():
        me = asyncio.current_task()
        assert type(me) is expected_type(native)
        c = loop.create_task(child())
        assert c in asyncio.all_tasks()
        assert me in asyncio.all_tasks(loop)
        await c
        assert c not in asyncio.all_tasks()
        assert asyncio.current_task() is me

    loop.run_until_complete(main())
    assert asyncio.current_task(loop) is None


def test_result_exception_done(loop):
    async def ok():
        return 1

    async def bad():
        raise KeyError("k")

    async def main():
        a, b = loop.create_task(ok()), loop.create_task(bad())
        with pytest.raises(asyncio.InvalidStateError):
            a.result()
        with pytest.raises(asyncio.InvalidStateError):
            a.exception()
        await asyncio.sleep(0)
        assert a.done() and b.done()
        assert a.result() == 1 and a.exception() is None
        assert isinstance(b.exception(), KeyError)
        with pytest.raises(KeyError):
            b.result()
        assert not a.cancelled()

    loop.run_until_complete(main())


def test_cancel_with_message(loop):
    async def sleeper():
        await asyncio.sleep(10)

    async def main():
        t = loop.create_task(sleeper())
        await asyncio.sleep(0)
        assert t.cancel("bye")
        assert t.cancelling() == 1
        with pytest.raises(asyncio.CancelledError) as ei:
            await t
        assert ei.value.args == ("bye",)
        assert t.cancelled() and t.done()
        assert not t.cancel()

    loop.run_until_complete(main())


def test_cancel_before_first_step(loop):
    async def never():
        raise AssertionError("must not start")

    async def main():
        t = loop.create_task(never())
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert t.cancelled()

    loop.run_until_complete(main())


def test_cancel_caught_then_uncancel(loop):
    async def stubborn():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()
            return "survived"

    async def main():
        t = loop.create_task(stubborn())
        await asyncio.sleep(0)
        t.cancel()
        assert await t == "survived"
        assert t.cancelling() == 0

    loop.run_until_complete(main())


def test_done_callbacks(loop):
    seen = []

    async def work():
        return 7

    async def main():
        t = loop.create_task(work())
        cb = lambda f: seen.append(("cb", f.result()))
        t.add_done_callback(cb)
        t.add_done_callback(lambda f: seen.append("other"))
        t.add_done_callback(cb)
        assert t.remove_done_callback(cb) == 2
        await t
        await asyncio.sleep(0)
        t.add_done_callback(lambda f: seen.append("late"))
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert seen == ["other", "late"]


def test_get_coro_name_context(loop, native):
    var = contextvars.ContextVar("v")

    async def work():
        return var.get(None)

    async def main():
        coro = work()
        ctx = contextvars.copy_context()
        ctx.run(var.set, 9)
        t = loop.create_task(coro, name="worker", context=ctx)
        assert t.get_coro() is coro
        assert t.get_name() == "worker"
        t.set_name(42)
        assert t.get_name() == "42"
        if native:  # Task.get_context() is 3.12+ in asyncio
            assert t.get_context() is ctx
        assert await t == 9
        u = loop.create_task(work())
        assert u.get_name().startswith("Task-")
        await u

    loop.run_until_complete(main())


def test_default_names_count_in_creation_order(loop, native):
    """asyncio's default names: Task-<n>, numbered when the task is created (the native
    Task makes the string only when asked, from asyncio.tasks' counter read at creation);
    repr shows it."""

    async def work():
        pass

    async def main():
        ts = [loop.create_task(work()) for _ in range(3)]
        last = loop.create_task(work())
        nums = [int(t.get_name()[len("Task-"):]) for t in (*ts, last)]
        assert nums == list(range(nums[0], nums[0] + 4))
        assert f"name='Task-{nums[3]}'" in repr(last)
        assert last.get_name() is last.get_name()
        await asyncio.gather(*ts, last)

    loop.run_until_complete(main())


def test_timeout(loop):
    async def main():
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await asyncio.sleep(10)
        assert asyncio.current_task().cancelling() == 0
        return await asyncio.wait_for(asyncio.sleep(0, "ok"), 1)

    assert loop.run_until_complete(main()) == "ok"


def test_task_group(loop):
    async def ok(i):
        await asyncio.sleep(0.001)
        return i

    async def fail():
        await asyncio.sleep(0.001)
        raise ValueError("bad")

    async def main():
        async with asyncio.TaskGroup() as tg:
            ts = [tg.create_task(ok(i)) for i in range(5)]
        assert [t.result() for t in ts] == list(range(5))
        long = None
        with pytest.raises(ExceptionGroup) as ei:
            async with asyncio.TaskGroup() as tg:
                long = tg.create_task(asyncio.sleep(10))
                tg.create_task(fail())
        assert long.cancelled()
        assert isinstance(ei.value.exceptions[0], ValueError)

    loop.run_until_complete(main())


def test_gather(loop):
    async def ok(i):
        await asyncio.sleep(0)
        return i

    async def bad():
        raise RuntimeError("x")

    async def main():
        assert await asyncio.gather(*(ok(i) for i in range(100))) == list(range(100))
        r = await asyncio.gather(ok(1), bad(), return_exceptions=True)
        assert r[0] == 1 and isinstance(r[1], RuntimeError)
        g = asyncio.gather(asyncio.sleep(10), asyncio.sleep(10))
        await asyncio.sleep(0)
        g.cancel()
        with pytest.raises(asyncio.CancelledError):
            await g

    loop.run_until_complete(main())


def test_await_on_itself_and_bad_yield(loop):
    async def main():
        with pytest.raises(RuntimeError, match="await on itself"):
            await asyncio.current_task()

    loop.run_until_complete(main())


def test_future_from_other_loop(loop):
    other = asyncio.new_event_loop()
    try:
        async def main():
            with pytest.raises(RuntimeError, match="attached to a different loop"):
                await other.create_future()

        loop.run_until_complete(main())
    finally:
        other.close()


def test_keyboard_interrupt_in_task(loop):
    async def main():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(main())


def test_native_task_constructor_is_the_extending_protocol():
    """Seed section 3: a third-party task registers itself, enters/leaves around each step
    and unregisters when done."""
    lp = aioloop.new_event_loop()
    try:
        async def work():
            assert asyncio.current_task() is t
            await asyncio.sleep(0)
            return 1

        t = aioloop.Task(work(), loop=lp)
        assert t in asyncio.all_tasks(lp)
        assert lp.run_until_complete(t) == 1
        assert t not in asyncio.all_tasks(lp)
        with pytest.raises(TypeError):
            aioloop.Task(lambda: None, loop=lp)
    finally:
        lp.close()


def test_many_tasks(loop):
    async def one(i):
        await asyncio.sleep(0)
        return i

    async def main():
        ts = [loop.create_task(one(i)) for i in range(10000)]
        return sum(await asyncio.gather(*ts))

    assert loop.run_until_complete(main()) == sum(range(10000))
    gc.collect()


def test_native_task_exception_never_retrieved_is_reported():
    lp = aioloop.new_event_loop(native_tasks=True)
    seen = []
    lp.set_exception_handler(lambda loop, ctx: seen.append(ctx))

    async def bad():
        raise ValueError("lost")

    async def main():
        lp.create_task(bad())
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    try:
        lp.run_until_complete(main())
        gc.collect()
        assert any(
            c["message"] == "Task exception was never retrieved"
            and isinstance(c["exception"], ValueError)
            for c in seen
        )
    finally:
        lp.close()


def test_default_task_kind_and_the_other_selectable():
    # The default is the native Task (DEFAULT_NATIVE_TASKS); asyncio's stays selectable.
    async def one():
        return 1

    for kw, cls in [({}, aioloop.Task), ({"native_tasks": False}, asyncio.Task)]:
        lp = aioloop.new_event_loop(**kw)
        try:
            t = lp.create_task(one())
            assert type(t) is cls
            assert lp.run_until_complete(t) == 1
        finally:
            lp.close()
    assert aioloop.DEFAULT_NATIVE_TASKS is True


_REPR_CALLS_BACK = r"""
import asyncio, sys
import aioloop

class Nosy:
    # A result (or exception) whose repr asks the task about itself: repr(task) formats
    # it, so the task must not hold its own state's lock while it does.
    def __repr__(self):
        return f"<Nosy {task.done()}>"

class NosyError(Exception):
    def __repr__(self):
        return f"NosyError({task.done()})"

async def ok():
    return Nosy()

async def bad():
    raise NosyError()

async def long():
    return "x" * 100

lp = aioloop.new_event_loop(native_tasks=sys.argv[1] == "1")
task = lp.create_task(ok())
lp.run_until_complete(task)
print(repr(task))
task = lp.create_task(bad())
try:
    lp.run_until_complete(task)
except NosyError:
    pass
print(repr(task))
task = lp.create_task(long())
lp.run_until_complete(task)
print(repr(task))
lp.close()
"""


def test_repr_of_a_result_that_calls_the_task(native):
    """repr(task) of a finished task formats its result or exception (asyncio's
    `_task_repr_info`); that repr may call the task back (`done()`). Run in a child process:
    a task that formats while holding its own lock would hang, not fail."""
    p = subprocess.run(
        [sys.executable, "-c", _REPR_CALLS_BACK, "1" if native else "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 0, p.stderr
    first, second, third = p.stdout.splitlines()
    assert first.endswith(" result=<Nosy True>>"), first
    assert second.endswith(" exception=NosyError(True)>"), second
    # asyncio shortens the result's repr with reprlib (base_futures._future_repr_info).
    assert third.endswith(f" result={reprlib.repr('x' * 100)}>"), third
