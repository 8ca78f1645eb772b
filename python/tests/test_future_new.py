"""``loop.create_future()`` and ``loop.get_debug()`` answered in Rust
(python/src/future_new.rs, loop_core.rs): the same results as ``BaseEventLoop``'s Python
methods — asyncio's own ``Future`` bound to the loop, and the debug flag ``set_debug``
set (CPython's test_base_events.BaseEventLoopTests.test_create_future and
test_set_debug, on this loop)."""

import asyncio

import aioloop


def test_create_future_is_asyncios_future_on_this_loop():
    loop = aioloop.new_event_loop()
    try:
        fut = loop.create_future()
        assert type(fut) is asyncio.Future
        assert fut.get_loop() is loop
        assert not fut.done()
        fut.set_result(7)
        assert loop.run_until_complete(fut) == 7
    finally:
        loop.close()


def test_get_debug_follows_set_debug_and_futures_see_it():
    loop = aioloop.new_event_loop()
    try:
        loop.set_debug(False)
        assert loop.get_debug() is False
        assert loop.create_future()._source_traceback is None
        loop.set_debug(True)
        assert loop.get_debug() is True
        # asyncio's Future asks get_debug() when created: in debug mode it keeps its
        # creation stack
        assert loop.create_future()._source_traceback is not None
        loop.set_debug(False)
        assert loop.get_debug() is False
    finally:
        loop.close()


def test_create_future_while_running_and_for_another_loop():
    """Made while its loop runs (the argument-less fast path) and while another loop runs
    on this thread (the loop= path): bound to the loop asked, both times."""
    loop = aioloop.new_event_loop()
    other = aioloop.new_event_loop()
    try:

        async def main():
            mine = loop.create_future()
            theirs = other.create_future()
            return mine.get_loop(), theirs.get_loop()

        assert loop.run_until_complete(main()) == (loop, other)
    finally:
        other.close()
        loop.close()
