"""The Rust socket transport (python/src/transport.rs): what asyncio's
``_SelectorSocketTransport`` promises, checked end to end over a socket pair — one end
under the transport (``loop.connect_accepted_socket``), the other a plain blocking-free
socket the test drives.

Where a test ports one of CPython's ``test_selector_events.SelectorSocketTransportTests``
(or ``SelectorTransportTests``) — which check the same behaviour against mocks — its name
is given in the docstring."""

import asyncio
import socket

import pytest

import aioloop


class Recorder(asyncio.Protocol):
    """Records every protocol call, in order."""

    def __init__(self, eof_keep_open=False):
        self.calls = []
        self.data = bytearray()
        self.transport = None
        self.lost = None
        self.eof_keep_open = eof_keep_open

    def connection_made(self, transport):
        self.transport = transport
        self.calls.append("made")

    def data_received(self, data):
        assert isinstance(data, bytes)
        self.data += data
        self.calls.append("data")

    def eof_received(self):
        self.calls.append("eof")
        return self.eof_keep_open

    def connection_lost(self, exc):
        self.calls.append("lost")
        self.lost = exc

    def pause_writing(self):
        self.calls.append("pause_writing")

    def resume_writing(self):
        self.calls.append("resume_writing")


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, 10))


def connect(loop, proto):
    """A transport over one end of a socket pair; the other end, non-blocking."""
    a, b = socket.socketpair()
    b.setblocking(False)
    tr, p = run(loop, loop.connect_accepted_socket(lambda: proto, a))
    assert p is proto
    return tr, b


async def until(pred):
    while not pred():
        await asyncio.sleep(0.001)


async def recv_exactly(loop, sock, n):
    out = bytearray()
    while len(out) < n:
        chunk = await loop.sock_recv(sock, n - len(out))
        assert chunk, "peer closed early"
        out += chunk
    return bytes(out)


def test_is_the_rust_transport(loop):
    p = Recorder()
    tr, peer = connect(loop, p)
    assert isinstance(tr, aioloop._SocketTransportCore)
    assert p.calls == ["made"]
    tr.close()
    run(loop, until(lambda: p.lost is None and "lost" in p.calls))
    peer.close()


def test_data_received_and_write(loop):
    """test_read_ready / test_write (SelectorSocketTransportTests), over a real socket."""
    p = Recorder()
    tr, peer = connect(loop, p)
    peer.send(b"ping")
    run(loop, until(lambda: bytes(p.data) == b"ping"))
    tr.write(b"pong")
    tr.write(bytearray(b"-ba"))
    tr.write(memoryview(b"xmv")[1:])
    tr.writelines([b"1", b"2"])
    assert run(loop, recv_exactly(loop, peer, 11)) == b"pong-bamv12"
    with pytest.raises(TypeError):
        tr.write("str")
    tr.write(b"")  # nothing
    tr.close()
    run(loop, until(lambda: "lost" in p.calls))
    assert p.calls[0] == "made" and p.calls[-1] == "lost" and p.lost is None
    peer.close()


def test_partial_write_buffers_and_flow_control(loop):
    """test_write_partial, test_write_ready_partial and _FlowControlMixin's water marks:
    what the socket does not take is buffered, pause_writing() fires past the high-water
    mark and resume_writing() once the buffer drains to the low one."""
    p = Recorder()
    tr, peer = connect(loop, p)
    assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)  # asyncio's defaults
    tr.set_write_buffer_limits(high=32 * 1024)
    assert tr.get_write_buffer_limits() == (8 * 1024, 32 * 1024)
    payload = bytes(range(256)) * 8 * 1024  # 2 MiB: more than the socket buffers
    tr.write(payload)
    assert tr.get_write_buffer_size() > 0
    assert p.calls.count("pause_writing") == 1
    got = run(loop, recv_exactly(loop, peer, len(payload)))
    assert got == payload
    run(loop, until(lambda: tr.get_write_buffer_size() == 0))
    assert p.calls.count("resume_writing") == 1
    assert p.calls.index("pause_writing") < p.calls.index("resume_writing")
    tr.close()
    run(loop, until(lambda: "lost" in p.calls))
    peer.close()


def test_set_write_buffer_limits_checks_and_pauses(loop):
    """test_set_write_buffer_limits (test_transports) on this transport."""
    p = Recorder()
    tr, peer = connect(loop, p)
    with pytest.raises(ValueError):
        tr.set_write_buffer_limits(high=1, low=2)
    with pytest.raises(ValueError):
        tr.set_write_buffer_limits(high=-1)
    tr.set_write_buffer_limits(low=100)
    assert tr.get_write_buffer_limits() == (100, 400)
    tr.close()
    run(loop, until(lambda: "lost" in p.calls))
    peer.close()


def test_close_flushes_the_buffer_first(loop):
    """test_transport_close_remove_writer's opposite: close() with data buffered sends it,
    then calls connection_lost (SelectorTransportTests.test_close_write_buffer)."""
    p = Recorder()
    tr, peer = connect(loop, p)
    payload = b"z" * (4 * 1024 * 1024)
    tr.write(payload)
    assert tr.get_write_buffer_size() > 0
    tr.close()
    assert tr.is_closing()
    assert "lost" not in p.calls
    assert run(loop, recv_exactly(loop, peer, len(payload))) == payload
    run(loop, until(lambda: "lost" in p.calls))
    assert p.lost is None
    assert run(loop, loop.sock_recv(peer, 1)) == b""  # then the socket closes
    peer.close()


def test_abort_drops_the_buffer_and_loses_once(loop):
    """SelectorTransportTests.test_abort / test_force_close: the buffer is dropped and
    connection_lost(None) is called once, on a later iteration."""
    p = Recorder()
    tr, peer = connect(loop, p)
    tr.write(b"q" * (4 * 1024 * 1024))
    tr.abort()
    assert tr.is_closing()
    assert tr.get_write_buffer_size() == 0
    assert "lost" not in p.calls  # call_soon, as asyncio
    tr.abort()
    tr.close()
    run(loop, until(lambda: "lost" in p.calls))
    run(loop, asyncio.sleep(0.01))
    assert p.calls.count("lost") == 1 and p.lost is None
    assert tr.get_extra_info("socket") is not None
    peer.close()


def test_write_eof_half_closes(loop):
    """test_write_eof / test_write_eof_buffer: the peer reads everything, then EOF; the
    transport still reads."""
    p = Recorder()
    tr, peer = connect(loop, p)
    assert tr.can_write_eof()
    tr.write(b"last words")
    tr.write_eof()
    with pytest.raises(RuntimeError):
        tr.write(b"more")
    assert run(loop, recv_exactly(loop, peer, 10)) == b"last words"
    assert run(loop, loop.sock_recv(peer, 10)) == b""
    peer.send(b"reply")
    run(loop, until(lambda: bytes(p.data) == b"reply"))
    tr.close()
    run(loop, until(lambda: "lost" in p.calls))
    peer.close()


def test_eof_received_closes_unless_it_returns_true(loop):
    """test_read_ready_eof / test_read_ready_eof_keep_open."""
    p = Recorder()
    tr, peer = connect(loop, p)
    peer.shutdown(socket.SHUT_WR)
    run(loop, until(lambda: "lost" in p.calls))
    assert p.calls == ["made", "eof", "lost"] and p.lost is None
    peer.close()

    p = Recorder(eof_keep_open=True)
    tr, peer = connect(loop, p)
    peer.send(b"x")
    peer.shutdown(socket.SHUT_WR)
    run(loop, until(lambda: "eof" in p.calls))
    assert not tr.is_closing()
    tr.write(b"still open")
    assert run(loop, recv_exactly(loop, peer, 10)) == b"still open"
    tr.close()
    run(loop, until(lambda: "lost" in p.calls))
    assert p.calls == ["made", "data", "eof", "lost"]
    peer.close()


def test_protocol_error_is_fatal_and_reported(loop):
    """test_read_ready_err / _fatal_error: an exception from data_received goes to the
    loop's exception handler, and connection_lost gets it, once."""
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    class Bad(Recorder):
        def data_received(self, data):
            super().data_received(data)
            raise ValueError("boom")

    p = Bad()
    tr, peer = connect(loop, p)
    peer.send(b"x")
    run(loop, until(lambda: "lost" in p.calls))
    run(loop, asyncio.sleep(0.01))
    assert p.calls.count("lost") == 1
    assert isinstance(p.lost, ValueError)
    assert len(errors) == 1
    assert errors[0]["message"] == "Fatal error: protocol.data_received() call failed."
    assert errors[0]["exception"] is p.lost
    assert errors[0]["transport"] is tr and errors[0]["protocol"] is p
    peer.close()


def test_connection_reset_is_lost_with_the_error(loop):
    """test_read_ready_conn_reset: an OSError from recv is not reported to the handler
    (asyncio only logs it in debug mode) but ends the connection with it."""
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    p = Recorder()
    srv = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(srv.getsockname())
    conn, _ = srv.accept()
    srv.close()
    tr, _ = run(loop, loop.connect_accepted_socket(lambda: p, conn))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()  # RST
    run(loop, until(lambda: "lost" in p.calls))
    assert isinstance(p.lost, ConnectionResetError)
    assert errors == []
    assert p.calls.count("lost") == 1


def test_pause_and_resume_reading(loop):
    """test_pause_resume_reading."""
    p = Recorder()
    tr, peer = connect(loop, p)
    run(loop, asyncio.sleep(0))
    assert tr.is_reading()
    tr.pause_reading()
    tr.pause_reading()  # idempotent
    assert not tr.is_reading()
    peer.send(b"held")
    run(loop, asyncio.sleep(0.05))
    assert p.data == b""
    tr.resume_reading()
    tr.resume_reading()
    assert tr.is_reading()
    run(loop, until(lambda: bytes(p.data) == b"held"))
    tr.close()
    assert not tr.is_reading()
    run(loop, until(lambda: "lost" in p.calls))
    peer.close()


def test_buffered_protocol(loop):
    """test_read_ready__get_buffer (BufferedProtocol through get_buffer/buffer_updated)."""

    class Buf(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(4)
            self.got = bytearray()
            self.sizes = []
            self.lost = False

        def connection_made(self, transport):
            self.transport = transport

        def get_buffer(self, sizehint):
            self.sizes.append(sizehint)
            return self.buf

        def buffer_updated(self, nbytes):
            self.got += self.buf[:nbytes]

        def connection_lost(self, exc):
            self.lost = True

    p = Buf()
    a, peer = socket.socketpair()
    tr, _ = run(loop, loop.connect_accepted_socket(lambda: p, a))
    peer.send(b"0123456789")
    run(loop, until(lambda: bytes(p.got) == b"0123456789"))
    assert set(p.sizes) == {-1}
    tr.close()
    run(loop, until(lambda: p.lost))
    peer.close()


def test_buffered_protocol_message_by_message_then_eof(loop):
    """asyncio's _read_ready__get_buffer order for each read, the EOF one included:
    get_buffer(-1), then buffer_updated(n) — or eof_received() when the read finds the
    peer's shutdown — with reads that drain the socket (the buffer is larger than each
    message), which skip the readability probe (transport_read.rs)."""

    class Buf(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(64 * 1024)
            self.calls = []
            self.got = []

        def get_buffer(self, sizehint):
            self.calls.append("get_buffer")
            return self.buf

        def buffer_updated(self, nbytes):
            self.calls.append("updated")
            self.got.append(bytes(self.buf[:nbytes]))

        def eof_received(self):
            self.calls.append("eof")

        def connection_lost(self, exc):
            self.calls.append("lost")

    p = Buf()
    a, peer = socket.socketpair()
    tr, _ = run(loop, loop.connect_accepted_socket(lambda: p, a))
    msgs = [bytes([65 + i]) * (100 + i) for i in range(5)]
    for i, m in enumerate(msgs):
        peer.send(m)
        run(loop, until(lambda: len(p.got) == i + 1))
    assert p.got == msgs
    peer.shutdown(socket.SHUT_WR)
    run(loop, until(lambda: "lost" in p.calls))
    assert p.calls == ["get_buffer", "updated"] * 5 + ["get_buffer", "eof", "lost"]
    peer.close()


def test_empty_get_buffer_is_fatal(loop):
    """test_read_ready__get_buffer_error-like: an empty buffer is a RuntimeError."""
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    class Empty(asyncio.BufferedProtocol):
        lost = "not yet"

        def get_buffer(self, sizehint):
            return bytearray()

        def buffer_updated(self, nbytes):
            raise AssertionError("not called")

        def connection_lost(self, exc):
            self.lost = exc

    p = Empty()
    a, peer = socket.socketpair()
    tr, _ = run(loop, loop.connect_accepted_socket(lambda: p, a))
    peer.send(b"x")
    run(loop, until(lambda: p.lost != "not yet"))
    assert isinstance(p.lost, RuntimeError)
    assert errors[0]["message"] == "Fatal error: protocol.get_buffer() call failed."
    peer.close()


def test_extra_info_and_protocol(loop):
    """test_ctor / get_extra_info on a TCP connection."""

    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        addr = server.sockets[0].getsockname()
        p = Recorder()
        tr, _ = await loop.create_connection(lambda: p, *addr)
        assert tr.get_extra_info("peername") == addr
        assert tr.get_extra_info("sockname") == tr.get_extra_info("socket").getsockname()
        assert tr.get_extra_info("nope") is None
        assert tr.get_extra_info("nope", 7) == 7
        assert tr.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert tr.get_protocol() is p
        q = Recorder()
        tr.set_protocol(q)
        assert tr.get_protocol() is q
        assert "fd=" in repr(tr)
        tr.close()
        await until(lambda: "lost" in q.calls)
        assert "closed" in repr(tr)
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_streams_run_over_it(loop):
    async def main():
        async def handle(reader, writer):
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        r, w = await asyncio.open_connection(*server.sockets[0].getsockname())
        assert isinstance(w.transport, aioloop._SocketTransportCore)
        w.write(b"hello\n")
        assert await r.readline() == b"HELLO\n"
        assert await r.read() == b""
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_data_and_eof_in_one_harvest(loop):
    """test_read_ready_eof after data: the peer's last bytes and its FIN reach the socket
    before the loop looks, so one readiness edge carries both. A read shorter than the
    buffer must not make the transport forget the EOF (the reactor's READ_CLOSED bit)."""
    p = Recorder()
    tr, peer = connect(loop, p)
    run(loop, asyncio.sleep(0.01))  # reading has started and found nothing
    for _ in range(3):
        peer.send(b"tail")
    peer.shutdown(socket.SHUT_WR)
    run(loop, until(lambda: "lost" in p.calls))
    assert bytes(p.data) == b"tail" * 3
    assert p.calls[-2:] == ["eof", "lost"] and p.lost is None
    peer.close()
