//! asyncio.run's shutdown (rule T11): `#[aioloop::main]` / `#[aioloop::test]` (through
//! `aioloop::__private::run`) do not drop the tasks the body left running: they cancel them
//! and keep the loop running until they have finished, so a task's `except CancelledError:`
//! clean-up runs, awaits included — on a runtime and on a `LocalLoop`.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use aioloop::__private::{run, MacroOptions};
use aioloop::{catch_cancel, yield_now};

mod common;
use common::guarded;

/// Runs a body that leaves three tasks waiting forever, each with an async clean-up; returns
/// how many clean-ups completed (their awaits included) by the time `run` returned.
fn cleanups_after_run(local: bool) -> usize {
    let done = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let (d, s) = (done.clone(), started.clone());
    let opts = MacroOptions {
        workers: Some(2),
        local,
        debug: false,
        timeout: None,
    };
    run(opts, async move {
        for _ in 0..3 {
            let (d, s) = (d.clone(), s.clone());
            aioloop::create_task(async move {
                s.fetch_add(1, SeqCst);
                if catch_cancel(std::future::pending::<()>()).await.is_err() {
                    yield_now().await; // async clean-up
                    yield_now().await;
                    d.fetch_add(1, SeqCst);
                }
            })
            .detach();
        }
        // Rule T4: a task cancelled before its first step never runs its body: let them
        // start (yield, never block a worker).
        while s.load(SeqCst) < 3 {
            yield_now().await;
        }
    });
    done.load(SeqCst)
}

// rule T11 (asyncio.run's `_cancel_all_tasks`): on a runtime.
#[test]
fn run_cancels_and_waits_for_remaining_tasks_runtime() {
    assert_eq!(guarded("run shutdown", || cleanups_after_run(false)), 3);
}

// rule T11: the same on a LocalLoop (`#[aioloop::main(local)]`).
#[test]
fn run_cancels_and_waits_for_remaining_tasks_local() {
    assert_eq!(
        guarded("run shutdown (local)", || cleanups_after_run(true)),
        3
    );
}
