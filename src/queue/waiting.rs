//! The queue's waits: the futures of `get`, `put` and `join` (rules Q4–Q8), parked on the
//! waiter lists of `crate::sync::waiters` (its rules 1–8 are cited as "waiters rule N").
//!
//! Each future embeds one `Waiter` and uses it with one list of its queue's state: `Get` with
//! `getters`, `Put` with `putters`, `Join` with `joiners`, always under the queue's lock
//! (waiters rule 1). A wait decides to park and parks in one lock hold, and every change that
//! can end a wait notifies in the same hold as the change (waiters rule 5): so a `get` that
//! found the queue empty is on the list before any `put_nowait` can look for it.
//!
//! * `put_nowait` / a `Put` that stores its item notifies the first getter; `get_nowait` / a
//!   `Get` that takes an item notifies the first putter (asyncio's `_wakeup_next`).
//! * A notified `Get` or `Put` runs again and *retries*: the notification says "look again",
//!   not "this item is yours" (module docs of `queue`). Finding nothing, it parks again at the
//!   tail, as asyncio's `while self.empty():` loop creates a new future.
//! * Dropped while notified (its task was cancelled, or a `select` lost interest): it passes
//!   the notification to the next waiter of its list if what it was woken for is still
//!   there (an item for a getter, a free slot for a putter), in the same lock hold (waiters
//!   rule 4; asyncio's `if not self.empty() and not getter.cancelled(): self._wakeup_next()`).
//! * `task_done` reaching zero and `shutdown(immediate)` draining to zero notify every joiner;
//!   `shutdown` notifies every getter and putter. A notified `Join` is done (asyncio's
//!   `Event.wait` returns once the event was set, even if it was cleared since).

use std::future::Future;
use std::marker::PhantomPinned;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::order::sealed::Store;
use super::{GenericQueue, Order, QueueShutDown, State};
use crate::sync::waiters::{wake, WaitList, WaitState, Waiter};

/// The future of [`GenericQueue::get`]: the next item, or [`QueueShutDown`].
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let q = aioloop::queue::Queue::new(0);
/// q.put_nowait(5).unwrap();
/// let get: aioloop::queue::Get<'_, i32, aioloop::queue::Fifo> = q.get();
/// assert_eq!(rt.block_on(get), Ok(5));
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Get<'a, T, O: Order<T>> {
    queue: &'a GenericQueue<T, O>,
    waiter: Waiter,
    /// Whether `waiter` was pushed on `getters` and not yet removed (waiters rule 3).
    pushed: bool,
    _pin: PhantomPinned,
}

/// The future of [`GenericQueue::put`]: `Ok` once the item is in the queue, or
/// [`QueueShutDown`] holding the item.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let q = aioloop::queue::Queue::new(1);
/// let put: aioloop::queue::Put<'_, &str, aioloop::queue::Fifo> = q.put("a");
/// assert!(rt.block_on(put).is_ok());
/// assert_eq!(q.qsize(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Put<'a, T, O: Order<T>> {
    queue: &'a GenericQueue<T, O>,
    item: Option<T>,
    waiter: Waiter,
    /// As in [`Get`].
    pushed: bool,
    _pin: PhantomPinned,
}

/// The future of [`GenericQueue::join`]: ready once every item put has been marked done.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let q = aioloop::queue::Queue::<u8>::new(0);
/// let join: aioloop::queue::Join<'_, u8, aioloop::queue::Fifo> = q.join();
/// rt.block_on(join); // nothing was ever put: ready at once
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Join<'a, T, O: Order<T>> {
    queue: &'a GenericQueue<T, O>,
    waiter: Waiter,
    /// As in [`Get`].
    pushed: bool,
    _pin: PhantomPinned,
}

impl<'a, T, O: Order<T>> Get<'a, T, O> {
    pub(super) fn new(queue: &'a GenericQueue<T, O>) -> Self {
        Get {
            queue,
            waiter: Waiter::new(),
            pushed: false,
            _pin: PhantomPinned,
        }
    }
}

impl<'a, T, O: Order<T>> Put<'a, T, O> {
    pub(super) fn new(queue: &'a GenericQueue<T, O>, item: T) -> Self {
        Put {
            queue,
            item: Some(item),
            waiter: Waiter::new(),
            pushed: false,
            _pin: PhantomPinned,
        }
    }
}

impl<'a, T, O: Order<T>> Join<'a, T, O> {
    pub(super) fn new(queue: &'a GenericQueue<T, O>) -> Self {
        Join {
            queue,
            waiter: Waiter::new(),
            pushed: false,
            _pin: PhantomPinned,
        }
    }
}

/// Where a wait stands when it is polled.
#[derive(PartialEq, Eq)]
enum Parked {
    /// Still on its list: keep waiting.
    Waiting,
    /// Was on its list and has been notified; idle again now.
    Notified,
    /// Never parked (the first poll, or the previous poll did not park).
    Not,
}

/// The common first step of every poll: a wait that is on `list` stays pending unless it
/// was notified, in which case it leaves the list's protocol (idle again).
///
/// # Safety
/// `waiter` is used with `list` only, under the lock that guards it (waiters rule 1), and
/// its owner sets `*pushed = true` only after pushing it on `list`.
unsafe fn check_parked(
    list: &mut WaitList,
    waiter: Pin<&Waiter>,
    pushed: &mut bool,
    cx: &Context<'_>,
) -> Parked {
    if !*pushed {
        return Parked::Not;
    }
    // SAFETY: the caller's contract is waiters rule 1. A notified node comes back idle
    // (rule 4); a queued one gets the poll's waker (rule 8).
    if unsafe { list.take_notified(waiter, cx.waker()) } {
        *pushed = false;
        Parked::Notified
    } else {
        Parked::Waiting
    }
}

/// A notified wait whose task has a cancellation request that this poll delivers: asyncio
/// raises `CancelledError` at the `await` instead of resuming, so the wait must not take
/// what it was woken for (an item, a slot). It stays pending — the enclosing catch scope,
/// or the task's end, drops it — and the caller passes the wake-up on (rule Q5). The
/// self-wake keeps the future contract should a combinator poll it again instead.
fn declines(parked: &Parked, cx: &Context<'_>) -> bool {
    if *parked == Parked::Notified && crate::task::cancel::cancel_pending_now() {
        cx.waker().wake_by_ref();
        return true;
    }
    false
}

impl<T, O: Order<T>> Future for Get<'_, T, O> {
    type Output = Result<T, QueueShutDown>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `waiter` is structurally pinned: it is never moved out of `self`, and
        // `Drop` removes it from its list before it is freed (waiters rule 3).
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: pinned as said above; `this` is not moved from here on.
        let waiter = unsafe { Pin::new_unchecked(&this.waiter) };
        let queue = this.queue;
        let mut st = queue.state.lock();
        // SAFETY: this waiter is only ever used with `getters`, under the queue's lock
        // (waiters rule 1), and `pushed` is set right after pushing it there.
        let parked = unsafe { check_parked(&mut st.getters, waiter, &mut this.pushed, cx) };
        if parked == Parked::Waiting {
            return Poll::Pending;
        }
        if declines(&parked, cx) {
            let next = st.pass_on(Side::Get, queue.maxsize);
            drop(st);
            wake(next);
            return Poll::Pending;
        }
        if let Some(item) = st.store.pop() {
            let putter = st.putters.notify_one();
            drop(st);
            wake(putter);
            return Poll::Ready(Ok(item));
        }
        if st.shutdown {
            return Poll::Ready(Err(QueueShutDown(())));
        }
        // SAFETY: waiters rule 1 as above; `Drop` removes it before it is freed (rule 3);
        // it is idle (never pushed, or reset by `check_parked`).
        unsafe { st.getters.push(waiter, cx.waker()) };
        this.pushed = true;
        Poll::Pending
    }
}

impl<T, O: Order<T>> Drop for Get<'_, T, O> {
    fn drop(&mut self) {
        if self.pushed {
            // SAFETY: the waiter was pinned while pushed (it is dropped in place after
            // this), and it was used with the getters' list only.
            unsafe { leave(self.queue, Pin::new_unchecked(&self.waiter), Side::Get) };
        }
    }
}

impl<T, O: Order<T>> Future for Put<'_, T, O> {
    type Output = Result<(), QueueShutDown<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: as in `Get::poll`: `waiter` is structurally pinned, `item` is not (it is
        // moved out by value, never pinned).
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as in `Get::poll`.
        let waiter = unsafe { Pin::new_unchecked(&this.waiter) };
        let queue = this.queue;
        let mut st = queue.state.lock();
        // SAFETY: as in `Get::poll`, with `putters`.
        let parked = unsafe { check_parked(&mut st.putters, waiter, &mut this.pushed, cx) };
        if parked == Parked::Waiting {
            return Poll::Pending;
        }
        if declines(&parked, cx) {
            let next = st.pass_on(Side::Put, queue.maxsize);
            drop(st);
            wake(next);
            return Poll::Pending;
        }
        let Some(item) = this.item.take() else {
            panic!("`Put` polled after completion");
        };
        if st.shutdown {
            return Poll::Ready(Err(QueueShutDown(item)));
        }
        if !st.full(queue.maxsize) {
            let getter = st.store_item(item);
            drop(st);
            wake(getter);
            return Poll::Ready(Ok(()));
        }
        this.item = Some(item);
        // SAFETY: as in `Get::poll`, with `putters`.
        unsafe { st.putters.push(waiter, cx.waker()) };
        this.pushed = true;
        Poll::Pending
    }
}

impl<T, O: Order<T>> Drop for Put<'_, T, O> {
    fn drop(&mut self) {
        if self.pushed {
            // SAFETY: as in `Get::drop`, with the putters' list.
            unsafe { leave(self.queue, Pin::new_unchecked(&self.waiter), Side::Put) };
        }
        // The item is dropped with the future, outside the lock: a cancelled put puts nothing.
    }
}

impl<T, O: Order<T>> Future for Join<'_, T, O> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: as in `Get::poll`.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as in `Get::poll`.
        let waiter = unsafe { Pin::new_unchecked(&this.waiter) };
        let mut st = this.queue.state.lock();
        // SAFETY: as in `Get::poll`, with `joiners`.
        let parked = unsafe { check_parked(&mut st.joiners, waiter, &mut this.pushed, cx) };
        if parked == Parked::Waiting || declines(&parked, cx) {
            return Poll::Pending;
        }
        // Notified: the count reached zero at some point since we parked (asyncio's
        // `_finished.wait()` returns even if a put has raised it again since).
        if parked == Parked::Notified || st.unfinished == 0 {
            return Poll::Ready(());
        }
        // SAFETY: as in `Get::poll`, with `joiners`.
        unsafe { st.joiners.push(waiter, cx.waker()) };
        this.pushed = true;
        Poll::Pending
    }
}

impl<T, O: Order<T>> Drop for Join<'_, T, O> {
    fn drop(&mut self) {
        if self.pushed {
            // SAFETY: as in `Get::drop`, with the joiners' list.
            unsafe { leave(self.queue, Pin::new_unchecked(&self.waiter), Side::Join) };
        }
    }
}

/// Which of the queue's three waits (and so which list) a waiter belongs to.
#[derive(Clone, Copy)]
enum Side {
    Get,
    Put,
    Join,
}

impl<T, S: Store<T>> State<T, S> {
    fn list(&mut self, side: Side) -> &mut WaitList {
        match side {
            Side::Get => &mut self.getters,
            Side::Put => &mut self.putters,
            Side::Join => &mut self.joiners,
        }
    }

    /// A notified waiter declines what it was woken for (it was cancelled): the next one of
    /// its list is notified if that is still there — an item for a getter, a free slot for
    /// a putter (asyncio's `except:` branches of `get` and `put`). Joiners are notified all
    /// at once, so a joiner has nothing to pass on.
    fn pass_on(&mut self, side: Side, maxsize: usize) -> Option<Waker> {
        let there = match side {
            Side::Get => self.store.len() > 0,
            Side::Put => !self.full(maxsize),
            Side::Join => false,
        };
        if there {
            self.list(side).notify_one()
        } else {
            None
        }
    }
}

/// The drop of a wait that parked: it leaves its list, and if it had been notified it passes
/// the wake-up on (waiters rule 4), in the same lock hold; the next waiter is woken after the
/// lock is released (rule 7).
///
/// # Safety
/// `waiter` was pushed on the list of `side` only (waiters rule 1) and is still pinned.
unsafe fn leave<T, O: Order<T>>(queue: &GenericQueue<T, O>, waiter: Pin<&Waiter>, side: Side) {
    let mut st = queue.state.lock();
    // SAFETY: waiters rule 1 (the caller's list, under its lock); removing before the
    // waiter is freed is rule 3.
    let was = unsafe { st.list(side).remove(waiter) };
    let next = if was == WaitState::Notified {
        st.pass_on(side, queue.maxsize)
    } else {
        None
    };
    drop(st);
    wake(next);
}
