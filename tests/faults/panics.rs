//! Panicking destructors and done callbacks (invariant 7: no worker thread unwinds; rule
//! S8: a callback's panic goes to the exception handler and the loop goes on).

use std::future::{pending, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll};

use aioloop::{ExceptionContext, Runtime, TaskError, TaskRef};

use crate::common::{guarded, new_loop, runtime, wait_until, Counted, NO_WAIT};

/// Panics with its message when dropped.
pub struct PanicOnDrop(pub &'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

/// A future that completes at once and panics when dropped afterwards.
struct ReadyThenPanicOnDrop(#[allow(dead_code)] PanicOnDrop);

impl Future for ReadyThenPanicOnDrop {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
        Poll::Ready(5)
    }
}

/// The message of a task's panic.
fn panic_message(r: Result<impl std::fmt::Debug, TaskError>) -> String {
    match r {
        Err(TaskError::Panicked(p)) => p.message().unwrap_or_default().to_owned(),
        other => panic!("expected a panic, got {other:?}"),
    }
}

/// The runtime's only worker still runs tasks (and so did not unwind).
fn assert_worker_alive(rt: &Runtime) {
    for i in 0..100u32 {
        assert_eq!(rt.block_on(rt.spawn(async move { i })).unwrap(), i);
    }
}

/// Issue 8 item 6, probe "panicking Drop when cancelled" (invariant 7): a suspended task
/// whose future panics when dropped is cancelled; the task ends with that panic as its
/// outcome, and the runtime's only worker goes on running tasks.
#[test]
fn drop_panics_when_cancelled() {
    let msg = guarded("drop panics when cancelled", || {
        let rt = runtime(1);
        let (tx, started) = mpsc::channel();
        let t = rt.spawn(async move {
            let _bomb = PanicOnDrop("drop on cancel");
            tx.send(()).unwrap();
            pending::<()>().await
        });
        started.recv().unwrap();
        assert!(t.cancel(None));
        let msg = panic_message(rt.block_on(t));
        assert_worker_alive(&rt);
        msg
    });
    assert_eq!(msg, "drop on cancel");
}

/// Issue 8 item 6, probe "panicking Drop when completing" (invariant 7): a future that
/// completes and panics when dropped afterwards ends its task with the panic (its value is
/// dropped); the worker survives.
#[test]
fn drop_panics_after_completion() {
    let msg = guarded("drop panics after completion", || {
        let rt = runtime(1);
        let msg = panic_message(
            rt.block_on(rt.spawn(ReadyThenPanicOnDrop(PanicOnDrop("drop on completion")))),
        );
        assert_worker_alive(&rt);
        msg
    });
    assert_eq!(msg, "drop on completion");
}

/// The same on a `LocalLoop`: the panic is the task's outcome, `run_until_complete`
/// returns, and the loop keeps running.
#[test]
fn drop_panics_after_completion_on_local_loop() {
    let lp = new_loop();
    let t = lp
        .create_task(ReadyThenPanicOnDrop(PanicOnDrop("local drop")))
        .unwrap();
    let r = lp.run_until_complete(t).expect("the loop survives");
    assert_eq!(panic_message(r), "local drop");
    assert_eq!(lp.run_until_complete(async { 3 }).unwrap(), 3);
}

/// Issue 8 item 6, probe "panicking Drop at shutdown" (invariant 7, shutdown order step 3):
/// dropping a runtime whose pending tasks panic when dropped does not panic, and still
/// drops every other task's future.
#[test]
fn drop_panics_at_shutdown() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    guarded("drop panics at shutdown", move || {
        let rt = runtime(2);
        let polled = Arc::new(AtomicUsize::new(0));
        for i in 0..20 {
            let (guard, polled) = (Counted(d.clone()), polled.clone());
            rt.spawn(async move {
                let _guard = guard;
                let _bomb = (i % 2 == 0).then(|| PanicOnDrop("drop at shutdown"));
                polled.fetch_add(1, SeqCst);
                pending::<()>().await
            })
            .detach();
        }
        wait_until("every task suspended", || polled.load(SeqCst) == 20);
        drop(rt);
    });
    assert_eq!(drops.load(SeqCst), 20);
}

/// Issue 8 item 6, probe "an output whose Drop panics" (invariant 7): a detached task's
/// value is dropped by the worker that completes it; its panic is caught and the worker
/// goes on (eight times on the only worker).
#[test]
fn output_drop_panics_on_the_worker() {
    guarded("output drop panics", || {
        let rt = runtime(1);
        for _ in 0..8 {
            let (go, wait) = futures_channel::oneshot::channel::<()>();
            // Detached before it can complete, so the worker drops the value.
            rt.spawn(async move {
                wait.await.unwrap();
                PanicOnDrop("output drop")
            })
            .detach();
            go.send(()).unwrap();
            assert_worker_alive(&rt);
        }
    });
}

/// Every report's message and panic message, in order.
type Reports = Arc<Mutex<Vec<(String, String)>>>;

/// An exception handler recording every report's message and panic message.
fn recorder() -> (aioloop::ExceptionHandler, Reports) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let handler: aioloop::ExceptionHandler = Arc::new(move |ctx: &ExceptionContext| {
        let panic = ctx
            .exception
            .as_ref()
            .and_then(|p| p.message().map(str::to_owned))
            .unwrap_or_default();
        s.lock().unwrap().push((ctx.message.clone(), panic));
    });
    (handler, seen)
}

/// A done callback that panics, and one that records it ran.
#[allow(clippy::type_complexity)]
fn callbacks(
    ran: &Arc<AtomicUsize>,
) -> (
    Arc<impl Fn(&TaskRef) + Send + Sync + 'static>,
    Arc<impl Fn(&TaskRef) + Send + Sync + 'static>,
) {
    let ran = ran.clone();
    (
        Arc::new(|_: &TaskRef| panic!("callback boom")),
        Arc::new(move |_: &TaskRef| {
            ran.fetch_add(1, SeqCst);
        }),
    )
}

/// Issue 8 item 6, probe "panicking done callbacks" (rules F5, S8, invariant 7): on a
/// runtime, a panicking done callback — on a task that completes, one that is cancelled, one
/// that panics, and one already done — is reported to the exception handler as "Exception
/// in callback", the next callback still runs, and the only worker goes on.
#[test]
fn panicking_done_callbacks_on_runtime() {
    let (reports, ran) = guarded("panicking done callbacks", || {
        let rt = runtime(1);
        let (handler, seen) = recorder();
        rt.handle().set_exception_handler(Some(handler));
        let ran = Arc::new(AtomicUsize::new(0));

        let ok = rt.spawn(async { 1 });
        let cancelled = rt.spawn(pending::<()>());
        let panicked = rt.spawn(async { panic!("task boom") });
        for t in [ok.task_ref(), cancelled.task_ref(), panicked.task_ref()] {
            let (bad, good) = callbacks(&ran);
            t.add_done_callback(bad);
            t.add_done_callback(good);
        }
        cancelled.cancel(None);
        assert_eq!(rt.block_on(ok).unwrap(), 1);
        assert!(rt.block_on(cancelled).unwrap_err().is_cancelled());
        assert_eq!(panic_message(rt.block_on(panicked)), "task boom");

        let done = rt.spawn(async {});
        wait_until("done", || done.done());
        let (bad, good) = callbacks(&ran);
        done.add_done_callback(bad);
        done.add_done_callback(good);

        wait_until("every good callback", || ran.load(SeqCst) == 4);
        assert_worker_alive(&rt);
        wait_until("four reports", || seen.lock().unwrap().len() >= 4);
        let reports = seen.lock().unwrap().clone();
        (reports, ran.load(SeqCst))
    });
    assert_eq!(ran, 4);
    assert_eq!(reports.len(), 4, "{reports:?}");
    for (message, panic) in &reports {
        assert!(message.starts_with("Exception in callback"), "{message}");
        assert_eq!(panic, "callback boom");
    }
}

/// The same on a `LocalLoop`: the panic is reported, `run_until_complete` does not unwind,
/// and the loop goes on.
#[test]
fn panicking_done_callbacks_on_local_loop() {
    let lp = new_loop();
    let (handler, seen) = recorder();
    lp.set_exception_handler(Some(handler));
    let ran = Arc::new(AtomicUsize::new(0));
    let t = lp.create_task(async { 2 }).unwrap();
    let (bad, good) = callbacks(&ran);
    t.add_done_callback(bad);
    t.add_done_callback(good);
    assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), 2);
    for _ in 0..3 {
        lp.run_once(NO_WAIT).unwrap();
    }
    assert_eq!(ran.load(SeqCst), 1);
    let reports = seen.lock().unwrap().clone();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].0.starts_with("Exception in callback"));
    assert_eq!(reports[0].1, "callback boom");
    assert_eq!(lp.run_until_complete(async { 3 }).unwrap(), 3);
}
