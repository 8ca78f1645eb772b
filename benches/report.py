#!/usr/bin/env python3
"""Turn criterion's results for `benches/runtime.rs`, `benches/loop_api.rs` and
`benches/timeouts.rs` into a markdown ratio table.

Reads <criterion dir>/<group>/<function>/new/estimates.json for the functions `aioloop`
and `tokio` of every group, takes the median's point estimate (and its confidence
interval), and prints: workload | aioloop | tokio | ratio (aioloop/tokio). A group's other
functions whose name starts with `aioloop_` (e.g. `timers_100k/aioloop_call_later`) get a
row of their own, `group (function)`, against the same tokio figure.

If `benches/timer_lateness.rs` has been run, its results (<target dir>/tmp/
timer_lateness.json) are printed as a second table.

Usage:
    python3 benches/report.py [PATH]

PATH may be a cargo target dir (containing `criterion/`) or the criterion dir itself.
Without it: $CARGO_TARGET_DIR/criterion, or target/criterion if the variable is unset.
"""

import json
import os
import sys

# Workloads in the order runtime.rs runs them; any other group found with both functions
# is appended alphabetically.
ORDER = [
    "spawn_many_local",
    "spawn_many_local_block_on",
    "spawn_many_remote",
    "spawn_many_remote_busy1",
    "spawn_many_remote_busy2",
    "spawn_many_remote_block_on",
    "yield_many",
    "yield_many_block_on",
    "ping_pong",
    "ping_pong_block_on",
    "chained_spawn",
    "chained_spawn_block_on",
    # loop_api.rs
    "call_soon_100k",
    "call_soon_100k_mt",
    "timers_100k",
    "timers_100k_dense",
    "threadsafe_ping_pong",
    "threadsafe_ping_pong_mt",
    # net.rs
    "echo_50x64B",
    "echo_50x1KiB",
    # timeouts.rs
    "timeout_10k_one_task",
    "timeout_10k_tasks",
]
FUNCS = ("aioloop", "tokio")


def criterion_dir(arg):
    if arg is None:
        arg = os.environ.get("CARGO_TARGET_DIR") or "target"
    if os.path.isdir(os.path.join(arg, "criterion")):
        return os.path.join(arg, "criterion")
    return arg


def median(crit, group, func):
    """(point, lower, upper) of the median in ns, or None if absent."""
    path = os.path.join(crit, group, func, "new", "estimates.json")
    try:
        with open(path) as f:
            m = json.load(f)["median"]
    except (OSError, KeyError, ValueError):
        return None
    ci = m["confidence_interval"]
    return m["point_estimate"], ci["lower_bound"], ci["upper_bound"]


def fmt_time(ns):
    """Three significant digits in ns, µs, ms or s (trailing zeros kept)."""
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs"), (1.0, "ns")):
        if ns >= scale or unit == "ns":
            v = ns / scale
            decimals = 2 if v < 10 else 1 if v < 100 else 0
            return f"{v:.{decimals}f} {unit}"


def cell(est):
    point, lo, hi = est
    return f"{fmt_time(point)} ({fmt_time(lo)}–{fmt_time(hi)})"


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__.strip())
        return 0 if len(argv) == 2 else 2
    crit = criterion_dir(argv[1] if len(argv) == 2 else None)
    if not os.path.isdir(crit):
        print(f"no criterion results in {crit!r}; run "
              "`cargo bench -p aioloop-benches --bench runtime` first", file=sys.stderr)
        return 1

    found = sorted(
        g for g in os.listdir(crit)
        if all(os.path.isdir(os.path.join(crit, g, fn)) for fn in FUNCS)
    )
    groups = [g for g in ORDER if g in found] + [g for g in found if g not in ORDER]

    rows = []
    for g in groups:
        a = median(crit, g, "aioloop")
        t = median(crit, g, "tokio")
        if a is None or t is None:
            continue
        rows.append((g, a, t))
        for fn in sorted(os.listdir(os.path.join(crit, g))):
            if fn.startswith("aioloop_"):
                extra = median(crit, g, fn)
                if extra is not None:
                    rows.append((f"{g} ({fn})", extra, t))
    if not rows:
        print(f"no group in {crit!r} has both aioloop and tokio results", file=sys.stderr)
        return 1

    print("| workload | aioloop | tokio | ratio (aioloop/tokio) |")
    print("|---|---:|---:|---:|")
    for g, a, t in rows:
        print(f"| {g} | {cell(a)} | {cell(t)} | {a[0] / t[0]:.2f}× |")
    print()
    print(f"Median time per iteration from criterion's `new/estimates.json` in `{crit}` "
          "(95% confidence interval of the median in parentheses); the two functions of a "
          "group measured back to back in the same `cargo bench` run (multi-thread "
          "runtimes with 2 worker threads; `LocalLoop` groups against tokio's "
          "current-thread runtime + `LocalSet`). Ratio > 1 means aioloop is slower.")
    lateness_table(crit)
    return 0


def fmt_us(ns):
    return f"{ns / 1e3:.0f} µs"


def lateness_table(crit):
    """Prints benches/timer_lateness.rs's results, if present next to the criterion dir."""
    path = os.path.join(os.path.dirname(os.path.abspath(crit)), "tmp", "timer_lateness.json")
    try:
        with open(path) as f:
            rows = json.load(f)["rows"]
    except (OSError, KeyError, ValueError):
        return
    print()
    print("| timer lateness | sleep | n | median | p99 | max | min | ≤ 2 ms late |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['runtime']} | {r['sleep_ms']} ms | {r['n']} | {fmt_us(r['median_ns'])} "
              f"| {fmt_us(r['p99_ns'])} | {fmt_us(r['max_ns'])} | {fmt_us(r['min_ns'])} "
              f"| {100 * r['within_2ms'] / r['n']:.1f}% |")
    print()
    print(f"Actual minus requested sleep, from `{path}` (`cargo bench -p aioloop-benches --bench "
          "timer_lateness`): one task sleeping on an otherwise idle runtime; a negative "
          "min would be an early wake-up.")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
