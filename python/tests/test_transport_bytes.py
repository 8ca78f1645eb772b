"""The transport's recycled ``bytes`` (python/src/transport_bytes.rs): a ``bytes`` given to
``data_received`` is reused for the next read of the same length only when the protocol
kept no reference to it. What a protocol sees must stay what plain ``bytes`` promise:
immutable once handed out, and hashed from their content."""

import asyncio
import socket

import aioloop


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, 10))


async def until(pred):
    while not pred():
        await asyncio.sleep(0.001)


class Keeper(asyncio.Protocol):
    """Keeps every other message (and a hash of each); drops the rest."""

    def __init__(self):
        self.kept = []
        self.hashes = []
        self.seen = []
        self.count = 0

    def data_received(self, data):
        self.seen.append(bytes(data))  # a copy: the content at delivery
        self.hashes.append(hash(data))
        if self.count % 2 == 0:
            self.kept.append(data)
        self.count += 1


def test_kept_bytes_stay_intact_and_hashes_follow_content():
    loop = aioloop.new_event_loop()
    try:
        p = Keeper()
        a, b = socket.socketpair()
        b.setblocking(False)
        tr, _ = run(loop, loop.connect_accepted_socket(lambda: p, a))
        msgs = [bytes([i]) * 1024 for i in range(1, 9)]  # equal lengths: reuse applies
        for i, m in enumerate(msgs):
            b.send(m)
            run(loop, until(lambda: p.count == i + 1))
        assert p.seen == msgs
        # what the protocol kept was not overwritten by the later reads
        assert p.kept == msgs[0::2]
        # a recycled object's hash is its new content's, not the cached old one
        assert p.hashes == [hash(m) for m in msgs]
        tr.close()
        run(loop, asyncio.sleep(0))
        b.close()
    finally:
        loop.close()


def test_echo_of_changing_contents_and_lengths():
    """An echo whose messages change content and length: each read's bytes are the
    ones sent (a recycled object never carries a previous message's tail)."""
    loop = aioloop.new_event_loop()
    got = []

    class Sink(asyncio.Protocol):
        def data_received(self, data):
            got.append(data.hex())  # no reference kept: the object is recycled

    try:
        a, b = socket.socketpair()
        b.setblocking(False)
        tr, _ = run(loop, loop.connect_accepted_socket(Sink, a))
        msgs = [bytes([i % 251]) * n for i, n in enumerate([100, 100, 200, 100, 200, 200, 64, 63])]
        for i, m in enumerate(msgs):
            b.send(m)
            run(loop, until(lambda: len(got) == i + 1))
        assert got == [m.hex() for m in msgs]
        tr.close()
        run(loop, asyncio.sleep(0))
        b.close()
    finally:
        loop.close()
