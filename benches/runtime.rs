//! Scheduler throughput: aioloop against tokio's multi-threaded runtime, in one run.
//!
//! Each workload is one criterion group (`spawn_many_local`, `spawn_many_remote`,
//! `yield_many`, `ping_pong`, `chained_spawn`, and `wake_one`: the latency of one remote
//! spawn that wakes a parked worker) with two functions, `aioloop` and `tokio`,
//! so that `benches/report.py` can pair them and print the ratio aioloop/tokio. Both
//! runtimes are built once, before any timing, with two worker threads each, and stay
//! alive (idle) while the other one is measured.
//!
//! The workloads follow the shapes of tokio's own `rt_multi_threaded` benchmarks; the code
//! here is written from the descriptions, not copied. Every iteration waits for all the
//! work it started, and the "done" signal is the same for both runtimes (a
//! `std::sync::mpsc` channel received on the bench thread, or the runtime's own
//! `block_on`).
//!
//! Every workload comes in two shapes: the work is started from inside a task, or (for
//! `spawn_many_remote` and `yield_many`) from the bench thread outside the runtime (the
//! group's plain name), and from inside `block_on`'s own future while the `block_on` thread
//! then waits (`<name>_block_on`: how tokio's own `rt_multi_threaded` benchmarks are
//! written, and what a `main` that spawns does). The second sends every spawn through the
//! runtime's remote path; the block_on thread waits on a std channel, or (for
//! `spawn_many_remote_block_on`) awaits the tasks' handles.
//!
//! Run with `cargo bench -p aioloop-benches --bench runtime`, then
//! `python3 benches/report.py`.
//!
//! **Interleaved mode.** With `RUNTIME_BENCH_ROUNDS=N` set, criterion is not used: for each
//! workload (an optional argument filters by name), N rounds each run one aioloop iteration
//! and one tokio iteration back to back (alternating which goes first), and the table gives
//! the median time of each and the median and quartiles of the per-round ratio. On a shared
//! machine whose load changes from second to second, this pairs the two runtimes much more
//! tightly than criterion's aioloop-then-tokio sampling (issue 9's outside harness: 200
//! rounds).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};

mod common;
use common::{
    aioloop_runtime, criterion_config, quantile, summary_row, tokio_multi_thread, Countdown,
};

/// Tasks spawned per iteration by the two `spawn_many_*` workloads.
const NUM_SPAWN: usize = 10_000;
/// Tasks in `yield_many`.
const NUM_YIELDERS: usize = 200;
/// Yields per task in `yield_many`.
const NUM_YIELDS: usize = 1_000;
/// Pairs of tasks in `ping_pong`.
const NUM_PAIRS: usize = 1_000;
/// Length of the spawn chain in `chained_spawn`.
const CHAIN_LEN: usize = 1_000;
/// Tasks spawned per iteration by `spawn_many_remote_busy2` (tokio's figure).
const NUM_SPAWN_BUSY2: usize = 1_000;
/// The CPU time a background task of the `_busy` workloads burns per step (tokio's figure).
const STALL: Duration = Duration::from_micros(10);

type Aio = aioloop::Runtime;
type Tok = tokio::runtime::Runtime;

/// `spawn_many_remote` with `n` tasks.
macro_rules! spawn_remote_n {
    ($rt:expr, $n:expr) => {{
        let handles: Vec<_> = (0..$n).map(|_| $rt.spawn(async {})).collect();
        $rt.block_on(async {
            for h in handles {
                h.await.expect("task completed");
            }
        });
    }};
}

// ---------------------------------------------------------------------------------------
// spawn_many_local: one task spawns NUM_SPAWN tasks from inside the runtime (so they go to
// that worker's local queue); each ticks a countdown; the bench thread waits for zero.
// ---------------------------------------------------------------------------------------

fn spawn_many_local_aio(rt: &Aio) {
    let (count, rx) = Countdown::new(NUM_SPAWN);
    drop(rt.spawn(async move {
        for _ in 0..NUM_SPAWN {
            let count = count.clone();
            drop(aioloop::create_task(async move { count.tick() }));
        }
    }));
    rx.recv().expect("countdown reached zero");
}

fn spawn_many_local_tok(rt: &Tok) {
    let (count, rx) = Countdown::new(NUM_SPAWN);
    drop(rt.spawn(async move {
        for _ in 0..NUM_SPAWN {
            let count = count.clone();
            drop(tokio::spawn(async move { count.tick() }));
        }
    }));
    rx.recv().expect("countdown reached zero");
}

// ---------------------------------------------------------------------------------------
// spawn_many_remote: the bench thread (outside the runtime) spawns NUM_SPAWN tasks, then
// awaits every handle inside block_on.
// ---------------------------------------------------------------------------------------

fn spawn_many_remote_aio(rt: &Aio) {
    spawn_remote_n!(rt, NUM_SPAWN)
}

fn spawn_many_remote_tok(rt: &Tok) {
    spawn_remote_n!(rt, NUM_SPAWN)
}

// ---------------------------------------------------------------------------------------
// yield_many: NUM_YIELDERS tasks, spawned from the bench thread, each yield NUM_YIELDS
// times and then tick a countdown.
// ---------------------------------------------------------------------------------------

fn yield_many_aio(rt: &Aio) {
    let (count, rx) = Countdown::new(NUM_YIELDERS);
    for _ in 0..NUM_YIELDERS {
        let count = count.clone();
        drop(rt.spawn(async move {
            for _ in 0..NUM_YIELDS {
                aioloop::yield_now().await;
            }
            count.tick();
        }));
    }
    rx.recv().expect("countdown reached zero");
}

fn yield_many_tok(rt: &Tok) {
    let (count, rx) = Countdown::new(NUM_YIELDERS);
    for _ in 0..NUM_YIELDERS {
        let count = count.clone();
        drop(rt.spawn(async move {
            for _ in 0..NUM_YIELDS {
                tokio::task::yield_now().await;
            }
            count.tick();
        }));
    }
    rx.recv().expect("countdown reached zero");
}

// ---------------------------------------------------------------------------------------
// ping_pong: from inside a root task, NUM_PAIRS pairs of tasks are spawned. In each pair
// the "ping" task sends on a one-shot channel, the "pong" task receives it and answers on a
// second one-shot, and the ping task, having received the answer, ticks a countdown.
//
// Both runtimes use the SAME one-shot implementation, `futures_channel::oneshot` (runtime
// agnostic, it only stores and wakes a `Waker`), so what differs is the runtime: spawning,
// waking a task from another task, and scheduling it.
// ---------------------------------------------------------------------------------------

/// Spawns one pair with `$spawn` (the runtime's in-task spawn function). A macro rather
/// than a generic function so that neither runtime pays for boxing the futures.
macro_rules! ping_pong_pair {
    ($spawn:path, $count:expr) => {{
        use futures_channel::oneshot;
        let count: Arc<Countdown> = $count;
        let (ping_tx, ping_rx) = oneshot::channel::<()>();
        let (pong_tx, pong_rx) = oneshot::channel::<()>();
        // The answering side.
        drop($spawn(async move {
            ping_rx.await.expect("ping arrives");
            pong_tx
                .send(())
                .expect("the pinging side waits for the answer");
        }));
        // The pinging side.
        drop($spawn(async move {
            ping_tx.send(()).expect("the answering side waits for ping");
            pong_rx.await.expect("pong arrives");
            count.tick();
        }));
    }};
}

fn ping_pong_aio(rt: &Aio) {
    let (count, rx) = Countdown::new(NUM_PAIRS);
    drop(rt.spawn(async move {
        for _ in 0..NUM_PAIRS {
            ping_pong_pair!(aioloop::create_task, count.clone());
        }
    }));
    rx.recv().expect("countdown reached zero");
}

fn ping_pong_tok(rt: &Tok) {
    let (count, rx) = Countdown::new(NUM_PAIRS);
    drop(rt.spawn(async move {
        for _ in 0..NUM_PAIRS {
            ping_pong_pair!(tokio::spawn, count.clone());
        }
    }));
    rx.recv().expect("countdown reached zero");
}

// ---------------------------------------------------------------------------------------
// chained_spawn: a task spawns the next one, CHAIN_LEN times; the last one signals.
// ---------------------------------------------------------------------------------------

fn chain_aioloop(left: usize, done: mpsc::SyncSender<()>) {
    if left == 0 {
        done.send(()).expect("bench thread is waiting");
    } else {
        drop(aioloop::create_task(async move {
            chain_aioloop(left - 1, done)
        }));
    }
}

fn chain_tokio(left: usize, done: mpsc::SyncSender<()>) {
    if left == 0 {
        done.send(()).expect("bench thread is waiting");
    } else {
        drop(tokio::spawn(async move { chain_tokio(left - 1, done) }));
    }
}

fn chained_spawn_aio(rt: &Aio) {
    let (done, rx) = mpsc::sync_channel(1);
    drop(rt.spawn(async move { chain_aioloop(CHAIN_LEN, done) }));
    rx.recv().expect("chain finished");
}

fn chained_spawn_tok(rt: &Tok) {
    let (done, rx) = mpsc::sync_channel(1);
    drop(rt.spawn(async move { chain_tokio(CHAIN_LEN, done) }));
    rx.recv().expect("chain finished");
}

// ---------------------------------------------------------------------------------------
// The same workloads started from `block_on`'s future (see the module docs). The block_on
// thread spawns, then blocks on the std channel inside its future, as tokio's benchmarks do.
// ---------------------------------------------------------------------------------------

/// Runs `start` inside `$rt.block_on` and waits there for `rx`.
macro_rules! from_block_on {
    ($rt:expr, $rx:expr, $start:block) => {
        $rt.block_on(async move {
            $start
            $rx.recv().expect("the work finished");
        })
    };
}

fn spawn_many_local_block_on_aio(rt: &Aio) {
    let (count, rx) = Countdown::new(NUM_SPAWN);
    from_block_on!(rt, rx, {
        for _ in 0..NUM_SPAWN {
            let count = count.clone();
            drop(aioloop::create_task(async move { count.tick() }));
        }
    })
}

fn spawn_many_local_block_on_tok(rt: &Tok) {
    let (count, rx) = Countdown::new(NUM_SPAWN);
    from_block_on!(rt, rx, {
        for _ in 0..NUM_SPAWN {
            let count = count.clone();
            drop(tokio::spawn(async move { count.tick() }));
        }
    })
}

fn spawn_many_remote_block_on_aio(rt: &Aio) {
    rt.block_on(async {
        let handles: Vec<_> = (0..NUM_SPAWN)
            .map(|_| aioloop::create_task(async {}))
            .collect();
        for h in handles {
            h.await.expect("task completed");
        }
    })
}

fn spawn_many_remote_block_on_tok(rt: &Tok) {
    rt.block_on(async {
        let handles: Vec<_> = (0..NUM_SPAWN).map(|_| tokio::spawn(async {})).collect();
        for h in handles {
            h.await.expect("task completed");
        }
    })
}

fn yield_many_block_on_aio(rt: &Aio) {
    let (count, rx) = Countdown::new(NUM_YIELDERS);
    from_block_on!(rt, rx, {
        for _ in 0..NUM_YIELDERS {
            let count = count.clone();
            drop(aioloop::create_task(async move {
                for _ in 0..NUM_YIELDS {
                    aioloop::yield_now().await;
                }
                count.tick();
            }));
        }
    })
}

fn yield_many_block_on_tok(rt: &Tok) {
    let (count, rx) = Countdown::new(NUM_YIELDERS);
    from_block_on!(rt, rx, {
        for _ in 0..NUM_YIELDERS {
            let count = count.clone();
            drop(tokio::spawn(async move {
                for _ in 0..NUM_YIELDS {
                    tokio::task::yield_now().await;
                }
                count.tick();
            }));
        }
    })
}

fn ping_pong_block_on_aio(rt: &Aio) {
    let (count, rx) = Countdown::new(NUM_PAIRS);
    from_block_on!(rt, rx, {
        for _ in 0..NUM_PAIRS {
            ping_pong_pair!(aioloop::create_task, count.clone());
        }
    })
}

fn ping_pong_block_on_tok(rt: &Tok) {
    let (count, rx) = Countdown::new(NUM_PAIRS);
    from_block_on!(rt, rx, {
        for _ in 0..NUM_PAIRS {
            ping_pong_pair!(tokio::spawn, count.clone());
        }
    })
}

fn chained_spawn_block_on_aio(rt: &Aio) {
    let (done, rx) = mpsc::sync_channel(1);
    from_block_on!(rt, rx, { chain_aioloop(CHAIN_LEN, done) })
}

fn chained_spawn_block_on_tok(rt: &Tok) {
    let (done, rx) = mpsc::sync_channel(1);
    from_block_on!(rt, rx, { chain_tokio(CHAIN_LEN, done) })
}

// ---------------------------------------------------------------------------------------
// spawn_many_remote_busy1 / _busy2: spawn_many_remote while the workers are busy (tokio's
// shapes of the same names). busy1: 2 tasks per worker loop on `yield_now` + a 10 µs stall,
// so the remote spawns compete with yielded tasks; busy2: a chain per worker in which each
// task stalls 10 µs and spawns the next, so they compete with locally spawned tasks
// (NUM_SPAWN_BUSY2 remote spawns per iteration). The stall is tokio's: a loop of
// `thread::yield_now` until 10 µs have passed.
//
// The background load is started before each measured iteration (every background task
// has run once) and stopped after it (every one has finished), so it never runs while the
// other runtime is measured: both runtimes share the two cores.
// ---------------------------------------------------------------------------------------

/// Burns `STALL` of CPU time, yielding the thread in between (tokio's `stall`).
fn stall() {
    let start = Instant::now();
    while start.elapsed() < STALL {
        thread::yield_now();
    }
}

/// The background load of a `_busy` workload: a flag that keeps it going, and the count
/// of its tasks (or chains) that have started and not yet finished.
struct Busy {
    running: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
}

impl Busy {
    fn new() -> Busy {
        Busy {
            running: Arc::new(AtomicBool::new(true)),
            live: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Waits until `n` background tasks have started.
    fn wait_started(self, n: usize) -> Busy {
        while self.live.load(Relaxed) < n {
            thread::yield_now();
        }
        self
    }
}

/// Dropping the load stops it and waits until every background task has finished.
impl Drop for Busy {
    fn drop(&mut self) {
        self.running.store(false, Relaxed);
        while self.live.load(Relaxed) != 0 {
            thread::yield_now();
        }
    }
}

/// Spawns, with `$spawn` (a runtime's spawn from outside: `Runtime::spawn`), 2 tasks per
/// worker that yield (with `$yield`) and stall until stopped.
macro_rules! busy1 {
    ($rt:expr, $yield:path) => {{
        let busy = Busy::new();
        let n = 2 * common::workers();
        for _ in 0..n {
            let (running, live) = (busy.running.clone(), busy.live.clone());
            drop($rt.spawn(async move {
                live.fetch_add(1, Relaxed);
                while running.load(Relaxed) {
                    $yield().await;
                    stall();
                }
                live.fetch_sub(1, Relaxed);
            }));
        }
        busy.wait_started(n)
    }};
}

fn busy1_aio(rt: &Aio) -> Busy {
    busy1!(rt, aioloop::yield_now)
}

fn busy1_tok(rt: &Tok) -> Busy {
    busy1!(rt, tokio::task::yield_now)
}

/// One link of a busy2 chain: stall and spawn the next link while the load runs.
fn busy_chain_aio(running: Arc<AtomicBool>, live: Arc<AtomicUsize>) {
    drop(aioloop::create_task(async move {
        if running.load(Relaxed) {
            stall();
            busy_chain_aio(running, live);
        } else {
            live.fetch_sub(1, Relaxed);
        }
    }));
}

fn busy_chain_tok(running: Arc<AtomicBool>, live: Arc<AtomicUsize>) {
    drop(tokio::spawn(async move {
        if running.load(Relaxed) {
            stall();
            busy_chain_tok(running, live);
        } else {
            live.fetch_sub(1, Relaxed);
        }
    }));
}

/// Starts one busy2 chain per worker with `$chain` (`busy_chain_aio` / `_tok`).
macro_rules! busy2 {
    ($rt:expr, $chain:ident) => {{
        let busy = Busy::new();
        let n = common::workers();
        for _ in 0..n {
            let (running, live) = (busy.running.clone(), busy.live.clone());
            drop($rt.spawn(async move {
                live.fetch_add(1, Relaxed);
                $chain(running, live);
            }));
        }
        busy.wait_started(n)
    }};
}

fn busy2_aio(rt: &Aio) -> Busy {
    busy2!(rt, busy_chain_aio)
}

fn busy2_tok(rt: &Tok) -> Busy {
    busy2!(rt, busy_chain_tok)
}

fn spawn_many_remote_busy2_aio(rt: &Aio) {
    spawn_remote_n!(rt, NUM_SPAWN_BUSY2)
}

fn spawn_many_remote_busy2_tok(rt: &Tok) {
    spawn_remote_n!(rt, NUM_SPAWN_BUSY2)
}

// ---------------------------------------------------------------------------------------
// wake_one: the bench thread spawns one task that signals at once: the latency of waking
// a parked worker with a remote spawn (every round of every workload above starts so).
// ---------------------------------------------------------------------------------------

fn wake_one_aio(rt: &Aio) {
    let (done, rx) = mpsc::sync_channel(1);
    drop(rt.spawn(async move { done.send(()).expect("bench thread is waiting") }));
    rx.recv().expect("the task ran");
}

fn wake_one_tok(rt: &Tok) {
    let (done, rx) = mpsc::sync_channel(1);
    drop(rt.spawn(async move { done.send(()).expect("bench thread is waiting") }));
    rx.recv().expect("the task ran");
}

/// One workload: its group name, one aioloop iteration, one tokio iteration, and the
/// background load to run around each measured iteration, if any.
type Workload = (&'static str, fn(&Aio), fn(&Tok), Option<Background>);

/// Starts a `_busy` workload's background load on aioloop / on tokio.
type Background = (fn(&Aio) -> Busy, fn(&Tok) -> Busy);

/// Every workload, in the order they run (and `report.py` lists them).
const WORKLOADS: &[Workload] = &[
    (
        "spawn_many_local",
        spawn_many_local_aio,
        spawn_many_local_tok,
        None,
    ),
    (
        "spawn_many_local_block_on",
        spawn_many_local_block_on_aio,
        spawn_many_local_block_on_tok,
        None,
    ),
    (
        "spawn_many_remote",
        spawn_many_remote_aio,
        spawn_many_remote_tok,
        None,
    ),
    (
        "spawn_many_remote_busy1",
        spawn_many_remote_aio,
        spawn_many_remote_tok,
        Some((busy1_aio, busy1_tok)),
    ),
    (
        "spawn_many_remote_busy2",
        spawn_many_remote_busy2_aio,
        spawn_many_remote_busy2_tok,
        Some((busy2_aio, busy2_tok)),
    ),
    (
        "spawn_many_remote_block_on",
        spawn_many_remote_block_on_aio,
        spawn_many_remote_block_on_tok,
        None,
    ),
    ("yield_many", yield_many_aio, yield_many_tok, None),
    (
        "yield_many_block_on",
        yield_many_block_on_aio,
        yield_many_block_on_tok,
        None,
    ),
    ("ping_pong", ping_pong_aio, ping_pong_tok, None),
    (
        "ping_pong_block_on",
        ping_pong_block_on_aio,
        ping_pong_block_on_tok,
        None,
    ),
    ("wake_one", wake_one_aio, wake_one_tok, None),
    ("chained_spawn", chained_spawn_aio, chained_spawn_tok, None),
    (
        "chained_spawn_block_on",
        chained_spawn_block_on_aio,
        chained_spawn_block_on_tok,
        None,
    ),
];

/// Criterion mode: one group per workload, `aioloop` then `tokio`.
fn workloads(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    for &(name, run_aio, run_tok, background) in WORKLOADS {
        let mut g = c.benchmark_group(name);
        // The background load runs for the whole of its runtime's function (as in tokio's
        // benchmark), and stops before the other runtime's.
        g.bench_function("aioloop", |b| {
            let busy = background.map(|(start, _)| start(&aio));
            b.iter(|| run_aio(&aio));
            drop(busy);
        });
        g.bench_function("tokio", |b| {
            let busy = background.map(|(_, start)| start(&tok));
            b.iter(|| run_tok(&tok));
            drop(busy);
        });
        g.finish();
    }
}

fn config() -> Criterion {
    // The machine is small and shared: modest sample counts, and the comparison that matters
    // is the ratio between the two functions of a group measured back to back.
    criterion_config(Duration::from_millis(1500), Duration::from_secs(5))
}

criterion_group! {
    name = benches;
    config = config();
    targets = workloads
}

/// Interleaved mode (module docs): `rounds` paired iterations per workload.
///
/// `RUNTIME_BENCH_STATS=1` also prints aioloop's per-worker counters per round (polls,
/// LIFO-slot polls, tasks stolen and steal operations, parks), on stderr; `RUNTIME_BENCH_ONLY=aioloop|tokio` runs one runtime
/// only and times nothing (for `perf stat` or `strace -c -f` of one side); `BENCH_WORKERS=n`
/// gives both runtimes `n` workers instead of two.
fn interleaved(rounds: usize, filter: Option<&str>) {
    let show_stats = std::env::var_os("RUNTIME_BENCH_STATS").is_some();
    let only = std::env::var("RUNTIME_BENCH_ONLY").ok();
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    println!("| workload | aioloop (median) | tokio (median) | ratio: median (p25–p75) |");
    println!("|---|---:|---:|---:|");
    for &(name, run_aio, run_tok, background) in WORKLOADS {
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        // One iteration of each runtime, inside its background load if the workload has
        // one; the time is the iteration's alone (not the load's start and stop around it).
        let time_aio = || {
            let busy = background.map(|(start, _)| start(&aio));
            let t = Instant::now();
            run_aio(&aio);
            let d = t.elapsed().as_secs_f64();
            drop(busy);
            d
        };
        let time_tok = || {
            let busy = background.map(|(_, start)| start(&tok));
            let t = Instant::now();
            run_tok(&tok);
            let d = t.elapsed().as_secs_f64();
            drop(busy);
            d
        };
        for _ in 0..3 {
            time_aio();
            time_tok();
        }
        if let Some(only) = only.as_deref() {
            // Profiling mode: one runtime only, so that `perf stat` / `strace -c` count it.
            for _ in 0..rounds {
                if only == "tokio" {
                    time_tok();
                } else {
                    time_aio();
                }
            }
            println!("| {name} | {rounds} rounds of {only} only |");
            continue;
        }
        let before = aio.handle().metrics().workers;
        let (mut a, mut t, mut r) = (Vec::new(), Vec::new(), Vec::new());
        // With stats: the busiest worker's share of each round's polls (1.0: one worker
        // ran everything; 0.5: an even split).
        let mut shares = Vec::new();
        for i in 0..rounds {
            let polls = || -> Vec<u64> { aio.worker_stats().iter().map(|w| w.polled).collect() };
            let start = if show_stats { polls() } else { Vec::new() };
            let (da, dt) = if i % 2 == 0 {
                let da = time_aio();
                (da, time_tok())
            } else {
                let dt = time_tok();
                (time_aio(), dt)
            };
            a.push(da);
            t.push(dt);
            r.push(da / dt);
            if show_stats {
                let d: Vec<u64> = polls().iter().zip(&start).map(|(e, s)| e - s).collect();
                let total: u64 = d.iter().sum();
                let max = d.iter().copied().max().unwrap_or(0);
                shares.push(max as f64 / total.max(1) as f64);
            }
        }
        if show_stats {
            shares.sort_by(f64::total_cmp);
            eprintln!(
                "{name}: busiest worker's share of a round's polls: median {:.2} (p10 {:.2}, p90 {:.2})",
                quantile(&shares, 0.5),
                quantile(&shares, 0.1),
                quantile(&shares, 0.9)
            );
        }
        if show_stats {
            print_worker_stats(name, &before, &aio.handle().metrics().workers, rounds);
        }
        println!("{}", summary_row(name, a, t, r, 1e6, "µs"));
    }
    println!();
    println!(
        "{rounds} interleaved rounds per workload (RUNTIME_BENCH_ROUNDS), {} workers each; \
         ratio = aioloop/tokio per round.",
        common::workers()
    );
}

/// Per-round averages of each worker's counters between two snapshots.
fn print_worker_stats(
    name: &str,
    before: &[aioloop::WorkerMetrics],
    after: &[aioloop::WorkerMetrics],
    rounds: usize,
) {
    let per = |a: u64, b: u64| (b - a) as f64 / rounds as f64;
    let workers: Vec<String> = before
        .iter()
        .zip(after)
        .map(|(b, a)| {
            format!(
                "w{}: polled {:.0} lifo {:.0} stolen {:.1} in {:.1} steals, parked {:.1}",
                a.index,
                per(b.polled, a.polled),
                per(b.lifo_hits, a.lifo_hits),
                per(b.stolen, a.stolen),
                per(b.steal_operations, a.steal_operations),
                per(b.parked, a.parked)
            )
        })
        .collect();
    eprintln!("{name} per round: {}", workers.join("; "));
}

fn main() {
    if let Some(rounds) = std::env::var("RUNTIME_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
    {
        let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
        interleaved(rounds, filter.as_deref());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
