//! The runtime: building it, `block_on`, `spawn` / `create_task`, `yield_now`, panics in tasks
//! (rule T8), misuse errors, and shutdown freeing every task (rule T11).

use std::collections::HashSet;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::{self, ThreadId};

use aioloop::{
    create_task, try_current_task, yield_now, BuildError, NoRunningLoop, Runtime, Task, TaskError,
};
use futures_channel::oneshot;

mod common;
use common::{panic_message, poll_once, runtime, wait_until, Counted, CountingWake, TIMEOUT};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn assert_cancelled<T: std::fmt::Debug>(p: Poll<Result<T, TaskError>>) {
    match p {
        Poll::Ready(Err(TaskError::Cancelled(c))) => assert_eq!(c.message(), None),
        other => panic!("expected a cancelled task, got {other:?}"),
    }
}

fn whoami() -> (ThreadId, Option<String>) {
    let t = thread::current();
    (t.id(), t.name().map(str::to_owned))
}

// ---------------------------------------------------------------------------------------------
// Building and basic use
// ---------------------------------------------------------------------------------------------

#[test]
fn workers_zero_is_invalid_input() {
    // issue 2 item 4 (bad input gets the typed error): workers(0) is refused.
    let err = Runtime::builder().workers(0).build().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let typed = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<BuildError>())
        .expect("wraps a BuildError");
    assert_eq!(*typed, BuildError::ZeroWorkers);
    // One worker is the smallest runtime that works.
    let rt = runtime(1);
    assert_eq!(rt.num_workers(), 1);
    assert_eq!(rt.block_on(rt.spawn(async { 7 })).unwrap(), 7);
}

#[test]
fn runtime_new_has_one_worker_per_core() {
    // issue 2 item 4: Runtime::new() starts one worker per available core.
    let rt = Runtime::new().unwrap();
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(rt.num_workers(), cores);
    assert_eq!(rt.block_on(async { 1 + 1 }), 2);
}

#[test]
fn worker_threads_are_named() {
    // issue 2 item 4: tasks run on the runtime's named worker threads, never on the caller.
    let rt = Runtime::builder()
        .workers(2)
        .thread_name("svc")
        .build()
        .unwrap();
    let names: HashSet<Option<String>> = rt.block_on(async {
        let tasks: Vec<_> = (0..50).map(|_| create_task(async { whoami().1 })).collect();
        let mut names = HashSet::new();
        for t in tasks {
            names.insert(t.await.unwrap());
        }
        names
    });
    assert!(!names.is_empty());
    for n in &names {
        let n = n.as_deref().expect("worker threads are named");
        assert!(n == "svc-0" || n == "svc-1", "unexpected worker {n}");
    }
}

#[test]
fn block_on_future_need_not_be_send() {
    // rule S6 (run_until_complete runs on the calling thread): a !Send future is fine.
    let rt = runtime(1);
    let shared = std::rc::Rc::new(std::cell::Cell::new(1));
    let v = rt.block_on({
        let shared = shared.clone();
        async move {
            let x = create_task(async { 41 }).await.unwrap();
            shared.set(shared.get() + x);
            shared.get()
        }
    });
    assert_eq!(v, 42);
    assert_eq!(shared.get(), 42);
}

#[test]
fn spawn_from_many_threads() {
    // rule T2: tasks can be created from any thread and all run to completion.
    let rt = runtime(2);
    let tasks: Vec<Task<u64>> = thread::scope(|s| {
        let hs: Vec<_> = (0..4u64)
            .map(|k| {
                let h = rt.handle().clone();
                s.spawn(move || {
                    (0..1_000u64)
                        .map(|i| h.spawn(async move { k * 1_000 + i }))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let sum = rt.block_on(async {
        let mut sum = 0;
        for t in tasks {
            sum += t.await.unwrap();
        }
        sum
    });
    assert_eq!(sum, (0..4_000u64).sum::<u64>());
}

#[test]
fn dropping_task_handle_detaches() {
    // issue 2 item 4 (as asyncio): dropping a Task does not stop it.
    let rt = runtime(2);
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    let t = rt.spawn(async move {
        go_rx.await.unwrap();
        yield_now().await;
        done_tx.send(aioloop::current_task().unwrap().id()).unwrap();
    });
    let id = t.id();
    drop(t);
    go_tx.send(()).unwrap();
    assert_eq!(done_rx.recv_timeout(TIMEOUT).unwrap(), id);
}

// ---------------------------------------------------------------------------------------------
// yield_now and FIFO scheduling
// ---------------------------------------------------------------------------------------------

#[test]
fn yield_now_is_pending_exactly_once() {
    // rule X6: sleep(0) suspends exactly once, asking to be polled again.
    let counter = Arc::new(CountingWake::default());
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let mut y = yield_now();
    assert!(Pin::new(&mut y).poll(&mut cx).is_pending());
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert!(Pin::new(&mut y).poll(&mut cx).is_ready());
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
}

#[test]
fn yield_now_interleaves_round_robin() {
    // rule X6, T2: on one worker, tasks that yield after each step interleave exactly
    // A,B,C,A,B,C,… (each yield is one loop iteration; the run queue is FIFO).
    let rt = runtime(1);
    let log: String = rt
        .block_on(rt.spawn(async {
            let log = Arc::new(Mutex::new(String::new()));
            let tasks: Vec<_> = ['A', 'B', 'C']
                .into_iter()
                .map(|c| {
                    let log = log.clone();
                    create_task(async move {
                        for _ in 0..5 {
                            log.lock().unwrap().push(c);
                            yield_now().await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            let s = log.lock().unwrap().clone();
            s
        }))
        .unwrap();
    assert_eq!(log, "ABCABCABCABCABC");
}

#[test]
fn yield_loop_does_not_starve_others() {
    // rule X6 (with S3): a task that keeps yielding lets the other tasks on its worker run.
    let rt = runtime(1);
    let flag = Arc::new(AtomicBool::new(false));
    let spins = rt
        .block_on(rt.spawn({
            let flag = flag.clone();
            async move {
                let setter = create_task({
                    let flag = flag.clone();
                    async move { flag.store(true, Ordering::SeqCst) }
                });
                let mut spins = 0u64;
                while !flag.load(Ordering::SeqCst) {
                    spins += 1;
                    assert!(spins < 1_000_000, "the setter task never ran");
                    yield_now().await;
                }
                setter.await.unwrap();
                spins
            }
        }))
        .unwrap();
    // The setter was queued behind the spinner: it runs during the spinner's first yield.
    assert_eq!(spins, 1);
}

#[test]
fn create_task_is_fifo_on_one_worker() {
    // rule T2: on one worker, tasks start in creation order.
    let rt = runtime(1);
    let order = rt
        .block_on(rt.spawn(async {
            let log = Arc::new(Mutex::new(Vec::new()));
            let tasks: Vec<_> = (0..100u32)
                .map(|i| {
                    let log = log.clone();
                    create_task(async move { log.lock().unwrap().push(i) })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            let v = log.lock().unwrap().clone();
            v
        }))
        .unwrap();
    assert_eq!(order, (0..100).collect::<Vec<u32>>());
}

#[test]
fn woken_task_runs_next_on_worker_lifo_slot() {
    // rules S3, T2 as diverged on a runtime worker (ARCHITECTURE.md, divergences): the first
    // task a step spawns runs right after that step, ahead of a callback queued before it;
    // the second one spawned keeps FIFO order behind the callback. asyncio (and a LocalLoop)
    // would log callback, first, second.
    let rt = runtime(1);
    let log = rt
        .block_on(rt.spawn(async {
            let log = Arc::new(Mutex::new(Vec::new()));
            let l = log.clone();
            drop(aioloop::Handle::current().call_soon(move || l.lock().unwrap().push("callback")));
            let spawn = |name: &'static str| {
                let log = log.clone();
                create_task(async move { log.lock().unwrap().push(name) })
            };
            let (first, second) = (spawn("first"), spawn("second"));
            first.await.unwrap();
            second.await.unwrap();
            let v = log.lock().unwrap().clone();
            v
        }))
        .unwrap();
    assert_eq!(log, vec!["first", "callback", "second"]);
}

#[test]
fn create_task_schedules_like_call_soon() {
    // rule T2: create_task does not run the task's first step synchronously; it is queued
    // (FIFO) ahead of the creator's own continuation after a yield.
    let rt = runtime(1);
    let log = rt
        .block_on(rt.spawn(async {
            let log = Arc::new(Mutex::new(Vec::new()));
            let child = create_task({
                let log = log.clone();
                async move { log.lock().unwrap().push("child") }
            });
            log.lock().unwrap().push("parent-before-yield");
            yield_now().await;
            log.lock().unwrap().push("parent-after-yield");
            child.await.unwrap();
            let v = log.lock().unwrap().clone();
            v
        }))
        .unwrap();
    assert_eq!(
        log,
        vec!["parent-before-yield", "child", "parent-after-yield"]
    );
}

// ---------------------------------------------------------------------------------------------
// Panics (rule T8)
// ---------------------------------------------------------------------------------------------

#[test]
fn panicking_task_gives_panicked_error() {
    // rule T8: the awaiter gets TaskError::Panicked carrying the panic message.
    let rt = runtime(2);
    let err = rt
        .block_on(rt.spawn(async {
            yield_now().await;
            panic!("boom {}", 7)
        }))
        .unwrap_err();
    assert!(err.is_panic() && !err.is_cancelled());
    assert_eq!(err.to_string(), "task panicked: boom 7");
    let TaskError::Panicked(p) = err else {
        unreachable!()
    };
    assert_eq!(p.message(), Some("boom 7"));

    // A non-string payload has no message but survives as the payload.
    let err = rt
        .block_on(rt.spawn(async { std::panic::panic_any(42u32) }))
        .unwrap_err();
    let TaskError::Panicked(p) = err else {
        panic!("expected a panic, got {err:?}")
    };
    assert_eq!(p.message(), None);
    assert_eq!(*p.into_payload().downcast::<u32>().unwrap(), 42);
}

#[test]
fn panicking_child_is_reported_to_parent_task() {
    // rule T8: a task awaiting a panicking child gets the error and carries on.
    let rt = runtime(2);
    let out = rt
        .block_on(rt.spawn(async {
            let child = create_task(async { panic!("child failed") });
            let err = child.await.unwrap_err();
            let msg = match err {
                TaskError::Panicked(p) => p.message().map(str::to_owned),
                TaskError::Cancelled(_) => None,
            };
            yield_now().await;
            (msg, "parent still running")
        }))
        .unwrap();
    assert_eq!(
        out,
        (Some("child failed".to_owned()), "parent still running")
    );
}

#[test]
fn worker_survives_panics() {
    // rule T8: after tasks panic, the (single) worker thread is the same thread and still runs
    // tasks, including ones that were pending on it during the panics.
    let rt = runtime(1);
    let before = rt.block_on(rt.spawn(async { whoami() })).unwrap();
    assert_eq!(before.1.as_deref(), Some("aioloop-worker-0"));

    let (tx, rx) = oneshot::channel::<u32>();
    let waiting = rt.spawn(async move { (rx.await.unwrap(), whoami()) });

    for i in 0..20 {
        let err = rt
            .block_on(rt.spawn(async move { panic!("panic #{i}") }))
            .unwrap_err();
        match err {
            TaskError::Panicked(p) => assert_eq!(p.message(), Some(format!("panic #{i}").as_str())),
            other => panic!("expected a panic, got {other:?}"),
        }
    }
    for _ in 0..20 {
        rt.spawn(async { panic!("detached panic") }).detach();
    }

    let after = rt.block_on(rt.spawn(async { whoami() })).unwrap();
    assert_eq!(after, before);
    tx.send(5).unwrap();
    let (v, on) = rt.block_on(waiting).unwrap();
    assert_eq!(v, 5);
    assert_eq!(on, before);
}

#[test]
fn panic_in_block_on_future_leaves_runtime_usable() {
    // rule T8, L6, L7: a panic in the main future propagates to block_on's caller; the loop
    // context is cleared, the main task is no longer listed, and the runtime works on.
    let rt = runtime(1);
    let main_id = Arc::new(AtomicUsize::new(0));
    let payload = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async {
            main_id.store(
                aioloop::current_task().unwrap().id() as usize,
                Ordering::SeqCst,
            );
            yield_now().await;
            panic!("main boom")
        })
    }))
    .unwrap_err();
    assert_eq!(panic_message(&*payload), "main boom");
    assert_eq!(try_current_task(), Err(NoRunningLoop));
    assert!(rt.all_tasks().is_empty());
    let (again, cur) = rt.block_on(async {
        (
            create_task(async { 3 }).await.unwrap(),
            aioloop::current_task().unwrap().id(),
        )
    });
    assert_eq!(again, 3);
    assert_ne!(cur as usize, main_id.load(Ordering::SeqCst));
}

// ---------------------------------------------------------------------------------------------
// Nested loops (rule S6)
// ---------------------------------------------------------------------------------------------

#[test]
fn block_on_inside_block_on_panics() {
    // rule S6: running a loop while another runs on this thread is refused, and the outer
    // loop is left intact.
    let rt = runtime(1);
    let other = runtime(1);
    rt.block_on(async {
        let main = aioloop::current_task();
        for inner in [&rt, &other] {
            let payload =
                catch_unwind(AssertUnwindSafe(|| inner.block_on(async { 1 }))).unwrap_err();
            let msg = panic_message(&*payload);
            assert!(
                msg.contains("Cannot run the event loop while another loop is running"),
                "{msg}"
            );
        }
        assert_eq!(aioloop::current_task(), main);
        assert_eq!(aioloop::all_tasks().len(), 1);
        assert_eq!(create_task(async { 5 }).await.unwrap(), 5);
    });
    assert!(other.all_tasks().is_empty());
}

#[test]
fn block_on_on_a_worker_panics() {
    // rule S6, T8: a worker thread runs a loop, so block_on inside a task panics (and the
    // panic reaches the awaiter as TaskError::Panicked).
    let rt = Arc::new(runtime(1));
    let other = Arc::new(runtime(1));
    for target in [rt.clone(), other.clone()] {
        let err = rt
            .block_on(rt.spawn(async move { target.block_on(async { 1 }) }))
            .unwrap_err();
        let TaskError::Panicked(p) = err else {
            panic!("expected a panic, got {err:?}")
        };
        let msg = p.message().unwrap_or_default();
        assert!(
            msg.contains("Cannot run the event loop while another loop is running"),
            "{msg}"
        );
    }
    assert_eq!(rt.block_on(rt.spawn(async { 2 })).unwrap(), 2);
}

// ---------------------------------------------------------------------------------------------
// Shutdown frees everything (rule T11, issue 2 item 4)
// ---------------------------------------------------------------------------------------------

#[test]
fn drop_runtime_frees_100k_pending_tasks() {
    // rule T11: dropping a runtime with 100,000 pending tasks drops every one of their
    // futures; handles kept past the drop resolve to Cancelled.
    const N: usize = 100_000;
    let rt = runtime(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let mut kept: Vec<Task<()>> = Vec::new();
    for i in 0..N {
        let guard = Counted(drops.clone());
        let started_in = started.clone();
        let t = rt.spawn(async move {
            let _guard = guard;
            started_in.fetch_add(1, Ordering::Relaxed);
            std::future::pending::<()>().await
        });
        if i % 1_000 == 0 {
            kept.push(t);
        }
        if i == N / 2 - 1 {
            // The first half has been polled (suspended inside pending()); the second half
            // may still sit in the run queues when the runtime is dropped.
            wait_until("the first half to start", || {
                started.load(Ordering::Relaxed) >= N / 2
            });
        }
    }
    assert_eq!(rt.all_tasks().len(), N);
    assert_eq!(drops.load(Ordering::SeqCst), 0);

    drop(rt);
    assert_eq!(drops.load(Ordering::SeqCst), N);

    // Kept handles: half polled with a no-op waker, half awaited on another runtime.
    let other = runtime(1);
    let second = kept.split_off(kept.len() / 2);
    for t in &mut kept {
        assert!(t.done());
        assert_cancelled(poll_once(t));
    }
    for t in second {
        match other.block_on(t) {
            Err(TaskError::Cancelled(_)) => {}
            r => panic!("expected a cancelled task, got {r:?}"),
        }
    }
    assert!(other.all_tasks().is_empty());
}

struct HoldsOwnWaker {
    waker: Option<Waker>,
    _counted: Counted,
    polled: Option<mpsc::Sender<()>>,
}

impl Future for HoldsOwnWaker {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.waker = Some(cx.waker().clone());
        if let Some(tx) = self.polled.take() {
            tx.send(()).unwrap();
        }
        Poll::Pending
    }
}

#[test]
fn task_holding_its_own_waker_is_freed() {
    // rule T11: a pending task whose future holds the task's own waker (a reference cycle) is
    // freed by shutdown.
    let rt = runtime(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let mut t = rt.spawn(HoldsOwnWaker {
        waker: None,
        _counted: Counted(drops.clone()),
        polled: Some(tx),
    });
    rx.recv_timeout(TIMEOUT).expect("task polled");
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(rt);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_cancelled(poll_once(&mut t));
}

#[test]
fn tasks_holding_each_others_wakers_are_freed() {
    // rule T11: two pending tasks whose futures hold each other's wakers are freed by
    // shutdown, also when their handles were dropped (detached).
    let rt = runtime(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let wakers: Arc<Mutex<Vec<Waker>>> = Arc::default();
    let (tx, rx) = mpsc::channel();
    for _ in 0..2 {
        let wakers = wakers.clone();
        let guard = Counted(drops.clone());
        let tx = tx.clone();
        let mut sent = false;
        rt.spawn(std::future::poll_fn(move |cx| {
            let _keep = &guard;
            wakers.lock().unwrap().push(cx.waker().clone());
            if !sent {
                sent = true;
                tx.send(()).unwrap();
            }
            Poll::<()>::Pending
        }))
        .detach();
    }
    for _ in 0..2 {
        rx.recv_timeout(TIMEOUT).expect("task polled");
    }
    drop(rt);
    assert_eq!(drops.load(Ordering::SeqCst), 2);
    assert_eq!(Arc::strong_count(&wakers), 1, "the futures were dropped");
    // Only the wakers are left in the vector; waking them after shutdown is harmless.
    for w in wakers.lock().unwrap().drain(..) {
        w.wake();
    }
}

#[test]
fn waker_outliving_runtime_is_harmless() {
    // rule T11: a waker kept outside the runtime can be used and dropped after the runtime is
    // gone; the task's future was still dropped at shutdown.
    let rt = runtime(1);
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel::<Waker>();
    let guard = Counted(drops.clone());
    let mut sent = false;
    let mut t = rt.spawn(std::future::poll_fn(move |cx| {
        let _keep = &guard;
        if !sent {
            sent = true;
            tx.send(cx.waker().clone()).unwrap();
        }
        Poll::<()>::Pending
    }));
    let waker = rx.recv_timeout(TIMEOUT).expect("task polled");
    drop(rt);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    waker.wake_by_ref();
    let copy = waker.clone();
    copy.wake();
    assert_cancelled(poll_once(&mut t));
    drop(t);
    waker.wake();
}

#[test]
fn pending_futures_are_dropped_on_the_dropping_thread() {
    // rule T11 (as documented on Runtime): unfinished futures are dropped by the thread that
    // drops the runtime.
    struct RecordThread(Arc<Mutex<Vec<ThreadId>>>);
    impl Drop for RecordThread {
        fn drop(&mut self) {
            self.0.lock().unwrap().push(thread::current().id());
        }
    }
    let rt = runtime(2);
    let seen: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
    let (tx, rx) = mpsc::channel();
    for _ in 0..10 {
        let rec = RecordThread(seen.clone());
        let tx = tx.clone();
        rt.spawn(async move {
            let _rec = rec;
            tx.send(()).unwrap();
            std::future::pending::<()>().await
        })
        .detach();
    }
    for _ in 0..10 {
        rx.recv_timeout(TIMEOUT).expect("task started");
    }
    let dropper = thread::spawn(move || {
        drop(rt);
        thread::current().id()
    });
    let dropper_id = dropper.join().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 10);
    assert!(seen.iter().all(|id| *id == dropper_id));
}

#[test]
fn spawn_after_runtime_dropped_is_cancelled() {
    // rule T11, T2: a task spawned through a handle after the runtime is gone is cancelled at
    // once: its future is dropped unrun.
    let rt = runtime(1);
    let h = rt.handle().clone();
    drop(rt);
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicBool::new(false));
    let guard = Counted(drops.clone());
    let ran2 = ran.clone();
    let mut t = h.spawn(async move {
        let _guard = guard;
        ran2.store(true, Ordering::SeqCst);
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(!ran.load(Ordering::SeqCst));
    assert!(t.done());
    assert_cancelled(poll_once(&mut t));
    assert!(h.all_tasks().is_empty());
}

/// A searching worker that finds nothing sleeps (runtime/worker.rs, idle.rs): once a
/// runtime is idle, every one of its worker
/// threads is asleep (`S` in `/proc/self/task/*/stat`). A worker that kept spinning would
/// stay runnable and the wait below would time out.
#[cfg(target_os = "linux")]
#[test]
fn idle_workers_stop_spinning_and_sleep() {
    let rt = Runtime::builder()
        .workers(2)
        .thread_name("spin-test")
        .build()
        .expect("runtime builds");
    rt.block_on(rt.spawn(async {})).expect("task completed");
    let worker_states = || -> Vec<char> {
        let mut states = Vec::new();
        for entry in std::fs::read_dir("/proc/self/task").expect("procfs") {
            let dir = entry.expect("task entry").path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if !comm.starts_with("spin-test") {
                continue;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
            // The state is the field after the parenthesised command name.
            if let Some(state) = stat.rsplit(") ").next().and_then(|r| r.chars().next()) {
                states.push(state);
            }
        }
        states
    };
    wait_until("both workers asleep", || {
        let states = worker_states();
        states.len() == 2 && states.iter().all(|&s| s == 'S')
    });
}
