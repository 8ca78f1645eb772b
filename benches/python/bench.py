"""aioloop's Python event loop vs asyncio, uvloop and rloop, in one run.

Workloads (the issue's): 100k call_soon (each callback schedules the next until 100k have
run, then stop), 10k create_task + gather, and TCP echo over loopback: 20k round trips of
1 KiB on one connection, client and server both on the measured loop, with protocols
(create_server/create_connection) and with streams (start_server/open_connection). Each
is run REPEAT times per loop; the median is reported with its ratio to asyncio, uvloop
and rloop.

Usage: python benches/python/bench.py [--repeat N]
"""

import argparse
import asyncio
import statistics
import sys
import time


def loops():
    out = [("asyncio", asyncio.new_event_loop)]
    import aioloop

    out.append(("aioloop", lambda: aioloop.new_event_loop(native_tasks=False)))
    out.append(("aioloop-native", lambda: aioloop.new_event_loop(native_tasks=True)))
    try:
        import uvloop

        out.append(("uvloop", uvloop.new_event_loop))
    except ImportError:
        print("uvloop not installed: skipped", file=sys.stderr)
    try:
        import rloop

        out.append(("rloop", rloop.new_event_loop))
    except ImportError:
        print("rloop not installed: skipped", file=sys.stderr)
    return out


def call_soon_100k(loop):
    n = 100_000
    left = [n]

    def cb():
        left[0] -= 1
        if left[0]:
            loop.call_soon(cb)
        else:
            loop.stop()

    t0 = time.perf_counter()
    loop.call_soon(cb)
    loop.run_forever()
    return time.perf_counter() - t0


def tasks_10k(loop):
    async def leaf(i):
        await asyncio.sleep(0)
        return i

    async def main():
        ts = [loop.create_task(leaf(i)) for i in range(10_000)]
        return await asyncio.gather(*ts)

    t0 = time.perf_counter()
    loop.run_until_complete(main())
    return time.perf_counter() - t0


ECHO_ROUNDS = 20_000
MSG = b"x" * 1024


class _EchoServer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class _EchoClient(asyncio.Protocol):
    def __init__(self, done):
        self.done = done
        self.got = 0
        self.left = ECHO_ROUNDS

    def connection_made(self, transport):
        self.transport = transport
        transport.write(MSG)

    def data_received(self, data):
        self.got += len(data)
        if self.got < len(MSG):
            return
        self.got -= len(MSG)
        self.left -= 1
        if self.left:
            self.transport.write(MSG)
        else:
            self.done.set_result(None)


def echo_protocols(loop):
    async def main():
        server = await loop.create_server(_EchoServer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        done = loop.create_future()
        t0 = time.perf_counter()
        tr, _ = await loop.create_connection(lambda: _EchoClient(done), "127.0.0.1", port)
        await done
        took = time.perf_counter() - t0
        tr.close()
        server.close()
        await server.wait_closed()
        return took

    return loop.run_until_complete(main())


def echo_streams(loop):
    handled = loop.create_future()

    async def handle(reader, writer):
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.close()
        handled.set_result(None)

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        t0 = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(ECHO_ROUNDS):
            writer.write(MSG)
            await writer.drain()
            await reader.readexactly(len(MSG))
        took = time.perf_counter() - t0
        writer.close()
        # Untimed: let the handler see EOF and finish (rloop never reports EOF to it, so
        # it is given up on after a second rather than left pending).
        await asyncio.wait([handled], timeout=1)
        server.close()
        await server.wait_closed()
        return took

    return loop.run_until_complete(main())


WORKLOADS = [
    ("call_soon 100k", call_soon_100k),
    ("create_task+gather 10k", tasks_10k),
    ("TCP echo 20k x 1 KiB, protocols", echo_protocols),
    ("TCP echo 20k x 1 KiB, streams", echo_streams),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("workloads", nargs="*", help="substrings of workload names to run")
    args = ap.parse_args()
    impls = loops()
    print(f"Python {sys.version.split()[0]}; median of {args.repeat} runs, seconds")
    for wname, work in WORKLOADS:
        if args.workloads and not any(w in wname for w in args.workloads):
            continue
        results = {}
        # interleave the loops round by round, so drift on a shared machine hits all alike
        samples = {name: [] for name, _ in impls}
        for _ in range(args.repeat):
            for name, make in impls:
                lp = make()
                try:
                    samples[name].append(work(lp))
                finally:
                    lp.close()
        for name in samples:
            results[name] = statistics.median(samples[name])
        print(f"\n{wname}")
        base = results["asyncio"]
        uv = results.get("uvloop")
        rl = results.get("rloop")
        for name, t in results.items():
            extra = f"  {uv / t:5.2f}x uvloop's" if uv else ""
            extra += f"  {rl / t:5.2f}x rloop's" if rl else ""
            print(f"  {name:15s} {t:8.4f}  {base / t:5.2f}x asyncio's speed{extra}")


if __name__ == "__main__":
    main()
