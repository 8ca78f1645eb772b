"""I/O on the loop: watchers, sock_* functions, transports and servers, streams, datagrams,
name resolution, signals, subprocesses.

Names follow asyncio's tests (test_events.EventLoopTestsMixin, test_sock_lowlevel,
test_streams, test_server) where a test is the same check."""

import asyncio
import os
import signal
import socket
import sys
import tempfile

import pytest

import aioloop


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, 10))


def nonblocking_pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


# -- add_reader / add_writer ---------------------------------------------------------
def test_add_reader_runs_while_readable_then_remove(loop):
    a, b = nonblocking_pair()
    got = []

    def on_readable():
        got.append(a.recv(1))
        if len(got) == 3:
            loop.stop()

    assert loop.add_reader(a.fileno(), on_readable) is None  # as asyncio's
    b.send(b"xyz")
    loop.run_forever()
    assert got == [b"x", b"y", b"z"]
    assert loop.remove_reader(a.fileno()) is True
    assert loop.remove_reader(a.fileno()) is False
    a.close()
    b.close()


def test_add_reader_accepts_a_file_object_and_replaces(loop):
    a, b = nonblocking_pair()
    log = []
    loop.add_reader(a, log.append, "first")
    loop.add_reader(a, lambda: (log.append("second"), a.recv(1), loop.stop()))
    b.send(b"!")
    loop.run_forever()
    assert log == ["second"]
    assert loop.remove_reader(a)
    a.close()
    b.close()


def test_add_writer_runs_while_writable(loop):
    a, b = nonblocking_pair()
    calls = []

    def on_writable():
        calls.append(1)
        if len(calls) == 2:
            loop.remove_writer(a)
            loop.stop()

    loop.add_writer(a.fileno(), on_writable)
    loop.run_forever()
    assert len(calls) == 2
    assert not loop.remove_writer(a.fileno())
    a.close()
    b.close()


def test_add_reader_bad_fd_and_closed_loop(loop):
    with pytest.raises(ValueError):
        loop.add_reader(-1, print)
    with pytest.raises(OSError):
        loop.add_reader(10_000, print)  # not open: EBADF
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        loop.add_reader(0, print)
    assert loop.remove_reader(0) is False


def test_reader_callback_exception_goes_to_handler(loop):
    a, b = nonblocking_pair()
    seen = []

    def boom():
        a.recv(1)
        raise ZeroDivisionError

    loop.set_exception_handler(lambda lp, ctx: (seen.append(ctx), lp.stop()))
    loop.add_reader(a, boom)
    b.send(b"x")
    loop.run_forever()
    loop.remove_reader(a)
    assert isinstance(seen[0]["exception"], ZeroDivisionError)
    a.close()
    b.close()


# -- sock_* (test_sock_lowlevel) -----------------------------------------------------
def test_sock_sendall_recv_recv_into(loop):
    a, b = nonblocking_pair()

    async def main():
        await loop.sock_sendall(a, b"x" * 300_000)  # more than the socket buffer
        return b

    async def reader():
        got = bytearray()
        buf = bytearray(70_000)
        while len(got) < 300_000:
            if len(got) % 2:
                got += await loop.sock_recv(b, 50_000)
            else:
                n = await loop.sock_recv_into(b, buf)
                got += buf[:n]
        return bytes(got)

    async def both():
        return await asyncio.gather(main(), reader())

    _, got = run(loop, both())
    assert got == b"x" * 300_000
    a.close()
    assert run(loop, loop.sock_recv(b, 10)) == b""
    b.close()


def test_sock_accept_connect(loop):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.setblocking(False)
    cli = socket.socket()
    cli.setblocking(False)

    async def main():
        (conn, addr), _ = await asyncio.gather(
            loop.sock_accept(srv), loop.sock_connect(cli, srv.getsockname())
        )
        assert addr == cli.getsockname()
        await loop.sock_sendall(conn, b"hi")
        return await loop.sock_recv(cli, 2), conn

    data, conn = run(loop, main())
    assert data == b"hi"
    for s in (conn, cli, srv):
        s.close()


def test_sock_connect_refused(loop):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    addr = probe.getsockname()
    probe.close()
    cli = socket.socket()
    cli.setblocking(False)
    with pytest.raises(ConnectionRefusedError):
        run(loop, loop.sock_connect(cli, addr))
    cli.close()


def test_sock_recv_requires_nonblocking_in_debug_mode(loop):
    loop.set_debug(True)  # asyncio checks only then
    a, b = socket.socketpair()
    with pytest.raises(ValueError, match="non-blocking"):
        run(loop, loop.sock_recv(a, 1))
    a.close()
    b.close()


def test_sock_sendto_recvfrom(loop):
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    a.setblocking(False)

    async def main():
        recv = asyncio.ensure_future(loop.sock_recvfrom(a, 100))
        await asyncio.sleep(0)
        await loop.sock_sendto(a, b"dgram", a.getsockname())
        return await recv

    assert run(loop, main()) == (b"dgram", a.getsockname())
    a.close()


# -- transports, protocols and servers (test_events, test_server) -------------------
class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class Collect(asyncio.Protocol):
    def __init__(self, loop):
        self.data = bytearray()
        self.paused = 0
        self.resumed = 0
        self.eof = False
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.data += data

    def eof_received(self):
        self.eof = True

    def pause_writing(self):
        self.paused += 1

    def resume_writing(self):
        self.resumed += 1

    def connection_lost(self, exc):
        self.lost.set_result(exc)


def test_create_server_and_connection_echo(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()
        tr, pr = await loop.create_connection(lambda: Collect(loop), host, port)
        assert tr.get_extra_info("peername") == (host, port)
        assert tr.get_extra_info("sockname") == tr.get_extra_info("socket").getsockname()
        tr.write(b"ping")
        tr.writelines([b"-", b"pong"])
        while len(pr.data) < 9:
            await asyncio.sleep(0.01)
        tr.close()
        assert await pr.lost is None
        server.close()
        await server.wait_closed()
        assert not server.is_serving()
        return bytes(pr.data)

    assert run(loop, main()) == b"ping-pong"


def test_transport_flow_control_and_write_eof(loop):
    async def main():
        accepted = loop.create_future()

        def factory():
            p = Collect(loop)
            loop.call_soon(lambda: accepted.done() or accepted.set_result(p))
            return p

        server = await loop.create_server(factory, "127.0.0.1", 0)
        tr, pr = await loop.create_connection(lambda: Collect(loop), *server.sockets[0].getsockname())
        peer = await accepted
        peer.transport.pause_reading()
        assert not peer.transport.is_reading()
        tr.set_write_buffer_limits(high=1024, low=256)
        assert tr.get_write_buffer_limits() == (256, 1024)
        tr.write(b"z" * 4_000_000)  # more than the kernel buffers: some stays queued
        assert tr.get_write_buffer_size() > 0
        assert pr.paused == 1
        peer.transport.resume_reading()
        while pr.resumed == 0:
            await asyncio.sleep(0.01)
        assert tr.can_write_eof()
        tr.write_eof()
        while not peer.eof:
            await asyncio.sleep(0.01)
        assert len(peer.data) == 4_000_000
        peer.transport.abort()
        await pr.lost
        await peer.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_server_start_serving_async_with_and_serve_forever(loop):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0, start_serving=False)
        assert not server.is_serving()
        async with server:
            await server.start_serving()
            assert server.is_serving()
            task = asyncio.ensure_future(server.serve_forever())
            r, w = await asyncio.open_connection(*server.sockets[0].getsockname())
            w.write(b"abc")
            assert await r.readexactly(3) == b"abc"
            w.close()
            await w.wait_closed()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert not server.is_serving()

    run(loop, main())


def test_streams_start_server_open_connection(loop):
    async def handle(reader, writer):
        line = await reader.readline()
        writer.write(line.upper())
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        r, w = await asyncio.open_connection(*server.sockets[0].getsockname())
        w.write(b"hello\n")
        got = await r.read()
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()
        return got

    assert run(loop, main()) == b"HELLO\n"


def test_unix_server_and_connection(loop):
    path = os.path.join(tempfile.mkdtemp(), "sock")

    async def main():
        server = await loop.create_unix_server(Echo, path)
        tr, pr = await loop.create_unix_connection(lambda: Collect(loop), path)
        tr.write(b"unix")
        while len(pr.data) < 4:
            await asyncio.sleep(0.01)
        tr.close()
        await pr.lost
        server.close()
        await server.wait_closed()
        return bytes(pr.data)

    assert run(loop, main()) == b"unix"


def test_create_datagram_endpoint(loop):
    class Dgram(asyncio.DatagramProtocol):
        def __init__(self):
            self.got = loop.create_future()

        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            if not self.got.done():
                self.got.set_result((data, addr))

    async def main():
        tr1, p1 = await loop.create_datagram_endpoint(Dgram, local_addr=("127.0.0.1", 0))
        addr1 = tr1.get_extra_info("sockname")
        tr2, p2 = await loop.create_datagram_endpoint(Dgram, remote_addr=addr1)
        tr2.sendto(b"one")
        data, frm = await p1.got
        assert frm == tr2.get_extra_info("sockname")
        tr1.close()
        tr2.close()
        return data

    assert run(loop, main()) == b"one"


def test_getaddrinfo_getnameinfo(loop):
    async def main():
        infos = await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
        name = await loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
        return infos, name

    infos, name = run(loop, main())
    assert infos[0][4] == ("127.0.0.1", 80)
    assert name == ("127.0.0.1", "80")


@pytest.mark.skipif(sys.platform == "win32", reason="Unix signals")
def test_add_remove_signal_handler(loop):
    async def main():
        got = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, got.set_result, "usr1")
        os.kill(os.getpid(), signal.SIGUSR1)
        result = await got
        assert loop.remove_signal_handler(signal.SIGUSR1)
        assert not loop.remove_signal_handler(signal.SIGUSR1)
        return result

    assert run(loop, main()) == "usr1"
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(signal.SIGKILL, print)


def test_subprocess_exec_and_shell(loop):
    async def main():
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read()[::-1])",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await p.communicate(b"abc")
        q = await asyncio.create_subprocess_shell("exit 3")
        return out, p.returncode, await q.wait()

    assert run(loop, main()) == (b"cba", 0, 3)


def test_ssl_through_sslproto(loop):
    ssl = pytest.importorskip("ssl")
    from test.test_asyncio import utils as test_utils

    server_ctx = test_utils.simple_server_sslcontext()
    client_ctx = test_utils.simple_client_sslcontext()

    async def main():
        server = await asyncio.start_server(
            lambda r, w: (w.write(b"tls"), w.close()), "127.0.0.1", 0, ssl=server_ctx
        )
        r, w = await asyncio.open_connection(*server.sockets[0].getsockname(), ssl=client_ctx)
        got = await r.read()
        w.close()
        server.close()
        await server.wait_closed()
        return got

    assert run(loop, main()) == b"tls"
