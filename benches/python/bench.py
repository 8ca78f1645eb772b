"""aioloop's Python event loop vs asyncio, uvloop and rloop, in one run.

Workloads (the issue's): 100k call_soon (each callback schedules the next until 100k have
run, then stop), and 10k create_task + gather. Each is run REPEAT times per loop; the
median is reported with its ratio to asyncio and to uvloop. The TCP echo workloads need
network I/O (issue 14 part 2) and are not measured yet.

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


WORKLOADS = [("call_soon 100k", call_soon_100k), ("create_task+gather 10k", tasks_10k)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    impls = loops()
    print(f"Python {sys.version.split()[0]}; median of {args.repeat} runs, seconds")
    for wname, work in WORKLOADS:
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
        for name, t in results.items():
            extra = f"  {uv / t:5.2f}x uvloop's speed" if uv else ""
            print(f"  {name:15s} {t:8.4f}  {base / t:5.2f}x asyncio's speed{extra}")
    print("\nTCP echo (protocols, streams): needs network I/O (issue 14 part 2), not measured.")


if __name__ == "__main__":
    main()
