//! Cancellation throughput (issue 3, item 10): cancel 10,000 tasks parked on a future that
//! never completes, and await them all — aioloop's catchable `Task::cancel` against tokio's
//! `JoinHandle::abort`, in one run, two workers each.
//!
//! Each iteration spawns the tasks from inside the runtime, lets every one of them park
//! (a countdown ticked in their first step), then cancels all and awaits every handle,
//! checking that each ended cancelled. Spawning is inside the timed loop for both sides
//! (a parked task can only be cancelled once), so the figure is spawn + park + cancel +
//! await; `spawn_many_local` in `benches/runtime.rs` shows the spawn part alone.
//!
//! Run with `cargo bench -p aioloop-benches --bench cancel`, then `python3 benches/report.py`.
//! With `CANCEL_BENCH_ROUNDS=N` criterion is not used: N interleaved rounds (one aioloop
//! iteration and one tokio iteration back to back) give the median per-round ratio
//! (`common::interleaved_pair`), the figure to trust on a shared machine.

use std::future::pending;
use std::time::Duration;

use criterion::{criterion_group, Criterion};

mod common;
use common::{
    aioloop_runtime, criterion_config, interleaved_pair, rounds_from_env, tokio_multi_thread,
    Countdown,
};

/// Tasks cancelled per iteration.
const NUM_TASKS: usize = 10_000;

/// One aioloop iteration: spawn, let park, cancel and await `NUM_TASKS` tasks.
fn cancel_aioloop(aio: &aioloop::Runtime) {
    aio.block_on(async {
        let (parked, rx) = Countdown::new(NUM_TASKS);
        let tasks: Vec<_> = (0..NUM_TASKS)
            .map(|_| {
                let parked = parked.clone();
                aioloop::create_task(async move {
                    parked.tick();
                    pending::<()>().await
                })
            })
            .collect();
        rx.recv().expect("every task parked");
        for t in &tasks {
            t.cancel(None);
        }
        for t in tasks {
            assert!(t.await.unwrap_err().is_cancelled());
        }
    })
}

/// The tokio counterpart of [`cancel_aioloop`], with `JoinHandle::abort`.
fn cancel_tokio(tok: &tokio::runtime::Runtime) {
    tok.block_on(async {
        let (parked, rx) = Countdown::new(NUM_TASKS);
        let tasks: Vec<_> = (0..NUM_TASKS)
            .map(|_| {
                let parked = parked.clone();
                tokio::spawn(async move {
                    parked.tick();
                    pending::<()>().await
                })
            })
            .collect();
        rx.recv().expect("every task parked");
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            assert!(t.await.unwrap_err().is_cancelled());
        }
    })
}

fn cancel_10k(c: &mut Criterion) {
    let aio = aioloop_runtime();
    let tok = tokio_multi_thread();
    let mut g = c.benchmark_group("cancel_10k");
    g.bench_function("aioloop", |b| b.iter(|| cancel_aioloop(&aio)));
    g.bench_function("tokio", |b| b.iter(|| cancel_tokio(&tok)));
    g.finish();
}

fn config() -> Criterion {
    criterion_config(Duration::from_secs(1), Duration::from_secs(5))
}

criterion_group! {
    name = benches;
    config = config();
    targets = cancel_10k
}
fn main() {
    if let Some(rounds) = rounds_from_env("CANCEL_BENCH_ROUNDS") {
        let (aio, tok) = (aioloop_runtime(), tokio_multi_thread());
        println!("| workload | aioloop (median) | tokio (median) | ratio: median (p25–p75) |");
        println!("|---|---:|---:|---:|");
        interleaved_pair(
            "cancel_10k",
            rounds,
            5,
            || cancel_aioloop(&aio),
            || cancel_tokio(&tok),
        );
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
