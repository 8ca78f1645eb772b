//! Structured concurrency: an aioloop `TaskGroup` against tokio's `JoinSet`, in one run.
//!
//! One criterion group, `task_group`, with two functions, `aioloop` and `tokio` (so that
//! `benches/report.py` pairs them). Each iteration: a task spawned on the runtime opens a
//! group, creates [`NUM_CHILDREN`] children — each yields once, then returns — and waits
//! for all of them (aioloop: the end of `TaskGroup::run`; tokio: draining `join_next`).
//! The bench thread waits with the runtime's own `block_on` on that task. Both runtimes have
//! two workers and are built once, before any timing.
//!
//! Run with
//! `cargo bench -p aioloop-benches --bench task_group -- --warm-up-time 1 --measurement-time 3`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use common::{aioloop_runtime, criterion_config, tokio_multi_thread};

/// Children per group.
const NUM_CHILDREN: usize = 10_000;

fn task_group(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("task_group");

    g.bench_function("aioloop", |b| {
        b.iter(|| {
            let parent = aio.spawn(async {
                aioloop::TaskGroup::new()
                    .run(|tg| async move {
                        for _ in 0..NUM_CHILDREN {
                            tg.create_task(aioloop::yield_now())?.detach();
                        }
                        Ok::<_, aioloop::TaskGroupError>(())
                    })
                    .await
                    .expect("no child fails")
            });
            aio.block_on(parent).expect("parent finished");
        })
    });

    g.bench_function("tokio", |b| {
        b.iter(|| {
            let parent = tok.spawn(async {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..NUM_CHILDREN {
                    set.spawn(tokio::task::yield_now());
                }
                while let Some(r) = set.join_next().await {
                    r.expect("no child fails");
                }
            });
            tok.block_on(parent).expect("parent finished");
        })
    });

    g.finish();
}

fn config() -> Criterion {
    criterion_config(Duration::from_millis(1000), Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = task_group
}
criterion_main!(benches);
