//! No panic takes a loop down (invariant 7; issue 8, item 2), including panics outside any
//! task's own poll: a waker woken by a firing timer, the awaiter's waker at completion (also
//! during shutdown), a completion hook's waker, and a dropped callback's destructor. Each is
//! caught, reported to the loop's exception handler (rule S8) with the task concerned, and
//! the loop goes on: the other sleepers on that worker finish, due timers of the same batch
//! still fire, and dropping the runtime does not panic. Each path on the runtime and on a
//! `LocalLoop`.

mod common;

use std::future::{pending, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use aioloop::{ExceptionContext, LocalLoop, Runtime, TaskError};
use common::{guarded, runtime, wait_until, NoopWake};

/// A waker that belongs to nobody we trust: it panics when woken.
struct PanickingWake;

impl Wake for PanickingWake {
    fn wake(self: Arc<Self>) {
        panic!("a waker that panics");
    }
    fn wake_by_ref(self: &Arc<Self>) {
        panic!("a waker that panics");
    }
}

fn panicking_waker() -> Waker {
    Waker::from(Arc::new(PanickingWake))
}

/// The exception handler's reports: `message (task name)`.
#[derive(Clone, Default)]
struct Reports(Arc<Mutex<Vec<String>>>);

impl Reports {
    fn handler(&self) -> Option<aioloop::ExceptionHandler> {
        let log = self.0.clone();
        Some(Arc::new(move |ctx: &ExceptionContext| {
            let task = ctx.task.as_ref().map(|t| t.name()).unwrap_or_default();
            let panic = ctx.exception.as_ref().map(|e| e.to_string());
            log.lock()
                .unwrap()
                .push(format!("{} [{task}] {panic:?}", ctx.message));
        }))
    }

    fn on_runtime(rt: &Runtime) -> Reports {
        let r = Reports::default();
        rt.handle().set_exception_handler(r.handler());
        r
    }

    fn on_loop(lp: &LocalLoop) -> Reports {
        let r = Reports::default();
        lp.set_exception_handler(r.handler());
        r
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits for a report containing `what` (and the panic's own message).
    fn wait_for(&self, what: &str) -> String {
        wait_until(what, || self.find(what).is_some());
        self.find(what).unwrap()
    }

    fn find(&self, what: &str) -> Option<String> {
        self.all()
            .into_iter()
            .find(|m| m.contains(what) && m.contains("a waker that panics"))
    }
}

/// Polls `inner` with a panicking waker instead of the task's own: what a foreign combinator
/// or executor inside a task looks like to the loop. Pending until `inner` is ready and the
/// task is woken again by other means.
struct UnderForeignWaker<F>(Pin<Box<F>>);

impl<F: Future> Future for UnderForeignWaker<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<F::Output> {
        let waker = panicking_waker();
        self.0.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

/// A sleep whose waker panics when the timer fires, in a named task.
async fn sleep_under_panicking_waker() {
    UnderForeignWaker(Box::pin(aioloop::sleep(Duration::from_millis(5)))).await
}

const TIMER_REPORT: &str = "sleep woken by its timer (task sleeper)";

#[test]
fn timer_waker_panic_runtime_keeps_worker_and_sleepers() {
    guarded("timer waker panic (runtime)", || {
        let rt = runtime(1); // one worker: the sleepers share it with the panicking waker
        let reports = Reports::on_runtime(&rt);
        let _bad = aioloop::task::Builder::new()
            .name("sleeper")
            .spawn_on(rt.handle(), sleep_under_panicking_waker());
        let sleepers: Vec<_> = (0..40)
            .map(|i| {
                rt.spawn(async move {
                    aioloop::sleep(Duration::from_millis(5 + i % 3)).await;
                    i
                })
            })
            .collect();
        for (i, t) in sleepers.into_iter().enumerate() {
            assert_eq!(rt.block_on(t).unwrap(), i as u64);
        }
        reports.wait_for(TIMER_REPORT);
        // The worker is alive: a new task still runs.
        assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
        drop(rt); // must not panic (it used to: the dead worker could not be joined)
    });
}

#[test]
fn timer_waker_panic_local_loop_loses_no_due_timer() {
    let lp = LocalLoop::new().unwrap();
    let reports = Reports::on_loop(&lp);
    let _bad = lp
        .create_task_named("sleeper", sleep_under_panicking_waker())
        .unwrap();
    // Due in the same batch as the panicking sleep's timer: must still fire.
    let fired = Arc::new(Mutex::new(Vec::new()));
    for i in 0..10 {
        let fired = fired.clone();
        lp.call_later(0.005, move || fired.lock().unwrap().push(i))
            .unwrap();
    }
    let out = lp.run_until_complete(async {
        aioloop::sleep(Duration::from_millis(30)).await;
        "done"
    });
    assert_eq!(out.unwrap(), "done");
    assert_eq!(*fired.lock().unwrap(), (0..10).collect::<Vec<_>>());
    reports.wait_for(TIMER_REPORT);
}

/// Polls a task handle once from outside any loop with a panicking waker: the completing
/// worker wakes it.
fn await_with_panicking_waker<T>(task: &mut aioloop::Task<T>) {
    let waker = panicking_waker();
    assert!(Pin::new(task)
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
}

fn poll_ready<T>(task: &mut aioloop::Task<T>) -> Result<T, TaskError> {
    let waker = Waker::from(Arc::new(NoopWake));
    match Pin::new(task).poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the task is done"),
    }
}

const JOIN_REPORT: &str = "waker of a task's awaiter";

#[test]
fn join_waker_panic_runtime() {
    guarded("join waker panic (runtime)", || {
        let rt = runtime(1);
        let reports = Reports::on_runtime(&rt);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let mut t =
            aioloop::task::Builder::new()
                .name("awaited")
                .spawn_on(rt.handle(), async move {
                    aioloop::sleep(Duration::from_millis(5)).await;
                    let _ = rx; // keeps the channel open until here
                    5
                });
        await_with_panicking_waker(&mut t);
        let msg = reports.wait_for(JOIN_REPORT);
        assert!(msg.contains("[awaited]"), "{msg}");
        assert_eq!(poll_ready(&mut t).unwrap(), 5);
        drop(tx);
        assert_eq!(rt.block_on(rt.spawn(async { 2 })).unwrap(), 2);
    });
}

#[test]
fn join_waker_panic_during_shutdown_runtime() {
    guarded("join waker panic at shutdown (runtime)", || {
        let rt = runtime(2);
        let reports = Reports::on_runtime(&rt);
        let mut t = aioloop::task::Builder::new()
            .name("pending")
            .spawn_on(rt.handle(), pending::<()>());
        await_with_panicking_waker(&mut t);
        drop(rt); // cancels the task: its completion wakes the panicking waker
        let msg = reports.wait_for(JOIN_REPORT);
        assert!(msg.contains("[pending]"), "{msg}");
        assert!(matches!(poll_ready(&mut t), Err(TaskError::Cancelled(_))));
    });
}

#[test]
fn join_waker_panic_local_loop_and_close() {
    let lp = LocalLoop::new().unwrap();
    let reports = Reports::on_loop(&lp);
    let mut quick = lp.create_task_named("quick", async { 3 }).unwrap();
    let mut parked = lp.create_task_named("parked", pending::<()>()).unwrap();
    await_with_panicking_waker(&mut quick);
    await_with_panicking_waker(&mut parked);
    lp.run_until_complete(aioloop::yield_now()).unwrap();
    assert!(reports.wait_for(JOIN_REPORT).contains("[quick]"));
    assert_eq!(poll_ready(&mut quick).unwrap(), 3);
    lp.close().unwrap(); // cancels `parked`, whose completion wakes its panicking waker
    let parked_report = reports
        .all()
        .into_iter()
        .filter(|m| m.contains(JOIN_REPORT) && m.contains("[parked]"))
        .count();
    assert_eq!(parked_report, 1);
    assert!(matches!(
        poll_ready(&mut parked),
        Err(TaskError::Cancelled(_))
    ));
}

const HOOK_REPORT: &str = "completion hook";

/// `wait` for `task`, polled once with a panicking waker: `wait` registers a completion hook
/// on the task, and the hook wakes that waker when the task completes.
fn wait_under_panicking_waker<T: Send + 'static>(
    task: aioloop::Task<T>,
) -> Pin<Box<impl Future<Output = Result<WaitSets<T>, aioloop::EmptyWaitError>>>> {
    let mut waiting = Box::pin(aioloop::wait(
        vec![task],
        None,
        aioloop::ReturnWhen::AllCompleted,
    ));
    let waker = panicking_waker();
    assert!(waiting
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    waiting
}

type WaitSets<T> = (Vec<aioloop::Task<T>>, Vec<aioloop::Task<T>>);

#[test]
fn hook_waker_panic_local_loop() {
    let lp = LocalLoop::new().unwrap();
    let reports = Reports::on_loop(&lp);
    let child = lp.create_task_named("child", async { 1 }).unwrap();
    let mut waiting = wait_under_panicking_waker(child);
    lp.run_until_complete(aioloop::yield_now()).unwrap();
    assert!(reports.wait_for(HOOK_REPORT).contains("[child]"));
    // `wait` itself was not harmed: it is ready now.
    let w = Waker::from(Arc::new(NoopWake));
    let Poll::Ready(Ok((done, pending))) = waiting.as_mut().poll(&mut Context::from_waker(&w))
    else {
        panic!("wait is ready once its task is done")
    };
    assert_eq!((done.len(), pending.len()), (1, 0));
}

#[test]
fn hook_waker_panic_runtime() {
    guarded("hook waker panic (runtime)", || {
        let rt = runtime(1);
        let reports = Reports::on_runtime(&rt);
        let child = aioloop::task::Builder::new()
            .name("child")
            .spawn_on(rt.handle(), async {
                aioloop::sleep(Duration::from_millis(5)).await;
            });
        let _waiting = wait_under_panicking_waker(child);
        assert!(reports.wait_for(HOOK_REPORT).contains("[child]"));
        assert_eq!(rt.block_on(rt.spawn(async { 4 })).unwrap(), 4);
    });
}

/// A closure whose destructor panics, dropped unrun by the loop.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("a waker that panics (in a destructor)");
    }
}

#[test]
fn dropped_callback_destructor_panic_local_loop() {
    let lp = LocalLoop::new().unwrap();
    let reports = Reports::on_loop(&lp);
    let guard = PanicOnDrop;
    let cancelled = lp
        .call_later(0.001, move || {
            let _keep = &guard;
        })
        .unwrap();
    cancelled.cancel();
    let guard = PanicOnDrop;
    lp.call_later(60.0, move || {
        let _keep = &guard;
    })
    .unwrap();
    let fired = Arc::new(Mutex::new(false));
    let f = fired.clone();
    lp.call_later(0.002, move || *f.lock().unwrap() = true)
        .unwrap();
    lp.run_until_complete(aioloop::sleep(Duration::from_millis(10)))
        .unwrap();
    assert!(*fired.lock().unwrap(), "the live timer fired");
    lp.close().unwrap(); // drops the 60 s callback unrun
    let dropped = reports
        .all()
        .into_iter()
        .filter(|m| m.contains("Exception dropping callback"))
        .count();
    assert_eq!(dropped, 2, "{:?}", reports.all());
}

#[test]
fn dropped_callback_destructor_panic_runtime_shutdown() {
    guarded("callback destructor panic at shutdown (runtime)", || {
        let rt = runtime(1);
        let reports = Reports::on_runtime(&rt);
        // Registered from inside the worker, so the entry sits in that worker's heap.
        rt.block_on(rt.spawn(async {
            let guard = PanicOnDrop;
            let _timer = aioloop::Handle::current().call_later(60.0, move || {
                let _keep = &guard;
            });
        }))
        .unwrap();
        drop(rt);
        assert!(reports
            .all()
            .iter()
            .any(|m| m.contains("Exception dropping callback")));
    });
}

/// A panic payload whose own destructor panics: dropping it is code the loop does not own
/// either (invariant 7, found by review). From a callback and from a detached task's
/// unretrieved panic (T8), on a `LocalLoop`: the loop neither unwinds nor leaks the task.
#[test]
fn panic_payload_with_a_panicking_drop_is_contained() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("a waker that panics (a payload's drop)");
        }
    }
    let lp = LocalLoop::new().unwrap();
    let reports = Reports::on_loop(&lp);
    lp.call_soon(|| std::panic::panic_any(Bomb)).unwrap();
    let t = lp
        .create_task(async { std::panic::panic_any(Bomb) })
        .unwrap();
    let task = t.task_ref();
    drop(t);
    lp.run_until_complete(aioloop::yield_now()).unwrap();
    assert!(task.done());
    assert!(lp.all_tasks().is_empty(), "the task left the registry");
    let all = reports.all();
    assert!(
        all.iter().any(|m| m.starts_with("Exception in callback")),
        "{all:?}"
    );
    assert!(all
        .iter()
        .any(|m| m.starts_with("Task exception was never retrieved")));
    lp.run_until_complete(aioloop::yield_now()).unwrap(); // still usable
}

/// A done callback whose closure panics when dropped, dropped unrun because `close()`
/// cancels its task (invariant 7, found by review): reported, and `close` completes.
#[test]
fn done_callback_dropped_unrun_at_close_is_contained() {
    let lp = LocalLoop::new().unwrap();
    let reports = Reports::on_loop(&lp);
    let t = lp.create_task(pending::<()>()).unwrap();
    let guard = PanicOnDrop;
    t.add_done_callback(Arc::new(move |_: &aioloop::TaskRef| {
        let _keep = &guard;
    }));
    let others = lp.create_task(pending::<()>()).unwrap();
    lp.run_once(common::NO_WAIT).unwrap();
    lp.close().unwrap();
    assert!(t.done() && others.done(), "close cancelled both tasks");
    assert!(reports
        .all()
        .iter()
        .any(|m| m.contains("Exception dropping callback")));
}

/// A timeout's deadline wakes the task through its waker: a foreign one that panics is
/// reported and the loop goes on (invariant 7; the `TimerAction::Target` path).
#[test]
fn timeout_waker_panic_is_reported() {
    let lp = LocalLoop::new().unwrap();
    let reports = Reports::on_loop(&lp);
    let _t = lp
        .create_task_named(
            "timed",
            UnderForeignWaker(Box::pin(aioloop::timeout(
                Duration::from_millis(2),
                pending::<()>(),
            ))),
        )
        .unwrap();
    lp.run_until_complete(aioloop::sleep(Duration::from_millis(20)))
        .unwrap();
    reports.wait_for("timeout's deadline");
}
