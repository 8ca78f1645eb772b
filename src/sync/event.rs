//! asyncio's `Event` (rule P2): a flag tasks wait for. `set()` wakes every task waiting at
//! that moment (waiters.rs rule 6), in batches with the lock released; a waiter decides to
//! wait and queues in one hold of the lock that `set()` takes (waiters.rs rule 5), so a
//! `set` racing a `wait` is never lost.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::waiters::{notify_many, WaitList, Waiter};
use crate::shim::atomic::{AtomicBool, Ordering};
use crate::shim::Mutex;

/// asyncio's `Event`: `wait().await` returns once the flag is set; `set()` wakes every
/// waiting task; `clear()` resets the flag for later waiters.
///
/// A task woken by `set()` returns from `wait()` even if the flag was cleared again before
/// it ran (asyncio's semantics: the set happened while it waited). Usable from every worker,
/// from a [`LocalLoop`](crate::LocalLoop), and `set()` from any thread.
///
/// ```
/// use std::sync::Arc;
/// use aioloop::sync::Event;
///
/// let rt = aioloop::Runtime::builder().workers(2).build()?;
/// let ev = Arc::new(Event::new());
/// let ev2 = ev.clone();
/// rt.block_on(async move {
///     let waiter = aioloop::create_task(async move { ev2.wait().await });
///     aioloop::sleep(std::time::Duration::from_millis(1)).await;
///     ev.set();
///     waiter.await.unwrap();
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Event {
    flag: AtomicBool,
    waiters: Mutex<WaitList>,
}

impl Event {
    /// An event whose flag is clear.
    ///
    /// ```
    /// assert!(!aioloop::sync::Event::new().is_set());
    /// ```
    pub fn new() -> Event {
        Event {
            flag: AtomicBool::new(false),
            waiters: Mutex::new(WaitList::new()),
        }
    }

    /// Whether the flag is set.
    ///
    /// ```
    /// let ev = aioloop::sync::Event::new();
    /// ev.set();
    /// assert!(ev.is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Sets the flag and wakes every task waiting now. Callable from any thread.
    ///
    /// ```
    /// let ev = aioloop::sync::Event::new();
    /// ev.set();
    /// ev.set(); // setting a set event does nothing
    /// assert!(ev.is_set());
    /// ```
    pub fn set(&self) {
        if self.flag.load(Ordering::Acquire) {
            return;
        }
        let guard = self.waiters.lock();
        // Release: a waiter that sees the flag sees what the setter did before `set`.
        if self.flag.swap(true, Ordering::AcqRel) {
            return;
        }
        notify_many(guard, || self.waiters.lock(), |l| l, usize::MAX);
    }

    /// Clears the flag: later `wait()`s wait for the next `set()`.
    ///
    /// ```
    /// let ev = aioloop::sync::Event::new();
    /// ev.set();
    /// ev.clear();
    /// assert!(!ev.is_set());
    /// ```
    pub fn clear(&self) {
        self.flag.store(false, Ordering::Release);
    }

    /// Waits until the flag is set; returns at once if it is.
    ///
    /// ```
    /// # aioloop::LocalLoop::new()?.run_until_complete(async {
    /// let ev = aioloop::sync::Event::new();
    /// ev.set();
    /// ev.wait().await;
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(&self) -> EventWait<'_> {
        EventWait {
            event: self,
            waiter: Waiter::new(),
            queued: false,
        }
    }
}

impl Default for Event {
    fn default() -> Self {
        Event::new()
    }
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .field("waiters", &self.waiters.lock().len())
            .finish()
    }
}

/// The future of [`Event::wait`].
///
/// ```
/// # aioloop::LocalLoop::new()?.run_until_complete(async {
/// let ev = aioloop::sync::Event::new();
/// let wait: aioloop::sync::EventWait<'_> = ev.wait();
/// ev.set();
/// wait.await;
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct EventWait<'a> {
    event: &'a Event,
    waiter: Waiter,
    queued: bool,
}

impl Future for EventWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: nothing is moved out of `self`; `waiter` is structurally pinned and dropped
        // in place with the future (invariant 17).
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: `this` is pinned, hence its field.
        let node = unsafe { Pin::new_unchecked(&this.waiter) };
        let ev = this.event;
        if !this.queued && ev.flag.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        let mut list = ev.waiters.lock();
        if this.queued {
            // SAFETY: waiters.rs rule 1: our node, the event's list, under its lock.
            if unsafe { list.take_notified(node, cx.waker()) } {
                this.queued = false;
                return Poll::Ready(());
            }
            return Poll::Pending;
        }
        // Waiters.rs rule 5: the flag is re-read under the lock `set` holds.
        if ev.flag.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        // SAFETY: waiters.rs rules 1 and 3: under the list's lock; `Drop` removes the node
        // and the future is dropped where pinned (invariant 17).
        unsafe { list.push(node, cx.waker()) };
        this.queued = true;
        Poll::Pending
    }
}

impl Drop for EventWait<'_> {
    fn drop(&mut self) {
        if self.queued {
            // SAFETY: pinned when pushed, dropped in place (invariant 17).
            let node = unsafe { Pin::new_unchecked(&self.waiter) };
            // A notified waiter has nothing to pass on: `set` woke everyone.
            // SAFETY: waiters.rs rule 1: our node, our list, under its lock.
            unsafe { self.event.waiters.lock().remove(node) };
        }
    }
}

impl std::fmt::Debug for EventWait<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWait")
            .field("queued", &self.queued)
            .finish()
    }
}
