//! The blocking pool (issue 11 item 5): aioloop's `to_thread` against tokio's
//! `spawn_blocking`, in one run, two workers each, pools at their defaults.
//!
//! - `blocking_roundtrip_100`: 100 jobs one after the other (submit, wake an idle pool
//!   thread, run, wake the awaiting task): the latency path.
//! - `blocking_burst_1k`: 1,000 jobs submitted at once, then all awaited: the queue and
//!   the thread start-up path (up to the pool's cap).
//!
//! Run with `cargo bench -p aioloop-benches --bench blocking`, then
//! `python3 benches/report.py`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use common::{aioloop_runtime, criterion_config, tokio_multi_thread};

fn roundtrip(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("blocking_roundtrip_100");
    g.bench_function("aioloop", |b| {
        b.iter(|| {
            aio.block_on(aio.spawn(async {
                for i in 0..100u32 {
                    assert_eq!(aioloop::to_thread(move || i).await.unwrap(), i);
                }
            }))
            .unwrap()
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            tok.block_on(tok.spawn(async {
                for i in 0..100u32 {
                    assert_eq!(tokio::task::spawn_blocking(move || i).await.unwrap(), i);
                }
            }))
            .unwrap()
        })
    });
    g.finish();
}

fn burst(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("blocking_burst_1k");
    g.bench_function("aioloop", |b| {
        b.iter(|| {
            aio.block_on(aio.spawn(async {
                let jobs: Vec<_> = (0..1000u32).map(aio_job).collect();
                for (i, j) in jobs.into_iter().enumerate() {
                    assert_eq!(j.await.unwrap(), i as u32);
                }
            }))
            .unwrap()
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            tok.block_on(tok.spawn(async {
                let jobs: Vec<_> = (0..1000u32)
                    .map(|i| tokio::task::spawn_blocking(move || i))
                    .collect();
                for (i, j) in jobs.into_iter().enumerate() {
                    assert_eq!(j.await.unwrap(), i as u32);
                }
            }))
            .unwrap()
        })
    });
    g.finish();
}

/// A job queued now (as `spawn_blocking` queues at the call): `run_in_executor`, since
/// `to_thread` queues only when first polled.
fn aio_job(i: u32) -> aioloop::Blocking<u32> {
    aioloop::Handle::current().run_in_executor(None, move || i)
}

fn config() -> Criterion {
    criterion_config(Duration::from_secs(1), Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = roundtrip, burst
}
criterion_main!(benches);
