#!/usr/bin/env bash
# Issue 9 item 6, deterministically: the instructions each scheduler workload executes on
# aioloop and on tokio (`benches/workloads.rs`, one worker each, the same futures and the
# same one-shot channels), counted by callgrind. Wall-clock ratios on this shared 2-core
# machine move by ±0.3 between runs; instruction counts on one worker do not move at all,
# so this is where a change to the poll/wake/spawn path shows first. Not part of CI (needs
# valgrind; about 3 minutes).
#
#   bash benches/instr_vs_tokio.sh [iterations]
set -euo pipefail
cd "$(dirname "$0")/.."
iters="${1:-3}"
source benches/common/callgrind.sh
cargo build --release -q -p aioloop-benches --example workloads
printf '%-18s %15s %15s %8s\n' workload aioloop tokio ratio
for w in chained_spawn spawn_many_local yield_many ping_pong; do
    a=$(count target/release/examples/workloads "$w" "$iters")
    t=$(count target/release/examples/workloads "$w" "$iters" tokio)
    awk -v w="$w" -v a="$a" -v t="$t" \
        'BEGIN { printf "%-18s %15d %15d %7.2fx\n", w, a, t, a / t }'
done
