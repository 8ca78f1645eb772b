"""Nothing leaks from the Python loop (issue 14; the project's rule: shutdown frees every
task, nothing leaks).

* `close()` releases every queued callback at once (rule S7: a closed loop refuses new
  work, so nothing queued can ever run): asyncio's `BaseEventLoop.close()` clears `_ready`
  and `_scheduled`; aioloop also drops the callback and arguments of a handle the caller
  still holds (asyncio keeps them until the handle goes), so that a cycle through them
  needs no collection.
* `Handle`/`TimerHandle` are GC types and the loop reports the handles it holds
  (python/src/handle.rs: GC; python/src/timers.rs), so a cycle through a handle — the
  callback's arguments hold it, a bound method of an object that holds it, a handle kept
  on its own loop — is collected.
* A loop created, used and closed over and over does not grow the live objects.
"""

import asyncio
import contextvars
import gc
import socket
import threading
import weakref

import pytest

import aioloop


class Box:
    """Something a weak reference can point at."""


def noop(*args):
    pass


@pytest.fixture
def no_gc():
    """The collector off: what dies here died by its reference count, not a collection."""
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    yield
    if was:
        gc.enable()


# -- close() releases what is queued (rule S7) ---------------------------------------------


@pytest.mark.parametrize("how", ["call_later", "call_at"])
def test_close_releases_pending_timer_callback_and_args(loop, no_gc, how):
    # rule S7 (asyncio's close() clears _scheduled): the handle is still held here, its
    # callback and arguments are not.
    class Callback:
        def __call__(self, *args):
            pass

    arg, cb = Box(), Callback()
    refs = weakref.ref(arg), weakref.ref(cb)
    if how == "call_later":
        h = loop.call_later(3600, cb, arg)
    else:
        h = loop.call_at(loop.time() + 3600, cb, arg)
    del arg, cb
    assert all(r() is not None for r in refs)
    loop.close()
    assert [r() for r in refs] == [None, None]
    # As asyncio's: the handle is not marked cancelled, and keeps its deadline.
    assert not h.cancelled()
    assert h.when() > loop.time()


def test_close_releases_timer_context(loop, no_gc):
    var = contextvars.ContextVar("v")
    ctx = contextvars.copy_context()
    val = Box()
    ctx.run(var.set, val)
    ref = weakref.ref(val)
    h = loop.call_later(3600, noop, context=ctx)
    del ctx, val
    loop.close()
    assert ref() is None
    assert h.get_context() is None


def test_close_releases_timer_in_a_cycle_with_its_args(loop, no_gc):
    # box -> handle -> args -> box: the loop's timer was the cycle's only outside
    # reference; close() breaks it without a collection.
    box = Box()
    box.h = loop.call_later(3600, noop, box)
    ref = weakref.ref(box)
    del box
    loop.close()
    assert ref() is None


def test_close_releases_ready_callbacks(loop, no_gc):
    # rule S7 (asyncio's close() clears _ready).
    arg = Box()
    ref = weakref.ref(arg)
    h = loop.call_soon(noop, arg)
    del arg
    loop.close()
    assert ref() is None
    assert not h.cancelled()


def test_close_releases_threadsafe_posts_from_another_thread(loop, no_gc):
    arg = Box()
    ref = weakref.ref(arg)
    out = []
    t = threading.Thread(target=lambda: out.append(loop.call_soon_threadsafe(noop, arg)))
    t.start()
    t.join()
    del arg
    loop.close()
    assert ref() is None
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon_threadsafe(noop)


def test_threadsafe_racing_close_raises_closed_or_is_released(no_gc):
    # rules S1, S7: call_soon_threadsafe from another thread while the loop closes. Each
    # post returns a handle or raises asyncio's RuntimeError("Event loop is closed"); none
    # runs, and every callback's argument is released once the poster is done.
    for _ in range(30):
        lp = aioloop.new_event_loop()
        refs, errors, ran = [], [], []
        go = threading.Event()

        def poster():
            go.wait()
            for _ in range(300):
                a = Box()
                refs.append(weakref.ref(a))
                try:
                    lp.call_soon_threadsafe(ran.append, a)
                except RuntimeError as e:
                    errors.append(str(e))
                del a

        t = threading.Thread(target=poster)
        t.start()
        go.set()
        lp.close()
        t.join()
        assert set(errors) <= {"Event loop is closed"}
        assert ran == []
        assert [r for r in refs if r() is not None] == []


def test_close_releases_what_a_callback_queues_while_closing(loop, no_gc):
    # A released argument's finaliser that calls back into the closing loop gets asyncio's
    # error, not a crash, and nothing it tried to queue survives.
    seen = []

    class Calls:
        def __del__(self):
            try:
                loop.call_soon(noop)
            except RuntimeError as e:
                seen.append(str(e))

    loop.call_later(3600, noop, Calls())
    loop.call_soon(noop, Calls())
    loop.close()
    assert seen == ["Event loop is closed"] * 2


# -- cycles through handles are collected (handle.rs: GC) ----------------------------------


def test_handle_weakref(loop):
    # CPython test_events.HandleTests.test_handle_weakref, on aioloop's own handles; a
    # handle with a weak reference is never reused (handle.rs: rule 4), so the reference
    # dies with the handle instead of seeing it run a later call_soon's callback.
    wd = weakref.WeakValueDictionary()
    wd["h"] = loop.call_soon(noop)
    wd["t"] = loop.call_later(0, noop)
    loop.run_until_complete(asyncio.sleep(0.001))
    for _ in range(3):
        loop.call_soon(noop)
    loop.run_until_complete(asyncio.sleep(0))
    assert dict(wd) == {}


def test_handles_are_tracked_by_the_collector(loop):
    assert gc.is_tracked(loop.call_soon(noop))
    assert gc.is_tracked(loop.call_later(3600, noop))


def collected_after_close(setup, native=False):
    """A new loop, given to `setup`, closed and dropped: whether a collection frees it."""
    lp = aioloop.new_event_loop(native_tasks=native)
    setup(lp)
    lp.close()
    ref = weakref.ref(lp)
    del lp
    gc.collect()
    return ref() is None


def test_ran_handle_kept_on_its_loop_is_collected(native):
    # A handle the loop ran keeps its loop; the loop's attribute keeps the handle.
    def ran(make):
        def setup(lp):
            lp.h = make(lp)
            lp.run_until_complete(asyncio.sleep(0.001))

        return setup

    assert collected_after_close(ran(lambda lp: lp.call_soon(noop)), native)
    assert collected_after_close(ran(lambda lp: lp.call_later(0, noop)), native)


def test_cancelled_handle_kept_on_its_loop_is_collected():
    def setup(lp):
        lp.h = lp.call_later(3600, noop)
        lp.h.cancel()

    assert collected_after_close(setup)


def test_abandoned_loop_with_a_timer_of_an_object_holding_it_is_collected():
    # loop -> pending timer -> bound method -> owner -> timer handle, owner -> loop: a
    # protocol that keeps its timer, on a loop nobody closed.
    class Owner:
        def __init__(self, lp):
            self.lp = lp
            self.timer = lp.call_later(3600, self.tick)

        def tick(self):
            pass

    lp = aioloop.new_event_loop()
    refs = weakref.ref(lp), weakref.ref(Owner(lp))
    del lp
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_abandoned_loop_with_a_callback_whose_args_hold_its_handle_is_collected():
    # loop -> ready handle -> args -> box -> handle, and box -> loop.
    lp = aioloop.new_event_loop()
    box = Box()
    box.lp = lp
    box.h = lp.call_soon(noop, box)
    box.t = lp.call_at(lp.time() + 3600, noop, box)
    refs = weakref.ref(lp), weakref.ref(box)
    del lp, box
    gc.collect()
    assert [r() for r in refs] == [None, None]


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited")
def test_abandoned_loop_with_a_queued_task_is_collected(native):
    # loop -> queued first step -> task -> loop: asyncio's loop and Task are collected and
    # the task reported (rule T11); so are aioloop's, with either task kind.
    async def wait():
        await asyncio.sleep(3600)

    lp = aioloop.new_event_loop(native_tasks=native)
    seen = []
    lp.set_exception_handler(lambda lp, ctx: seen.append(ctx["message"]))
    refs = weakref.ref(lp), weakref.ref(lp.create_task(wait()))
    del lp
    gc.collect()
    assert [r() for r in refs] == [None, None]
    assert seen == ["Task was destroyed but it is pending!"]


def test_abandoned_loop_with_a_task_factory_referencing_it_is_collected():
    # loop -> task factory (a bound method) -> owner -> loop.
    class Factory:
        def __init__(self, lp):
            self.lp = lp

        def make(self, lp, coro, **kwargs):
            return asyncio.Task(coro, loop=lp, **kwargs)

    lp = aioloop.new_event_loop()
    f = Factory(lp)
    lp.set_task_factory(f.make)
    refs = weakref.ref(lp), weakref.ref(f)
    del lp, f
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_collection_during_callbacks_keeps_pooled_handles_sound(loop):
    # Collections while handles are queued, running and pooled (handle.rs: reuse): the
    # pool's handles hold nothing, the queued ones keep their callbacks.
    out = []
    done = loop.create_future()

    def cb(i, box):
        out.append((i, box.i))
        if i % 7 == 0:
            gc.collect()
        if i == 300:
            done.set_result(None)
        elif i < 300:
            b = Box()
            b.i = i + 1
            b.h = loop.call_soon(cb, i + 1, b)  # a cycle the queue keeps alive

    for i in range(3):
        b = Box()
        b.i = i * 1000
        loop.call_soon(cb, i * 1000, b)
    loop.run_until_complete(done)
    assert all(i == j for i, j in out)
    assert [i for i, _ in out if i < 1000] == list(range(301))


# -- repeated use and close does not grow the live objects ---------------------------------


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        # A protocol keeping its timer (and so, once it ran, the loop) is common.
        self.idle = self.loop.call_later(3600, self.transport.close)

    def data_received(self, data):
        self.transport.write(data)


async def workout(lp):
    async def child(n):
        await asyncio.sleep(0)
        return n

    tasks = [lp.create_task(child(i)) for i in range(5)]
    fut = lp.create_future()
    lp.call_soon(fut.set_result, None)
    lp.call_later(0.0005, noop, Box())
    lp.call_later(3600, noop, Box())  # still pending at close
    await fut
    await asyncio.sleep(0.001)
    assert await asyncio.gather(*tasks) == list(range(5))
    a, b = socket.socketpair()
    b.setblocking(False)
    tr, proto = await lp.connect_accepted_socket(Echo, a)
    await lp.sock_sendall(b, b"ping")
    assert await asyncio.wait_for(lp.sock_recv(b, 4), 10) == b"ping"
    tr.close()
    b.close()
    lp.pending = lp.create_task(asyncio.sleep(3600))  # pending at close
    await asyncio.sleep(0)


def one_round(native):
    lp = aioloop.new_event_loop(native_tasks=native)
    lp.set_exception_handler(lambda lp, ctx: None)  # the pending task's report
    lp.run_until_complete(workout(lp))
    lp.close()
    return weakref.ref(lp)


def test_repeated_use_and_close_does_not_grow_live_objects(native):
    # Warm-up: caches, interned names, first-use imports; what grows here is bounded
    # (measured: ~40 objects over the first 20 rounds, none over the next 80).
    for _ in range(25):
        one_round(native)
    gc.collect()
    before = len(gc.get_objects())
    loops = [one_round(native) for _ in range(30)]
    gc.collect()
    assert [r for r in loops if r() is not None] == []
    del loops  # its 30 weak references are tracked objects too
    after = len(gc.get_objects())
    # Fewer than one object per round: what each round made went with its loop.
    assert after - before < 30, (before, after)
