//! The LIFO slot of a runtime worker (`event_loop/lifo.rs`, rules 1–5; `LoopCore::run_once`,
//! `LoopCore::push_local`, the worker's `on_stealable_work`), run in the real worker loop on
//! loom threads. Under loom a worker runs at most one slot task after a queued item
//! (`tuning::MAX_LIFO_POLLS` = 1), so the models reach the spill to the queue.
//!
//! What must hold: a task that went to the slot is run, or freed at shutdown, whatever the
//! interleaving of the workers' searching and parking — the slot is invisible to peers and
//! to the parking re-check, so a task stranded in it would show as a loom deadlock (its
//! awaiter never woken), and a task allocation never freed as "Arc leaked".

mod common;

use aioloop::create_task;
use aioloop::loom_internals::TestRuntime;
use common::{
    assert_cancelled_and_released, join_and_drain, join_and_finish, model_spawning, start_workers,
    Gate, Probe,
};
use loom::sync::Arc;

/// A chain of spawns on a worker: the root (queued from outside) spawns `a` into the slot
/// (rule 1); `a` runs from the slot and spawns `b`, which finds the run of slot tasks at its
/// bound and spills to the back of the queue, waking an idle peer (rule 4). With two
/// workers, the other one may be searching, parking or parked meanwhile; `b` must run
/// (here or stolen there) before either parks for good. `b` ends the runtime.
#[test]
fn slot_task_is_not_stranded_by_parking() {
    model_spawning(|| {
        let rt = Arc::new(TestRuntime::new(2));
        {
            let ender = rt.clone();
            drop(rt.handle().spawn(async move {
                drop(create_task(async move {
                    drop(create_task(async move { ender.begin_shutdown() }));
                }));
            }));
        }
        let workers = start_workers(&rt, 2);
        join_and_finish(&rt, workers);
    });
}

/// Shutdown with a task in the slot: the root spawns a task that never completes (into the
/// slot) and starts the shutdown. Whether the worker runs it from the slot before it sees
/// the flag or not, the slot is empty when the worker leaves its loop (rule 5), and the
/// shutdown order cancels the task and frees it: its handle reads `Cancelled`, its future
/// is dropped once.
#[test]
// The root task hands its child's handle out on purpose: the model awaits it after the
// shutdown, outside the runtime.
#[allow(clippy::async_yields_async)]
fn shutdown_frees_slot_task() {
    model_spawning(|| {
        let rt = Arc::new(TestRuntime::new(1));
        let probe = Probe::new(); // never opened
        let root = {
            let (rt, probe) = (rt.clone(), probe.clone());
            rt.handle().spawn(async move {
                let child = create_task(Gate::new(&probe, 1));
                rt.begin_shutdown();
                child
            })
        };
        let workers = start_workers(&rt, 1);
        let child = loom::future::block_on(root).expect("the root completes");
        join_and_drain(&rt, workers);
        assert!(!rt.has_work(), "work left queued after shutdown");
        assert_cancelled_and_released(child, &probe, "a slot task was left pending by shutdown");
    });
}
