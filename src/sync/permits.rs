//! The counting core that `Lock`, `Semaphore` and `BoundedSemaphore` share: a permit count
//! in one atomic word, FIFO waiters in a [`WaitList`], and direct hand-off.
//!
//! # Protocol
//!
//! The word is `available << 1 | WAITERS`.
//!
//! 1. **`WAITERS` ⇔ the list is non-empty.** The bit is set and cleared only under the list's
//!    lock, by the same hold that makes the list non-empty or empty.
//! 2. **`WAITERS` ⇒ `available == 0`.** A waiter queues only when it finds no permit under
//!    the lock; while the bit is set, both lock-free fast paths (take, give back) refuse and
//!    go to the lock, and a release under the lock hands its permit to the head waiter
//!    (`Notified`, waiters.rs rule 4) instead of counting it. So the count cannot grow while
//!    anyone waits, and a newcomer never overtakes a waiter (FIFO: asyncio's "acquire only
//!    if no waiter is pending").
//! 3. **A permit handed to a waiter that is then dropped is released again** (asyncio's
//!    gh-90155 fix): the drop finds its node `Notified` and releases under the same lock
//!    hold, handing the permit to the next waiter or back to the count.
//! 4. **Orderings.** A fast-path take is an `Acquire` CAS and a fast-path release a `Release`
//!    CAS on the word, so what the releasing holder did happens-before what the next holder
//!    does; a hand-off passes through the list's lock, which orders the same way.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::waiters::{wake, WaitList, WaitState, Waiter};
use crate::shim::atomic::{AtomicUsize, Ordering};
use crate::shim::Mutex;

const WAITERS: usize = 1;
const ONE: usize = 2;

/// The largest permit count (`usize::MAX >> 1`).
pub(crate) const MAX_PERMITS: usize = usize::MAX >> 1;

/// Permits, FIFO waiters, hand-off.
pub(crate) struct Permits {
    word: AtomicUsize,
    waiters: Mutex<WaitList>,
}

/// A release over a bound (BoundedSemaphore, Lock): the count is already `bound`.
pub(crate) struct OverRelease;

impl Permits {
    pub(crate) fn new(permits: usize) -> Permits {
        assert!(
            permits <= MAX_PERMITS,
            "a semaphore holds at most usize::MAX >> 1 permits"
        );
        Permits {
            word: AtomicUsize::new(permits << 1),
            waiters: Mutex::new(WaitList::new()),
        }
    }

    /// Permits available now (0 while anyone waits, rule 2).
    pub(crate) fn available(&self) -> usize {
        self.word.load(Ordering::Acquire) >> 1
    }

    /// Tasks waiting.
    pub(crate) fn waiting(&self) -> usize {
        self.waiters.lock().len()
    }

    /// Takes a permit if one is free and nobody waits (rule 2).
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        let mut cur = self.word.load(Ordering::Relaxed);
        loop {
            if cur & WAITERS != 0 || cur < ONE {
                return false;
            }
            // Acquire: rule 4.
            match self.word.compare_exchange_weak(
                cur,
                cur - ONE,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Gives one permit back: to the head waiter if any (rule 2), else to the count. With
    /// `bound`, refuses when the count is already at it.
    #[inline]
    pub(crate) fn release(&self, bound: Option<usize>) -> Result<(), OverRelease> {
        let mut cur = self.word.load(Ordering::Relaxed);
        while cur & WAITERS == 0 {
            let n = cur >> 1;
            if bound.is_some_and(|b| n >= b) {
                return Err(OverRelease);
            }
            assert!(n < MAX_PERMITS, "semaphore permit count overflow");
            // Release: rule 4.
            match self.word.compare_exchange_weak(
                cur,
                cur + ONE,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
        let mut list = self.waiters.lock();
        let w = self.release_locked(&mut list);
        drop(list);
        wake(w);
        Ok(())
    }

    /// The slow release, under the list's lock: hand to the head waiter or count it. The
    /// bound needs no check here: it was found with waiters (count 0, rule 2), or by a
    /// dropped waiter returning a handed permit, which the count never included.
    fn release_locked(&self, list: &mut WaitList) -> Option<std::task::Waker> {
        if list.is_empty() {
            // Rule 1: no waiters and we hold the lock, so nobody sets `WAITERS` meanwhile;
            // the fast paths only move the count.
            self.word.fetch_add(ONE, Ordering::Release);
            return None;
        }
        let w = list.notify_one();
        if list.is_empty() {
            // Rule 1: the last waiter got the permit; count stays 0 (rule 2).
            self.word.store(0, Ordering::Release);
        }
        w
    }

    /// The future that waits for one permit.
    pub(crate) fn acquire(&self) -> Acquire<'_> {
        Acquire {
            permits: self,
            waiter: Waiter::new(),
            queued: false,
        }
    }
}

/// Waits for one permit; dropping it after it was handed one gives the permit on (rule 3).
pub(crate) struct Acquire<'a> {
    permits: &'a Permits,
    waiter: Waiter,
    /// Our node was pushed and not yet seen notified: drop must look at it (waiters.rs
    /// rule 3).
    queued: bool,
}

impl Future for Acquire<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: we never move out of `self`; `waiter` is structurally pinned (it is only
        // reached as `Pin<&Waiter>` below) and dropped in place with the future (invariant 17).
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: `this` is pinned (above), so its `waiter` field is too.
        let node = unsafe { Pin::new_unchecked(&this.waiter) };
        let p = this.permits;
        if this.queued {
            let mut list = p.waiters.lock();
            // SAFETY: waiters.rs rule 1: our node is used with `p.waiters` only, whose lock
            // we hold.
            if unsafe { list.take_notified(node, cx.waker()) } {
                this.queued = false;
                return Poll::Ready(());
            }
            return Poll::Pending;
        }
        if p.try_acquire() {
            return Poll::Ready(());
        }
        let mut list = p.waiters.lock();
        let mut cur = p.word.load(Ordering::Relaxed);
        loop {
            if cur & WAITERS == 0 && cur >= ONE {
                // A permit came back between the fast path and the lock.
                match p
                    .word
                    .compare_exchange(cur, cur - ONE, Ordering::Acquire, Ordering::Relaxed)
                {
                    Ok(_) => return Poll::Ready(()),
                    Err(a) => cur = a,
                }
            } else if cur & WAITERS == 0 {
                // Rule 1: the list is empty and becomes non-empty in this hold.
                match p
                    .word
                    .compare_exchange(cur, WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => break,
                    Err(a) => cur = a,
                }
            } else {
                break;
            }
        }
        // SAFETY: waiters.rs rules 1 and 3: used with `p.waiters` only, under its lock; our
        // `Drop` removes the node before the future's memory goes (the future is pinned and
        // dropped in place, invariant 17).
        unsafe { list.push(node, cx.waker()) };
        this.queued = true;
        Poll::Pending
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        if !self.queued {
            return;
        }
        // SAFETY: `self` was pinned when the node was pushed and is being dropped in place
        // (invariant 17), so this is the address the list holds.
        let node = unsafe { Pin::new_unchecked(&self.waiter) };
        let p = self.permits;
        let mut list = p.waiters.lock();
        // SAFETY: waiters.rs rule 1: our node, our list, under its lock.
        let w = match unsafe { list.remove(node) } {
            // Rule 3 (gh-90155): handed a permit we will not use; pass it on.
            WaitState::Notified => p.release_locked(&mut list),
            WaitState::Queued => {
                if list.is_empty() {
                    // Rule 1: the list became empty in this hold (count is 0, rule 2).
                    p.word.store(0, Ordering::Release);
                }
                None
            }
            WaitState::Idle => None,
        };
        drop(list);
        wake(w);
    }
}

impl std::fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acquire")
            .field("queued", &self.queued)
            .finish()
    }
}
