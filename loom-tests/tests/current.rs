//! Model 4 (issue 2, item 7): `enter_task` / `leave_task` / `swap_current_task` on two
//! threads (`task/current.rs`, rules L3–L5). Each thread's current-task slot is its own
//! (a loom thread-local): whatever one thread enters, leaves or swaps, the other's slot is
//! unchanged; misuse fails with the typed error and changes nothing.
//!
//! One thread is a worker polling a built-in task (the slot holds it *borrowed* for the
//! poll, `EnterGuard::builtin`), the other uses the public protocol on another built-in
//! task's `TaskRef` (the slot holds it *owned*). Both hold references to tasks whose counts
//! the other thread changes, so loom interleaves every step.

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

#[test]
fn enter_leave_on_two_threads() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let p2 = Probe::new();
        // Task 2: the public-protocol thread's task; polled once on the worker, where it
        // waits on its gate.
        let t2 = sched.spawn(2, Gate::new(&p2, 0));
        let r2 = t2.task_ref();
        // Task 1: polled on the worker thread right after task 2; its only poll runs the
        // checks and returns their result.
        let t1 = {
            let r2 = r2.clone();
            sched.spawn(1, poll_fn(move |_| Poll::Ready(inside_poll(1, &r2))))
        };

        let worker = {
            let sched = sched.clone();
            thread::spawn(move || {
                assert!(current_task().is_none());
                assert!(sched.run_one()); // task 2: pending
                assert!(sched.run_one()); // task 1: the checks
                assert!(current_task().is_none(), "a poll left its task current");
            })
        };
        let public = {
            let r2 = r2.clone();
            thread::spawn(move || {
                assert!(current_task().is_none());
                assert!(leave_task(&r2).is_err(), "L4: leave with nothing current");
                enter_task(&r2).expect("L3: enter on an empty slot");
                assert_eq!(current_task(), Some(r2.clone()));
                let err = enter_task(&r2).expect_err("L3: second enter");
                assert!(err.to_string().starts_with("Cannot enter into task"));
                assert_eq!(swap_current_task(None), Some(r2.clone()));
                assert_eq!(current_task(), None);
                assert_eq!(swap_current_task(Some(&r2)), None);
                leave_task(&r2).expect("L4: leave the current task");
                let err = leave_task(&r2).expect_err("L4: leave twice");
                assert!(err
                    .to_string()
                    .ends_with("does not match the current task None."));
                assert!(current_task().is_none());
            })
        };
        // The main thread's slot never sees the others' tasks.
        assert!(current_task().is_none());
        worker.join().unwrap();
        public.join().unwrap();
        assert!(current_task().is_none());

        let mut t1 = t1;
        let (_, w) = common::counting_waker();
        match common::poll_join(&mut t1, &w) {
            Poll::Ready(Ok(Ok(()))) => {}
            Poll::Ready(Ok(Err(e))) => panic!("inside the poll: {e}"),
            Poll::Ready(Err(e)) => panic!("task 1 failed: {e}"),
            Poll::Pending => panic!("task 1 not complete"),
        }
        // Finish task 2.
        p2.open();
        p2.take_waker().unwrap().wake();
        while sched.run_one() {}
        drop((t1, t2, r2));
        assert_eq!(sched.alive(), 0);
    });
}
