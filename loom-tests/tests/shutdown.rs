//! The runtime's shutdown order (`runtime/shared.rs`, "Shutdown order"; `Runtime::drop`)
//! racing work that arrives from other threads: a callback pushed, a task spawned, a task
//! woken. The runtime's workers are the real worker loop on loom threads
//! (`TestRuntime::run_worker`); the model's thread runs the shutdown order itself: set the
//! flag and unpark (1), join the workers (2), cancel every unfinished task (3), drain the
//! queues (4).
//!
//! What must hold whatever the interleaving: everything that arrives is run, or dropped,
//! exactly once, and nothing is left queued once both sides are done (a push that lands
//! after the drain is drained by its pusher: the `SeqCst` fence pair of `schedule_remote`
//! and the shutdown flag); a task ends with its value or cancelled, never left pending. A
//! task allocation that is never freed keeps the runtime's shared state, and with it loom
//! `Arc`s, alive: loom fails the model with "Arc leaked".

mod common;

use std::task::Poll;

use aioloop::loom_internals::TestRuntime;
use aioloop::TaskError;
use common::{
    assert_cancelled_and_released, counting_waker, model_spawning, poll_join, shut_down,
    spawn_opener, start_workers, DropCount, Gate, Probe,
};
use loom::sync::atomic::Ordering::SeqCst;
use loom::sync::Arc;
use loom::thread;

/// A callback pushed from another thread (`Handle::call_soon`: the shutdown flag checked,
/// then `schedule_remote`) while the runtime shuts down. It runs on the worker, or is
/// discarded by `call_soon` (flag already set), by the drain (4), or by its pusher (pushed
/// after the drain): exactly one of these, never none.
#[test]
fn remote_push_races_shutdown() {
    loom::model(|| {
        let rt = Arc::new(TestRuntime::new(1));
        let workers = start_workers(&rt, 1);

        let (token, drops) = DropCount::new();
        let pusher = {
            let h = rt.handle();
            thread::spawn(move || {
                h.call_soon(move || drop(token));
            })
        };
        shut_down(&rt, workers);
        pusher.join().unwrap();

        assert_eq!(
            drops.load(SeqCst),
            1,
            "the callback was stranded in a queue (or dropped twice)"
        );
        assert!(!rt.has_work(), "a push after the drain was left queued");
    });
}

/// A task spawned from another thread (`Handle::spawn`: registered, then the shutdown flag
/// checked, then queued or rejected) while the runtime shuts down. A spawn that saw the flag
/// clear registered the task before the canceller's registry walk (3) can miss it, so the
/// task is polled, cancelled by (3), or rejected at spawn: its handle reads `Cancelled` (its
/// gate never opens), its future is dropped exactly once, its allocation is freed.
#[test]
fn spawn_races_shutdown() {
    model_spawning(|| {
        let rt = Arc::new(TestRuntime::new(1));
        let workers = start_workers(&rt, 1);

        let probe = Probe::new(); // never opened
        let spawner = {
            let (h, probe) = (rt.handle(), probe.clone());
            thread::spawn(move || h.spawn(Gate::new(&probe, 1)))
        };
        shut_down(&rt, workers);
        let task = spawner.join().unwrap();
        assert!(!rt.has_work(), "a spawn after the drain was left queued");

        assert_cancelled_and_released(
            task,
            &probe,
            "a task spawned during shutdown was left pending",
        );
        assert!(probe.polls() <= 1);
    });
}

/// A task parked on its gate is woken from another thread (the gate opened, the waker it
/// left taken and woken: `schedule_remote` from outside the runtime) while the runtime shuts
/// down. The wake lands before the worker stops (the task completes with its value), or
/// after (the task is cancelled by (3) and the `Notified` the wake queued is drained by (4)
/// or by the waker itself): the handle reads the value or `Cancelled`, the future and the
/// output are dropped once each, and nothing is left queued.
#[test]
fn remote_wake_races_shutdown() {
    model_spawning(|| {
        let rt = Arc::new(TestRuntime::new(1));
        let workers = start_workers(&rt, 1);

        let probe = Probe::new();
        let mut task = rt.handle().spawn(Gate::new(&probe, 5));
        let opener = spawn_opener(&probe);
        shut_down(&rt, workers);
        opener.join().unwrap();
        assert!(!rt.has_work(), "a wake after the drain was left queued");

        let (_, w) = counting_waker();
        let finished = match poll_join(&mut task, &w) {
            Poll::Ready(Ok(out)) => {
                assert_eq!(out.value, 5);
                true
            }
            Poll::Ready(Err(TaskError::Cancelled(_))) => false,
            Poll::Ready(Err(e)) => panic!("unexpected {e}"),
            Poll::Pending => panic!("a woken task was left pending by shutdown"),
        };
        drop(task);
        drop(probe.take_waker());
        assert_eq!(probe.futures_dropped(), 1);
        assert_eq!(probe.outputs_dropped(), usize::from(finished));
    });
}
