//! The scheduler workloads of `benches/runtime.rs` (aioloop side, started from a task, one
//! worker so that the instruction count of a run is deterministic), as a plain program for
//! `valgrind --tool=callgrind`: `benches/observe_cost.sh` builds it with and without
//! `--cfg aioloop_unobserved` and compares the instructions each workload executes — the
//! cost of the metrics counters and of the tracking checks when nobody looks (issue 13).
//!
//! `workloads <chained_spawn|spawn_many_local|yield_many|ping_pong|cancel_10k|cancel_10k_tokio> [iterations]`
//!
//! `cancel_10k` is `benches/cancel.rs`'s shape (10,000 parked tasks cancelled with
//! `Task::cancel` from `block_on`'s future and awaited), for counting what a cancel costs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

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

/// Runs the workload named by the first argument, the number of times given by the second.
fn main() {
    let what = std::env::args().nth(1).unwrap();
    let iters: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(20);
    let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    for _ in 0..iters {
        match what.as_str() {
            "chained_spawn" => {
                let (done, rx) = mpsc::sync_channel(1);
                drop(rt.spawn(async move { chain(1000, done) }));
                rx.recv().unwrap();
            }
            "spawn_many_local" => {
                let (c, rx) = countdown(10_000);
                drop(rt.spawn(async move {
                    for _ in 0..10_000 {
                        let c = c.clone();
                        drop(aioloop::create_task(async move { tick(&c) }));
                    }
                }));
                rx.recv().unwrap();
            }
            "yield_many" => {
                let (c, rx) = countdown(200);
                for _ in 0..200 {
                    let c = c.clone();
                    drop(rt.spawn(async move {
                        for _ in 0..1000 {
                            aioloop::yield_now().await;
                        }
                        tick(&c)
                    }));
                }
                rx.recv().unwrap();
            }
            "ping_pong" => {
                let (c, rx) = countdown(1000);
                drop(rt.spawn(async move {
                    for _ in 0..1000 {
                        let c = c.clone();
                        drop(aioloop::create_task(async move {
                            let (tx1, rx1) = futures_channel::oneshot::channel::<()>();
                            let (tx2, rx2) = futures_channel::oneshot::channel::<()>();
                            drop(aioloop::create_task(async move {
                                rx1.await.unwrap();
                                tx2.send(()).unwrap();
                            }));
                            tx1.send(()).unwrap();
                            rx2.await.unwrap();
                            tick(&c);
                        }));
                    }
                }));
                rx.recv().unwrap();
            }
            "cancel_10k" => rt.block_on(async {
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
            // The same with tokio (one worker), for comparing instruction counts.
            "cancel_10k_tokio" => tokio_rt.block_on(async {
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
            _ => panic!("unknown workload"),
        }
    }
}
