//! The join handle's side of the task protocol (`task/state.rs`: `JOIN_INTEREST` and the
//! reference count; `task/raw.rs`: `drop_join_handle`, `try_read_output`, completion) when
//! no join waker is involved, and references that outlive the task's completion.
//!
//! Tasks are real aioloop tasks on the loom test scheduler (`TestScheduler`). What fails a
//! model: an output dropped twice or never (the probe's counters), a task allocation freed
//! twice or never (the scheduler's alive count, loom's leak check on the task's scheduler
//! `Arc`), a read of the stage while another thread takes it (loom's `UnsafeCell` checks),
//! a completed task queued again.

mod common;

use std::task::Poll;

use aioloop::loom_internals::TestScheduler;
use common::{counting_waker, poll_join, spawn_pending, Probe, YieldOnce};
use loom::thread;

/// The handle is dropped on one thread while the task completes on another, with no join
/// waker stored (the handle never polled): `transition_to_join_handle_dropped` races
/// `transition_to_complete`. If the handle's drop lands first, the completing thread finds
/// `JOIN_INTEREST` clear and drops the output at once; otherwise the handle's drop finds
/// `COMPLETE` and drops it. Exactly one of them, and the last reference frees the task.
#[test]
fn join_handle_drop_races_completion() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let (probe, join) = spawn_pending(&sched, 1, 4);

        let completer = {
            let (sched, probe) = (sched.clone(), probe.clone());
            thread::spawn(move || {
                probe.open();
                probe.take_waker().expect("poll 1 stored its waker").wake();
                assert!(sched.run_one()); // poll 2 completes the task
            })
        };
        drop(join);
        completer.join().unwrap();

        assert_eq!(sched.queued(), 0);
        probe.assert_all_dropped_once();
        assert_eq!(sched.alive(), 0, "task allocation not freed");
    });
}

/// References that outlive completion: a waker the future kept (a clone left with the probe)
/// is woken by value on one thread after the task completed, while the handle reads the
/// output on another and a `TaskRef` is dropped on a third. A wake of a complete task
/// schedules nothing and only releases its reference; the handle takes the output exactly
/// once; whichever of the three releases the last reference frees the task, exactly once.
#[test]
fn kept_waker_and_handle_race_after_completion() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let probe = Probe::new();
        let mut join = sched.spawn(1, YieldOnce::new(&probe));
        assert!(sched.run_one()); // poll 1: keeps a waker clone, wakes itself
        assert!(sched.run_one()); // poll 2: completes
        let kept = probe.take_waker().expect("poll 1 kept a waker");
        let entry = join.task_ref();

        let waking = thread::spawn(move || kept.wake());
        let reader = thread::spawn(move || {
            let (wakes, w) = counting_waker();
            match poll_join(&mut join, &w) {
                Poll::Ready(Ok(out)) => assert_eq!(out.value, 1),
                other => panic!("completed task not ready: {:?}", other.is_ready()),
            }
            assert_eq!(wakes.wakes(), 0);
            drop(join);
        });
        assert!(entry.done());
        drop(entry);
        waking.join().unwrap();
        reader.join().unwrap();

        assert_eq!(sched.queued(), 0, "a wake after completion queued the task");
        assert_eq!(sched.scheduled(), 2, "spawn + the yield, nothing more");
        probe.assert_all_dropped_once();
        assert_eq!(sched.alive(), 0, "task allocation not freed");
    });
}
