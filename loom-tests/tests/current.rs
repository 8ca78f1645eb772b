//! Model 4 (issue 2, item 7): `enter_task` / `leave_task` / `swap_current_task` on two
//! threads (`task/current.rs`, rules L3–L5). Each thread's current-task slot is its own
//! (a loom thread-local): whatever one thread enters, leaves or swaps, the other's slot is
//! unchanged; misuse fails with the typed error and changes nothing.
//!
//! One thread is a worker polling a built-in task (the slot holds it *borrowed* for the
//! poll, `EnterGuard::builtin`), the other uses the public protocol on another built-in
//! task's `TaskRef` (the slot holds it *owned*). Both hold references to tasks whose counts
//! the other thread changes, so loom interleaves every step. (Issue 8, item 5: one model
//! until then, 46 s at three preemptions; split into the poll racing the whole public
//! sequence, 4(a), and the misuse checks inside a poll racing an owned enter/leave, 4(b).)

mod common;

use std::future::poll_fn;
use std::task::Poll;

use aioloop::loom_internals::{current_task, TestScheduler};
use aioloop::task::{enter_task, leave_task, swap_current_task, TaskRef};
use common::{Gate, Probe};
use loom::thread;

/// The checks a built-in task runs inside its own poll, on the worker thread.
fn inside_poll(me: u64, other: &TaskRef) -> Result<(), String> {
    let cur = current_task().ok_or("no current task inside a poll")?;
    if cur.id() != me {
        return Err(format!("current is {cur}, expected task {me}"));
    }
    // L3: entering while a task is current fails and changes nothing.
    let err = enter_task(other)
        .err()
        .ok_or("enter succeeded over a current task")?;
    if !err.to_string().contains(&format!("id={me}>")) {
        return Err(format!("enter error does not name the current task: {err}"));
    }
    // L4: leaving a task that is not current fails and changes nothing.
    leave_task(other)
        .err()
        .ok_or("leave of a non-current task succeeded")?;
    // L5: swap out and back.
    let prev = swap_current_task(Some(other)).ok_or("swap returned no previous task")?;
    if prev.id() != me || current_task().map(|t| t.id()) != Some(other.id()) {
        return Err("swap did not exchange the slot".into());
    }
    let back = swap_current_task(Some(&prev));
    if back.map(|t| t.id()) != Some(other.id()) {
        return Err("swap back returned the wrong task".into());
    }
    if current_task().map(|t| t.id()) != Some(me) {
        return Err("slot not restored".into());
    }
    Ok(())
}

/// The public protocol (L3–L5) on `task`'s `TaskRef`, on a thread that runs no loop: the
/// slot holds the task *owned*.
fn public_protocol(task: TaskRef) {
    assert!(current_task().is_none());
    assert!(leave_task(&task).is_err(), "L4: leave with nothing current");
    enter_task(&task).expect("L3: enter on an empty slot");
    assert_eq!(current_task(), Some(task.clone()));
    let err = enter_task(&task).expect_err("L3: second enter");
    assert!(err.to_string().starts_with("Cannot enter into task"));
    assert_eq!(swap_current_task(None), Some(task.clone()));
    assert_eq!(current_task(), None);
    assert_eq!(swap_current_task(Some(&task)), None);
    leave_task(&task).expect("L4: leave the current task");
    let err = leave_task(&task).expect_err("L4: leave twice");
    assert!(err
        .to_string()
        .ends_with("does not match the current task None."));
    assert!(current_task().is_none());
}

/// Runs `worker` (which polls one queued task on its thread) and `public` (the public
/// protocol on a thread that runs no loop) on two threads, checks that neither leaked into
/// the model thread's slot, then finishes the gated task 2.
fn on_two_threads(
    sched: &TestScheduler,
    p2: &Probe,
    public: impl FnOnce() + Send + 'static,
    worker: impl FnOnce() + Send + 'static,
) {
    let worker = thread::spawn(move || {
        assert!(current_task().is_none());
        worker();
        assert!(current_task().is_none(), "a poll left its task current");
    });
    let public = thread::spawn(public);
    // The model thread's slot never sees the others' tasks.
    assert!(current_task().is_none());
    worker.join().unwrap();
    public.join().unwrap();
    assert!(current_task().is_none());

    // Finish task 2.
    p2.open();
    if let Some(w) = p2.take_waker() {
        w.wake();
    }
    while sched.run_one() {}
}

/// 4(a) The same task current on two threads at once: *borrowed* on the worker for the
/// length of its poll (`EnterGuard::builtin`; the poll leaves it pending on its gate), and
/// *owned* on the public-protocol thread. Each slot sees only its own thread's changes.
#[test]
fn one_task_current_on_two_threads() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let p2 = Probe::new();
        let t2 = sched.spawn(2, Gate::new(&p2, 0));
        let r2 = t2.task_ref();
        let polling = sched.clone();
        let public = r2.clone();
        on_two_threads(
            &sched,
            &p2,
            move || public_protocol(public),
            move || assert!(polling.run_one()), // task 2: pending
        );
        assert_eq!(p2.polls(), 2);
        drop((t2, r2));
        assert_eq!(sched.alive(), 0);
    });
}

/// 4(b) Misuse inside a built-in poll (the checks of `inside_poll`, on the worker: L3 and L4
/// refused with the typed error, L5 swapping out and back) with another thread's task,
/// while that thread has the task entered (owned in its slot), then leaves it. (The full
/// public sequence, error messages included, races a poll in 4(a).)
#[test]
fn protocol_inside_a_poll_on_two_threads() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let p2 = Probe::new();
        let t2 = sched.spawn(2, Gate::new(&p2, 0));
        let r2 = t2.task_ref();
        // Task 1's only poll runs the checks and returns their result.
        let mut t1 = {
            let r2 = r2.clone();
            sched.spawn(1, poll_fn(move |_| Poll::Ready(inside_poll(1, &r2))))
        };
        // Task 2 is queued first; the worker's poll of it is 4(a)'s business, so it is
        // polled here, before the threads start.
        assert!(sched.run_one());
        let polling = sched.clone();
        let public = r2.clone();
        on_two_threads(
            &sched,
            &p2,
            move || {
                enter_task(&public).expect("L3: enter on an empty slot");
                assert_eq!(current_task(), Some(public.clone()));
                leave_task(&public).expect("L4: leave the current task");
                assert!(current_task().is_none());
            },
            move || assert!(polling.run_one()), // task 1: the checks
        );

        let (_, w) = common::counting_waker();
        match common::poll_join(&mut t1, &w) {
            Poll::Ready(Ok(Ok(()))) => {}
            Poll::Ready(Ok(Err(e))) => panic!("inside the poll: {e}"),
            Poll::Ready(Err(e)) => panic!("task 1 failed: {e}"),
            Poll::Pending => panic!("task 1 not complete"),
        }
        drop((t1, t2, r2));
        assert_eq!(sched.alive(), 0);
    });
}
