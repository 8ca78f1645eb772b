//! The scheduler workloads of `benches/runtime.rs` (aioloop side, started from a task, one
//! worker so that the instruction count of a run is deterministic), as a plain program for
//! `valgrind --tool=callgrind`: `benches/observe_cost.sh` builds it with and without
//! `--cfg aioloop_unobserved` and compares the instructions each workload executes — the
//! cost of the metrics counters and of the tracking checks when nobody looks (issue 13).
//!
//! `workloads <chained_spawn|spawn_many_local|yield_many|ping_pong|cancel_10k> [iterations] [tokio]`
//!
//! With `tokio` as the third argument the same workload runs on a one-worker tokio
//! multi-threaded runtime, so that the instructions per poll, wake and spawn can be compared
//! with tokio's deterministically (issue 9 item 6) rather than by wall clock.
//!
//! `cancel_10k` is `benches/cancel.rs`'s shape (10,000 parked tasks cancelled with
//! `Task::cancel` — tokio: `abort` — from `block_on`'s future and awaited), for counting
//! what a cancel costs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

/// Spawns a task on the runtime under test: aioloop's `create_task`, or tokio's `spawn`.
macro_rules! spawn_on {
    ($tokio:expr, $fut:expr) => {
        if $tokio {
            drop(tokio::spawn($fut));
        } else {
            drop(aioloop::create_task($fut));
        }
    };
}

/// A task spawns the next one, `left` times; the last one signals.
fn chain_tokio(left: usize, done: mpsc::SyncSender<()>) {
    if left == 0 {
        done.send(()).unwrap();
    } else {
        drop(tokio::spawn(async move { chain_tokio(left - 1, done) }));
    }
}

/// A task spawns the next one, `left` times; the last one signals.
fn chain(left: usize, done: mpsc::SyncSender<()>) {
    if left == 0 {
        done.send(()).unwrap();
    } else {
        drop(aioloop::create_task(async move { chain(left - 1, done) }));
    }
}

/// A counter of `n` and the channel it signals when it reaches zero.
fn countdown(n: usize) -> (Arc<(AtomicUsize, mpsc::SyncSender<()>)>, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::sync_channel(1);
    (Arc::new((AtomicUsize::new(n), tx)), rx)
}
/// Counts one down; the last one signals.
fn tick(c: &(AtomicUsize, mpsc::SyncSender<()>)) {
    if c.0.fetch_sub(1, Ordering::Relaxed) == 1 {
        c.1.send(()).unwrap();
    }
}

/// The runtime a workload runs on: `spawn` from outside any task, and which `yield_now`.
enum Rt {
    Aio(aioloop::Runtime),
    Tok(tokio::runtime::Runtime),
}

impl Rt {
    fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(&self, f: F) {
        match self {
            Rt::Aio(rt) => drop(rt.spawn(f)),
            Rt::Tok(rt) => drop(rt.spawn(f)),
        }
    }
}

/// Yields once on the runtime under test.
async fn yield_on(tokio: bool) {
    if tokio {
        tokio::task::yield_now().await
    } else {
        aioloop::yield_now().await
    }
}

/// Runs the workload named by the first argument, the number of times given by the second,
/// on tokio if the third is `tokio`.
fn main() {
    let what = std::env::args().nth(1).unwrap();
    let iters: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(20);
    let tok = std::env::args().nth(3).as_deref() == Some("tokio");
    // More than one worker (for strace and perf, not for instruction counts): WORKERS=2.
    let workers: usize = std::env::var("WORKERS").map_or(1, |w| w.parse().unwrap());
    let rt = if tok {
        Rt::Tok(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .unwrap(),
        )
    } else {
        Rt::Aio(
            aioloop::Runtime::builder()
                .workers(workers)
                .build()
                .unwrap(),
        )
    };
    for _ in 0..iters {
        match what.as_str() {
            "chained_spawn" => {
                let (done, rx) = mpsc::sync_channel(1);
                rt.spawn(async move {
                    if tok {
                        chain_tokio(1000, done)
                    } else {
                        chain(1000, done)
                    }
                });
                rx.recv().unwrap();
            }
            "spawn_many_local" => {
                let (c, rx) = countdown(10_000);
                rt.spawn(async move {
                    for _ in 0..10_000 {
                        let c = c.clone();
                        spawn_on!(tok, async move { tick(&c) });
                    }
                });
                rx.recv().unwrap();
            }
            "yield_many" => {
                let (c, rx) = countdown(200);
                for _ in 0..200 {
                    let c = c.clone();
                    rt.spawn(async move {
                        for _ in 0..1000 {
                            yield_on(tok).await;
                        }
                        tick(&c)
                    });
                }
                rx.recv().unwrap();
            }
            "ping_pong" => {
                let (c, rx) = countdown(1000);
                rt.spawn(async move {
                    for _ in 0..1000 {
                        let c = c.clone();
                        spawn_on!(tok, async move {
                            let (tx1, rx1) = futures_channel::oneshot::channel::<()>();
                            let (tx2, rx2) = futures_channel::oneshot::channel::<()>();
                            spawn_on!(tok, async move {
                                rx1.await.unwrap();
                                tx2.send(()).unwrap();
                            });
                            tx1.send(()).unwrap();
                            rx2.await.unwrap();
                            tick(&c);
                        });
                    }
                });
                rx.recv().unwrap();
            }
            "cancel_10k" => match &rt {
                Rt::Aio(rt) => rt.block_on(async {
                    let (c, rx) = countdown(10_000);
                    let tasks: Vec<_> = (0..10_000)
                        .map(|_| {
                            let c = c.clone();
                            aioloop::create_task(async move {
                                tick(&c);
                                std::future::pending::<()>().await
                            })
                        })
                        .collect();
                    rx.recv().unwrap();
                    for t in &tasks {
                        t.cancel(None);
                    }
                    for t in tasks {
                        assert!(t.await.unwrap_err().is_cancelled());
                    }
                }),
                Rt::Tok(rt) => rt.block_on(async {
                    let (c, rx) = countdown(10_000);
                    let tasks: Vec<_> = (0..10_000)
                        .map(|_| {
                            let c = c.clone();
                            tokio::spawn(async move {
                                tick(&c);
                                std::future::pending::<()>().await
                            })
                        })
                        .collect();
                    rx.recv().unwrap();
                    for t in &tasks {
                        t.abort();
                    }
                    for t in tasks {
                        assert!(t.await.unwrap_err().is_cancelled());
                    }
                }),
            },
            _ => panic!("unknown workload"),
        }
    }
}
