//! Issue 3: done callbacks (`task/done.rs`) racing the task's completion.
//!
//! A registration on one loom thread races the completing poll on another. The Dekker
//! pair (COMPLETE published then the extra block looked for; the block published then
//! COMPLETE looked at) must make every callback run exactly once, and only once the task
//! is observably done.

mod common;

use aioloop::loom_internals::{add_done_hook, shutdown_task, TestScheduler};
use common::{spawn_pending, Gate, Probe};
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

/// A hook registered from another thread while the task completes: it runs exactly once,
/// after the task is done, whichever side gets there first.
#[test]
fn done_hook_races_completion() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let probe = Probe::new();
        probe.open(); // the first poll completes
        let join = sched.spawn(1, Gate::new(&probe, 3));
        let runs = Arc::new(AtomicUsize::new(0));
        let task = join.task_ref();
        let registrar = {
            let runs = runs.clone();
            thread::spawn(move || {
                add_done_hook(&task, move |done| {
                    runs.fetch_add(if done { 1 } else { 100 }, SeqCst);
                });
            })
        };
        assert!(sched.run_one()); // completes the task, firing what is registered
        registrar.join().unwrap();
        assert_eq!(runs.load(SeqCst), 1, "the hook must run exactly once");
        drop(join);
        assert_eq!(sched.alive(), 0, "task allocation not freed");
    });
}

/// Two registrations from two threads race each other and the completion: both run once.
#[test]
fn two_registrations_race_completion() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let probe = Probe::new();
        probe.open();
        let join = sched.spawn(1, Gate::new(&probe, 3));
        let runs = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (task, runs) = (join.task_ref(), runs.clone());
                thread::spawn(move || {
                    add_done_hook(&task, move |done| {
                        assert!(done);
                        runs.fetch_add(1, SeqCst);
                    })
                })
            })
            .collect();
        assert!(sched.run_one());
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(runs.load(SeqCst), 2);
        drop(join);
        assert_eq!(sched.alive(), 0);
    });
}

/// A hook registered from one thread while runtime shutdown cancels the idle task on
/// another (`RawTask::shutdown` drops the future there and completes the task cancelled,
/// firing what is registered): the hook runs exactly once, after the task is done, on
/// whichever side sees the other.
#[test]
fn done_hook_races_shutdown() {
    loom::model(|| {
        let sched = TestScheduler::new();
        let (probe, join) = spawn_pending(&sched, 1, 3); // never opened
        let runs = Arc::new(AtomicUsize::new(0));
        let registrar = {
            let (task, runs) = (join.task_ref(), runs.clone());
            thread::spawn(move || {
                add_done_hook(&task, move |done| {
                    runs.fetch_add(if done { 1 } else { 100 }, SeqCst);
                });
            })
        };
        let task = join.task_ref();
        shutdown_task(&task);
        registrar.join().unwrap();
        assert_eq!(
            runs.load(SeqCst),
            1,
            "the hook must run exactly once, when done"
        );
        assert!(task.cancelled());
        drop(task);
        drop(probe.take_waker());
        drop(join);
        assert_eq!(probe.futures_dropped(), 1);
        assert_eq!(sched.alive(), 0, "task allocation not freed");
    });
}
