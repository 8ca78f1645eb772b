//! The counting core that `Lock`, `Semaphore` and `BoundedSemaphore` share: a permit count
//! in one atomic word, FIFO waiters in a [`WaitList`], and direct hand-off.
//!
//! # Protocol
//!
//! The word is `available << 1 | WAITERS`. Under the lock: the [`WaitList`]. Next to it,
//! `handoffs`: the waiters that were handed a permit and have not resumed yet (counted up
//! under the lock before the node is marked, counted down by the resuming waiter without
//! the lock, waiters.rs rule 10).
//!
//! 1. **`WAITERS` ⇔ the list is non-empty or a hand-off is outstanding.** The bit is set and
//!    cleared only under the lock, in the hold that makes this true or false. While it is
//!    set the word changes only under the lock: both lock-free fast paths (take a permit,
//!    give one back) refuse and go to the lock.
//! 2. **FIFO, asyncio's way.** A newcomer takes a permit without queueing only if the bit is
//!    clear: with anyone queued *or handed a permit but not yet running*, it queues behind
//!    them, even if a permit is free (asyncio's `locked()`: "value is 0 or a waiter is not
//!    cancelled"). A release with waiters queued hands its permit to the head (`Notified`,
//!    waiters.rs rule 4); with none queued it counts it. The price, as in asyncio: a woken
//!    waiter whose future is kept but never polled again (not dropped either) holds
//!    newcomers back until it is polled or dropped; a task's own future never is.
//! 3. **Settling.** Whenever a hand-off ends (the waiter resumes, or is dropped) and
//!    whenever a waiter leaves, the holder of the lock hands free permits to queued waiters
//!    while both exist (asyncio's `finally: while self._value > 0: self._wake_up_next()`),
//!    then clears the bit if rule 1 allows.
//! 4. **A permit handed to a waiter that is then dropped is released again** (asyncio's
//!    gh-90155 fix): the drop finds its node `Notified` and gives the permit back under the
//!    same lock hold, to the next waiter or to the count. With waiters.rs rule 9, a waiter
//!    whose task is being cancelled never resumes with a handed permit.
//! 5. **Orderings.** A fast-path take is an `Acquire` CAS and a fast-path release a `Release`
//!    CAS on the word, so what the releasing holder did happens-before what the next holder
//!    does; a hand-off passes through the lock, which orders the same way; clearing the bit
//!    is a `Release` RMW that the next fast-path CAS reads.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::waiters::{WaitList, WaitState, Waiter, WakeBatch};
use crate::shim::atomic::{AtomicUsize, Ordering};
use crate::shim::Mutex;

const WAITERS: usize = 1;
const ONE: usize = 2;

/// The wakers one hand-off path wakes: its own hand-off and a few settled surplus permits
/// (a fuller batch stops settling; the hand-offs it made settle again when they resume).
type Batch = WakeBatch<4>;

/// The largest permit count (`usize::MAX >> 1`).
pub(crate) const MAX_PERMITS: usize = usize::MAX >> 1;

/// Permits, FIFO waiters, hand-off.
pub(crate) struct Permits {
    word: AtomicUsize,
    /// Waiters handed a permit that have not resumed (or been dropped) yet (rule 1).
    /// Incremented under the lock; a resuming waiter decrements it without the lock and
    /// settles (under the lock) if it took it to zero or sees a free permit (rule 3).
    handoffs: AtomicUsize,
    waiters: Mutex<Queue>,
}

struct Queue {
    list: WaitList,
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
            handoffs: AtomicUsize::new(0),
            waiters: Mutex::new(Queue {
                list: WaitList::new(),
            }),
        }
    }

    /// Permits free now (not handed to anyone).
    pub(crate) fn available(&self) -> usize {
        self.word.load(Ordering::Acquire) >> 1
    }

    /// Whether an acquire would wait now: no permit free, or waiters ahead (rule 2).
    pub(crate) fn locked(&self) -> bool {
        let w = self.word.load(Ordering::Acquire);
        w < ONE || w & WAITERS != 0
    }

    /// Tasks waiting (queued, not yet handed a permit).
    pub(crate) fn waiting(&self) -> usize {
        self.waiters.lock().list.len()
    }

    /// Takes a permit if one is free and nobody waits (rule 2).
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        let mut cur = self.word.load(Ordering::Relaxed);
        loop {
            if cur & WAITERS != 0 || cur < ONE {
                return false;
            }
            // Acquire: rule 5.
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
            // Release: rule 5.
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
        let mut q = self.waiters.lock();
        let cur = self.word.load(Ordering::Relaxed);
        if cur & WAITERS == 0 {
            // The bit was cleared before we got the lock: the fast path works again.
            drop(q);
            return self.release(bound);
        }
        if bound.is_some_and(|b| cur >> 1 >= b) {
            return Err(OverRelease);
        }
        let mut batch = Batch::new();
        self.give_locked(&mut q, &mut batch);
        self.settle_locked(&mut q, &mut batch);
        drop(q);
        batch.wake_all();
        Ok(())
    }

    /// One permit comes back while `WAITERS` is set (rule 2): to the head waiter, or to the
    /// count.
    fn give_locked(&self, q: &mut Queue, batch: &mut Batch) {
        if q.list.is_empty() {
            // Rule 1: the word changes only under our lock while the bit is set.
            self.word.fetch_add(ONE, Ordering::Release);
        } else {
            self.hand_to_head(q, batch);
        }
    }

    /// Hands a permit to the head of the (non-empty) list. The hand-off is counted
    /// *before* the node is notified: its owner may resume and count it off without the
    /// lock as soon as the node is marked (waiters.rs rule 10).
    fn hand_to_head(&self, q: &mut Queue, batch: &mut Batch) {
        self.handoffs.fetch_add(1, Ordering::AcqRel);
        if let Some(w) = q.list.notify_one() {
            batch.push(w);
        }
    }

    /// Rule 3: free permits to queued waiters, then clear the bit if nothing is left. Stops
    /// handing when `batch` is full; an outstanding hand-off then settles again later.
    fn settle_locked(&self, q: &mut Queue, batch: &mut Batch) {
        while self.word.load(Ordering::Relaxed) >= ONE && !batch.is_full() && !q.list.is_empty() {
            // Rule 1: only we change the word while the bit is set.
            self.word.fetch_sub(ONE, Ordering::Relaxed);
            self.hand_to_head(q, batch);
        }
        if q.list.is_empty() && self.handoffs.load(Ordering::Acquire) == 0 {
            // Release: rule 5.
            self.word.fetch_and(!WAITERS, Ordering::Release);
        }
    }

    /// A waiter took its hand-off (rule 3): one fewer outstanding; settle under the lock if
    /// that was the last one or a permit is free (else a later resume settles). `held` is
    /// the lock if the caller already has it.
    fn resumed(&self, held: Option<crate::shim::MutexGuard<'_, Queue>>) {
        let left = self.handoffs.fetch_sub(1, Ordering::AcqRel) - 1;
        if left != 0 && self.word.load(Ordering::Acquire) < ONE {
            return;
        }
        let mut q = held.unwrap_or_else(|| self.waiters.lock());
        let mut batch = Batch::new();
        self.settle_locked(&mut q, &mut batch);
        drop(q);
        batch.wake_all();
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
            // Waiters.rs rule 10: a notified node is ours without the lock.
            // SAFETY: `notified()` just returned true and we have not pushed again.
            if node.notified() && unsafe { node.take_owned() } {
                this.queued = false;
                p.resumed(None);
                return Poll::Ready(());
            }
            let mut q = p.waiters.lock();
            // SAFETY: waiters.rs rule 1: our node is used with `p.waiters` only, whose lock
            // we hold.
            if !unsafe { q.list.take_notified(node, cx.waker()) } {
                return Poll::Pending;
            }
            this.queued = false;
            p.resumed(Some(q));
            return Poll::Ready(());
        }
        if p.try_acquire() {
            return Poll::Ready(());
        }
        let mut q = p.waiters.lock();
        let mut cur = p.word.load(Ordering::Relaxed);
        while cur & WAITERS == 0 {
            // Rule 2: with the bit clear, a free permit is ours; with none, we set the bit
            // (rule 1: the list becomes non-empty in this hold).
            let (new, ordering) = if cur >= ONE {
                (cur - ONE, Ordering::Acquire)
            } else {
                (WAITERS, Ordering::Relaxed)
            };
            match p
                .word
                .compare_exchange(cur, new, ordering, Ordering::Relaxed)
            {
                Ok(_) if cur >= ONE => return Poll::Ready(()),
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        // SAFETY: waiters.rs rules 1 and 3: used with `p.waiters` only, under its lock; our
        // `Drop` removes the node before the future's memory goes (the future is pinned and
        // dropped in place, invariant 17).
        unsafe { q.list.push(node, cx.waker()) };
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
        let mut q = p.waiters.lock();
        let mut batch = Batch::new();
        // SAFETY: waiters.rs rule 1: our node, our list, under its lock.
        if unsafe { q.list.remove(node) } == WaitState::Notified {
            // Rule 4 (gh-90155): handed a permit we will not use; it goes on.
            p.handoffs.fetch_sub(1, Ordering::AcqRel);
            p.give_locked(&mut q, &mut batch);
        }
        p.settle_locked(&mut q, &mut batch);
        drop(q);
        batch.wake_all();
    }
}

impl std::fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acquire")
            .field("queued", &self.queued)
            .finish()
    }
}
