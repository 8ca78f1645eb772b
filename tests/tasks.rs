//! The rest of the task API (issue 3, item 1 and 5): done callbacks (F5), `set_name` (T1),
//! non-blocking `result()`, a task awaiting itself (F7), and the exception-handler reports
//! for unretrieved panics (T8, F6) and tasks destroyed while pending (T11).
//!
//! Most tests step a `LocalLoop` with `run_once`, so "callback queued" and "callback ran"
//! are told apart exactly.

use std::cell::RefCell;
use std::future::pending;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use aioloop::{yield_now, ExceptionContext, InvalidStateError, TaskError, TaskRef};

mod common;
use common::{guarded, new_loop, runtime, wait_until, MetaTask, NO_WAIT};

/// A shared log that `Send + Sync` callbacks can write to.
type Log = Arc<Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// A callback that appends `tag` to `log`.
fn logger(log: &Log, tag: &str) -> Arc<impl Fn(&TaskRef) + Send + Sync + 'static> {
    let (log, tag) = (log.clone(), tag.to_owned());
    Arc::new(move |_: &TaskRef| log.lock().unwrap().push(tag.clone()))
}

/// An exception handler that records each report's message (and task name, if any).
fn recording_handler(log: &Log) -> aioloop::ExceptionHandler {
    let log = log.clone();
    Arc::new(move |ctx: &ExceptionContext| {
        let task = ctx.task.as_ref().map(|t| t.name()).unwrap_or_default();
        let exc = ctx
            .exception
            .as_ref()
            .and_then(|e| e.message().map(str::to_owned))
            .unwrap_or_default();
        log.lock()
            .unwrap()
            .push(format!("{}|{task}|{exc}", ctx.message));
    })
}

// F5: done callbacks are queued with call_soon on completion (never run inside it), in
// registration order, and each runs once.
#[test]
fn callbacks_run_after_completion_in_registration_order() {
    let lp = new_loop();
    let seen = log();
    let t = lp
        .create_task(async {
            yield_now().await;
            1
        })
        .unwrap();
    for tag in ["a", "b", "c"] {
        t.add_done_callback(logger(&seen, tag));
    }
    lp.run_once(NO_WAIT).unwrap(); // first step: suspends
    lp.run_once(NO_WAIT).unwrap(); // second step: completes, queues the callbacks
    assert!(t.done());
    assert!(
        entries(&seen).is_empty(),
        "callbacks never run synchronously"
    );
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(entries(&seen), ["a", "b", "c"]);
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(entries(&seen).len(), 3, "each callback runs exactly once");
}

// F5: a callback added to a done task is queued at once, still not run inline.
#[test]
fn callback_added_to_done_task_is_queued() {
    let lp = new_loop();
    let seen = log();
    let t = lp.create_task(async { 2 }).unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert!(t.done());
    t.add_done_callback(logger(&seen, "late"));
    assert!(entries(&seen).is_empty());
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(entries(&seen), ["late"]);
}

// F5: remove_done_callback removes every registration of the same callback and counts
// them (port of test_futures' remove_done_callback, for tasks).
#[test]
fn remove_done_callback() {
    let lp = new_loop();
    let seen = log();
    let t = lp.create_task(async { yield_now().await }).unwrap();
    let a = logger(&seen, "a");
    let b = logger(&seen, "b");
    t.add_done_callback(a.clone());
    t.add_done_callback(b.clone());
    t.add_done_callback(a.clone());
    assert_eq!(t.remove_done_callback(&a), 2);
    assert_eq!(t.remove_done_callback(&a), 0);
    lp.run_until_complete(t).unwrap().unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(entries(&seen), ["b"]);
}

// F5: the callback receives the task, done, with its outcome visible.
#[test]
fn callback_sees_cancelled_task() {
    let lp = new_loop();
    let seen = log();
    let t = lp.create_task(pending::<()>()).unwrap();
    let s = seen.clone();
    t.add_done_callback(Arc::new(move |task: &TaskRef| {
        s.lock()
            .unwrap()
            .push(format!("{} {}", task.done(), task.cancelled()));
    }));
    lp.run_once(NO_WAIT).unwrap();
    t.cancel(None);
    assert!(lp.run_until_complete(t).unwrap().is_err());
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(entries(&seen), ["true true"]);
}

// F5 on the multi-threaded runtime: a callback registered while the task runs elsewhere
// runs exactly once, whichever side wins the race with completion.
#[test]
fn callbacks_race_completion_on_runtime() {
    let rt = runtime(2);
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..200 {
        let t = rt.spawn(async { yield_now().await });
        let s = seen.clone();
        t.add_done_callback(Arc::new(move |_: &TaskRef| {
            s.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        t.detach();
    }
    wait_until("200 callbacks", || {
        seen.load(std::sync::atomic::Ordering::SeqCst) >= 200
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 200);
}

// A third-party task has no callback list of ours: `add_done_callback` says so.
#[test]
fn foreign_task_refuses_done_callbacks() {
    let meta = Arc::new(MetaTask::new("meta", aioloop::task::LoopId::new(), false));
    let r = TaskRef::new(meta);
    assert!(!r.add_done_callback(Arc::new(|_: &TaskRef| {})));
    assert!(!r.set_name("x"));
}

// T1: set_name renames, on the handle and on every TaskRef.
#[test]
fn set_name() {
    let lp = new_loop();
    let t = lp.create_task(pending::<()>()).unwrap();
    let r = t.task_ref();
    assert_eq!(t.name(), format!("Task-{}", t.id()));
    t.set_name("renamed");
    assert_eq!(r.name(), "renamed");
    assert!(r.set_name("again"));
    assert_eq!(t.name(), "again");
    assert!(r.to_string().contains("name='again'"));
}

// F3 for tasks: result() on a pending task is InvalidStateError "Result is not ready.";
// on a done one it moves the outcome out, once.
#[test]
fn result_is_not_ready_then_taken_once() {
    let lp = new_loop();
    let mut t = lp.create_task(async { 5 }).unwrap();
    let err: InvalidStateError = t.result().unwrap_err();
    assert_eq!(err.to_string(), "InvalidStateError: Result is not ready.");
    lp.run_once(NO_WAIT).unwrap();
    assert_eq!(t.result().unwrap().unwrap(), 5);
    assert_eq!(
        t.result().unwrap_err().message(),
        "Result has already been retrieved."
    );
}

// F3 for tasks: result() of a cancelled task is its cancellation, with the message.
#[test]
fn result_of_cancelled_task() {
    let lp = new_loop();
    let mut t = lp.create_task(pending::<()>()).unwrap();
    t.cancel(Some("why"));
    lp.run_once(NO_WAIT).unwrap();
    match t.result().unwrap() {
        Err(TaskError::Cancelled(e)) => assert_eq!(e.message(), Some("why")),
        other => panic!("expected a cancellation, got {other:?}"),
    }
}

// F7 (test_tasks.task_awaits_on_itself): a task awaiting its own handle fails instead of
// hanging. asyncio raises RuntimeError inside the task; the Rust form is a panic, which
// ends the task with a PanicError carrying asyncio's message.
#[test]
fn task_awaits_on_itself() {
    let lp = new_loop();
    let slot: Rc<RefCell<Option<aioloop::Task<()>>>> = Rc::new(RefCell::new(None));
    let s = slot.clone();
    let t = aioloop::LocalLoop::create_task(&lp, async move {
        yield_now().await;
        let me = s.borrow_mut().take().expect("handle stored");
        me.await.unwrap();
    })
    .unwrap();
    let r = t.task_ref();
    *slot.borrow_mut() = Some(t);
    // The task ends with the panic; nobody retrieves it, so it is reported (T8).
    let reports = log();
    lp.set_exception_handler(Some(recording_handler(&reports)));
    while !r.done() {
        lp.run_once(NO_WAIT).unwrap();
    }
    let got = entries(&reports);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("Task cannot await on itself"),
        "the report carries asyncio's message: {got:?}"
    );
}

// T8/F6: a detached task's panic nobody retrieved is reported to the loop's handler with
// asyncio's message, the task and the panic.
#[test]
fn unretrieved_panic_of_detached_task_is_reported() {
    let rt = runtime(1);
    let reports = log();
    rt.handle()
        .set_exception_handler(Some(recording_handler(&reports)));
    let t = aioloop::task::Builder::new()
        .name("doomed")
        .spawn_on(rt.handle(), async { panic!("kaboom") });
    t.detach();
    wait_until("the report", || !entries(&reports).is_empty());
    assert_eq!(
        entries(&reports),
        ["Task exception was never retrieved|doomed|kaboom"]
    );
}

// T8/F6: dropping the handle of a panicked task without reading it reports the panic; an
// awaited panic is retrieved and not reported.
#[test]
fn panic_reported_only_if_never_retrieved() {
    let lp = new_loop();
    let reports = log();
    lp.set_exception_handler(Some(recording_handler(&reports)));
    let read = lp.create_task(async { panic!("seen") }).unwrap();
    let unread = lp.create_task(async { panic!("unseen") }).unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert!(lp.run_until_complete(read).unwrap().unwrap_err().is_panic());
    assert!(
        entries(&reports).is_empty(),
        "a retrieved panic is not reported"
    );
    drop(unread);
    let got = entries(&reports);
    assert_eq!(got.len(), 1);
    assert!(got[0].starts_with("Task exception was never retrieved|Task-"));
    assert!(got[0].ends_with("|unseen"));
}

// T8/F6 (test_tasks.test_tb_logger_not_called_after_cancel): `cancel()` on a task that
// already panicked returns false but counts as retrieving the panic: dropping the handle
// (or the `TaskRef`'s call, on the runtime) reports nothing. A control task is reported.
#[test]
fn cancel_after_panic_retrieves_it() {
    let lp = new_loop();
    let reports = log();
    lp.set_exception_handler(Some(recording_handler(&reports)));
    let t = lp.create_task(async { panic!("TypeError") }).unwrap();
    let control = lp.create_task(async { panic!("control") }).unwrap();
    lp.run_once(NO_WAIT).unwrap();
    assert!(t.done() && control.done());
    assert!(!t.cancel(None), "a done task refuses cancel()");
    drop(t);
    assert!(entries(&reports).is_empty(), "cancel() retrieved it");
    drop(control);
    assert_eq!(entries(&reports).len(), 1);

    let rt = runtime(1);
    let reports = log();
    rt.handle()
        .set_exception_handler(Some(recording_handler(&reports)));
    let t = rt.spawn(async { panic!("TypeError") });
    let r = t.task_ref();
    wait_until("the panic", || r.done());
    assert!(!r.cancel(None));
    drop(t);
    drop(r);
    drop(rt);
    assert!(entries(&reports).is_empty(), "TaskRef::cancel retrieved it");
}

// T11: in debug mode, a task destroyed while pending (the loop closed with it unfinished)
// is reported; without debug mode it is not.
#[test]
fn destroyed_pending_task_reported_in_debug_mode() {
    for debug in [false, true] {
        let lp = new_loop();
        lp.set_debug(debug);
        let reports = log();
        lp.set_exception_handler(Some(recording_handler(&reports)));
        let t = lp.create_task(pending::<()>()).unwrap();
        t.set_name("stuck");
        lp.run_once(NO_WAIT).unwrap();
        lp.close().unwrap();
        let expected: Vec<String> = if debug {
            vec!["Task was destroyed but it is pending!|stuck|".to_owned()]
        } else {
            vec![]
        };
        assert_eq!(entries(&reports), expected, "debug = {debug}");
    }
}

// T11 on the runtime: dropping it with pending tasks reports each, in debug mode.
#[test]
fn runtime_drop_reports_pending_tasks_in_debug_mode() {
    let rt = aioloop::Runtime::builder()
        .workers(1)
        .debug(true)
        .build()
        .unwrap();
    let reports = log();
    rt.handle()
        .set_exception_handler(Some(recording_handler(&reports)));
    for _ in 0..3 {
        rt.spawn(pending::<()>()).detach();
    }
    drop(rt);
    let got = entries(&reports);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got
        .iter()
        .all(|m| m.starts_with("Task was destroyed but it is pending!|Task-")));
}

// T8: a task whose future panics when dropped after completing, and whose value panics
// when dropped too, ends with the panic; the worker thread survives both unwinds.
#[test]
fn double_panic_in_drops_does_not_take_the_worker_down() {
    struct PanicsOnDrop(&'static str);
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("{}", self.0);
            }
        }
    }
    /// Ready at once with a value that panics on drop; panics itself when dropped.
    struct Doomed(Option<PanicsOnDrop>);
    impl std::future::Future for Doomed {
        type Output = PanicsOnDrop;
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<PanicsOnDrop> {
            std::task::Poll::Ready(PanicsOnDrop("value dropped")).map(|v| {
                self.0.get_or_insert(PanicsOnDrop("future dropped"));
                v
            })
        }
    }
    let (message, after) = guarded("a double panic in drops", || {
        let rt = runtime(1);
        rt.handle()
            .set_exception_handler(Some(Arc::new(|_: &ExceptionContext| {})));
        let r = rt.block_on(rt.spawn(Doomed(None)));
        let message = match r {
            Err(TaskError::Panicked(p)) => p.message().map(str::to_owned),
            other => panic!("expected the future's panic, got {:?}", other.map(|_| ())),
        };
        // The worker is still there (a dead worker would hang here: the guard fails).
        (message, rt.block_on(rt.spawn(async { 7 })).unwrap())
    });
    assert_eq!(message.as_deref(), Some("future dropped"));
    assert_eq!(after, 7);
}
