#!/usr/bin/env bash
# User-space instructions per TCP echo round trip on the server thread, aioloop vs tokio
# (valgrind's callgrind; not part of CI). Two runs per runtime (200 and 600 rounds of 50
# round trips) so that setup cancels out: (Ir(600) - Ir(200)) / 20000.
#
#   bash benches/echo_instr.sh          # 64-byte messages
#   SIZE=1024 bash benches/echo_instr.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SIZE="${SIZE:-64}"
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install -y valgrind"; exit 1; }
cargo build --release --quiet -p aioloop-benches --example echo_instr
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/echo_instr"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# The busiest thread other than main is the server's worker.
server_ir() {
    rm -f "$tmp"/cg.out*
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$tmp/cg.out" \
        "$BIN" "$1" "$2" "$SIZE" >/dev/null 2>&1
    for f in "$tmp"/cg.out-*; do
        [[ "$f" == *-01 ]] && continue
        grep -m1 '^totals:' "$f" | awk '{print $2}'
    done | sort -n | tail -1
}

declare -A per
for rt in aioloop tokio; do
    a=$(server_ir "$rt" 200)
    b=$(server_ir "$rt" 600)
    per[$rt]=$(( (b - a) / 20000 ))
    echo "$rt: ${per[$rt]} user-space instructions per round trip (server thread, $SIZE B)"
done
awk -v a="${per[aioloop]}" -v t="${per[tokio]}" 'BEGIN { printf "tokio/aioloop: %.3f (>1: aioloop runs fewer)\n", t / a }'
