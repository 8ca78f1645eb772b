//! `aioloop::queue` (`queue/waiting.rs`, rules Q4, Q5, Q7) on the waiter list of
//! `sync/waiters.rs`: a `put` racing a waiting `get` and a `shutdown`, and a cancelled
//! (dropped) waiter racing the operation that wakes it. A lost wake-up shows as a waiter that
//! was never woken; a lost or duplicated item, or a wake-up handed to nobody, in the
//! assertions; a waker clone left behind in a list, in loom's leak check.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use aioloop::queue::{PutNowaitError, Queue};
use common::counting_waker;
use loom::sync::Arc;
use loom::thread;

fn poll<F: Future>(fut: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

/// A getter waits on an empty queue; one thread puts an item, another shuts the queue down
/// (not immediately). The getter is woken whatever the order, and then gets the item if the
/// put came first, `QueueShutDown` if it was refused (rules Q4, Q7).
#[test]
fn put_races_get_and_shutdown() {
    loom::model(|| {
        let q = Arc::new(Queue::<u32>::new(1));
        let (wakes, waker) = counting_waker();
        let mut get = Box::pin(q.get());
        assert!(poll(get.as_mut(), &waker).is_pending());

        let putter = {
            let q = q.clone();
            thread::spawn(move || match q.put_nowait(7) {
                Ok(()) => true,
                Err(PutNowaitError::ShutDown(_)) => false,
                Err(e) => panic!("unexpected {e}"),
            })
        };
        let closer = {
            let q = q.clone();
            thread::spawn(move || q.shutdown(false))
        };
        let put = putter.join().unwrap();
        closer.join().unwrap();

        assert!(wakes.wakes() >= 1, "the waiting getter was never woken");
        match poll(get.as_mut(), &waker) {
            Poll::Ready(Ok(7)) => assert!(put),
            Poll::Ready(Err(_)) => assert!(!put, "an item that was put got lost"),
            other => panic!("getter not done after put and shutdown: {other:?}"),
        }
        assert!(q.empty());
    });
}

/// Two getters wait; a put races the first getter being cancelled (dropped). Whether the
/// first was already woken for the item or not, the second is woken and gets it: the item
/// is never lost with the cancelled getter, nor the wake-up (rule Q5).
#[test]
fn cancelled_getter_passes_item_on() {
    loom::model(|| {
        let q = Arc::new(Queue::<u32>::new(0));
        let (_, w1) = counting_waker();
        let (wakes2, w2) = counting_waker();
        let mut g1 = Box::pin(q.get());
        let mut g2 = Box::pin(q.get());
        assert!(poll(g1.as_mut(), &w1).is_pending());
        assert!(poll(g2.as_mut(), &w2).is_pending());

        let putter = {
            let q = q.clone();
            thread::spawn(move || q.put_nowait(1).unwrap())
        };
        drop(g1);
        putter.join().unwrap();

        assert_eq!(
            wakes2.wakes(),
            1,
            "the second getter must be woken exactly once"
        );
        assert!(matches!(poll(g2.as_mut(), &w2), Poll::Ready(Ok(1))));
    });
}

/// Two putters wait on a full queue; a get frees the slot while the first putter is
/// cancelled. The second is woken and puts: the slot is never lost with the cancelled
/// putter, and the cancelled one put nothing (rule Q5).
#[test]
fn cancelled_putter_passes_slot_on() {
    loom::model(|| {
        let q = Arc::new(Queue::<u32>::new(1));
        q.put_nowait(0).unwrap();
        let (_, w1) = counting_waker();
        let (wakes2, w2) = counting_waker();
        let mut p1 = Box::pin(q.put(1));
        let mut p2 = Box::pin(q.put(2));
        assert!(poll(p1.as_mut(), &w1).is_pending());
        assert!(poll(p2.as_mut(), &w2).is_pending());

        let getter = {
            let q = q.clone();
            thread::spawn(move || q.get_nowait().unwrap())
        };
        drop(p1);
        assert_eq!(getter.join().unwrap(), 0);

        assert_eq!(
            wakes2.wakes(),
            1,
            "the second putter must be woken exactly once"
        );
        assert!(matches!(poll(p2.as_mut(), &w2), Poll::Ready(Ok(()))));
        assert_eq!(q.get_nowait(), Ok(2));
        assert!(q.empty());
    });
}

/// A task-like getter on its own thread (`block_on(q.get())`: it may register while the others
/// run), a `put_nowait` on another and `shutdown(immediate)` on the main thread. The getter
/// always finishes (a lost wake-up is a loom deadlock). Not immediate: it gets the item iff
/// the put was accepted (Q7). Immediate: the item may also be drained, and the unfinished
/// count says which happened: `task_done` succeeds iff the getter got the item (Q8).
fn get_put_shutdown(immediate: bool) {
    loom::model(move || {
        let q = Arc::new(Queue::<u32>::new(1));
        let getter = {
            let q = q.clone();
            thread::spawn(move || loom::future::block_on(q.get()))
        };
        let putter = {
            let q = q.clone();
            thread::spawn(move || q.put_nowait(7).is_ok())
        };
        q.shutdown(immediate);
        let put = putter.join().unwrap();
        let got = getter.join().unwrap();
        match got {
            Ok(v) => assert!(put && v == 7),
            Err(_) => assert!(immediate || !put, "an item that was put got lost"),
        }
        assert_eq!(q.task_done().is_ok(), got.is_ok());
        assert!(q.empty());
    });
}

#[test]
fn waiting_get_races_put_and_shutdown() {
    get_put_shutdown(false);
}

#[test]
fn waiting_get_races_put_and_immediate_shutdown() {
    get_put_shutdown(true);
}
