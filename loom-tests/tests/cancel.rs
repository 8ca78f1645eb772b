//! Issue 3, item 9 (first part): catchable cancellation (`task/cancel.rs`) racing the task.
//!
//! Tasks are real aioloop tasks on the loom test scheduler; `cancel` runs on another loom
//! thread while the task is polled here. A lost wake-up (the cancel's wake, or the join
//! waker) is a loom deadlock; a double drop or leak shows in the probe's counters and in
//! loom's leak checks.

mod common;

use std::task::Poll;

use aioloop::loom_internals::{shutdown_task, TestScheduler};
use aioloop::{catch_cancel, TaskError};
use common::{
    assert_cancelled_and_released, counting_waker, poll_join, spawn_pending, Gate, Probe,
};
use loom::thread;

/// `cancel()` racing the task's completion (the gate opened from a third thread). The
/// outcome is the value or a cancellation — never a hang, never both drops; a `false` from
/// `cancel` means the task was already done, so it finished with its value.
#[test]
fn cancel_races_completion() {
    loom::model(|| cancel_vs_completion(Some("stop")));
}

/// Issue 9 item 7, rule 7 of `task/cancel.rs`: a bare `cancel()` (no message, the task has
/// no extra block) is one compare-exchange on the header's slot, taken by the next poll
/// with another. Raced against the task's completion as `cancel_races_completion` races a
/// request stored in the block.
#[test]
fn bare_cancel_races_completion() {
    loom::model(|| cancel_vs_completion(None));
}

/// One run of the completion race with a request carrying `msg`. Also checks the count:
/// a refused request is not counted (it was withdrawn), an accepted one is (T7).
fn cancel_vs_completion(msg: Option<&'static str>) {
    let sched = TestScheduler::new();
    let probe = Probe::new();
    let mut join = sched.spawn(1, Gate::new(&probe, 5));
    assert!(sched.run_one()); // poll 1: the gate is closed
    let task = join.task_ref();
    let canceller = thread::spawn(move || task.cancel(msg));
    let opener = {
        let probe = probe.clone();
        thread::spawn(move || probe.open())
    };
    let done = join.task_ref();
    let accepted = {
        // Runs until the task is done: woken by the opener or by the cancel.
        let r = canceller;
        opener.join().unwrap();
        sched.run_until(|| done.done());
        r.join().unwrap()
    };
    let (_, w) = counting_waker();
    match poll_join(&mut join, &w) {
        Poll::Ready(Ok(out)) => assert_eq!(out.value, 5),
        Poll::Ready(Err(TaskError::Cancelled(e))) => {
            assert!(accepted, "cancelled although cancel() returned false");
            assert_eq!(e.message(), msg);
        }
        other => panic!("unexpected {:?}", other.map(|r| r.map(|o| o.value))),
    }
    assert_eq!(done.cancelling(), u32::from(accepted));
    drop(join);
    drop(done);
    drop(probe.take_waker());
    assert_eq!(probe.futures_dropped(), 1);
    assert_eq!(sched.alive(), 0, "task allocation not freed");
}

/// A task whose body waits in a catch scope; `cancel()` from another thread races its
/// polls. Either the cancel lands before the first step (rule T4: the body never runs, the
/// task ends cancelled) or the scope catches it, and the body suppresses it with
/// `uncancel()` and finishes normally. Never lost, never delivered twice.
#[test]
fn cancel_races_catch_scope_delivery() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let probe = Probe::new();
        let gate = Gate::new(&probe, 5); // never opened
        let mut join = sched.spawn(1, async move {
            match catch_cancel(gate).await {
                Ok(out) => out.value,
                Err(e) => {
                    assert_eq!(e.message(), Some("stop"));
                    let me = aioloop::loom_internals::current_task().unwrap();
                    assert_eq!(me.uncancel(), 0);
                    1
                }
            }
        });
        let task = join.task_ref();
        let canceller = thread::spawn(move || task.cancel(Some("stop")));
        let done = join.task_ref();
        sched.run_until(|| done.done());
        assert!(
            canceller.join().unwrap(),
            "cancel() refused on an unfinished task"
        );
        let (_, w) = counting_waker();
        match poll_join(&mut join, &w) {
            Poll::Ready(Ok(1)) => assert!(probe.polls() >= 1, "caught without running"),
            Poll::Ready(Err(TaskError::Cancelled(_))) => {
                assert_eq!(probe.polls(), 0, "cancelled after the scope ran")
            }
            other => panic!("unexpected {:?}", other.map(|r| r.is_ok())),
        }
        drop(join);
        drop(done);
        drop(probe.take_waker());
        assert_eq!(probe.futures_dropped(), 1);
        assert_eq!(sched.alive(), 0, "task allocation not freed");
    });
}

/// `cancel()` (a request plus a wake) racing runtime shutdown of the same task
/// (`RawTask::shutdown`: `CANCELLED`, the future dropped by whoever owns it) while the
/// polling thread runs whatever is queued. However they interleave, the task ends
/// cancelled, its future is dropped exactly once (by the shutdown thread, or by the poller:
/// delivering the cancel, or finding `CANCELLED` when its poll starts or ends), a `Notified`
/// the cancel queued after completion only releases its reference, and the allocation is
/// freed.
#[test]
fn cancel_races_shutdown() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let (probe, join) = spawn_pending(&sched, 1, 5); // never opened
        let canceller = {
            let task = join.task_ref();
            thread::spawn(move || task.cancel(Some("stop")))
        };
        let shutter = {
            let task = join.task_ref();
            thread::spawn(move || shutdown_task(&task))
        };
        // Runs the cancel's `Notified` if it is queued by now (poll 2, delivering the cancel,
        // or a run that finds the task already shut down), racing both threads.
        sched.run_one();
        canceller.join().unwrap();
        shutter.join().unwrap();
        while sched.run_one() {}

        assert!(probe.polls() <= 2);
        assert_cancelled_and_released(join, &probe, "cancelled and shut down, still pending");
        assert_eq!(sched.queued(), 0);
        assert_eq!(sched.alive(), 0, "task allocation not freed");
    });
}

/// Issue 10 items 1 and 11 (rule T3, mapping point 2): `cancel()` of a task suspended on
/// another task is passed on to it, racing that task's completion (its gate is open and it
/// is queued) and the awaiter's polls. The forwarded mark is set before the awaited task
/// is cancelled, so whichever way it ends, the request is delivered exactly once: the
/// awaiter ends cancelled (the awaited task accepted it and ended cancelled, or refused it
/// and the request was stored and raised at the await) or, when the cancel lost the race
/// with completion, with the value — never a hang, never a double drop.
#[test]
fn cancel_passed_on_races_awaited_completion() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let (probe, child) = spawn_pending(&sched, 1, 5);
        let mut parent = sched.spawn(2, async move { child.await.map(|o| o.value) });
        assert!(sched.run_one()); // the parent suspends on the child: its waiter
                                  // The child is made ready (queued) here; it completes on this thread while the
                                  // cancel runs on another.
        probe.open();
        probe.take_waker().expect("the child is waiting").wake();
        let p = parent.task_ref();
        let canceller = thread::spawn(move || p.cancel(Some("stop")));
        let done = parent.task_ref();
        sched.run_until(|| done.done());
        let accepted = canceller.join().unwrap();
        let (_, w) = counting_waker();
        match poll_join(&mut parent, &w) {
            Poll::Ready(Ok(Ok(v))) => assert_eq!(v, 5),
            Poll::Ready(Err(TaskError::Cancelled(e))) => {
                assert!(accepted, "cancelled although cancel() returned false");
                assert_eq!(e.message(), Some("stop"));
            }
            Poll::Ready(Ok(Err(e))) => panic!("the child's cancellation was not raised: {e}"),
            other => panic!("unexpected {}", other.is_ready()),
        }
        drop(parent);
        drop(done);
        drop(probe.take_waker());
        sched.run_until(|| true); // whatever the drops queued
        assert_eq!(probe.futures_dropped(), 1);
        assert_eq!(sched.alive(), 0, "task allocation not freed");
    });
}

/// Rule 7: two bare `cancel()`s, one of them followed by a reader that inflates the tag
/// (`cancelling()` needs the block), race each other and the poll that takes the tag.
/// Exactly one thread wins each transition of the slot: the task ends cancelled exactly
/// once, every accepted request is counted (asyncio's `cancelling()`; the other thread's
/// is refused only if the task had already ended), and every block built by a losing
/// inflation is freed (loom's leak check).
#[test]
fn bare_cancels_race_inflation_and_poll() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let (probe, join) = spawn_pending(&sched, 1, 5); // never opened
        let other = {
            let task = join.task_ref();
            thread::spawn(move || {
                let accepted = task.cancel(None);
                (accepted, task.cancelling())
            })
        };
        let done = join.task_ref();
        assert!(done.cancel(None), "cancel() refused on an unfinished task");
        sched.run_until(|| done.done());
        let (accepted, seen) = other.join().unwrap();
        let requests = 1 + u32::from(accepted);
        assert!((1..=requests).contains(&seen), "cancelling() read {seen}");
        assert_eq!(done.cancelling(), requests);
        assert!(done.cancelled());
        assert_eq!(probe.polls(), 1, "polled after a cancel was pending");
        drop(done);
        assert_cancelled_and_released(join, &probe, "cancelled twice, still pending");
        assert_eq!(sched.alive(), 0, "task allocation not freed");
    });
}
