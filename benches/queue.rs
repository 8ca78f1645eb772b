//! Queue throughput (issue 12, item 6): `aioloop::queue::Queue` against `tokio::sync::mpsc`,
//! both bounded to 1024 items, two workers each, in one run.
//!
//! * `queue_spsc`: one producer task puts 100,000 integers (`put().await`), one consumer task
//!   gets them (`get().await`). tokio: `mpsc::channel(1024)`, `send().await` / `recv().await`.
//! * `queue_mpmc`: 4 producer tasks put 25,000 each, 4 consumer tasks take 25,000 each.
//!   tokio's mpsc has one receiver, so the closest fair shape is the usual work-queue idiom:
//!   the `Receiver` shared by the 4 consumers behind a `tokio::sync::Mutex`, each consumer
//!   locking it for one `recv().await` at a time (async-channel, the MPMC channel that would
//!   fit, is not a dependency). The senders are 4 clones.
//!
//! Each iteration spawns the tasks from inside `block_on` and awaits their handles, so spawn
//! and join are inside the figure on both sides (8 or 2 tasks against 100,000 items).
//!
//! Run with `cargo bench -p aioloop-benches --bench queue`, then `python3 benches/report.py`.

use std::sync::Arc;
use std::time::Duration;

use aioloop::queue::Queue;
use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use common::{aioloop_runtime, criterion_config, tokio_multi_thread};

/// Items per iteration.
const ITEMS: u64 = 100_000;
/// Capacity of the queue / channel.
const CAPACITY: usize = 1024;
/// Producers and consumers of the MPMC shape.
const SIDES: u64 = 4;

fn spsc(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("queue_spsc");

    g.bench_function("aioloop", |b| {
        b.iter(|| {
            aio.block_on(async {
                let q = Arc::new(Queue::new(CAPACITY));
                let producer = aioloop::create_task({
                    let q = q.clone();
                    async move {
                        for i in 0..ITEMS {
                            q.put(i).await.unwrap();
                        }
                    }
                });
                let consumer = aioloop::create_task(async move {
                    let mut sum = 0;
                    for _ in 0..ITEMS {
                        sum += q.get().await.unwrap();
                    }
                    sum
                });
                producer.await.unwrap();
                assert_eq!(consumer.await.unwrap(), ITEMS * (ITEMS - 1) / 2);
            })
        })
    });

    g.bench_function("tokio", |b| {
        b.iter(|| {
            tok.block_on(async {
                let (tx, mut rx) = tokio::sync::mpsc::channel(CAPACITY);
                let producer = tokio::spawn(async move {
                    for i in 0..ITEMS {
                        tx.send(i).await.unwrap();
                    }
                });
                let consumer = tokio::spawn(async move {
                    let mut sum = 0;
                    for _ in 0..ITEMS {
                        sum += rx.recv().await.unwrap();
                    }
                    sum
                });
                producer.await.unwrap();
                assert_eq!(consumer.await.unwrap(), ITEMS * (ITEMS - 1) / 2);
            })
        })
    });

    g.finish();
}

fn mpmc(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("queue_mpmc");
    let per_side = ITEMS / SIDES;

    g.bench_function("aioloop", |b| {
        b.iter(|| {
            aio.block_on(async {
                let q = Arc::new(Queue::new(CAPACITY));
                let producers: Vec<_> = (0..SIDES)
                    .map(|p| {
                        let q = q.clone();
                        aioloop::create_task(async move {
                            for i in 0..per_side {
                                q.put(p * per_side + i).await.unwrap();
                            }
                        })
                    })
                    .collect();
                let consumers: Vec<_> = (0..SIDES)
                    .map(|_| {
                        let q = q.clone();
                        aioloop::create_task(async move {
                            let mut sum = 0;
                            for _ in 0..per_side {
                                sum += q.get().await.unwrap();
                            }
                            sum
                        })
                    })
                    .collect();
                for p in producers {
                    p.await.unwrap();
                }
                let mut sum = 0;
                for c in consumers {
                    sum += c.await.unwrap();
                }
                assert_eq!(sum, ITEMS * (ITEMS - 1) / 2);
            })
        })
    });

    g.bench_function("tokio", |b| {
        b.iter(|| {
            tok.block_on(async {
                let (tx, rx) = tokio::sync::mpsc::channel(CAPACITY);
                let rx = Arc::new(tokio::sync::Mutex::new(rx));
                let producers: Vec<_> = (0..SIDES)
                    .map(|p| {
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            for i in 0..per_side {
                                tx.send(p * per_side + i).await.unwrap();
                            }
                        })
                    })
                    .collect();
                drop(tx);
                let consumers: Vec<_> = (0..SIDES)
                    .map(|_| {
                        let rx = rx.clone();
                        tokio::spawn(async move {
                            let mut sum = 0;
                            for _ in 0..per_side {
                                sum += rx.lock().await.recv().await.unwrap();
                            }
                            sum
                        })
                    })
                    .collect();
                for p in producers {
                    p.await.unwrap();
                }
                let mut sum = 0;
                for c in consumers {
                    sum += c.await.unwrap();
                }
                assert_eq!(sum, ITEMS * (ITEMS - 1) / 2);
            })
        })
    });

    g.finish();
}

fn config() -> Criterion {
    criterion_config(Duration::from_secs(1), Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = spsc, mpmc
}
criterion_main!(benches);
