//! `run_coroutine_threadsafe` (issue 10, item 7): submit to a loop from another thread, wait
//! with a timeout, cancel. Ports CPython's test_tasks.RunCoroutineThreadsafeTests: the
//! submitting thread is a plain `std::thread` (asyncio's `run_in_executor`), the loop a
//! `LocalLoop` driven by the test thread or a runtime. Rules T3 (cancel reaches the task),
//! T8 (a panic is the task's exception).

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use aioloop::{run_coroutine_threadsafe, ConcurrentError, LoopHandle};

const ADD_DELAY: Duration = Duration::from_millis(5);

mod common;
use common::{guarded, new_loop, runtime, TIMEOUT};

/// asyncio's `add(a, b, fail, cancel)`: waits a little (`ADD_DELAY`, or much longer when
/// a test wants it still running), then fails, cancels itself, or returns the sum.
async fn add(a: i32, b: i32, fail: bool, cancel: bool) -> i32 {
    let delay = if a < 0 {
        Duration::from_secs(3600)
    } else {
        ADD_DELAY
    };
    aioloop::sleep(delay).await;
    if fail {
        panic!("Fail!");
    }
    if cancel {
        aioloop::current_task().unwrap().cancel(None);
        aioloop::yield_now().await;
    }
    a + b
}

/// asyncio's `target`: submit `add` from this (non-loop) thread and wait for its result;
/// cancel it if it is not done (the `finally:` clause).
fn target(
    h: &LoopHandle,
    fail: bool,
    cancel: bool,
    timeout: Option<Duration>,
) -> Result<i32, ConcurrentError> {
    let mut fut = run_coroutine_threadsafe(add(1, 2, fail, cancel), h).unwrap();
    let r = fut.result(timeout);
    if !fut.done() {
        fut.cancel();
    }
    r
}

/// Runs `target` on another thread while this thread drives the loop; returns its result
/// and the loop (to inspect afterwards).
fn run_target(
    fail: bool,
    cancel: bool,
    timeout: Option<Duration>,
) -> (Result<i32, ConcurrentError>, aioloop::LocalLoop) {
    let lp = new_loop();
    let h = lp.handle();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(target(&h, fail, cancel, timeout)).unwrap());
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        if let Ok(r) = rx.try_recv() {
            return (r, lp);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "target never returned"
        );
        lp.run_once(Some(Duration::from_millis(5))).unwrap();
    }
}

/// CPython test_run_coroutine_threadsafe.
#[test]
fn run_coroutine_threadsafe_result() {
    let (r, _lp) = run_target(false, false, None);
    assert_eq!(r.unwrap(), 3);
}

/// Rule T8; CPython test_run_coroutine_threadsafe_with_exception.
#[test]
fn run_coroutine_threadsafe_with_exception() {
    let (r, _lp) = run_target(true, false, None);
    match r {
        Err(ConcurrentError::Panicked(p)) => assert_eq!(p.message(), Some("Fail!")),
        other => panic!("expected the panic, got {other:?}"),
    }
}

/// Rule T3; CPython test_run_coroutine_threadsafe_with_timeout: `result(timeout=0)` raises
/// TimeoutError, the `finally:` cancels the task, and after a brief run no task is left.
#[test]
fn run_coroutine_threadsafe_with_timeout() {
    let (r, lp) = run_target(false, false, Some(Duration::ZERO));
    assert!(matches!(r, Err(ConcurrentError::Timeout(_))), "{r:?}");
    let left = lp
        .run_until_complete(async {
            aioloop::sleep(Duration::from_millis(1)).await;
            let me = aioloop::current_task();
            aioloop::all_tasks()
                .into_iter()
                .filter(|t| Some(t) != me.as_ref())
                .count()
        })
        .unwrap();
    assert_eq!(left, 0, "the submitted task was cancelled and finished");
}

/// CPython test_run_coroutine_threadsafe_task_cancelled: a task that cancels itself gives
/// CancelledError to the waiting thread.
#[test]
fn run_coroutine_threadsafe_task_cancelled() {
    let (r, _lp) = run_target(false, true, None);
    assert!(matches!(r, Err(ConcurrentError::Cancelled(_))), "{r:?}");
}

/// Rule T3: cancelling the handle from the submitting thread cancels the task.
#[test]
fn cancel_propagates_to_the_task() {
    let rt = runtime(1);
    let mut fut = run_coroutine_threadsafe(std::future::pending::<()>(), rt.handle()).unwrap();
    let task = fut.task_ref();
    assert!(fut.cancel());
    assert!(matches!(
        fut.result(None),
        Err(ConcurrentError::Cancelled(_))
    ));
    assert!(task.cancelled());
    // Taken: asking again is an InvalidStateError, not a hang.
    assert!(matches!(
        fut.result(None),
        Err(ConcurrentError::InvalidState(_))
    ));
}

/// The handle can be awaited from any loop: a task of one runtime awaits a task submitted
/// to a `LocalLoop` on another thread.
#[test]
fn awaited_from_another_loop() {
    let v = guarded("awaited from another loop", || {
        let (htx, hrx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let loop_thread = thread::spawn(move || {
            let lp = new_loop();
            htx.send(lp.handle()).unwrap();
            while stop_rx.try_recv().is_err() {
                lp.run_once(Some(Duration::from_millis(5))).unwrap();
            }
        });
        let h = hrx.recv().unwrap();
        let rt = runtime(1);
        let v = rt.block_on(rt.spawn(async move {
            let fut = run_coroutine_threadsafe(add(20, 22, false, false), &h).unwrap();
            fut.await.unwrap()
        }));
        stop_tx.send(()).unwrap();
        loop_thread.join().unwrap();
        v.unwrap()
    });
    assert_eq!(v, 42);
}

/// A closed `LocalLoop` refuses the submission (asyncio: RuntimeError, loop closed).
#[test]
fn closed_loop_refuses() {
    let lp = new_loop();
    let h = lp.handle();
    lp.close().unwrap();
    let err = run_coroutine_threadsafe(async {}, &h).unwrap_err();
    assert_eq!(err, aioloop::LoopError::Closed);
}

/// Waiting synchronously on the thread of the `LocalLoop` that runs the task would hang
/// (asyncio hangs); it is refused instead, and the handle stays usable.
#[test]
fn result_on_the_loops_own_thread_is_refused() {
    let lp = new_loop();
    let h = lp.handle();
    let mut fut = run_coroutine_threadsafe(
        async {
            aioloop::sleep(Duration::from_millis(1)).await;
            5
        },
        &h,
    )
    .unwrap();
    let refused = lp
        .run_until_complete(async {
            let r = fut.result(None);
            (matches!(r, Err(ConcurrentError::WouldBlockLoop)), fut)
        })
        .unwrap();
    assert!(refused.0);
    let fut = refused.1;
    assert_eq!(lp.run_until_complete(fut).unwrap().unwrap(), 5);
}
