//! Model 1 (issue 2, item 7): the task state machine (`task/state.rs`) together with the
//! `RawTask` paths that act on it (`task/raw.rs`: poll, complete, the waker vtable,
//! `try_read_output`, `drop_join_handle`, shutdown).
//!
//! Every task is a real aioloop task (`RawTask::new`, registered in the registry) whose
//! scheduler is `loom_internals::TestScheduler`. What fails a model:
//! - a lost wake-up: a thread waiting for the task (or for its join handle) never wakes,
//!   which loom reports as a deadlock;
//! - a double schedule: a second `Notified` submitted while one is queued (asserted in the
//!   test scheduler's push) or a task polled twice at once (loom's `UnsafeCell` check on the
//!   task's stage);
//! - a use-after-free or double free: loom's `UnsafeCell` access checks on the stage and join
//!   waker fields, and the counters (each future, output and allocation dropped exactly
//!   once); a leaked allocation also leaks a loom `Arc` (its scheduler), which loom reports.

mod common;

use std::task::Poll;

use aioloop::loom_internals::{shutdown_task, TestScheduler};
use common::{
    assert_cancelled_and_released, counting_waker, poll_join, spawn_opener, Gate, Probe,
    YieldNowOnce, YieldOnce,
};
use loom::thread;

/// 1(a) A wake from another thread (through a cloned `Waker`, by value or by reference)
/// racing the task's completing poll. The wake must never resubmit a task that completed
/// (that would poll a finished task, or leave a `Notified` behind), nor submit a second
/// `Notified` while the first is still queued; when the join handle is already gone, the
/// waker's reference may be the last one, and then the waking thread frees the task.
#[test]
fn wake_races_completion() {
    for by_ref in [false, true] {
        for detached in [false, true] {
            loom::model(move || {
                let sched = TestScheduler::new();
                let probe = Probe::new();
                let join = sched.spawn(1, YieldOnce::new(&probe));

                // Poll 1 leaves a waker clone with the probe and yields (NOTIFIED while
                // running: the poller re-submits the task).
                assert!(sched.run_one());
                assert_eq!(sched.queued(), 1);
                let waker = probe.take_waker().expect("poll 1 stored its waker");

                let waking = thread::spawn(move || {
                    if by_ref {
                        waker.wake_by_ref();
                        drop(waker);
                    } else {
                        waker.wake();
                    }
                });

                let join = if detached {
                    drop(join);
                    None
                } else {
                    Some(join)
                };
                // Poll 2 completes the task while the other thread wakes it.
                assert!(sched.run_one());
                if let Some(mut join) = join {
                    let (counter, w) = counting_waker();
                    match poll_join(&mut join, &w) {
                        Poll::Ready(Ok(out)) => assert_eq!(out.value, 1),
                        other => panic!("completed task not ready: {:?}", other.is_ready()),
                    }
                    assert_eq!(counter.wakes(), 0);
                }
                waking.join().unwrap();

                assert_eq!(sched.queued(), 0, "a wake resubmitted a completed task");
                assert_eq!(sched.scheduled(), 2, "spawn + the yield, nothing more");
                assert_eq!(probe.polls(), 2);
                probe.assert_all_dropped_once();
                assert_eq!(sched.alive(), 0, "task allocation not freed");
            });
        }
    }
}

/// 1(b) A wake (that runs the task to completion on the waking thread) racing the join
/// handle's drop, or racing the join handle's own polls. The join handle has registered a
/// waker first, so completion and the handle fight over the `JOIN_WAKER` field: whoever the
/// protocol names drops the stored waker and the output, exactly once, never while the other
/// reads them. When the handle awaits instead of dropping, it must be woken (no lost join
/// wake-up: a deadlock otherwise).
#[test]
fn wake_races_join_handle_drop() {
    for awaits in [false, true] {
        loom::model(move || {
            let sched = TestScheduler::new();
            let probe = Probe::new();
            let mut join = sched.spawn(1, Gate::new(&probe, 7));

            assert!(sched.run_one()); // poll 1: gate closed, waker left with the probe
            let (join_counter, join_waker) = counting_waker();
            assert!(poll_join(&mut join, &join_waker).is_pending()); // JOIN_WAKER set
            drop(join_waker);

            let completer = {
                let (sched, probe) = (sched.clone(), probe.clone());
                thread::spawn(move || {
                    probe.open();
                    probe.take_waker().expect("poll 1 stored its waker").wake();
                    // The wake found the task idle: it submitted it. Poll 2 completes it.
                    assert!(sched.run_one());
                })
            };

            if awaits {
                // block_on's waker is not the one stored above, so its first poll takes
                // the waker-swap path (`unset_join_waker` racing completion); then it sleeps
                // until the join waker wakes it.
                let out = loom::future::block_on(&mut join).expect("task completed");
                assert_eq!(out.value, 7);
                drop(join);
            } else {
                drop(join);
            }
            completer.join().unwrap();

            assert_eq!(sched.queued(), 0);
            assert_eq!(probe.polls(), 2);
            probe.assert_all_dropped_once();
            assert!(join_counter.wakes() <= 1);
            // Every clone of the join waker was released (else loom reports the leak).
            assert_eq!(loom::sync::Arc::strong_count(&join_counter), 1);
            assert_eq!(sched.alive(), 0, "task allocation not freed");
        });
    }
}

/// 1(c) A remote wake racing the task's own poll: one thread opens the gate and wakes the
/// task through the waker it left (or finds none yet), another wakes it spuriously, while
/// the polling thread runs the task whenever it is queued. Whether the wake lands before,
/// during (the task is `RUNNING`: `NOTIFIED` makes the poller re-submit it) or after the
/// poll, the task is polled again and completes (a lost wake-up leaves the poller asleep: a
/// deadlock); it is never queued twice, never polled after completing.
#[test]
fn remote_wake_races_poll() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let probe = Probe::new();
        let join = sched.spawn(1, Gate::new(&probe, 3));

        let opener = spawn_opener(&probe);
        let spurious = spawn_spurious_waker(&probe);
        sched.run_until(|| join.done());
        opener.join().unwrap();
        spurious.join().unwrap();

        assert_done_and_freed(&sched, join, 3);
        assert!((1..=3).contains(&probe.polls()), "polls: {}", probe.polls());
        probe.assert_all_dropped_once();
        assert_eq!(sched.alive(), 0, "task allocation not freed");
    });
}

/// A thread that wakes the task by reference through the waker its probe holds, if any yet.
fn spawn_spurious_waker(probe: &loom::sync::Arc<Probe>) -> thread::JoinHandle<()> {
    let probe = probe.clone();
    thread::spawn(move || {
        if let Some(w) = probe.clone_waker() {
            w.wake_by_ref();
        }
    })
}

/// The task is done with `value`, its handle is dropped, and no `Notified` is left queued.
fn assert_done_and_freed(
    sched: &TestScheduler,
    mut join: aioloop::Task<common::Output>,
    value: u32,
) {
    let (_, w) = counting_waker();
    match poll_join(&mut join, &w) {
        Poll::Ready(Ok(out)) => assert_eq!(out.value, value),
        _ => panic!("done task not ready"),
    }
    drop(join);
    assert_eq!(
        sched.queued(),
        0,
        "a Notified outlived the task's completion"
    );
}

/// 1(d) Runtime shutdown (`RawTask::shutdown`, as `Runtime::drop` cancels unfinished tasks)
/// racing the task's poll and a remote wake. Exactly one thread drops the future: the
/// shutdown thread if the task was idle, else the poller when its poll ends
/// (`TransitionToIdle::Cancelled`); the handle gets `Cancelled`; a `Notified` left queued by
/// the wake finds the task complete and only releases its reference.
#[test]
fn shutdown_races_poll_and_wake() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let probe = Probe::new();
        let join = sched.spawn(1, Gate::new(&probe, 5));
        assert!(sched.run_one()); // poll 1: pending
        let waker = probe.take_waker().expect("poll 1 stored its waker");
        waker.wake_by_ref(); // queued again

        let shutdown = {
            let task = join.task_ref();
            thread::spawn(move || shutdown_task(&task))
        };
        let waking = thread::spawn(move || waker.wake());

        sched.run_one(); // poll 2 (or a cancelled/failed run), racing both
        shutdown.join().unwrap();
        waking.join().unwrap();
        while sched.run_one() {}

        assert_cancelled_and_released(join, &probe, "shut-down task not complete");
        assert!(probe.polls() <= 2);
        assert_eq!(sched.alive(), 0, "task allocation not freed");
    });
}

/// 1(e) A task yielding through `aioloop::yield_now` (which, inside the task's own poll,
/// tells the poller through a thread-local and sets no state bit: task/state.rs rule 7)
/// racing a remote wake through a clone of its waker. The yield must re-queue the task
/// exactly once (the remote wake then finds it notified or running and adds nothing), the
/// task must run to completion (a lost yield would leave it idle: loom's deadlock), and
/// everything is freed once.
#[test]
fn yield_now_races_remote_wake() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let probe = Probe::new();
        let join = sched.spawn(1, YieldNowOnce::new(&probe));
        let waking = spawn_spurious_waker(&probe);
        sched.run_until(|| join.done());
        waking.join().unwrap();

        assert_done_and_freed(&sched, join, 1);
        assert_eq!(probe.polls(), 2, "the yield re-queued the task once");
        probe.assert_all_dropped_once();
        drop(probe.take_waker()); // the last poll's clone
        assert_eq!(sched.alive(), 0, "task allocation not freed");
    });
}
