//! Model 2 (issue 2, item 7): the park/notify handshake (`runtime/idle.rs`, "the parking
//! protocol"; `Shared::schedule_remote`, `Shared::notify_parked`, `Shared::park_worker`).
//!
//! The workers are the real worker loop (`runtime::worker::run`) run on loom threads, with
//! the loom double of the parker (`runtime/park.rs`: a sticky flag under a mutex and
//! condvar). Tasks are spawned through the real `Handle::spawn`. A lost wake-up leaves the
//! worker parked for good and the thread awaiting the task blocked: loom reports a deadlock.
//! Every model ends with the runtime's shutdown order (flag and unpark, join the workers,
//! cancel and drain), and checks that nothing is left queued. A task allocation that is
//! never freed keeps the runtime's shared state alive through its scheduler handle, and with
//! it the loom `Arc`s of the queues: loom fails the model with "Arc leaked".

use aioloop::loom_internals::TestRuntime;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// 2(a) One worker: a task pushed from outside (`Shared::schedule_remote`: injector push,
/// `SeqCst` fence, `worker_to_notify`) racing the worker going to sleep (`park_worker`:
/// announce, fence, re-check the queues, park). Either the worker's re-check sees the task
/// or the pusher sees the worker parked and unparks it; the task runs either way.
#[test]
fn remote_push_races_worker_parking() {
    loom::model(|| {
        let rt = Arc::new(TestRuntime::new(1));
        let worker = {
            let rt = rt.clone();
            thread::spawn(move || rt.run_worker(0))
        };

        let task = rt.handle().spawn(async { 7u32 });
        assert_eq!(loom::future::block_on(task).unwrap(), 7);

        rt.begin_shutdown();
        worker.join().unwrap();
        rt.finish();
        assert!(!rt.has_work());
    });
}

/// 2(b) Two real workers; a task spawned from outside spawns a child (`create_task`: a
/// push to its worker's local queue, then `notify_parked`) and then keeps its worker busy
/// until the child has run. The child sits in the busy worker's local queue, so only the
/// other worker can run it, and that worker is searching its peers or going to sleep at
/// that moment: it must be woken (or see the child on its re-check) and steal it.
///
/// Three busy threads: explored with at most one preemption, as 2(c).
#[test]
fn local_push_races_peer_parking() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(model.preemption_bound.map_or(1, |b| b.min(1)));
    model.check(|| {
        let rt = Arc::new(TestRuntime::new(2));
        let workers: Vec<_> = (0..2)
            .map(|i| {
                let rt = rt.clone();
                thread::spawn(move || rt.run_worker(i))
            })
            .collect();

        // Let the workers run first (a yield is not a preemption): they search and park,
        // and the one preemption goes inside the sequence that follows the push.
        thread::yield_now();
        let child_ran = Arc::new((Mutex::new(false), Condvar::new()));
        let parent = {
            let child_ran = child_ran.clone();
            rt.handle().spawn(async move {
                let signal = child_ran.clone();
                let child = aioloop::create_task(async move {
                    *signal.0.lock().unwrap() = true;
                    signal.1.notify_one();
                });
                // Busy until the child has run on the other worker.
                {
                    let mut ran = child_ran.0.lock().unwrap();
                    while !*ran {
                        ran = child_ran.1.wait(ran).unwrap();
                    }
                }
                child.await.is_ok()
            })
        };
        assert!(loom::future::block_on(parent).unwrap());

        rt.begin_shutdown();
        for w in workers {
            w.join().unwrap();
        }
        rt.finish();
        assert!(!rt.has_work());
    });
}

/// 2(c) Two real workers, both idle, and a task pushed from outside: the workers race each
/// other through searching (`transition_worker_to_searching`: at most half search) and
/// parking while the pusher decides whom to wake. Rule 1 says a pusher that sees a searcher
/// wakes nobody, so the searcher must find the task or, parking as the last searcher, see
/// it on its re-check: the task runs either way.
///
/// Three busy threads: explored with at most one preemption whatever `LOOM_MAX_PREEMPTIONS`
/// says (at two it takes 1.2 million executions, seven minutes). One preemption is enough
/// for the interleavings that matter here: a worker pre-empted between its last look at
/// the queues and its parking announcement, with the push landing in between (checked by
/// mutation: without `park_worker`'s re-check, or without the fence in
/// `schedule_remote`, this model deadlocks).
#[test]
fn remote_push_races_two_idle_workers() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(model.preemption_bound.map_or(1, |b| b.min(1)));
    model.check(|| {
        let rt = Arc::new(TestRuntime::new(2));
        let workers: Vec<_> = (0..2)
            .map(|i| {
                let rt = rt.clone();
                thread::spawn(move || rt.run_worker(i))
            })
            .collect();

        // Let the workers run first (a yield is not a preemption), so that the one
        // preemption goes where it matters: inside a worker's search-then-park sequence.
        thread::yield_now();
        let task = rt.handle().spawn(async { 11u32 });
        assert_eq!(loom::future::block_on(task).unwrap(), 11);

        rt.begin_shutdown();
        for w in workers {
            w.join().unwrap();
        }
        rt.finish();
        assert!(!rt.has_work());
    });
}
