#!/usr/bin/env bash
# What observation costs when nobody looks (issue 13 items 1 and 4): the instructions each
# scheduler workload executes with the metrics counters and the task-tracking checks
# compiled in (the shipped code) and compiled out (`--cfg aioloop_unobserved`, a
# measurement-only switch). Instruction counts under callgrind are deterministic on one
# worker, so one run of each suffices, where wall-clock A/B runs on this shared 2-core
# machine drift by more than the effect. Not part of CI (needs valgrind; about 5 minutes).
#
#   bash benches/observe_cost.sh [iterations]
set -euo pipefail
cd "$(dirname "$0")/.."
iters="${1:-10}"
source benches/common/callgrind.sh
cargo build --release -q -p aioloop-benches --example workloads
RUSTFLAGS="--cfg aioloop_unobserved" CARGO_TARGET_DIR=target/unobserved \
    cargo build --release -q -p aioloop-benches --example workloads
printf '%-18s %15s %15s %8s\n' workload observed unobserved cost
for w in chained_spawn spawn_many_local yield_many ping_pong; do
    on=$(count target/release/examples/workloads "$w" "$iters")
    off=$(count target/unobserved/release/examples/workloads "$w" "$iters")
    awk -v w="$w" -v on="$on" -v off="$off" \
        'BEGIN { printf "%-18s %15d %15d %+7.2f%%\n", w, on, off, (on / off - 1) * 100 }'
done
