//! `aioloop::sync` against `tokio::sync`, in one run, 2 workers each (issue 12 item 6).
//!
//! Groups (each with an `aioloop` and a `tokio` function, paired by `benches/report.py`):
//! - `lock_uncontended`: one task acquires and releases a lock 10,000 times (aioloop
//!   `Lock` vs tokio `Mutex<()>`); nothing else runs.
//! - `lock_contended_64`: 64 tasks each take the lock 100 times, yielding between takes,
//!   so the two workers contend and waiters queue.
//! - `semaphore_8_10k`: 10,000 tasks each hold one of 8 permits across a yield.
//!
//! Every iteration waits for all of its work (`block_on` of the spawned driver task, or a
//! countdown received on the bench thread).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use common::{aioloop_runtime, criterion_config, tokio_multi_thread, Countdown};

const UNCONTENDED_OPS: usize = 10_000;
const CONTENDERS: usize = 64;
const TAKES_PER_CONTENDER: usize = 100;
const PERMITS: usize = 8;
const SEM_TASKS: usize = 10_000;

fn lock_uncontended(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("lock_uncontended");
    let lock = Arc::new(aioloop::sync::Lock::new());
    g.bench_function("aioloop", |b| {
        b.iter(|| {
            let lock = lock.clone();
            aio.block_on(aio.spawn(async move {
                for _ in 0..UNCONTENDED_OPS {
                    drop(std::hint::black_box(lock.acquire().await));
                }
            }))
            .unwrap();
        })
    });
    let mutex = Arc::new(tokio::sync::Mutex::new(()));
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let mutex = mutex.clone();
            tok.block_on(tok.spawn(async move {
                for _ in 0..UNCONTENDED_OPS {
                    drop(std::hint::black_box(mutex.lock().await));
                }
            }))
            .unwrap();
        })
    });
    g.finish();
}

fn lock_contended_64(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("lock_contended_64");
    let lock = Arc::new(aioloop::sync::Lock::new());
    let hits = Arc::new(AtomicUsize::new(0));
    g.bench_function("aioloop", |b| {
        b.iter(|| {
            let (count, rx) = Countdown::new(CONTENDERS);
            for _ in 0..CONTENDERS {
                let (lock, hits, count) = (lock.clone(), hits.clone(), count.clone());
                aio.spawn(async move {
                    for _ in 0..TAKES_PER_CONTENDER {
                        let _g = lock.acquire().await;
                        hits.fetch_add(1, Ordering::Relaxed);
                        drop(_g);
                        aioloop::yield_now().await;
                    }
                    count.tick();
                })
                .detach();
            }
            rx.recv().expect("countdown reached zero");
        })
    });
    let mutex = Arc::new(tokio::sync::Mutex::new(()));
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let (count, rx) = Countdown::new(CONTENDERS);
            for _ in 0..CONTENDERS {
                let (mutex, hits, count) = (mutex.clone(), hits.clone(), count.clone());
                drop(tok.spawn(async move {
                    for _ in 0..TAKES_PER_CONTENDER {
                        let _g = mutex.lock().await;
                        hits.fetch_add(1, Ordering::Relaxed);
                        drop(_g);
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

fn semaphore_8_10k(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("semaphore_8_10k");
    let sem = Arc::new(aioloop::sync::Semaphore::new(PERMITS));
    g.bench_function("aioloop", |b| {
        b.iter(|| {
            let (count, rx) = Countdown::new(SEM_TASKS);
            let sem = sem.clone();
            aio.spawn(async move {
                for _ in 0..SEM_TASKS {
                    let (sem, count) = (sem.clone(), count.clone());
                    aioloop::create_task(async move {
                        let _p = sem.acquire().await;
                        aioloop::yield_now().await;
                        drop(_p);
                        count.tick();
                    })
                    .detach();
                }
            })
            .detach();
            rx.recv().expect("countdown reached zero");
        })
    });
    let tsem = Arc::new(tokio::sync::Semaphore::new(PERMITS));
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let (count, rx) = Countdown::new(SEM_TASKS);
            let sem = tsem.clone();
            drop(tok.spawn(async move {
                for _ in 0..SEM_TASKS {
                    let (sem, count) = (sem.clone(), count.clone());
                    drop(tokio::spawn(async move {
                        let _p = sem.acquire().await.expect("open");
                        tokio::task::yield_now().await;
                        drop(_p);
                        count.tick();
                    }));
                }
            }));
            rx.recv().expect("countdown reached zero");
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
    targets = lock_uncontended, lock_contended_64, semaphore_8_10k
}
criterion_main!(benches);
