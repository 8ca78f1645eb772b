//! One thread's loop against tokio's current-thread runtime, in the shapes of tokio's own
//! `rt_current_thread` benchmarks (written from their descriptions; no code is taken from
//! tokio). aioloop's counterpart of a current-thread runtime is a [`LocalLoop`]: `block_on`
//! is `run_until_complete`, a spawn from inside is `aioloop::create_task`, a spawn from
//! another thread (or from outside the loop) goes through its [`LoopHandle`].
//!
//! | group (tokio's name after `current_`) | what one iteration does |
//! |---|---|
//! | `current_spawn_many_local` | inside `block_on`: spawn 1,000 empty tasks, then await every handle |
//! | `current_spawn_many_remote_idle` | spawn 1,000 empty tasks through the handle from outside, then `block_on` awaits every handle |
//! | `current_spawn_many_remote_busy` | the same while the loop also runs an endless spawn chain (each task spawns the next), started once |
//!
//! (The prefix keeps criterion's results apart from `benches/runtime.rs`'s groups of the same
//! names.) The loop only runs inside `block_on`, so the busy group's chain advances
//! only while its own runtime is measured: the two never run at once.
//!
//! Run with `cargo bench -p aioloop-benches --bench rt_current_thread`, then
//! `python3 benches/report.py`; or, interleaved (the figure to trust on a shared machine:
//! each round one aioloop and one tokio iteration back to back),
//! `CURRENT_BENCH_ROUNDS=500 cargo bench -p aioloop-benches --bench rt_current_thread`.
//!
//! [`LocalLoop`]: aioloop::LocalLoop
//! [`LoopHandle`]: aioloop::LoopHandle

use std::time::Duration;

use criterion::{criterion_group, Criterion};

mod common;
use common::{criterion_config, interleaved_pair, rounds_from_env, tokio_current_thread};

/// Tasks spawned per iteration (tokio's figure).
const NUM_SPAWN: usize = 1_000;

type Aio = aioloop::LocalLoop;
type Tok = tokio::runtime::Runtime;

fn spawn_many_local_aio(lp: &Aio) {
    lp.run_until_complete(async {
        let handles: Vec<_> = (0..NUM_SPAWN)
            .map(|_| aioloop::create_task(async {}))
            .collect();
        for h in handles {
            h.await.expect("task completed");
        }
    })
    .expect("loop is open");
}

fn spawn_many_local_tok(rt: &Tok) {
    rt.block_on(async {
        let handles: Vec<_> = (0..NUM_SPAWN).map(|_| tokio::spawn(async {})).collect();
        for h in handles {
            h.await.expect("task completed");
        }
    });
}

fn spawn_many_remote_aio(lp: &Aio) {
    let handle = lp.handle();
    let handles: Vec<_> = (0..NUM_SPAWN)
        .map(|_| handle.spawn(async {}).expect("loop is open"))
        .collect();
    lp.run_until_complete(async {
        for h in handles {
            h.await.expect("task completed");
        }
    })
    .expect("loop is open");
}

fn spawn_many_remote_tok(rt: &Tok) {
    let handle = rt.handle();
    let handles: Vec<_> = (0..NUM_SPAWN).map(|_| handle.spawn(async {})).collect();
    rt.block_on(async {
        for h in handles {
            h.await.expect("task completed");
        }
    });
}

/// One link of the endless chain that keeps `spawn_many_remote_busy`'s loop busy.
fn chain_aio() {
    drop(aioloop::create_task(async { chain_aio() }));
}

fn chain_tok() {
    drop(tokio::spawn(async { chain_tok() }));
}

/// A loop (runtime) with the endless chain started: it advances whenever the loop runs.
fn busy_aio() -> Aio {
    let lp = Aio::new().expect("create LocalLoop");
    drop(
        lp.handle()
            .spawn(async { chain_aio() })
            .expect("loop is open"),
    );
    lp
}

fn busy_tok() -> Tok {
    let rt = tokio_current_thread();
    drop(rt.spawn(async { chain_tok() }));
    rt
}

/// One workload: its group name, one aioloop iteration, one tokio iteration, and whether it
/// runs on the loops with the endless chain started (`busy_aio`, `busy_tok`).
type Workload = (&'static str, fn(&Aio), fn(&Tok), bool);

const WORKLOADS: &[Workload] = &[
    (
        "current_spawn_many_local",
        spawn_many_local_aio,
        spawn_many_local_tok,
        false,
    ),
    (
        "current_spawn_many_remote_idle",
        spawn_many_remote_aio,
        spawn_many_remote_tok,
        false,
    ),
    (
        "current_spawn_many_remote_busy",
        spawn_many_remote_aio,
        spawn_many_remote_tok,
        true,
    ),
];

/// The loop and the runtime a workload runs on (built once per workload, before timing).
fn loops(busy: bool) -> (Aio, Tok) {
    if busy {
        (busy_aio(), busy_tok())
    } else {
        (
            Aio::new().expect("create LocalLoop"),
            tokio_current_thread(),
        )
    }
}

fn workloads(c: &mut Criterion) {
    for &(name, run_aio, run_tok, busy) in WORKLOADS {
        let (lp, rt) = loops(busy);
        let mut g = c.benchmark_group(name);
        g.bench_function("aioloop", |b| b.iter(|| run_aio(&lp)));
        g.bench_function("tokio", |b| b.iter(|| run_tok(&rt)));
        g.finish();
    }
}

fn config() -> Criterion {
    criterion_config(Duration::from_secs(1), Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = workloads
}

fn main() {
    if let Some(rounds) = rounds_from_env("CURRENT_BENCH_ROUNDS") {
        println!("| workload | aioloop (median) | tokio (median) | ratio: median (p25–p75) |");
        println!("|---|---:|---:|---:|");
        for &(name, run_aio, run_tok, busy) in WORKLOADS {
            let (lp, rt) = loops(busy);
            interleaved_pair(name, rounds, 20, || run_aio(&lp), || run_tok(&rt));
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
