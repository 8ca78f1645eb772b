//! Timeouts that never expire (rule X1's common case) against `tokio::time::timeout`, in one
//! run, on the multi-thread runtimes with 2 workers each.
//!
//! | group | aioloop | tokio |
//! |---|---|---|
//! | `timeout_10k_one_task` | one task awaits `aioloop::timeout(1 h, f)` 10,000 times in a row (and `aioloop_no_timeout`: `f` alone, for reference) | the same with `tokio::time::timeout` |
//! | `timeout_10k_tasks` | 10,000 tasks, each awaiting one `aioloop::timeout(1 h, f)` | 10,000 tokio tasks, each one `tokio::time::timeout` |
//!
//! `f` is [`YieldOnce`], the same runtime-agnostic future for both: it wakes itself and
//! returns `Pending` once, then `Ready`, so every timeout goes through a suspension (arms its
//! timer) and is cancelled on exit — neither runtime's own `yield_now` is used, as they defer
//! differently. Tasks are spawned from inside a task (each runtime's local queue); the last
//! one ticks a [`Countdown`]. `benches/report.py` pairs the functions into the ratio.
//!
//! Run with `cargo bench -p aioloop-benches --bench timeouts`, then `python3 benches/report.py`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use common::{aioloop_runtime, criterion_config, tokio_multi_thread, Countdown};

/// Timeouts per iteration.
const N: usize = 10_000;
/// A deadline that is never reached.
const HOUR: Duration = Duration::from_secs(3600);

/// Ready after one self-woken `Pending`.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn yield_once() -> YieldOnce {
    YieldOnce(false)
}

/// One aioloop task awaits `step()` [`N`] times in a row.
fn aioloop_in_one_task<F: Future + Send + 'static>(rt: &aioloop::Runtime, step: fn() -> F) {
    rt.block_on(rt.spawn(async move {
        for _ in 0..N {
            step().await;
        }
    }))
    .expect("task finished")
}

/// One tokio task awaits `step()` [`N`] times in a row.
fn tokio_in_one_task<F: Future + Send + 'static>(rt: &tokio::runtime::Runtime, step: fn() -> F) {
    rt.block_on(rt.spawn(async move {
        for _ in 0..N {
            step().await;
        }
    }))
    .expect("task finished")
}

async fn aioloop_timeout() {
    aioloop::timeout(HOUR, yield_once())
        .await
        .expect("no expiry")
}

async fn tokio_timeout() {
    tokio::time::timeout(HOUR, yield_once())
        .await
        .expect("no expiry")
}

fn timeout_10k_one_task(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("timeout_10k_one_task");
    g.bench_function("aioloop", |b| {
        b.iter(|| aioloop_in_one_task(&aio, aioloop_timeout))
    });
    // Reference row: the same loop without the timeouts (the cost of the yields alone).
    g.bench_function("aioloop_no_timeout", |b| {
        b.iter(|| aioloop_in_one_task(&aio, yield_once))
    });
    g.bench_function("tokio", |b| {
        b.iter(|| tokio_in_one_task(&tok, tokio_timeout))
    });
    g.finish();
}

fn timeout_10k_tasks(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("timeout_10k_tasks");

    g.bench_function("aioloop", |b| {
        b.iter(|| {
            let (count, done) = Countdown::new(N);
            aio.spawn(async move {
                for _ in 0..N {
                    let count = count.clone();
                    aioloop::create_task(async move {
                        aioloop_timeout().await;
                        count.tick();
                    })
                    .detach();
                }
            })
            .detach();
            done.recv().expect("countdown reached zero");
        })
    });

    g.bench_function("tokio", |b| {
        b.iter(|| {
            let (count, done) = Countdown::new(N);
            drop(tok.spawn(async move {
                for _ in 0..N {
                    let count = count.clone();
                    drop(tokio::spawn(async move {
                        tokio_timeout().await;
                        count.tick();
                    }));
                }
            }));
            done.recv().expect("countdown reached zero");
        })
    });

    g.finish();
}

criterion_group! {
    name = benches;
    // Two shared cores: modest sample counts; what is reported is the ratio between the two
    // functions of a group, measured back to back.
    config = criterion_config(Duration::from_millis(500), Duration::from_secs(3));
    targets = timeout_10k_one_task, timeout_10k_tasks
}
criterion_main!(benches);
