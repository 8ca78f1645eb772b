//! `aioloop::sync` (rules P1, P2, P4; src/sync/waiters.rs rules 1-9, permits.rs rules 1-5):
//! the waiter list's hand-off racing a cancellation, and a set racing a wait's registration.
//!
//! The primitives are the real ones (their atomics and lock come from the shim, i.e. from
//! loom). A cancellation is the drop of the waiting future, done on the model's main thread
//! while another thread releases or sets; a lost permit, a lost wake-up or a waiter woken
//! twice shows in the assertions, a leaked waker in loom's leak check.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use aioloop::sync::{Event, Lock, Semaphore, SemaphorePermit};
use common::counting_waker;
use loom::sync::Arc;
use loom::thread;

fn poll<F: Future + ?Sized>(f: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(waker))
}

type Acquiring<'a> = Pin<Box<dyn Future<Output = SemaphorePermit<'a>> + 'a>>;

/// An `acquire()` of `sem` polled once (queued, since no permit is free), and its waker.
fn queued(sem: &Semaphore) -> (Acquiring<'_>, Waker) {
    let (_, w) = counting_waker();
    let mut f: Acquiring<'_> = Box::pin(sem.acquire());
    assert!(poll(f.as_mut(), &w).is_pending());
    (f, w)
}

/// P1: the holder releases while the first waiter is cancelled. Whichever comes first, the
/// lock ends with the second waiter: handed to the first and passed on by its drop, or
/// handed straight to the second. The second waiter is woken exactly once.
#[test]
fn lock_hand_off_races_cancel() {
    loom::model(|| {
        let lock = Arc::new(Lock::new());
        lock.try_acquire().expect("free").forget();
        let (_, wa) = counting_waker();
        let (b_wakes, wb) = counting_waker();
        let mut a = Box::pin(lock.acquire());
        let mut b = Box::pin(lock.acquire());
        assert!(poll(a.as_mut(), &wa).is_pending());
        assert!(poll(b.as_mut(), &wb).is_pending());

        let releaser = {
            let lock = lock.clone();
            thread::spawn(move || lock.release().expect("held"))
        };
        drop(a); // the cancellation
        releaser.join().unwrap();

        assert_eq!(b_wakes.wakes(), 1, "the second waiter is woken once");
        let guard = match poll(b.as_mut(), &wb) {
            Poll::Ready(g) => g,
            Poll::Pending => panic!("the lock was lost with the cancelled waiter"),
        };
        assert!(lock.locked());
        drop(guard);
        drop(b);
        assert!(!lock.locked());
        assert!(lock.try_acquire().is_some());
    });
}

/// P4 (gh-90155): a release races the cancellation of the only waiter: the permit is
/// either handed to it and given back by its drop, or counted; either way it is free at the
/// end, exactly once.
#[test]
fn semaphore_release_races_cancelled_acquire() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let (a, _) = queued(&sem);

        let releaser = {
            let sem = sem.clone();
            thread::spawn(move || sem.release())
        };
        drop(a);
        releaser.join().unwrap();

        assert_eq!(sem.value(), 1, "the permit is back, once");
        assert!(!sem.locked());
        let p = sem.try_acquire().expect("free");
        assert!(sem.try_acquire().is_none(), "duplicated");
        drop(p);
    });
}

/// P4 with a second waiter and a newcomer: a release races the cancellation of the first
/// waiter while a third task tries the fast path. The one permit ends with exactly one of
/// the second waiter or the newcomer — never both, never neither — and the newcomer never
/// overtakes a queued waiter (FIFO).
#[test]
fn semaphore_release_races_cancel_and_newcomer() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let (a, _) = queued(&sem);
        let (mut b, wb) = queued(&sem);

        let releaser = {
            let sem = sem.clone();
            thread::spawn(move || sem.release())
        };
        let newcomer = {
            let sem = sem.clone();
            thread::spawn(move || sem.try_acquire().map(|p| p.forget()).is_some())
        };
        drop(a);
        releaser.join().unwrap();
        let newcomer_got = newcomer.join().unwrap();

        assert!(!newcomer_got, "the newcomer overtook a queued waiter");
        assert_eq!(
            sem.value(),
            0,
            "a permit counted while handed to the waiter"
        );
        assert!(poll(b.as_mut(), &wb).is_ready(), "the permit was lost");
        drop(b);
        assert_eq!(sem.value(), 1);
    });
}

/// P2: `set` on one thread while a task registers its wait: the waiter either sees the
/// flag at once or is woken exactly once — never left waiting on a set event.
#[test]
fn event_set_races_wait_registration() {
    loom::model(|| {
        let ev = Arc::new(Event::new());
        let setter = {
            let ev = ev.clone();
            thread::spawn(move || ev.set())
        };
        let (wakes, w) = counting_waker();
        let mut wait = Box::pin(ev.wait());
        let first = poll(wait.as_mut(), &w);
        setter.join().unwrap();
        if first.is_pending() {
            assert_eq!(wakes.wakes(), 1, "a set event left a waiter asleep");
            assert!(poll(wait.as_mut(), &w).is_ready());
        } else {
            assert_eq!(wakes.wakes(), 0);
        }
    });
}

/// P4, waiters.rs rule 10: a waiter resumes (taking its hand-off without the lock) while
/// the releasing thread is still handing the second permit to the next waiter. Both get
/// a permit, both are returned, and the semaphore ends uncontended (the `WAITERS` bit
/// cleared: the fast path works again).
#[test]
fn semaphore_resume_races_second_release() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let (mut a, wa) = queued(&sem);
        let (mut b, wb) = queued(&sem);

        let releaser = {
            let sem = sem.clone();
            thread::spawn(move || {
                sem.release();
                sem.release();
            })
        };
        let first = poll(a.as_mut(), &wa).map(drop);
        releaser.join().unwrap();
        if first.is_pending() {
            assert!(poll(a.as_mut(), &wa).is_ready(), "a's permit was lost");
        }
        assert!(poll(b.as_mut(), &wb).is_ready(), "b's permit was lost");
        drop((a, b));
        assert_eq!(sem.value(), 2);
        assert!(!sem.locked());
        let p = sem.try_acquire().expect("fast path works again");
        drop(p);
    });
}
