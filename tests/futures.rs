//! `aioloop::Future` (rules F1–F7, T3): ports of CPython's `test_futures` tests
//! (`initial_state`, `cancel`, `result`, `exception`, `callbacks_invoked_on_set_result`,
//! `remove_done_callback`) and of `test_tasks.test_cancel_inner_future`, plus the rules
//! those do not reach: callbacks never run inline and run in order, the "never retrieved"
//! report, awaiting across loops, many awaiters on a multi-worker runtime.
//!
//! Most tests use a `LocalLoop` stepped with `run_once`, so "queued" and "run" can be told
//! apart exactly.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use aioloop::{
    catch_cancel, ExceptionContext, Future, FutureError, InvalidStateError, SharedError,
};

mod common;
use common::{guarded, new_loop, runtime, wait_until, CountingWake, NO_WAIT};

/// A record of callback calls, shared with the callbacks.
type Bag = Arc<Mutex<Vec<i32>>>;

/// A done callback that appends `tag` to `bag` (CPython's `_make_callback(bag, thing)`).
fn make_callback<T>(bag: &Bag, tag: i32) -> Arc<impl Fn(&Future<T>) + Send + Sync + 'static> {
    let bag = bag.clone();
    Arc::new(move |_: &Future<T>| bag.lock().unwrap().push(tag))
}

fn bag() -> Bag {
    Arc::new(Mutex::new(Vec::new()))
}

fn taken(bag: &Bag) -> Vec<i32> {
    std::mem::take(&mut *bag.lock().unwrap())
}

/// The message of an `InvalidState` error; fails the test on anything else.
#[track_caller]
fn invalid_state<T: std::fmt::Debug>(r: Result<T, impl Into<FutureError>>) -> &'static str {
    match r.map_err(Into::into) {
        Err(FutureError::InvalidState(e)) => e.message(),
        other => panic!("expected InvalidStateError, got {other:?}"),
    }
}

/// The message of a cancellation; fails the test on anything else.
#[track_caller]
fn cancelled_msg<T: std::fmt::Debug>(r: Result<T, FutureError>) -> Option<String> {
    match r {
        Err(FutureError::Cancelled(e)) => e.message().map(str::to_owned),
        other => panic!("expected a cancellation, got {other:?}"),
    }
}

/// What a custom exception handler saw: message, future, error (rule S9).
type Reports = Arc<Mutex<Vec<(String, Option<String>, Option<String>)>>>;

fn recording_handler() -> (Reports, aioloop::ExceptionHandler) {
    let reports: Reports = Arc::default();
    let r = reports.clone();
    let handler = Arc::new(move |ctx: &ExceptionContext| {
        r.lock().unwrap().push((
            ctx.message.clone(),
            ctx.future.clone(),
            ctx.error.as_ref().map(|e| e.to_string()),
        ))
    });
    (reports, handler)
}

// rule F1: a new future is pending; `cancel()` makes it done and cancelled.
#[test]
fn initial_state() {
    let lp = new_loop();
    let f = lp.create_future::<i32>();
    assert!(!f.cancelled());
    assert!(!f.done());
    assert!(f.cancel(None));
    assert!(f.cancelled());
    assert!(f.done());
}

// rules F2–F4: a cancelled future: `result()`/`exception()` give the cancellation with its
// message, setting it fails, cancelling it again returns false.
#[test]
fn cancel() {
    let lp = new_loop();
    let f = lp.create_future::<i32>();
    assert!(f.cancel(Some("my message")));
    assert!(f.cancelled());
    assert!(f.done());
    assert_eq!(cancelled_msg(f.result()).as_deref(), Some("my message"));
    assert_eq!(cancelled_msg(f.exception()).as_deref(), Some("my message"));
    assert_eq!(invalid_state(f.set_result(1)), "invalid state");
    assert_eq!(invalid_state(f.set_exception("x")), "invalid state");
    assert!(!f.cancel(None));
    assert_eq!(cancelled_msg(f.result()).as_deref(), Some("my message"));
}

// rules F2, F3: `result()` before and after `set_result`.
#[test]
fn result() {
    let lp = new_loop();
    let f = lp.create_future::<i32>();
    assert_eq!(invalid_state(f.result()), "Result is not ready.");
    f.set_result(42).unwrap();
    assert!(!f.cancelled());
    assert!(f.done());
    assert_eq!(f.result().unwrap(), 42);
    assert!(f.exception().unwrap().is_none());
    assert_eq!(invalid_state(f.set_result(1)), "invalid state");
    assert_eq!(invalid_state(f.set_exception("x")), "invalid state");
    assert!(!f.cancel(None));
    assert_eq!(f.result().unwrap(), 42, "a failed set changes nothing");
}

// rules F2, F3: `exception()` before and after `set_exception`; every reader shares the
// one stored error.
#[test]
fn exception() {
    let lp = new_loop();
    let f = lp.create_future::<i32>();
    assert_eq!(invalid_state(f.exception()), "Exception is not set.");
    f.set_exception(std::io::Error::other("boom")).unwrap();
    assert!(!f.cancelled());
    assert!(f.done());
    let Err(FutureError::Exception(from_result)) = f.result() else {
        panic!("result() must give the stored error")
    };
    assert_eq!(from_result.to_string(), "boom");
    let from_exception: SharedError = f.exception().unwrap().unwrap();
    assert!(
        Arc::ptr_eq(&from_result, &from_exception),
        "one shared error"
    );
    assert!(from_exception.downcast_ref::<std::io::Error>().is_some());
    assert_eq!(invalid_state(f.set_result(1)), "invalid state");
    assert_eq!(invalid_state(f.set_exception("again")), "invalid state");
    assert!(!f.cancel(None));
}

/// Registers a callback that records `read(future)`, completes the future with `complete`
/// and checks that the callback ran in the next iteration, exactly once, and not before.
fn assert_callback_runs_once_after(
    complete: impl FnOnce(&Future<i32>),
    read: fn(&Future<i32>) -> String,
    expected: &str,
) {
    let lp = new_loop();
    let f = lp.create_future::<i32>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    f.add_done_callback(Arc::new(move |fut: &Future<i32>| {
        s.lock().unwrap().push(read(fut))
    }));
    assert!(seen.lock().unwrap().is_empty());
    complete(&f);
    assert!(seen.lock().unwrap().is_empty(), "called inline");
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(*seen.lock().unwrap(), [expected]);
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(*seen.lock().unwrap(), [expected], "called more than once");
}

// rule F5: a done callback is not called by `set_result` itself, but in the next loop
// iteration, once, with the future.
#[test]
fn callbacks_invoked_on_set_result() {
    assert_callback_runs_once_after(
        |f| f.set_result(5).unwrap(),
        |f| f.result().unwrap().to_string(),
        "5",
    );
}

// rule F5: the same for `set_exception` (CPython's `callbacks_invoked_on_set_exception`).
#[test]
fn callbacks_invoked_on_set_exception() {
    assert_callback_runs_once_after(
        |f| f.set_exception("bad").unwrap(),
        |f| f.exception().unwrap().unwrap().to_string(),
        "bad",
    );
}

// rule F5: `remove_done_callback` removes every registration of that callback and says
// how many; the others still run, in order.
#[test]
fn remove_done_callback() {
    let lp = new_loop();
    let bag = bag();
    let f = lp.create_future::<&str>();
    let cb1 = make_callback(&bag, 42);
    let cb2 = make_callback(&bag, 17);
    let cb3 = make_callback(&bag, 100);
    f.add_done_callback(cb1.clone());
    f.add_done_callback(cb2.clone());
    f.add_done_callback(cb3.clone());
    assert_eq!(f.remove_done_callback(&cb1), 1);
    assert_eq!(
        f.remove_done_callback(&cb1),
        0,
        "removing again changes nothing"
    );
    lp.run_once(NO_WAIT).unwrap();
    assert!(taken(&bag).is_empty());
    f.set_result("foo").unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(taken(&bag), [17, 100]);
    assert_eq!(f.result().unwrap(), "foo");

    // CPython's `_test_callbacks_remove_third`/duplicates: every registration goes.
    let g = lp.create_future::<&str>();
    g.add_done_callback(cb1.clone());
    g.add_done_callback(cb2.clone());
    g.add_done_callback(cb1.clone());
    g.add_done_callback(cb3.clone());
    g.add_done_callback(cb1.clone());
    assert_eq!(g.remove_done_callback(&cb1), 3);
    g.set_result("bar").unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(taken(&bag), [17, 100]);
    assert_eq!(g.remove_done_callback(&cb2), 0, "queued callbacks are gone");
}

// rule F5: callbacks are queued in registration order, never run inline — also by
// `cancel`, and also when the future is completed from inside the loop.
#[test]
fn callbacks_never_synchronous_and_in_registration_order() {
    let lp = new_loop();
    let bag = bag();
    let f = lp.create_future::<i32>();
    for tag in 0..10 {
        f.add_done_callback(make_callback(&bag, tag));
    }
    let (setter, b) = (f.clone(), bag.clone());
    lp.call_soon(move || {
        assert!(setter.cancel(None));
        assert!(b.lock().unwrap().is_empty(), "run inside cancel()");
    })
    .unwrap();
    lp.run_once(NO_WAIT).unwrap(); // runs the setter; the callbacks are queued behind it
    assert!(
        taken(&bag).is_empty(),
        "callbacks ran in the setter's iteration"
    );
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(taken(&bag), (0..10).collect::<Vec<_>>());
}

// rule F5: a callback added to a done future is queued at once, not run inline.
#[test]
fn callback_added_to_done_future_is_queued_not_run_inline() {
    let lp = new_loop();
    let bag = bag();
    let f = lp.create_future::<i32>();
    f.set_result(1).unwrap();
    f.add_done_callback(make_callback(&bag, 1));
    f.add_done_callback(make_callback(&bag, 2));
    assert!(taken(&bag).is_empty(), "run inside add_done_callback()");
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(taken(&bag), [1, 2]);
}

// rule T3 (CPython's `test_cancel_inner_future`): the future a task awaits is cancelled; the
// task receives the cancellation from its await and, re-raising it, ends cancelled.
#[test]
fn cancel_inner_future() {
    let lp = new_loop();
    let f = lp.create_future::<i32>();
    let inner = f.clone();
    let t = lp
        .create_task(async move {
            if let Err(FutureError::Cancelled(e)) = inner.await {
                e.reraise().await; // `await f` raising CancelledError out of the task
            }
            12
        })
        .unwrap();
    lp.run_once(NO_WAIT).unwrap(); // start the task
    assert!(f.cancel(None));
    let r = lp.run_until_complete(t).unwrap();
    assert!(r.unwrap_err().is_cancelled());
    assert!(f.cancelled());
}

// rule T3: cancelling a task that awaits a future cancels that future (with the message);
// the task ends cancelled.
#[test]
fn cancelling_task_cancels_awaited_future() {
    let lp = new_loop();
    let f = lp.create_future::<i32>();
    let inner = f.clone();
    let t = lp.create_task(inner).unwrap();
    let r = t.task_ref();
    lp.run_once(NO_WAIT).unwrap();
    assert!(!f.done());
    assert!(t.cancel(Some("stop")));
    let out = lp.run_until_complete(t).unwrap();
    assert_eq!(
        out.unwrap_err().to_string(),
        "CancelledError: stop",
        "the task ends cancelled"
    );
    assert!(r.cancelled());
    assert_eq!(cancelled_msg(f.result()).as_deref(), Some("stop"));
}

// rules T3, T6: a catch scope around the await receives the cancellation; the future is
// cancelled all the same, and the task may suppress and finish normally.
#[test]
fn catch_scope_around_future_catches_task_cancellation() {
    let lp = new_loop();
    let f = lp.create_future::<i32>();
    let inner = f.clone();
    let t = lp
        .create_task(async move {
            let caught = catch_cancel(inner.clone()).await.unwrap_err();
            aioloop::current_task().unwrap().uncancel();
            (caught.to_string(), inner.cancelled())
        })
        .unwrap();
    lp.run_once(NO_WAIT).unwrap();
    t.cancel(Some("stop"));
    let (caught, future_cancelled) = lp.run_until_complete(t).unwrap().unwrap();
    assert_eq!(caught, "CancelledError: stop");
    assert!(future_cancelled);
}

// rule F6: on a runtime, the last handle dropped with an unread error reports "Future
// exception was never retrieved" to the custom handler, with the future and the error;
// an error that was read is not reported.
#[test]
fn unretrieved_exception_reported_on_runtime() {
    let rt = runtime(2);
    let (reports, handler) = recording_handler();
    rt.handle().set_exception_handler(Some(handler));

    let read = rt.handle().create_future::<i32>();
    read.set_exception("seen").unwrap();
    assert!(read.result().is_err());
    drop(read);
    let awaited = rt.handle().create_future::<i32>();
    awaited.set_exception("awaited").unwrap();
    assert!(rt.block_on(awaited.clone()).is_err());
    drop(awaited);
    assert!(
        reports.lock().unwrap().is_empty(),
        "a retrieved error was reported"
    );

    let f = rt.handle().create_future::<i32>();
    let other = f.clone();
    f.set_exception(std::io::Error::other("lost")).unwrap();
    drop(f);
    assert!(
        reports.lock().unwrap().is_empty(),
        "reported before the last handle"
    );
    // The last handle is dropped on a worker.
    rt.block_on(rt.spawn(async move { drop(other) })).unwrap();
    let got = reports.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let (message, future, error) = &got[0];
    assert_eq!(message, "Future exception was never retrieved");
    let future = future.as_deref().unwrap();
    assert!(
        future.starts_with("<Future finished exception=") && future.contains("lost"),
        "{future}"
    );
    assert_eq!(error.as_deref(), Some("lost"));
}

// rule F6: the same on a `LocalLoop`; a value or a cancellation is never reported.
#[test]
fn unretrieved_exception_reported_on_local_loop() {
    let lp = new_loop();
    let (reports, handler) = recording_handler();
    lp.set_exception_handler(Some(handler));
    let quiet = lp.create_future::<i32>();
    quiet.set_result(1).unwrap();
    drop(quiet);
    let cancelled = lp.create_future::<i32>();
    cancelled.cancel(None);
    drop(cancelled);
    let checked = lp.create_future::<i32>();
    checked.set_exception("checked").unwrap();
    assert!(checked.exception().unwrap().is_some());
    drop(checked);
    assert!(reports.lock().unwrap().is_empty());

    let f = lp.create_future::<i32>();
    f.set_exception("nobody looked").unwrap();
    drop(f);
    let got = reports.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "Future exception was never retrieved");
    assert_eq!(got[0].2.as_deref(), Some("nobody looked"));
}

// rule F6 (test_futures.test_tb_logger_not_called_after_cancel): `cancel()` on a future that
// failed returns false but counts as retrieving the error, so dropping it reports nothing;
// a control future without the cancel is reported.
#[test]
fn cancel_after_exception_retrieves_it() {
    let lp = new_loop();
    let (reports, handler) = recording_handler();
    lp.set_exception_handler(Some(handler));
    let fut = lp.create_future::<i32>();
    fut.set_exception("boom").unwrap();
    assert!(!fut.cancel(None), "a done future refuses cancel()");
    drop(fut);
    assert!(reports.lock().unwrap().is_empty(), "cancel() retrieved it");

    let control = lp.create_future::<i32>();
    control.set_exception("boom").unwrap();
    drop(control);
    assert_eq!(reports.lock().unwrap().len(), 1);
}

// rule F7: awaiting a future of one loop from a task of another is an error naming both;
// the future is left as it was.
#[test]
fn await_future_of_another_loop_fails() {
    let a = new_loop();
    let b = new_loop();
    let f = a.create_future::<i32>();
    let inner = f.clone();
    let t = b.create_task(inner).unwrap();
    let task_name = t.name();
    let err = b.run_until_complete(t).unwrap().unwrap().unwrap_err();
    let FutureError::DifferentLoop(e) = &err else {
        panic!("expected DifferentLoop, got {err:?}")
    };
    assert_eq!((e.future_loop(), e.awaiting_loop()), (a.id(), b.id()));
    let msg = err.to_string();
    assert!(msg.starts_with("Task <Task pending name='"), "{msg}");
    assert!(msg.contains(&task_name), "{msg}");
    assert!(
        msg.ends_with("got Future <Future pending> attached to a different loop"),
        "{msg}"
    );
    assert!(!f.done());

    // A runtime's future awaited on a LocalLoop, too.
    let rt = runtime(1);
    let g = rt.handle().create_future::<i32>();
    g.set_result(1).unwrap();
    let err = a.run_until_complete(g).unwrap().unwrap_err();
    assert!(matches!(err, FutureError::DifferentLoop(_)), "{err:?}");
}

// rule F5 and awaiting: many tasks on a 2-worker runtime await clones of one future; all
// get the value set from outside the runtime, and a callback runs exactly once.
#[test]
fn many_awaiters_across_worker_threads() {
    guarded("many awaiters", || {
        const N: usize = 64;
        let rt = runtime(2);
        let f = rt.handle().create_future::<u64>();
        let started = Arc::new(AtomicUsize::new(0));
        let called = Arc::new(AtomicUsize::new(0));
        let c = called.clone();
        f.add_done_callback(Arc::new(move |_: &Future<u64>| {
            c.fetch_add(1, Ordering::SeqCst);
        }));
        let tasks: Vec<_> = (0..N as u64)
            .map(|i| {
                let (fut, started) = (f.clone(), started.clone());
                rt.spawn(async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    fut.await.unwrap() + i
                })
            })
            .collect();
        wait_until("every awaiter started", || {
            started.load(Ordering::SeqCst) == N
        });
        f.set_result(1000).unwrap();
        let sum: u64 = rt.block_on(async {
            let mut sum = 0;
            for t in tasks {
                sum += t.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, (0..N as u64).map(|i| 1000 + i).sum::<u64>());
        wait_until("the callback ran", || called.load(Ordering::SeqCst) == 1);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            called.load(Ordering::SeqCst),
            1,
            "callback ran more than once"
        );
    });
}

// Awaiting: an awaiter dropped while pending is not woken; one that stays is, once; an
// awaiter re-polled with a new waker is woken through the new one.
#[test]
fn dropped_awaiter_is_not_woken() {
    let lp = new_loop();
    let f = lp.create_future::<i32>();
    let poll = |fut: &mut Future<i32>, w: &Arc<CountingWake>| {
        let waker = Waker::from(w.clone());
        Pin::new(fut).poll(&mut Context::from_waker(&waker))
    };
    let (gone, stays, old, new) = (
        Arc::new(CountingWake::default()),
        Arc::new(CountingWake::default()),
        Arc::new(CountingWake::default()),
        Arc::new(CountingWake::default()),
    );
    let mut a = f.clone();
    let mut b = f.clone();
    let mut c = f.clone();
    assert!(poll(&mut a, &gone).is_pending());
    assert!(poll(&mut b, &stays).is_pending());
    assert!(poll(&mut c, &old).is_pending());
    assert!(poll(&mut c, &new).is_pending());
    drop(a);
    f.set_result(3).unwrap();
    let wakes = |w: &Arc<CountingWake>| w.0.load(Ordering::SeqCst);
    assert_eq!(
        (wakes(&gone), wakes(&stays), wakes(&old), wakes(&new)),
        (0, 1, 0, 1)
    );
    match poll(&mut b, &stays) {
        Poll::Ready(Ok(3)) => {}
        other => panic!("expected Ready(Ok(3)), got {other:?}"),
    }
}

// rules F2, F3: InvalidStateError's messages and `Display` are asyncio's.
#[test]
fn invalid_state_error_messages() {
    let lp = new_loop();
    let f = lp.create_future::<i32>();
    let Err(FutureError::InvalidState(e)) = f.result() else {
        panic!()
    };
    assert_eq!(e.to_string(), "InvalidStateError: Result is not ready.");
    let Err(FutureError::InvalidState(e)) = f.exception() else {
        panic!()
    };
    assert_eq!(e.to_string(), "InvalidStateError: Exception is not set.");
    f.set_result(1).unwrap();
    let e: InvalidStateError = f.set_result(2).unwrap_err();
    assert_eq!(e.to_string(), "InvalidStateError: invalid state");
    assert_eq!(f.set_exception("x").unwrap_err(), e);
}

// asyncio's repr: pending, cancelled, finished with a result or an exception.
#[test]
fn future_repr() {
    let lp = new_loop();
    let f = lp.create_future::<i32>();
    assert_eq!(format!("{f:?}"), "<Future pending>");
    f.set_result(42).unwrap();
    assert_eq!(format!("{f:?}"), "<Future finished result=42>");
    assert_eq!(f.to_string(), "<Future finished>");
    let g = lp.create_future::<i32>();
    g.cancel(None);
    assert_eq!(g.to_string(), "<Future cancelled>");
    let h = lp.create_future::<i32>();
    h.set_exception("bad").unwrap();
    assert_eq!(format!("{h:?}"), "<Future finished exception=\"bad\">");
    h.exception().unwrap();
}

// `create_future` needs a running loop; it binds to the loop running on this thread.
#[test]
fn create_future_binds_to_the_running_loop() {
    assert!(aioloop::try_create_future::<i32>().is_err());
    let panic = std::panic::catch_unwind(aioloop::create_future::<i32>).unwrap_err();
    assert!(common::panic_message(&*panic).starts_with("no running event loop"));
    let lp = new_loop();
    let id = lp.run_until_complete(async { aioloop::create_future::<i32>().loop_id() });
    assert_eq!(id.unwrap(), lp.id());
    let rt = runtime(1);
    let id = rt.block_on(async { aioloop::create_future::<i32>().loop_id() });
    assert_eq!(id, rt.handle().id());
    let id =
        rt.block_on(rt.spawn(async { aioloop::try_create_future::<i32>().unwrap().loop_id() }));
    assert_eq!(id.unwrap(), rt.handle().id());
    assert_eq!(lp.handle().create_future::<i32>().loop_id(), lp.id());
}

// The handle is `Send + Sync + Clone` for a `Send` value.
#[test]
fn future_is_send_sync() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Future<i32>>();
    check::<Future<std::cell::Cell<i32>>>(); // `Sync` without `T: Sync`: the slot is locked
}
