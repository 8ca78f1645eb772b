//! The waiter list every primitive of `aioloop::sync` (and `aioloop::queue`) parks tasks on:
//! an intrusive FIFO list whose nodes live inside the pinned futures that wait.
//!
//! A primitive keeps its state and one or more [`WaitList`]s behind one short-critical-section
//! lock of the shim (`crate::shim::Mutex`, never held across an await or while waking). A
//! waiting future embeds a [`Waiter`]; it links it into the list when it must wait, and the
//! primitive's notifier unlinks the head and *hands it* what it waits for (the lock, a permit,
//! "the event is set", "an item is there") by marking it [`WaitState::Notified`]. Waking
//! happens through the task's `Waker`, which reschedules the task on its own loop: a worker
//! of the runtime, or a `LocalLoop` (through its inbox), whichever thread notifies.
//!
//! Nothing is allocated: the node is a field of the future, the list is two pointers, and the
//! wakers to wake are collected into a fixed-size [`WakeBatch`] on the notifier's stack. A
//! primitive's uncontended path (an atomic compare-and-swap on its own state word) does not
//! touch the list at all.
//!
//! # Protocol
//!
//! 1. **One lock per list.** A `WaitList` lives inside the state that one lock guards, and
//!    every method of it takes `&mut self`, i.e. is called with that lock held. A node's
//!    fields (links, waker, state) are read and written only by these methods, hence only
//!    under the lock of the list the node is (or was last) linked into. A `Waiter` is used
//!    with one list only (its owner's).
//! 2. **Linked iff queued.** A node is in a list exactly while its state is
//!    [`WaitState::Queued`]. `push` links an idle node at the tail; `notify_*` unlink from the
//!    head and set `Notified`; `remove` unlinks a queued node. Nothing else links or unlinks.
//! 3. **Pinned until removed.** A node is linked only through `Pin<&Waiter>`, and its owner
//!    calls [`WaitList::remove`] (under the lock, rule 1) before the `Waiter` is dropped if it
//!    ever pushed it. The owner is a future polled through a `Pin` and aioloop drops every
//!    pinned future where it was pinned (ARCHITECTURE.md, invariant 17), so the address the
//!    list holds is valid until that `remove`.
//! 4. **Hand-off is final.** `Notified` means the primitive gave the node something (the
//!    lock, a permit, a wake-up the condition counted). Only the owner resets it (`remove`
//!    returns the old state and leaves the node `Idle`). An owner that learns at drop time
//!    that it was notified but will never use what it was handed passes it on — asyncio's
//!    `_wake_up_first`, and the Semaphore fix of gh-90155 — under the same lock hold, so a
//!    notification is never lost with a cancelled waiter.
//! 5. **No lost wake.** A waiter decides to wait (checks the primitive's state) and pushes
//!    its node in one lock hold; a notifier changes the state and notifies in one lock hold.
//!    So either the waiter sees the new state or the notifier sees the node.
//! 6. **No double wake.** Notifying unlinks the node (rule 2), so one push is notified at most
//!    once; [`WaitList::notify_into`] with a [`Mark`] notifies only nodes pushed before the
//!    mark, so a notify-all done in batches (the lock released between batches to wake) never
//!    reaches a waiter that arrived after it began.
//! 7. **Wake outside the lock.** Notifiers take the node's waker out under the lock and wake
//!    it after releasing the lock ([`WakeBatch::wake_all`]); a waker's panic is caught so the
//!    rest of the batch is still woken, then resumed on the notifier (invariant 7 of
//!    ARCHITECTURE.md: the notifier is user code inside a task, whose poll catches it).
//! 8. **Fresh waker.** Each poll of a queued node stores the poll's waker if it would not
//!    wake the same task (`Waker::will_wake`), under the lock, so the notifier wakes the
//!    task's latest waker.
//! 9. **Cancellation lands at the await.** A notified waiter polled by a task that has a
//!    cancellation request to deliver does not take what it was handed: it stays pending,
//!    so the task's catch scope (or the task's end) drops it and rule 4 passes the thing
//!    on. asyncio throws `CancelledError` at that `await` even when the waiter's future was
//!    already resolved; without this rule a cancelled task would take the lock and run on
//!    to its next suspension point (task/cancel.rs, rule 3).
//! 10. **A notified node is its owner's.** The notifier's last touch of a node it notifies
//!     is a `Release` store of the node's `notified` flag (after unlinking it and taking
//!     its waker). An owner that reads the flag set (`Acquire`, [`Waiter::notified`]) may
//!     take the hand-off without the lock ([`Waiter::take_owned`]): nobody else reaches an
//!     unlinked node. This keeps the lock off the resuming waiter's path.
//!
//! # Using it (for a new primitive)
//!
//! ```text
//! struct Prim { state: shim::Mutex<(MyState, WaitList)> }
//! struct Wait<'a> { prim: &'a Prim, waiter: Waiter, pushed: bool }   // !Unpin (Waiter)
//! poll:  let mut g = prim.state.lock();
//!        if !pushed { if ready(&g.0) { take; return Ready } ; unsafe { g.1.push(w, cx.waker()) }; pushed = true; return Pending }
//!        if unsafe { g.1.take_notified(w, cx.waker()) } { pushed = false; Ready } else { Pending }
//! drop:  if pushed { let mut g = prim.state.lock();
//!                    if unsafe { g.1.remove(w) } == Notified { pass it on: g.1.notify_one() … } }
//! notify: let w = { let mut g = prim.state.lock(); change(&mut g.0); g.1.notify_one() }; wake w
//! ```

use std::marker::PhantomPinned;
use std::ops::DerefMut;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::Waker;

use crate::shim::atomic::{AtomicBool, Ordering};
use crate::shim::UnsafeCell;

/// Where a [`Waiter`] is in its protocol (rule 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitState {
    /// Not linked, nothing handed to it.
    Idle,
    /// Linked into a list, waiting.
    Queued,
    /// Unlinked by a notifier, which handed it something (rule 4).
    Notified,
}

/// The node a waiting future embeds. `!Unpin`: its address is in a list while queued.
pub(crate) struct Waiter {
    node: UnsafeCell<Node>,
    /// Set by the notifier as its last touch of the node (rule 10).
    notified: AtomicBool,
    _pinned: PhantomPinned,
}

struct Node {
    prev: Option<NonNull<Waiter>>,
    next: Option<NonNull<Waiter>>,
    waker: Option<Waker>,
    state: WaitState,
    /// The list's push counter when this node was pushed (rule 6's marks).
    seq: u64,
}

// SAFETY: a node's fields are only touched under the lock of the list it is used with
// (rule 1), so sharing or sending the `Waiter` (inside its future) cannot race; the
// `NonNull` links are only followed under that lock.
unsafe impl Send for Waiter {}
// SAFETY: as for `Send` (rule 1): `&Waiter` gives access to nothing outside the lock.
unsafe impl Sync for Waiter {}

impl Waiter {
    /// An idle node.
    pub(crate) fn new() -> Waiter {
        Waiter {
            node: UnsafeCell::new(Node {
                prev: None,
                next: None,
                waker: None,
                state: WaitState::Idle,
                seq: 0,
            }),
            notified: AtomicBool::new(false),
            _pinned: PhantomPinned,
        }
    }
}

impl Waiter {
    /// Whether a notifier handed this node something (rule 10); readable without the lock.
    pub(crate) fn notified(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }

    /// Takes the hand-off of a node seen [`notified`](Self::notified), without the lock
    /// (rule 10), leaving it idle. Returns `false`, leaving it notified, if the task has a
    /// cancellation to deliver (rule 9).
    ///
    /// # Safety
    /// `self.notified()` returned `true` and the node was not pushed again since.
    pub(crate) unsafe fn take_owned(&self) -> bool {
        if crate::task::cancel::cancel_pending_now() {
            return false;
        }
        self.notified.store(false, Ordering::Relaxed);
        self.node.with_mut(|n| {
            // SAFETY: rule 10: a notified node is unlinked and only its owner — the caller —
            // touches it.
            unsafe { (*n).state = WaitState::Idle }
        });
        true
    }
}

impl Default for Waiter {
    fn default() -> Self {
        Waiter::new()
    }
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The state is readable only under the list's lock (rule 1), which we do not have.
        f.write_str("Waiter")
    }
}

/// A position in a list's push order: nodes pushed before it are "older" (rule 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mark(u64);

/// A FIFO list of waiting [`Waiter`]s, guarded by its owner's lock (rule 1).
pub(crate) struct WaitList {
    head: Option<NonNull<Waiter>>,
    tail: Option<NonNull<Waiter>>,
    len: usize,
    /// Pushes so far; the next push's `seq`.
    pushes: u64,
}

// SAFETY: the list is only used through `&mut` under its owner's lock (rule 1); the nodes it
// points to are `Send + Sync` on the same grounds.
unsafe impl Send for WaitList {}
// SAFETY: as for `Send`.
unsafe impl Sync for WaitList {}

impl std::fmt::Debug for WaitList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitList").field("len", &self.len).finish()
    }
}

impl Default for WaitList {
    fn default() -> Self {
        WaitList::new()
    }
}

impl WaitList {
    /// An empty list.
    pub(crate) const fn new() -> WaitList {
        WaitList {
            head: None,
            tail: None,
            len: 0,
            pushes: 0,
        }
    }

    /// No node is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Queued nodes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The current end of the push order: [`notify_into`](Self::notify_into) with this mark
    /// notifies only nodes queued now.
    pub(crate) fn mark(&self) -> Mark {
        Mark(self.pushes)
    }

    /// Links `waiter` at the tail, to be woken through `waker`.
    ///
    /// # Safety
    /// Rule 1 (`waiter` is used with this list only, and this is called under its lock) and
    /// rule 3 (the owner removes it before dropping it). `waiter` must be idle (rule 2).
    pub(crate) unsafe fn push(&mut self, waiter: Pin<&Waiter>, waker: &Waker) {
        let ptr = NonNull::from(waiter.get_ref());
        waiter.notified.store(false, Ordering::Relaxed);
        let seq = self.pushes;
        self.pushes += 1;
        let tail = self.tail;
        waiter.node.with_mut(|n| {
            // SAFETY: rule 1: we hold the list's lock, the only one under which the node's
            // fields are touched.
            let n = unsafe { &mut *n };
            debug_assert_eq!(n.state, WaitState::Idle, "pushed a node twice");
            n.prev = tail;
            n.next = None;
            n.waker = Some(waker.clone());
            n.state = WaitState::Queued;
            n.seq = seq;
        });
        match tail {
            // SAFETY: a linked node is alive (rule 3) and touched only under our lock (rule 1).
            Some(t) => unsafe { t.as_ref() }.node.with_mut(|n| {
                // SAFETY: rule 1, as above.
                unsafe { (*n).next = Some(ptr) }
            }),
            None => self.head = Some(ptr),
        }
        self.tail = Some(ptr);
        self.len += 1;
    }

    /// The state of `waiter`; while it is queued, its waker is refreshed from `waker`
    /// (rule 8). Does not change the state.
    ///
    /// # Safety
    /// Rule 1: `waiter` is used with this list only, and this is called under its lock.
    pub(crate) unsafe fn poll(&mut self, waiter: Pin<&Waiter>, waker: &Waker) -> WaitState {
        waiter.node.with_mut(|n| {
            // SAFETY: rule 1: under the list's lock.
            let n = unsafe { &mut *n };
            if n.state == WaitState::Queued {
                match &mut n.waker {
                    Some(w) if w.will_wake(waker) => {}
                    slot => *slot = Some(waker.clone()),
                }
            }
            n.state
        })
    }

    /// The poll of a queued owner: `true` if `waiter` was notified (it is then idle again,
    /// and what it was handed is the owner's); otherwise its waker is refreshed (rule 8).
    /// A notified waiter whose task has a cancellation to deliver stays notified and this
    /// returns `false` (rule 9): the owner returns `Pending`, and is dropped in this poll.
    ///
    /// # Safety
    /// Rule 1: `waiter` is used with this list only, and this is called under its lock.
    pub(crate) unsafe fn take_notified(&mut self, waiter: Pin<&Waiter>, waker: &Waker) -> bool {
        // SAFETY: forwarded from the caller (rule 1).
        if unsafe { self.poll(waiter, waker) } == WaitState::Notified
            && !crate::task::cancel::cancel_pending_now()
        {
            // SAFETY: forwarded from the caller (rule 1); the node is already unlinked.
            unsafe { self.remove(waiter) };
            true
        } else {
            false
        }
    }

    /// Unlinks `waiter` if it is queued and leaves it idle; returns the state it had. An
    /// owner that gets `Notified` here was handed something it now declines (rule 4).
    ///
    /// # Safety
    /// Rule 1: `waiter` is used with this list only, and this is called under its lock.
    pub(crate) unsafe fn remove(&mut self, waiter: Pin<&Waiter>) -> WaitState {
        let (state, prev, next) = waiter.node.with_mut(|n| {
            // SAFETY: rule 1: under the list's lock.
            let n = unsafe { &mut *n };
            let out = (n.state, n.prev.take(), n.next.take());
            n.state = WaitState::Idle;
            n.waker = None;
            out
        });
        waiter.notified.store(false, Ordering::Relaxed);
        if state == WaitState::Queued {
            // SAFETY: the node was queued, so it is linked here with `prev`/`next` (rule 2).
            unsafe { self.unlink(prev, next) };
        }
        state
    }

    /// Unlinks the head, marks it notified and returns its waker (to be woken after the lock
    /// is released, rule 7); `None` if the list is empty.
    pub(crate) fn notify_one(&mut self) -> Option<Waker> {
        self.pop_head(None)
    }

    /// Notifies up to `n` nodes from the head that were pushed before `before` (rule 6),
    /// putting their wakers into `batch`, until `batch` is full. Returns how many it
    /// notified; a caller that must notify more wakes the batch, re-locks and calls again
    /// with the same mark.
    pub(crate) fn notify_into(&mut self, n: usize, before: Mark, batch: &mut WakeBatch) -> usize {
        let mut done = 0;
        while done < n && !batch.is_full() {
            match self.pop_head(Some(before)) {
                Some(w) => batch.push(w),
                None => break,
            }
            done += 1;
        }
        done
    }

    fn head_seq(&self) -> Option<u64> {
        self.head.map(|h| {
            // SAFETY: a linked node is alive (rule 3); we are under the lock (rule 1).
            unsafe { h.as_ref() }.node.with(|n| {
                // SAFETY: rule 1.
                unsafe { (*n).seq }
            })
        })
    }

    /// Pops the head if it was pushed before `before` (any head if `None`), marking it
    /// notified. Returns its waker: a queued node always has one (`push` stores it, `poll`
    /// only replaces it), so `Some` means "a node was notified".
    fn pop_head(&mut self, before: Option<Mark>) -> Option<Waker> {
        let head = self.head?;
        if let Some(Mark(m)) = before {
            if self.head_seq()? >= m {
                return None;
            }
        }
        // SAFETY: the head is linked, hence alive (rule 3); under the lock (rule 1).
        let (next, waker) = unsafe { head.as_ref() }.node.with_mut(|n| {
            // SAFETY: rule 1.
            let n = unsafe { &mut *n };
            debug_assert_eq!(n.state, WaitState::Queued);
            n.state = WaitState::Notified;
            n.prev = None;
            (n.next.take(), n.waker.take())
        });
        debug_assert!(waker.is_some(), "a queued node without a waker");
        // SAFETY: the head was linked with no predecessor and successor `next` (rule 2).
        unsafe { self.unlink(None, next) };
        // Rule 10: the last touch; from here the node is its owner's.
        // SAFETY: still alive: its owner removes or takes it only after seeing this store
        // (rule 10) or under our lock (rules 1, 3).
        unsafe { head.as_ref() }
            .notified
            .store(true, Ordering::Release);
        waker
    }

    /// Closes the gap a node linked between `prev` and `next` leaves.
    ///
    /// # Safety
    /// The node was linked in this list between `prev` and `next` (rule 2), and we hold the
    /// lock (rule 1).
    unsafe fn unlink(&mut self, prev: Option<NonNull<Waiter>>, next: Option<NonNull<Waiter>>) {
        match prev {
            // SAFETY: a linked neighbour is alive (rule 3); under the lock (rule 1).
            Some(p) => unsafe { p.as_ref() }.node.with_mut(|n| {
                // SAFETY: rule 1.
                unsafe { (*n).next = next }
            }),
            None => self.head = next,
        }
        match next {
            // SAFETY: as for `prev`.
            Some(nx) => unsafe { nx.as_ref() }.node.with_mut(|n| {
                // SAFETY: rule 1.
                unsafe { (*n).prev = prev }
            }),
            None => self.tail = prev,
        }
        self.len -= 1;
    }
}

/// How many wakers a notify-all collects before it releases the lock to wake them.
const BATCH: usize = 32;

/// Wakers collected under a lock, woken after it is released (rule 7). Lives on the
/// notifier's stack: no allocation. `N` is its capacity: a notify-all batches 32; a
/// hand-off path that wakes one or two takes a small batch, which costs less to set up.
pub(crate) struct WakeBatch<const N: usize = BATCH> {
    wakers: [Option<Waker>; N],
    len: usize,
}

impl<const N: usize> WakeBatch<N> {
    /// An empty batch.
    pub(crate) const fn new() -> WakeBatch<N> {
        WakeBatch {
            wakers: [const { None }; N],
            len: 0,
        }
    }

    /// No more room: wake, then collect again.
    pub(crate) fn is_full(&self) -> bool {
        self.len == N
    }

    /// Adds a waker.
    ///
    /// # Panics
    /// If the batch is full (callers check [`is_full`](Self::is_full)).
    pub(crate) fn push(&mut self, w: Waker) {
        self.wakers[self.len] = Some(w);
        self.len += 1;
    }

    /// Wakes every collected waker (call with no lock held). If one panics, the others are
    /// still woken and the first panic is then resumed.
    pub(crate) fn wake_all(&mut self) {
        let mut first_panic = None;
        for slot in &mut self.wakers[..self.len] {
            if let Some(w) = slot.take() {
                if let Err(p) = crate::unwind::catch(|| w.wake()) {
                    first_panic.get_or_insert(p);
                }
            }
        }
        self.len = 0;
        if let Some(p) = first_panic {
            std::panic::resume_unwind(p);
        }
    }
}

/// Notifies up to `n` of the nodes queued in a list when called, waking them in batches
/// with the lock released between batches (rules 6 and 7). `guard` is the owner's lock,
/// already held: the caller changed its state in the same hold (rule 5). `relock` takes the
/// lock again and `list` finds the list in the guarded state. Returns how many it notified.
pub(crate) fn notify_many<G: DerefMut>(
    mut guard: G,
    relock: impl Fn() -> G,
    list: impl Fn(&mut G::Target) -> &mut WaitList,
    n: usize,
) -> usize {
    let mark = list(&mut guard).mark();
    let mut batch = WakeBatch::new();
    let mut total = 0;
    loop {
        let done = list(&mut guard).notify_into(n - total, mark, &mut batch);
        total += done;
        let more = batch.is_full() && total < n;
        drop(guard);
        batch.wake_all();
        if !more {
            return total;
        }
        guard = relock();
    }
}

/// Wakes `w` if there is one (after the lock is released, rule 7).
pub(crate) fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    // Rules 2 and 6: FIFO, each node notified once, a removed node never notified.
    #[test]
    fn fifo_notify_remove() {
        let mut list = WaitList::new();
        let ws: Vec<Pin<Box<Waiter>>> = (0..4).map(|_| Box::pin(Waiter::new())).collect();
        let (counts, wakers): (Vec<_>, Vec<_>) = (0..4).map(|_| waker()).unzip();
        for (w, k) in ws.iter().zip(&wakers) {
            // SAFETY: one list, no lock needed in a single-threaded test (rule 1); every node
            // is removed below before the boxes drop (rule 3).
            unsafe { list.push(w.as_ref(), k) };
        }
        assert_eq!(list.len(), 4);
        // SAFETY: as above.
        assert_eq!(unsafe { list.remove(ws[1].as_ref()) }, WaitState::Queued);
        wake(list.notify_one());
        assert_eq!(counts[0].0.load(Ordering::SeqCst), 1);
        // SAFETY: as above.
        let st = unsafe { list.poll(ws[0].as_ref(), &wakers[0]) };
        assert_eq!(st, WaitState::Notified);
        let mut batch = WakeBatch::new();
        assert_eq!(list.notify_into(usize::MAX, list.mark(), &mut batch), 2);
        batch.wake_all();
        assert!(list.is_empty());
        let woken: Vec<usize> = counts.iter().map(|c| c.0.load(Ordering::SeqCst)).collect();
        assert_eq!(woken, [1, 0, 1, 1]);
        for w in &ws {
            // SAFETY: as above.
            unsafe { list.remove(w.as_ref()) };
        }
    }

    // Rule 6: a mark taken before later pushes excludes them.
    #[test]
    fn mark_excludes_later_pushes() {
        let mut list = WaitList::new();
        let a = Box::pin(Waiter::new());
        let b = Box::pin(Waiter::new());
        let (ca, ka) = waker();
        let (cb, kb) = waker();
        // SAFETY: single-threaded (rule 1); both removed before drop (rule 3).
        unsafe { list.push(a.as_ref(), &ka) };
        let m = list.mark();
        // SAFETY: as above.
        unsafe { list.push(b.as_ref(), &kb) };
        let mut batch = WakeBatch::new();
        assert_eq!(list.notify_into(usize::MAX, m, &mut batch), 1);
        batch.wake_all();
        assert_eq!(ca.0.load(Ordering::SeqCst), 1);
        assert_eq!(cb.0.load(Ordering::SeqCst), 0);
        // SAFETY: as above.
        assert_eq!(unsafe { list.remove(b.as_ref()) }, WaitState::Queued);
        // SAFETY: as above.
        assert_eq!(unsafe { list.remove(a.as_ref()) }, WaitState::Notified);
        assert!(list.is_empty());
    }

    // Rule 6/7: more waiters than one batch holds are all notified in rounds.
    #[test]
    fn notify_all_in_batches() {
        let mut list = WaitList::new();
        let ws: Vec<Pin<Box<Waiter>>> = (0..(BATCH * 2 + 3))
            .map(|_| Box::pin(Waiter::new()))
            .collect();
        let (c, k) = waker();
        for w in &ws {
            // SAFETY: single-threaded (rule 1); all notified or removed before drop (rule 3).
            unsafe { list.push(w.as_ref(), &k) };
        }
        let m = list.mark();
        let mut batch = WakeBatch::new();
        let mut total = 0;
        loop {
            let n = list.notify_into(usize::MAX, m, &mut batch);
            batch.wake_all();
            total += n;
            if n == 0 {
                break;
            }
        }
        assert_eq!(total, ws.len());
        assert_eq!(c.0.load(Ordering::SeqCst), ws.len());
        for w in &ws {
            // SAFETY: as above.
            assert_eq!(unsafe { list.remove(w.as_ref()) }, WaitState::Notified);
        }
    }
}
