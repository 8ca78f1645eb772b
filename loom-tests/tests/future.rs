//! `aioloop::Future` (`future/mod.rs`, rules F2, F4, F5): completion racing registration.
//!
//! The futures are real `aioloop::Future`s, bound to a `CallbackSink` (a stand-in loop that
//! records what `call_soon` queues) instead of a loop. A callback queued twice or never, a
//! lost wake-up of an awaiter, or two winners of the completion show in the assertions; a
//! leaked handle or waker shows in loom's leak checks.

mod common;

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use aioloop::loom_internals::CallbackSink;
use aioloop::{Future, FutureError};
use common::{counting_waker, WakeCounter};
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

fn poll(fut: &mut Future<u32>, waker: &Waker) -> Poll<Result<u32, FutureError>> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

/// A clone of `fut` that has awaited it once (pending) with a counting waker.
fn pending_awaiter(fut: &Future<u32>) -> (Future<u32>, Arc<WakeCounter>, Waker) {
    let mut awaiter = fut.clone();
    let (wakes, waker) = counting_waker();
    assert!(poll(&mut awaiter, &waker).is_pending());
    (awaiter, wakes, waker)
}

/// `set_result` on one thread; `add_done_callback` then `cancel` on another; an awaiter
/// registered before both. Exactly one of `set_result` / `cancel` wins, the callback is
/// queued exactly once whichever side queues it (the completer, or the adder finding the
/// future done), the awaiter is woken once and reads the winner's outcome.
#[test]
fn set_result_races_add_done_callback_and_cancel() {
    loom::model(|| {
        let sink = CallbackSink::new();
        let fut = sink.create_future::<u32>();
        let (mut awaiter, wakes, waker) = pending_awaiter(&fut);

        let setter = {
            let fut = fut.clone();
            thread::spawn(move || fut.set_result(7).is_ok())
        };
        let calls = Arc::new(AtomicUsize::new(0));
        let canceller = {
            let calls = calls.clone();
            thread::spawn(move || {
                fut.add_done_callback(std::sync::Arc::new(move |f: &Future<u32>| {
                    assert!(f.done(), "a callback ran on a pending future");
                    calls.fetch_add(1, SeqCst);
                }));
                fut.cancel(Some("stop"))
            })
        };
        let set = setter.join().unwrap();
        let cancelled = canceller.join().unwrap();
        assert!(set ^ cancelled, "set_result: {set}, cancel: {cancelled}");

        assert_eq!(sink.queued(), 1, "the callback must be queued exactly once");
        assert_eq!(calls.load(SeqCst), 0, "a callback ran inline");
        assert_eq!(sink.run_all(), 1);
        assert_eq!(calls.load(SeqCst), 1);
        assert_eq!(wakes.wakes(), 1, "the awaiter must be woken once");
        match poll(&mut awaiter, &waker) {
            Poll::Ready(Ok(7)) => assert!(set),
            Poll::Ready(Err(FutureError::Cancelled(e))) => {
                assert!(cancelled);
                assert_eq!(e.message(), Some("stop"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(sink.reports().is_empty());
    });
}

/// An awaiter dropped on one thread while another completes the future: the awaiter's
/// waker is either freed or woken, never leaked; a second awaiter is woken exactly once.
#[test]
fn awaiter_dropped_races_set_result() {
    loom::model(|| {
        let sink = CallbackSink::new();
        let fut = sink.create_future::<u32>();
        let (leaving, left_wakes, left_waker) = pending_awaiter(&fut);
        let (mut staying, stay_wakes, stay_waker) = pending_awaiter(&fut);
        drop(left_waker);

        let dropper = thread::spawn(move || drop(leaving));
        fut.set_result(1).unwrap();
        dropper.join().unwrap();

        assert!(left_wakes.wakes() <= 1);
        assert_eq!(stay_wakes.wakes(), 1);
        assert!(matches!(
            poll(&mut staying, &stay_waker),
            Poll::Ready(Ok(1))
        ));
        assert_eq!(sink.queued(), 0);
    });
}
