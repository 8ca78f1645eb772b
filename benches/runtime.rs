//! Scheduler throughput: aioloop against tokio's multi-threaded runtime, in one run.
//!
//! Each workload is one criterion group (`spawn_many_local`, `spawn_many_remote`,
//! `yield_many`, `ping_pong`, `chained_spawn`) with two functions, `aioloop` and `tokio`,
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
//! `spawn_many_local`, `ping_pong` and `chained_spawn` come in two shapes: the work is
//! started from inside a task (the group's plain name), and from inside `block_on`'s own
//! future while the `block_on` thread then waits on a std channel (`<name>_block_on`: how tokio's own
//! `rt_multi_threaded` benchmarks are written, and what a `main` that spawns does). The
//! second sends every spawn through the runtime's remote path.
//!
//! Run with `cargo bench -p aioloop-benches --bench runtime`, then
//! `python3 benches/report.py`.

use std::sync::{mpsc, Arc};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use common::{aioloop_runtime, criterion_config, tokio_multi_thread, Countdown};

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

// ---------------------------------------------------------------------------------------
// spawn_many_local: one task spawns NUM_SPAWN tasks from inside the runtime (so they go to
// that worker's local queue); each ticks a countdown; the bench thread waits for zero.
// ---------------------------------------------------------------------------------------

fn spawn_many_local(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("spawn_many_local");

    g.bench_function("aioloop", |b| {
        b.iter(|| {
            let (count, rx) = Countdown::new(NUM_SPAWN);
            drop(aio.spawn(async move {
                for _ in 0..NUM_SPAWN {
                    let count = count.clone();
                    drop(aioloop::create_task(async move { count.tick() }));
                }
            }));
            rx.recv().expect("countdown reached zero");
        })
    });

    g.bench_function("tokio", |b| {
        b.iter(|| {
            let (count, rx) = Countdown::new(NUM_SPAWN);
            drop(tok.spawn(async move {
                for _ in 0..NUM_SPAWN {
                    let count = count.clone();
                    drop(tokio::spawn(async move { count.tick() }));
                }
            }));
            rx.recv().expect("countdown reached zero");
        })
    });

    g.finish();
}

// ---------------------------------------------------------------------------------------
// spawn_many_remote: the bench thread (outside the runtime) spawns NUM_SPAWN tasks, then
// awaits every handle inside block_on.
// ---------------------------------------------------------------------------------------

fn spawn_many_remote(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("spawn_many_remote");

    g.bench_function("aioloop", |b| {
        let mut handles = Vec::with_capacity(NUM_SPAWN);
        b.iter(|| {
            for _ in 0..NUM_SPAWN {
                handles.push(aio.spawn(async {}));
            }
            aio.block_on(async {
                for h in handles.drain(..) {
                    h.await.expect("task completed");
                }
            });
        })
    });

    g.bench_function("tokio", |b| {
        let mut handles = Vec::with_capacity(NUM_SPAWN);
        b.iter(|| {
            for _ in 0..NUM_SPAWN {
                handles.push(tok.spawn(async {}));
            }
            tok.block_on(async {
                for h in handles.drain(..) {
                    h.await.expect("task completed");
                }
            });
        })
    });

    g.finish();
}

// ---------------------------------------------------------------------------------------
// yield_many: NUM_YIELDERS tasks, spawned from the bench thread, each yield NUM_YIELDS
// times and then tick a countdown.
// ---------------------------------------------------------------------------------------

fn yield_many(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("yield_many");

    g.bench_function("aioloop", |b| {
        b.iter(|| {
            let (count, rx) = Countdown::new(NUM_YIELDERS);
            for _ in 0..NUM_YIELDERS {
                let count = count.clone();
                drop(aio.spawn(async move {
                    for _ in 0..NUM_YIELDS {
                        aioloop::yield_now().await;
                    }
                    count.tick();
                }));
            }
            rx.recv().expect("countdown reached zero");
        })
    });

    g.bench_function("tokio", |b| {
        b.iter(|| {
            let (count, rx) = Countdown::new(NUM_YIELDERS);
            for _ in 0..NUM_YIELDERS {
                let count = count.clone();
                drop(tok.spawn(async move {
                    for _ in 0..NUM_YIELDS {
                        tokio::task::yield_now().await;
                    }
                    count.tick();
                }));
            }
            rx.recv().expect("countdown reached zero");
        })
    });

    g.finish();
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

fn ping_pong(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("ping_pong");

    g.bench_function("aioloop", |b| {
        b.iter(|| {
            let (count, rx) = Countdown::new(NUM_PAIRS);
            drop(aio.spawn(async move {
                for _ in 0..NUM_PAIRS {
                    ping_pong_pair!(aioloop::create_task, count.clone());
                }
            }));
            rx.recv().expect("countdown reached zero");
        })
    });

    g.bench_function("tokio", |b| {
        b.iter(|| {
            let (count, rx) = Countdown::new(NUM_PAIRS);
            drop(tok.spawn(async move {
                for _ in 0..NUM_PAIRS {
                    ping_pong_pair!(tokio::spawn, count.clone());
                }
            }));
            rx.recv().expect("countdown reached zero");
        })
    });

    g.finish();
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

fn chained_spawn(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("chained_spawn");

    g.bench_function("aioloop", |b| {
        b.iter(|| {
            let (done, rx) = mpsc::sync_channel(1);
            drop(aio.spawn(async move { chain_aioloop(CHAIN_LEN, done) }));
            rx.recv().expect("chain finished");
        })
    });

    g.bench_function("tokio", |b| {
        b.iter(|| {
            let (done, rx) = mpsc::sync_channel(1);
            drop(tok.spawn(async move { chain_tokio(CHAIN_LEN, done) }));
            rx.recv().expect("chain finished");
        })
    });

    g.finish();
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

fn spawn_many_local_block_on(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("spawn_many_local_block_on");
    g.bench_function("aioloop", |b| {
        b.iter(|| {
            let (count, rx) = Countdown::new(NUM_SPAWN);
            from_block_on!(aio, rx, {
                for _ in 0..NUM_SPAWN {
                    let count = count.clone();
                    drop(aioloop::create_task(async move { count.tick() }));
                }
            })
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let (count, rx) = Countdown::new(NUM_SPAWN);
            from_block_on!(tok, rx, {
                for _ in 0..NUM_SPAWN {
                    let count = count.clone();
                    drop(tokio::spawn(async move { count.tick() }));
                }
            })
        })
    });
    g.finish();
}

fn ping_pong_block_on(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("ping_pong_block_on");
    g.bench_function("aioloop", |b| {
        b.iter(|| {
            let (count, rx) = Countdown::new(NUM_PAIRS);
            from_block_on!(aio, rx, {
                for _ in 0..NUM_PAIRS {
                    ping_pong_pair!(aioloop::create_task, count.clone());
                }
            })
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let (count, rx) = Countdown::new(NUM_PAIRS);
            from_block_on!(tok, rx, {
                for _ in 0..NUM_PAIRS {
                    ping_pong_pair!(tokio::spawn, count.clone());
                }
            })
        })
    });
    g.finish();
}

fn chained_spawn_block_on(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("chained_spawn_block_on");
    g.bench_function("aioloop", |b| {
        b.iter(|| {
            let (done, rx) = mpsc::sync_channel(1);
            from_block_on!(aio, rx, { chain_aioloop(CHAIN_LEN, done) })
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let (done, rx) = mpsc::sync_channel(1);
            from_block_on!(tok, rx, { chain_tokio(CHAIN_LEN, done) })
        })
    });
    g.finish();
}

fn config() -> Criterion {
    // The machine is small and shared: modest sample counts, and the comparison that matters
    // is the ratio between the two functions of a group measured back to back.
    criterion_config(Duration::from_millis(1500), Duration::from_secs(5))
}

criterion_group! {
    name = benches;
    config = config();
    targets = spawn_many_local, spawn_many_remote, yield_many, ping_pong, chained_spawn,
        spawn_many_local_block_on, ping_pong_block_on, chained_spawn_block_on
}
criterion_main!(benches);
