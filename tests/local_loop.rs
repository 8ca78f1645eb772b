//! `LocalLoop` as an embeddable loop: running it and its misuse errors (rule S6), closing and
//! dropping it (S7), the exception handler for panicking callbacks (S8, S9), `!Send` tasks,
//! its `LoopHandle`, its file descriptor, `next_timeout` and `all_tasks` (L7).

use std::cell::{Cell, RefCell};
use std::os::fd::{AsFd, AsRawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::thread;
use std::time::Duration;

use aioloop::{ExceptionContext, LocalLoop, LoopError, Runtime, TaskError};

mod common;
use common::{guarded, new_loop, panic_message, poll_once, Counted, NO_WAIT, TIMEOUT};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// What an exception handler was told, in a `Send` form.
#[derive(Debug, Clone)]
struct Report {
    message: String,
    panic: Option<String>,
    handle: Option<String>,
    has_task: bool,
}

/// An exception handler that records every report.
fn recording_handler() -> (aioloop::ExceptionHandler, Arc<Mutex<Vec<Report>>>) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r2 = reports.clone();
    let handler: aioloop::ExceptionHandler = Arc::new(move |ctx: &ExceptionContext| {
        r2.lock().unwrap().push(Report {
            message: ctx.message.clone(),
            panic: ctx
                .exception
                .as_ref()
                .map(|e| e.message().unwrap_or("<none>").to_owned()),
            handle: ctx.handle.as_ref().map(|h| format!("{h:?}")),
            has_task: ctx.task.is_some(),
        });
    });
    (handler, reports)
}

// ---------------------------------------------------------------------------------------------
// S6: running
// ---------------------------------------------------------------------------------------------

// rule S6
#[test]
fn run_on_closed_loop_is_an_error() {
    let lp = new_loop();
    lp.close().unwrap();
    let err = lp.run_until_complete(async {}).unwrap_err();
    assert_eq!(err, LoopError::Closed);
    assert_eq!(err.to_string(), "Event loop is closed");
    assert_eq!(lp.run_forever().unwrap_err(), LoopError::Closed);
    assert_eq!(lp.run_once(NO_WAIT).unwrap_err(), LoopError::Closed);
    assert!(!lp.is_running());
}

// rule S6: running a loop from inside one of its own callbacks.
#[test]
fn rerun_from_callback_is_already_running() {
    let lp = Rc::new(new_loop());
    let errs = Rc::new(RefCell::new(Vec::new()));
    let (l2, e2) = (lp.clone(), errs.clone());
    lp.call_soon(move || {
        assert!(l2.is_running());
        let mut e = e2.borrow_mut();
        e.push(l2.run_forever().unwrap_err());
        e.push(l2.run_once(NO_WAIT).unwrap_err());
        e.push(l2.run_until_complete(async { 1 }).unwrap_err());
    })
    .unwrap();
    lp.run_once(NO_WAIT).unwrap();
    let errs = errs.borrow();
    assert_eq!(*errs, vec![LoopError::AlreadyRunning; 3]);
    assert_eq!(errs[0].to_string(), "This event loop is already running");
    assert!(!lp.is_running());
    assert_eq!(
        lp.run_until_complete(async { 2 }).unwrap(),
        2,
        "still usable"
    );
}

// rule S6: running a loop from inside one of its own tasks.
#[test]
fn rerun_from_task_is_already_running() {
    let lp = Rc::new(new_loop());
    let l2 = lp.clone();
    let err = lp
        .run_until_complete(async move { l2.run_until_complete(async { 1 }) })
        .unwrap();
    assert_eq!(err.unwrap_err(), LoopError::AlreadyRunning);

    let l3 = lp.clone();
    let child = lp
        .create_task(async move { (l3.run_forever(), l3.run_once(NO_WAIT)) })
        .unwrap();
    let (a, b) = lp.run_until_complete(child).unwrap().unwrap();
    assert_eq!(a.unwrap_err(), LoopError::AlreadyRunning);
    assert_eq!(b.unwrap_err(), LoopError::AlreadyRunning);
}

// rule S6: a LocalLoop inside another running LocalLoop on the same thread.
#[test]
fn local_loop_inside_another_local_loop() {
    let outer = new_loop();
    let inner = new_loop();
    let errs = outer
        .run_until_complete(async {
            vec![
                inner.run_until_complete(async { 1 }).unwrap_err(),
                inner.run_forever().unwrap_err(),
                inner.run_once(NO_WAIT).unwrap_err(),
            ]
        })
        .unwrap();
    assert_eq!(errs, vec![LoopError::AnotherLoopRunning; 3]);
    assert_eq!(
        errs[0].to_string(),
        "Cannot run the event loop while another loop is running"
    );
    assert!(!inner.is_running());
    assert_eq!(
        inner.run_until_complete(async { 3 }).unwrap(),
        3,
        "the refused loop is intact"
    );
}

// rule S6: a LocalLoop inside a Runtime's block_on, and inside a runtime task.
#[test]
fn local_loop_inside_runtime() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let lp = new_loop();
    let err = rt
        .block_on(async { lp.run_until_complete(async {}) })
        .unwrap_err();
    assert_eq!(err, LoopError::AnotherLoopRunning);
    assert_eq!(
        rt.block_on(async { lp.run_once(NO_WAIT) }).unwrap_err(),
        LoopError::AnotherLoopRunning
    );
    assert!(!lp.is_running());
    lp.run_until_complete(async {}).unwrap();

    let on_worker = rt.spawn(async {
        let lp = LocalLoop::new().unwrap();
        lp.run_until_complete(async {}).unwrap_err()
    });
    let err = guarded("runtime task result", move || rt.block_on(on_worker));
    assert_eq!(err.unwrap(), LoopError::AnotherLoopRunning);
}

// rule S6: the other way round: block_on inside a running LocalLoop panics with the message.
#[test]
fn runtime_block_on_inside_local_loop_panics() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let lp = new_loop();
    let msg = lp
        .run_until_complete(async {
            let r = catch_unwind(AssertUnwindSafe(|| rt.block_on(async { 1 })));
            panic_message(&*r.unwrap_err())
        })
        .unwrap();
    assert!(
        msg.contains("Cannot run the event loop while another loop is running"),
        "{msg}"
    );
    assert_eq!(rt.block_on(async { 4 }), 4);
}

// rule S6
#[test]
fn stop_before_future_completes() {
    let lp = Rc::new(new_loop());
    let l2 = lp.clone();
    let err = lp
        .run_until_complete(async move {
            l2.stop();
            std::future::pending::<()>().await
        })
        .unwrap_err();
    assert_eq!(err, LoopError::StoppedBeforeComplete);
    assert_eq!(
        err.to_string(),
        "Event loop stopped before Future completed."
    );
    assert!(!lp.is_running());

    // Stopped by a callback while the future waits on a long sleep.
    guarded("stopped run_until_complete returns", || {
        let lp = Rc::new(new_loop());
        let l2 = lp.clone();
        lp.call_soon(move || l2.stop()).unwrap();
        let err = lp
            .run_until_complete(aioloop::sleep(Duration::from_secs(3600)))
            .unwrap_err();
        assert_eq!(err, LoopError::StoppedBeforeComplete);
        assert_eq!(lp.run_until_complete(async { 5 }).unwrap(), 5, "usable");
    });
}

// ---------------------------------------------------------------------------------------------
// S7: close, drop
// ---------------------------------------------------------------------------------------------

// rule S7
#[test]
fn close_running_loop_is_an_error() {
    let lp = Rc::new(new_loop());
    let l2 = lp.clone();
    let err = lp.run_until_complete(async move { l2.close() }).unwrap();
    let err = err.unwrap_err();
    assert_eq!(err, LoopError::CloseRunning);
    assert_eq!(err.to_string(), "Cannot close a running event loop");
    assert!(!lp.is_closed());
    let l3 = lp.clone();
    let in_callback = Rc::new(Cell::new(None));
    let c2 = in_callback.clone();
    lp.call_soon(move || c2.set(Some(l3.close()))).unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(in_callback.get(), Some(Err(LoopError::CloseRunning)));
    assert_eq!(lp.run_until_complete(async { 1 }).unwrap(), 1);
}

// rule S7
#[test]
fn close_twice_is_fine() {
    let lp = new_loop();
    assert!(!lp.is_closed());
    lp.close().unwrap();
    lp.close().unwrap();
    assert!(lp.is_closed() && lp.handle().is_closed());
}

// rule S7: a closed loop refuses new work; a refused future is dropped, not run.
#[test]
fn closed_loop_refuses_new_work() {
    let lp = new_loop();
    let h = lp.handle();
    lp.close().unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let fut = |drops: &Arc<AtomicUsize>, ran: &Arc<AtomicUsize>| {
        let g = Counted(drops.clone());
        let ran = ran.clone();
        async move {
            let _g = g;
            ran.fetch_add(1, Ordering::SeqCst);
        }
    };
    assert_eq!(
        lp.create_task(fut(&drops, &ran)).unwrap_err(),
        LoopError::Closed
    );
    assert_eq!(
        lp.create_task_named("x", fut(&drops, &ran)).unwrap_err(),
        LoopError::Closed
    );
    assert_eq!(h.spawn(fut(&drops, &ran)).unwrap_err(), LoopError::Closed);
    assert_eq!(
        lp.call_later(1.0, || unreachable!()).unwrap_err(),
        LoopError::Closed
    );
    assert_eq!(
        lp.call_at(1.0, || unreachable!()).unwrap_err(),
        LoopError::Closed
    );
    assert_eq!(
        h.call_soon_threadsafe(|| unreachable!()).unwrap_err(),
        LoopError::Closed
    );
    assert_eq!(drops.load(Ordering::SeqCst), 3, "refused futures dropped");
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert!(lp.all_tasks().is_empty());
}

// rule S7: close() cancels pending tasks (dropping their futures) and drops queued
// callbacks and timers (from this thread and others) without running them.
#[test]
fn close_cancels_pending_tasks_and_drops_queued_callbacks() {
    let lp = new_loop();
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Rc::new(Cell::new(0));

    // A task that has started and waits forever, and one that never started.
    let g = Counted(drops.clone());
    let started = lp
        .create_task(async move {
            let _g = g;
            std::future::pending::<()>().await
        })
        .unwrap();
    lp.run_once(NO_WAIT).unwrap();
    let g = Counted(drops.clone());
    let r = ran.clone();
    let mut never_started = lp
        .create_task(async move {
            let _g = g;
            r.set(r.get() + 1);
        })
        .unwrap();

    // A callback, a timer, and a post from another thread.
    let g = Counted(drops.clone());
    let r = ran.clone();
    lp.call_soon(move || {
        let _g = &g;
        r.set(r.get() + 1);
    })
    .unwrap();
    let g = Counted(drops.clone());
    let r = ran.clone();
    lp.call_later(0.0, move || {
        let _g = &g;
        r.set(r.get() + 1);
    })
    .unwrap();
    let g = Counted(drops.clone());
    let h = lp.handle();
    thread::spawn(move || {
        h.call_soon_threadsafe(move || {
            let _g = &g;
            unreachable!("posted callback ran after close");
        })
        .unwrap()
    })
    .join()
    .unwrap();

    assert_eq!(lp.all_tasks().len(), 2);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    lp.close().unwrap();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        5,
        "2 futures + 3 callbacks dropped"
    );
    assert_eq!(ran.get(), 0, "nothing ran");
    assert!(started.done() && never_started.done());
    assert!(lp.all_tasks().is_empty());
    match poll_once(&mut never_started) {
        Poll::Ready(Err(TaskError::Cancelled(_))) => {}
        other => panic!("expected a cancelled task, got {other:?}"),
    }
    let mut started = started;
    assert!(matches!(
        poll_once(&mut started),
        Poll::Ready(Err(e)) if e.is_cancelled()
    ));
}

// rule S7: dropping a LocalLoop closes it: pending tasks (also one asleep) are freed.
#[test]
fn drop_frees_pending_tasks() {
    let lp = new_loop();
    let h = lp.handle();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..10 {
        let g = Counted(drops.clone());
        tasks.push(
            lp.create_task(async move {
                let _g = g;
                if i % 2 == 0 {
                    aioloop::sleep(Duration::from_secs(3600)).await;
                } else {
                    std::future::pending::<()>().await;
                }
            })
            .unwrap(),
        );
    }
    lp.run_once(NO_WAIT).unwrap();
    let g = Counted(drops.clone());
    tasks.push(
        lp.create_task(async move {
            let _g = g;
        })
        .unwrap(),
    );
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(lp);
    assert_eq!(drops.load(Ordering::SeqCst), 11);
    assert!(h.is_closed());
    for t in &mut tasks {
        assert!(t.done());
        assert!(matches!(poll_once(t), Poll::Ready(Err(e)) if e.is_cancelled()));
    }
}

// ---------------------------------------------------------------------------------------------
// S8, S9: the exception handler
// ---------------------------------------------------------------------------------------------

// rule S8, S9: a panicking callback (call_soon or timer) goes to the handler with message,
// exception and handle; the loop keeps running the callbacks after it.
#[test]
fn panicking_callback_goes_to_exception_handler() {
    let lp = new_loop();
    let (handler, reports) = recording_handler();
    lp.set_exception_handler(Some(handler));
    assert!(lp.exception_handler().is_some());
    let after = Rc::new(Cell::new(0));
    let h = lp.call_soon(|| panic!("boom")).unwrap();
    let a = after.clone();
    lp.call_soon(move || a.set(a.get() + 1)).unwrap();
    let t = lp.call_later(-1.0, || panic!("timer boom")).unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(after.get(), 1, "the next callback ran");

    let reports = reports.lock().unwrap().clone();
    assert_eq!(reports.len(), 2, "{reports:?}");
    // The timer was due at the start of the iteration, so it ran in it (after the others).
    let (soon, timer) = (&reports[0], &reports[1]);
    for (r, expected, handle) in [
        (soon, "boom", format!("{h:?}")),
        (timer, "timer boom", format!("{:?}", t.handle())),
    ] {
        assert!(
            r.message.starts_with("Exception in callback"),
            "{}",
            r.message
        );
        assert_eq!(r.panic.as_deref(), Some(expected));
        assert_eq!(r.handle.as_deref(), Some(handle.as_str()));
        assert!(!r.has_task);
    }
    assert_eq!(lp.run_until_complete(async { 1 }).unwrap(), 1);
}

// rule S8: a handler that panics itself does not take the loop down.
#[test]
fn panicking_exception_handler_does_not_take_loop_down() {
    let lp = new_loop();
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    lp.set_exception_handler(Some(Arc::new(move |_ctx: &ExceptionContext| {
        c2.fetch_add(1, Ordering::SeqCst);
        panic!("handler is broken");
    })));
    let after = Rc::new(Cell::new(0));
    lp.call_soon(|| panic!("first")).unwrap();
    let a = after.clone();
    lp.call_soon(move || a.set(a.get() + 1)).unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(after.get(), 1, "the loop kept going");
    lp.call_later(-1.0, || panic!("second")).unwrap();
    let a = after.clone();
    lp.call_soon(move || a.set(a.get() + 1)).unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(after.get(), 2);
    assert_eq!(lp.run_until_complete(async { 1 }).unwrap(), 1);

    // Back to the default handler: still survives.
    lp.set_exception_handler(None);
    assert!(lp.exception_handler().is_none());
    lp.call_soon(|| panic!("third")).unwrap();
    let a = after.clone();
    lp.call_soon(move || a.set(a.get() + 1)).unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(after.get(), 3);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "custom handler no longer called"
    );
}

// ---------------------------------------------------------------------------------------------
// LocalLoop specifics
// ---------------------------------------------------------------------------------------------

// rule T2 on a LocalLoop: `!Send` futures through create_task and spawn_local.
#[test]
fn non_send_tasks() {
    let lp = new_loop();
    let shared = Rc::new(RefCell::new(Vec::new()));
    let s = shared.clone();
    let t = lp
        .create_task(async move {
            s.borrow_mut().push("create_task");
            aioloop::sleep(Duration::from_millis(1)).await;
            Rc::new(1)
        })
        .unwrap();
    let s = shared.clone();
    let total = lp
        .run_until_complete(async move {
            let s2 = s.clone();
            let child = aioloop::spawn_local(async move {
                s2.borrow_mut().push("spawn_local");
                aioloop::sleep(Duration::ZERO).await;
                Rc::new(2)
            });
            *t.await.unwrap() + *child.await.unwrap()
        })
        .unwrap();
    assert_eq!(total, 3);
    assert_eq!(*shared.borrow(), vec!["create_task", "spawn_local"]);
}

// rule T2 on a LocalLoop: create_task queues the first step FIFO with call_soon, also while
// the loop is not running.
#[test]
fn create_task_is_fifo_with_call_soon() {
    let lp = new_loop();
    let log = Rc::new(RefCell::new(Vec::new()));
    let push = |s: &'static str| {
        let log = log.clone();
        move || log.borrow_mut().push(s)
    };
    lp.call_soon(push("a")).unwrap();
    let b = push("b");
    lp.create_task(async move { b() }).unwrap();
    lp.call_soon(push("c")).unwrap();
    let d = push("d");
    lp.create_task_named("d", async move { d() }).unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(*log.borrow(), vec!["a", "b", "c", "d"]);
}

// aioloop::create_task (for Send futures) inside a LocalLoop makes a task of that loop, run
// on its thread.
#[test]
fn create_task_inside_local_loop_runs_on_that_loop() {
    let lp = new_loop();
    let me = thread::current().id();
    let (on, owner) = lp
        .run_until_complete(async {
            let t = aioloop::create_task(async { thread::current().id() });
            let owner = t.loop_id();
            (t.await.unwrap(), owner)
        })
        .unwrap();
    assert_eq!(on, me);
    assert_eq!(owner, lp.id());
}

// spawn_local outside a running LocalLoop is a "no running event loop" panic.
#[test]
fn spawn_local_outside_local_loop_panics() {
    let r = catch_unwind(|| {
        aioloop::spawn_local(async {});
    });
    let msg = panic_message(&*r.unwrap_err());
    assert!(msg.contains("no running event loop"), "{msg}");
    let rt = Runtime::builder().workers(1).build().unwrap();
    let msg = rt.block_on(async {
        let r = catch_unwind(|| {
            aioloop::spawn_local(async {});
        });
        panic_message(&*r.unwrap_err())
    });
    assert!(msg.contains("no running event loop"), "{msg}");
}

fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}

// LoopHandle::spawn from another thread, into a loop blocked in run_forever: the task runs on
// the loop's thread, can sleep there, and stops the loop through a handle.
#[test]
fn loop_handle_spawn_from_another_thread() {
    assert_send_sync_clone::<aioloop::LoopHandle>();
    guarded("LoopHandle::spawn wakes run_forever", || {
        let lp = new_loop();
        let loop_thread = thread::current().id();
        let h = lp.handle();
        let spawner = thread::spawn(move || {
            let h2 = h.clone();
            h.spawn(async move {
                let here = thread::current().id();
                let in_task = aioloop::current_task().is_some();
                aioloop::sleep(Duration::from_millis(2)).await;
                h2.stop();
                (here, in_task)
            })
            .unwrap()
        });
        let mut task = spawner.join().unwrap();
        lp.run_forever().unwrap();
        assert!(task.done());
        match poll_once(&mut task) {
            Poll::Ready(Ok((here, in_task))) => {
                assert_eq!(here, loop_thread);
                assert!(in_task);
            }
            other => panic!("{other:?}"),
        }
    });
}

/// Waits (up to [`TIMEOUT`]) for `host` to report the loop's fd, registered as `key`,
/// readable.
#[track_caller]
fn wait_fd_readable(host: &polling::Poller, events: &mut polling::Events, key: usize, what: &str) {
    events.clear();
    host.wait(events, Some(TIMEOUT)).unwrap();
    assert!(events.iter().any(|e| e.key == key && e.readable), "{what}");
}

/// Runs the one posted callback (it increments `ran`), then checks that the loop's fd,
/// registered with `host` as `key`, is quiet again, and deregisters it.
#[track_caller]
fn run_posted_work_then_fd_is_quiet(
    lp: &LocalLoop,
    host: &polling::Poller,
    events: &mut polling::Events,
    key: usize,
    ran: &AtomicUsize,
) {
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    // Once the work is done the fd is quiet again, or a host watching it would spin.
    // (The host's registration is one-shot: re-arm it before asking.)
    host.modify(lp.as_fd(), polling::Event::readable(key))
        .unwrap();
    events.clear();
    host.wait(events, NO_WAIT).unwrap();
    assert!(
        events.is_empty(),
        "fd still readable after the posted work ran"
    );
    host.delete(lp.as_fd()).unwrap();
}

// rule S1: the loop's fd becomes readable when another thread posts work, so a host loop
// watching it wakes up. Checked with a second `polling::Poller` watching the fd.
#[test]
fn fd_becomes_readable_on_call_soon_threadsafe() {
    let lp = new_loop();
    assert_eq!(lp.as_raw_fd(), lp.as_fd().as_raw_fd());
    let host = polling::Poller::new().unwrap();
    let mut events = polling::Events::new();
    // SAFETY: the loop (and so its fd) outlives the registration: it is deleted below (by
    // `run_posted_work_then_fd_is_quiet`), before `lp` is dropped.
    unsafe { host.add(lp.as_raw_fd(), polling::Event::readable(7)) }.unwrap();

    host.wait(&mut events, NO_WAIT).unwrap();
    assert!(events.is_empty(), "nothing posted yet: not readable");

    let ran = Arc::new(AtomicUsize::new(0));
    let (r2, h) = (ran.clone(), lp.handle());
    thread::spawn(move || {
        h.call_soon_threadsafe(move || {
            r2.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(lp.next_timeout(), Some(Duration::ZERO));

    wait_fd_readable(
        &host,
        &mut events,
        7,
        "fd readable after a cross-thread post",
    );
    run_posted_work_then_fd_is_quiet(&lp, &host, &mut events, 7, &ran);
}

// The embedding contract, second half: work posted from another thread *while the loop is
// iterating* (it is awake, so the poster skips the notify) still leaves the fd readable once
// `run_once` returns, so a host waiting on the fd picks it up.
#[test]
fn fd_becomes_readable_for_work_posted_during_a_run() {
    let lp = new_loop();
    let host = polling::Poller::new().unwrap();
    let mut events = polling::Events::new();
    // SAFETY: the loop (and so its fd) outlives the registration: it is deleted below (by
    // `run_posted_work_then_fd_is_quiet`), before `lp` is dropped.
    unsafe { host.add(lp.as_raw_fd(), polling::Event::readable(9)) }.unwrap();

    let ran = Arc::new(AtomicUsize::new(0));
    let (r2, h) = (ran.clone(), lp.handle());
    // This callback runs inside run_once and posts from another thread, joined before it
    // returns: the post lands while the loop is running and awake.
    lp.call_soon(move || {
        thread::spawn(move || {
            h.call_soon_threadsafe(move || {
                r2.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap()
        })
        .join()
        .unwrap();
    })
    .unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "posted during the run: runs next iteration"
    );

    // Drain any readiness left from before the run, then require it to be signalled anew
    // only if the fd is not readable already (level-triggered: it stays readable).
    wait_fd_readable(
        &host,
        &mut events,
        9,
        "fd readable after work was posted during a run",
    );
    run_posted_work_then_fd_is_quiet(&lp, &host, &mut events, 9, &ran);
}

// next_timeout: zero when work is ready, the time to the earliest timer otherwise, None when
// nothing but a wake-up can bring work.
#[test]
fn next_timeout_reports_ready_timer_or_idle() {
    let lp = new_loop();
    assert_eq!(lp.next_timeout(), None, "new loop is idle");

    lp.call_soon(|| {}).unwrap();
    assert_eq!(lp.next_timeout(), Some(Duration::ZERO));
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(lp.next_timeout(), None);

    let t = lp.call_later(5.0, || {}).unwrap();
    let left = lp.next_timeout().unwrap();
    assert!(
        left > Duration::from_secs(4) && left <= Duration::from_secs(5),
        "{left:?}"
    );
    lp.call_later(2.0, || {}).unwrap();
    assert!(lp.next_timeout().unwrap() <= Duration::from_secs(2));
    lp.call_soon(|| {}).unwrap();
    assert_eq!(
        lp.next_timeout(),
        Some(Duration::ZERO),
        "ready beats timers"
    );
    lp.run_once(NO_WAIT).unwrap();
    t.cancel();
    assert!(lp.next_timeout().unwrap() <= Duration::from_secs(2));

    // A due timer: zero.
    lp.call_later(-1.0, || {}).unwrap();
    assert_eq!(lp.next_timeout(), Some(Duration::ZERO));
    lp.run_once(NO_WAIT).unwrap();

    // A task asleep: its deadline; a task waiting on nothing: idle.
    let lp = new_loop();
    lp.create_task(aioloop::sleep(Duration::from_secs(10)))
        .unwrap();
    lp.create_task(std::future::pending::<()>()).unwrap();
    assert_eq!(
        lp.next_timeout(),
        Some(Duration::ZERO),
        "tasks ready to start"
    );
    lp.run_once(NO_WAIT).unwrap();
    let left = lp.next_timeout().unwrap();
    assert!(
        left > Duration::from_secs(9) && left <= Duration::from_secs(10),
        "{left:?}"
    );
    let lp = new_loop();
    lp.create_task(std::future::pending::<()>()).unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(lp.next_timeout(), None);
}

// rule L7 on a LocalLoop: all_tasks lists its unfinished tasks (and the running main task),
// not finished ones and not another loop's.
#[test]
fn all_tasks_on_local_loop() {
    let lp = new_loop();
    let other = new_loop();
    assert!(lp.all_tasks().is_empty());
    let a = lp.create_task(std::future::pending::<()>()).unwrap();
    let b = lp
        .create_task_named("b", std::future::pending::<()>())
        .unwrap();
    let done = lp.create_task(async {}).unwrap();
    let foreign = other.create_task(std::future::pending::<()>()).unwrap();
    let ids = |v: Vec<aioloop::TaskRef>| {
        let mut v: Vec<u64> = v.iter().map(|t| t.id()).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(
        ids(lp.all_tasks()),
        ids(vec![a.task_ref(), b.task_ref(), done.task_ref()])
    );
    lp.run_once(NO_WAIT).unwrap();
    assert!(done.done());
    assert_eq!(ids(lp.all_tasks()), ids(vec![a.task_ref(), b.task_ref()]));
    assert_eq!(b.name(), "b");

    let (inside, current, listed) = lp
        .run_until_complete(async {
            let current = aioloop::current_task().expect("main task is current");
            (ids(aioloop::all_tasks()), current.id(), ids(lp.all_tasks()))
        })
        .unwrap();
    assert_eq!(inside, listed);
    assert_eq!(inside.len(), 3, "a, b and the main task");
    assert!(inside.contains(&current));
    assert!(!inside.contains(&foreign.id()));
    assert_eq!(ids(lp.all_tasks()), ids(vec![a.task_ref(), b.task_ref()]));
    lp.close().unwrap();
    assert!(lp.all_tasks().is_empty());
    assert_eq!(other.all_tasks().len(), 1);
}

// run_until_complete takes a borrowing, non-'static, !Send future.
#[test]
fn run_until_complete_borrows() {
    let lp = new_loop();
    let mut local = vec![1, 2];
    let rc = Rc::new(3);
    let sum = lp
        .run_until_complete(async {
            aioloop::sleep(Duration::from_millis(1)).await;
            local.push(*rc);
            local.iter().sum::<i32>()
        })
        .unwrap();
    assert_eq!(sum, 6);
    assert_eq!(local, vec![1, 2, 3]);
}
