//! The loop API (`call_soon`, timers, `call_soon_threadsafe`) against tokio, in one run.
//!
//! Every workload is one criterion group with a function `aioloop` and a function `tokio`,
//! which `benches/report.py` pairs into the ratio aioloop/tokio. Some groups have a third
//! function (`aioloop_tasks`, `aioloop_call_later`): the other way of doing the same thing
//! with aioloop, reported as an extra row against the same tokio figure.
//!
//! | group | aioloop | tokio |
//! |---|---|---|
//! | `call_soon_100k` | `LocalLoop::call_soon` × 100,000, then `run_once` until all ran | current-thread runtime + `LocalSet`, `spawn_local` × 100,000 no-op tasks |
//! | `call_soon_100k_mt` | `Handle::call_soon` × 100,000 from the bench thread (2 workers) | multi-thread `Runtime::spawn` × 100,000 (2 workers) |
//! | `timers_100k` | 100,000 `spawn_local` tasks each awaiting `aioloop::sleep` (deadlines within 100 ms) | the same with `tokio::time::sleep` in a `LocalSet` |
//! | `timers_100k_dense` | the same with deadlines within 10 ms: the work outlasts the deadlines, so the time is the per-timer cost | the same |
//! | `threadsafe_ping_pong` | 1,000 round trips: `LoopHandle::call_soon_threadsafe` → reply | 1,000 round trips: `Handle::spawn` onto a current-thread runtime → reply |
//! | `threadsafe_ping_pong_mt` | the same against a 2-worker `Runtime` | the same against a 2-worker tokio runtime |
//!
//! The loops and runtimes are built once per group, before any timing. The workloads are
//! written from the description; no code is taken from tokio.
//!
//! Run with `cargo bench -p aioloop-benches --bench loop_api`, then
//! `python3 benches/report.py`. `LOOP_BENCH_ROUNDS=N` runs the two timer groups in
//! interleaved mode instead (N rounds, each one aioloop and one tokio iteration back to
//! back: the median per-round ratio, the figure to trust on a shared machine).

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use criterion::{criterion_group, Bencher, Criterion, SamplingMode};

mod common;
use common::{
    aioloop_runtime, criterion_config, interleaved_pair, rounds_from_env, tokio_current_thread,
    tokio_multi_thread, Countdown, LocalCountdown,
};

/// Callbacks / tasks per iteration of the `call_soon_100k*` groups.
const NUM_CALLBACKS: usize = 100_000;
/// Timers per iteration of `timers_100k`.
const NUM_TIMERS: usize = 100_000;
/// Deadlines of `timers_100k` are uniform in `[1 ns, TIMER_SPAN)` after insertion.
const TIMER_SPAN: Duration = Duration::from_millis(100);
/// The span of `timers_100k_dense`: short enough that spawning and registering 100,000
/// timers takes longer than their deadlines (on either runtime), so the iteration measures
/// the CPU cost per timer instead of `TIMER_SPAN` plus a tail.
const DENSE_TIMER_SPAN: Duration = Duration::from_millis(10);
/// Seed of the deadline generator (the same deadlines every iteration, for both runtimes).
const TIMER_SEED: u64 = 0x5eed_1e55;
/// Round trips per iteration of the ping-pong groups.
const ROUND_TRIPS: usize = 1_000;

// ---------------------------------------------------------------------------------------
// call_soon_100k: 100,000 no-op callbacks on one thread's loop, run to completion.
//
// aioloop: `call_soon` from outside the loop (the embedder's way), then `run_once` until
// the countdown is zero (an iteration runs at most MAX_BATCH items, so it takes several).
// tokio has no callbacks: a task is its unit of scheduled work, so the counterpart is a
// no-op task per callback, spawned with `spawn_local` into a `LocalSet` driven by a
// current-thread runtime's `block_on`. `aioloop_tasks` is the exact mirror of the tokio
// function on a `LocalLoop` (tasks, not callbacks), for reference.
// Each unit of work clones an `Rc` and ticks the countdown, on both.
// ---------------------------------------------------------------------------------------

fn call_soon_100k(c: &mut Criterion) {
    let lp = aioloop::LocalLoop::new().expect("create LocalLoop");
    let rt = tokio_current_thread();
    let local = tokio::task::LocalSet::new();
    let mut g = c.benchmark_group("call_soon_100k");

    g.bench_function("aioloop", |b| {
        b.iter(|| {
            let count = LocalCountdown::new(NUM_CALLBACKS);
            for _ in 0..NUM_CALLBACKS {
                let count = count.clone();
                lp.call_soon(move || count.tick()).expect("loop is open");
            }
            while !count.is_done() {
                lp.run_once(Some(Duration::ZERO)).expect("run_once");
            }
        })
    });

    g.bench_function("aioloop_tasks", |b| {
        b.iter(|| {
            let count = LocalCountdown::new(NUM_CALLBACKS);
            lp.run_until_complete(async {
                for _ in 0..NUM_CALLBACKS {
                    let count = count.clone();
                    drop(aioloop::spawn_local(async move { count.tick() }));
                }
                count.wait().await;
            })
            .expect("run_until_complete");
        })
    });

    g.bench_function("tokio", |b| {
        b.iter(|| {
            let count = LocalCountdown::new(NUM_CALLBACKS);
            local.block_on(&rt, async {
                for _ in 0..NUM_CALLBACKS {
                    let count = count.clone();
                    drop(tokio::task::spawn_local(async move { count.tick() }));
                }
                count.wait().await;
            });
        })
    });

    g.finish();
}

// ---------------------------------------------------------------------------------------
// call_soon_100k_mt: the same against the multi-thread runtimes (2 workers each), the work
// posted from the bench thread (outside the runtime): aioloop `Handle::call_soon` (a
// callback into the shared injector), tokio `Runtime::spawn` (a task into its injection
// queue). Each unit ticks an atomic countdown; the last one signals the bench thread.
// ---------------------------------------------------------------------------------------

fn call_soon_100k_mt(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("call_soon_100k_mt");

    g.bench_function("aioloop", |b| {
        let h = aio.handle();
        b.iter(|| {
            let (count, rx) = Countdown::new(NUM_CALLBACKS);
            for _ in 0..NUM_CALLBACKS {
                let count = count.clone();
                drop(h.call_soon(move || count.tick()));
            }
            rx.recv().expect("countdown reached zero");
        })
    });

    g.bench_function("tokio", |b| {
        b.iter(|| {
            let (count, rx) = Countdown::new(NUM_CALLBACKS);
            for _ in 0..NUM_CALLBACKS {
                let count = count.clone();
                drop(tok.spawn(async move { count.tick() }));
            }
            rx.recv().expect("countdown reached zero");
        })
    });

    g.finish();
}

// ---------------------------------------------------------------------------------------
// timers_100k: 100,000 timers with deadlines uniform within 100 ms of their creation
// (fixed seed, the same list for both), inserted and fired, on one thread's loop.
//
// Pairing: TASKS + SLEEP on both, for fairness: `aioloop` spawns 100,000 `spawn_local`
// tasks on a `LocalLoop` that each await `aioloop::sleep(d)` and tick a countdown; `tokio`
// spawns 100,000 `spawn_local` tasks in a `LocalSet` on a current-thread runtime that each
// await `tokio::time::sleep(d)`. `aioloop_call_later` is the callback form on the same
// `LocalLoop` (`call_later(d, tick)`, then `run_once(None)` until all fired), for
// reference. Both sleeps take their deadline when created, as does `call_later`.
//
// An iteration lasts at least the longest delay (~100 ms). With 100,000 timers in 100 ms
// (one per microsecond) the CPU work of spawning, registering, firing and completing can
// take longer than that on a small machine; the iteration then lasts as long as the work,
// and the ratio compares the two runtimes' per-timer cost rather than their waiting.
// ---------------------------------------------------------------------------------------

fn timer_delays(span: Duration) -> Vec<Duration> {
    let mut rng = fastrand::Rng::with_seed(TIMER_SEED);
    let span = span.as_nanos() as u64;
    (0..NUM_TIMERS)
        .map(|_| Duration::from_nanos(rng.u64(1..span)))
        .collect()
}

fn timers_100k(c: &mut Criterion) {
    timers_group(c, "timers_100k", TIMER_SPAN);
}

// timers_100k_dense: the same workload with deadlines within DENSE_TIMER_SPAN. In
// timers_100k, once the machine is quiet, an iteration is the 100 ms span plus the time it
// takes to spawn and first-poll the tasks whose delays are near 100 ms (they are spread
// through the list): both runtimes sit a fixed 100 ms apart from their own CPU cost, and
// the ratio says little about it. Here the work outlasts the deadlines, as it does in
// timers_100k on a loaded machine.
fn timers_100k_dense(c: &mut Criterion) {
    timers_group(c, "timers_100k_dense", DENSE_TIMER_SPAN);
}

/// One `timers_100k` iteration on aioloop: a task per delay, each sleeping then ticking.
fn timers_aioloop(lp: &aioloop::LocalLoop, delays: &[Duration]) {
    let count = LocalCountdown::new(delays.len());
    lp.run_until_complete(async {
        for &d in delays {
            let count = count.clone();
            drop(aioloop::spawn_local(async move {
                aioloop::sleep(d).await;
                count.tick();
            }));
        }
        count.wait().await;
    })
    .expect("run_until_complete");
}

/// The same on tokio: `spawn_local` tasks in `local`, each awaiting `tokio::time::sleep`.
fn timers_tokio(rt: &tokio::runtime::Runtime, local: &tokio::task::LocalSet, delays: &[Duration]) {
    let count = LocalCountdown::new(delays.len());
    local.block_on(rt, async {
        for &d in delays {
            let count = count.clone();
            drop(tokio::task::spawn_local(async move {
                tokio::time::sleep(d).await;
                count.tick();
            }));
        }
        count.wait().await;
    });
}

fn timers_group(c: &mut Criterion, name: &str, span: Duration) {
    let delays = timer_delays(span);
    let lp = aioloop::LocalLoop::new().expect("create LocalLoop");
    let rt = tokio_current_thread();
    let local = tokio::task::LocalSet::new();
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_millis(1500));

    g.bench_function("aioloop", |b| b.iter(|| timers_aioloop(&lp, &delays)));

    g.bench_function("aioloop_call_later", |b| {
        b.iter(|| {
            let count = LocalCountdown::new(NUM_TIMERS);
            for &d in &delays {
                let count = count.clone();
                lp.call_later(d.as_secs_f64(), move || count.tick())
                    .expect("valid delay on an open loop");
            }
            while !count.is_done() {
                lp.run_once(None).expect("run_once");
            }
        })
    });

    g.bench_function("tokio", |b| b.iter(|| timers_tokio(&rt, &local, &delays)));

    g.finish();
}

/// `LOOP_BENCH_ROUNDS=N`: the two timer groups in interleaved mode
/// (`common::interleaved_pair`) instead of criterion.
fn timers_interleaved(rounds: usize) {
    let lp = aioloop::LocalLoop::new().expect("create LocalLoop");
    let rt = tokio_current_thread();
    let local = tokio::task::LocalSet::new();
    println!("| workload | aioloop (median) | tokio (median) | ratio: median (p25–p75) |");
    println!("|---|---:|---:|---:|");
    for (name, span) in [
        ("timers_100k", TIMER_SPAN),
        ("timers_100k_dense", DENSE_TIMER_SPAN),
    ] {
        let delays = timer_delays(span);
        interleaved_pair(
            name,
            rounds,
            2,
            || timers_aioloop(&lp, &delays),
            || timers_tokio(&rt, &local, &delays),
        );
    }
}

// ---------------------------------------------------------------------------------------
// threadsafe_ping_pong: cross-thread round-trip latency, ROUND_TRIPS per iteration.
//
// A loop thread L idles in its loop; the bench thread B, for each round trip, posts a
// closure to L and blocks on a std `mpsc` channel until the closure, run on L, replies.
// One round trip = B wakes L through the loop's own cross-thread path + L wakes B through
// the (shared, runtime-independent) channel.
//   aioloop: L runs `LocalLoop::run_forever`; B posts with `LoopHandle::call_soon_threadsafe`.
//   tokio:   L runs a current-thread runtime + `LocalSet` (`block_on` of a future that waits
//            for shutdown); B posts with `tokio::runtime::Handle::spawn` of a task that
//            sends the reply. tokio has no callbacks, so the posted unit is a task — the
//            same "one allocation, queued from another thread, loop woken" as a callback.
// `threadsafe_ping_pong_mt` is the same against the 2-worker runtimes (aioloop
// `Handle::call_soon_threadsafe`, tokio `Runtime::spawn`), B being the bench thread.
// ---------------------------------------------------------------------------------------

/// Times ROUND_TRIPS round trips per iteration: `post` hands a clone of the reply sender to
/// the loop thread, which sends on it; the bench thread waits for each reply before the next.
fn round_trips(b: &mut Bencher, post: impl Fn(mpsc::Sender<()>)) {
    let (reply, rx) = mpsc::channel::<()>();
    b.iter(|| {
        for _ in 0..ROUND_TRIPS {
            post(reply.clone());
            rx.recv().expect("reply");
        }
    })
}

fn threadsafe_ping_pong(c: &mut Criterion) {
    // aioloop's loop thread.
    let (h_tx, h_rx) = mpsc::channel();
    let aio_thread = thread::spawn(move || {
        let lp = aioloop::LocalLoop::new().expect("create LocalLoop");
        h_tx.send(lp.handle()).expect("bench thread waits");
        lp.run_forever().expect("run_forever");
    });
    let aio = h_rx.recv().expect("aioloop loop thread started");

    // tokio's loop thread.
    let (h_tx, h_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let tok_thread = thread::spawn(move || {
        let rt = tokio_current_thread();
        let local = tokio::task::LocalSet::new();
        h_tx.send(rt.handle().clone()).expect("bench thread waits");
        local.block_on(&rt, async move {
            let _ = stop_rx.await;
        });
    });
    let tok = h_rx.recv().expect("tokio loop thread started");

    let mut g = c.benchmark_group("threadsafe_ping_pong");

    g.bench_function("aioloop", |b| {
        round_trips(b, |reply| {
            aio.call_soon_threadsafe(move || reply.send(()).expect("B waits"))
                .expect("loop is open");
        })
    });

    g.bench_function("tokio", |b| {
        round_trips(b, |reply| {
            drop(tok.spawn(async move { reply.send(()).expect("B waits") }));
        })
    });

    g.finish();

    aio.stop();
    aio_thread.join().expect("aioloop loop thread");
    stop_tx.send(()).expect("tokio loop thread waits");
    tok_thread.join().expect("tokio loop thread");
}

fn threadsafe_ping_pong_mt(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("threadsafe_ping_pong_mt");

    g.bench_function("aioloop", |b| {
        let h = aio.handle();
        round_trips(b, |reply| {
            drop(h.call_soon_threadsafe(move || reply.send(()).expect("B waits")));
        })
    });

    g.bench_function("tokio", |b| {
        round_trips(b, |reply| {
            drop(tok.spawn(async move { reply.send(()).expect("B waits") }));
        })
    });

    g.finish();
}

fn config() -> Criterion {
    // Two shared cores: modest sample counts; what is reported is the ratio between the
    // functions of a group, measured back to back. (timers_100k sets its own, longer-
    // iteration settings.)
    criterion_config(Duration::from_millis(500), Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = call_soon_100k, call_soon_100k_mt, timers_100k, timers_100k_dense, threadsafe_ping_pong,
        threadsafe_ping_pong_mt
}
fn main() {
    if let Some(rounds) = rounds_from_env("LOOP_BENCH_ROUNDS") {
        timers_interleaved(rounds);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
