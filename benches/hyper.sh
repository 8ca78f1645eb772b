#!/usr/bin/env bash
# HTTP/1.1 hello world, hyper on aioloop vs hyper on tokio, under wrk (not part of CI).
#
#   bash benches/hyper.sh            # 3 alternating rounds of wrk -t1 -c50 -d5s each
#   ROUNDS=5 DURATION=10s CONNS=100 bash benches/hyper.sh
#
# Builds examples/hyper_server.rs (aioloop, 1 worker; feature `hyper`) and
# benches/hyper_tokio.rs (tokio current-thread, hyper-util's TokioIo) in release mode,
# installs wrk with apt-get if it is missing, starts both servers pinned to CPU 0 and runs
# wrk pinned to CPU 1 (when the machine has two CPUs and taskset), alternating which
# server goes first in each round. Prints each run's requests/s and the server's CPU time
# per request (from /proc), the medians and the ratios aioloop / tokio (target: >= 1.0).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5s}"
CONNS="${CONNS:-50}"
AIO_ADDR=127.0.0.1:18080
TOKIO_ADDR=127.0.0.1:18081

if ! command -v wrk >/dev/null; then
    echo "wrk is missing: apt-get install -y wrk"
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; } || {
        echo "wrk could not be installed; no measurement"
        exit 1
    }
fi

cargo build --release --quiet --features hyper --example hyper_server
cargo build --release --quiet -p aioloop-benches --example hyper_tokio
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples"

server_cpu=() client_cpu=()
pinning="not pinned (no taskset or one CPU)"
if command -v taskset >/dev/null && [[ "$(nproc)" -ge 2 ]]; then
    server_cpu=(taskset -c 0)
    client_cpu=(taskset -c 1)
    pinning="servers pinned to CPU 0, wrk to CPU 1"
fi

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

"${server_cpu[@]}" "$BIN/hyper_server" "$AIO_ADDR" 1 >/dev/null 2>&1 &
pids+=($!)
"${server_cpu[@]}" "$BIN/hyper_tokio" "$TOKIO_ADDR" >/dev/null 2>&1 &
pids+=($!)

wait_up() {
    local host="${1%:*}" port="${1#*:}"
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "server at $1 did not start"
    return 1
}
wait_up "$AIO_ADDR"
wait_up "$TOKIO_ADDR"

# cpu_ticks PID: the process's user + system CPU time so far, in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# run NAME ADDR PID: one wrk run; prints its requests/s and the server's CPU time per
# request in µs (the machine is shared: CPU per request moves less with load than req/s).
run() {
    local out c0 c1 total rps
    c0="$(cpu_ticks "$3")"
    out="$("${client_cpu[@]}" wrk -t1 -c"$CONNS" -d"$DURATION" "http://$2/")"
    c1="$(cpu_ticks "$3")"
    if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
        echo "  ($1: $(grep 'Non-2xx\|Socket errors' <<<"$out"))" >&2
    fi
    rps="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
    total="$(awk '/requests in/ { print $1 }' <<<"$out")"
    echo "$rps $(echo "($c1 - $c0) * 1000000 / $(getconf CLK_TCK) / $total" | bc -l)"
}

aio=() tok=() ratios=() cpu_ratios=()
echo "wrk -t1 -c$CONNS -d$DURATION, $ROUNDS alternating rounds, $pinning; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
    if (( r % 2 )); then
        read -r a ac <<<"$(run aioloop "$AIO_ADDR" "${pids[0]}")"
        read -r t tc <<<"$(run tokio "$TOKIO_ADDR" "${pids[1]}")"
    else
        read -r t tc <<<"$(run tokio "$TOKIO_ADDR" "${pids[1]}")"
        read -r a ac <<<"$(run aioloop "$AIO_ADDR" "${pids[0]}")"
    fi
    aio+=("$a") tok+=("$t") ratios+=("$(echo "$a / $t" | bc -l)")
    cpu_ratios+=("$(echo "$tc / $ac" | bc -l)")
    printf 'round %d: aioloop %8.0f req/s %5.1f µs CPU/req   tokio %8.0f req/s %5.1f µs CPU/req   req/s ratio %.3f   CPU ratio (tokio/aioloop) %.3f\n' \
        "$r" "$a" "$ac" "$t" "$tc" "${ratios[-1]}" "${cpu_ratios[-1]}"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ma="$(median "${aio[@]}")" mt="$(median "${tok[@]}")"
printf 'median:  aioloop %10.0f req/s   tokio %10.0f req/s   ratio of medians %.3f, median of round ratios %.3f\n' \
    "$ma" "$mt" "$(echo "$ma / $mt" | bc -l)" "$(median "${ratios[@]}")"
printf 'median CPU-per-request ratio (tokio/aioloop, > 1: aioloop uses less CPU per request): %.3f\n' \
    "$(median "${cpu_ratios[@]}")"
