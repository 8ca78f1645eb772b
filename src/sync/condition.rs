//! asyncio's `Condition` (rule P3) over a [`Lock`]: its own waiter list for `wait`, and the
//! lock's for re-acquiring.
//!
//! asyncio's `wait()` re-acquires the lock even when it is cancelled, and only then lets the
//! cancellation propagate. Rust cannot run async code in a destructor, so `wait` catches a
//! cancellation request itself (a [`catch_cancel`](crate::catch_cancel) scope around each
//! await), re-acquires the lock, and then re-raises the request
//! ([`CancelledError::reraise`](crate::CancelledError::reraise)) to the enclosing scope,
//! which then drops the caller's guard — the `async with` exit. A waiter cancelled after a
//! `notify` chose it passes the notification to the next waiter (asyncio 3.13,
//! gh-112202), so a cancellation never swallows a `notify`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::error::ConditionError;
use super::lock::{Lock, LockGuard};
use super::waiters::{notify_many, wake, WaitList, WaitState, Waiter};
use crate::shim::Mutex;

enum LockSlot {
    Own(Lock),
    Shared(Arc<Lock>),
}

/// asyncio's `Condition`: tasks holding its lock `wait()` until another task `notify`s
/// them, re-acquiring the lock before `wait()` returns.
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
/// use aioloop::sync::Condition;
///
/// let rt = aioloop::Runtime::builder().workers(2).build()?;
/// let cond = Arc::new(Condition::new());
/// let ready = Arc::new(AtomicBool::new(false));
/// rt.block_on(async {
///     let (c, r) = (cond.clone(), ready.clone());
///     let consumer = aioloop::create_task(async move {
///         let mut guard = c.acquire().await;
///         c.wait_for(&mut guard, || r.load(Ordering::SeqCst)).await.unwrap();
///     });
///     let guard = cond.acquire().await;
///     ready.store(true, Ordering::SeqCst);
///     cond.notify_all().unwrap();
///     drop(guard);
///     consumer.await.unwrap();
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Condition {
    lock: LockSlot,
    waiters: Mutex<WaitList>,
}

impl Condition {
    /// A condition with a lock of its own.
    ///
    /// ```
    /// assert!(!aioloop::sync::Condition::new().locked());
    /// ```
    pub fn new() -> Condition {
        Condition {
            lock: LockSlot::Own(Lock::new()),
            waiters: Mutex::new(WaitList::new()),
        }
    }

    /// A condition over an existing lock (asyncio's `Condition(lock)`), which other code
    /// may acquire directly too.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(aioloop::sync::Lock::new());
    /// let cond = aioloop::sync::Condition::with_lock(lock.clone());
    /// # aioloop::LocalLoop::new()?.run_until_complete(async {
    /// let _g = lock.acquire().await;
    /// assert!(cond.locked());
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_lock(lock: Arc<Lock>) -> Condition {
        Condition {
            lock: LockSlot::Shared(lock),
            waiters: Mutex::new(WaitList::new()),
        }
    }

    /// The underlying lock.
    ///
    /// ```
    /// let cond = aioloop::sync::Condition::new();
    /// assert!(!cond.lock().locked());
    /// ```
    pub fn lock(&self) -> &Lock {
        match &self.lock {
            LockSlot::Own(l) => l,
            LockSlot::Shared(l) => l,
        }
    }

    /// Acquires the underlying lock (`async with cond:`).
    ///
    /// ```
    /// # aioloop::LocalLoop::new()?.run_until_complete(async {
    /// let cond = aioloop::sync::Condition::new();
    /// let _g = cond.acquire().await;
    /// assert!(cond.locked());
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn acquire(&self) -> LockGuard<'_> {
        self.lock().acquire().await
    }

    /// Whether the underlying lock is held.
    ///
    /// ```
    /// assert!(!aioloop::sync::Condition::new().locked());
    /// ```
    pub fn locked(&self) -> bool {
        self.lock().locked()
    }

    /// Releases the lock `guard` holds, waits for a `notify`, and re-acquires the lock
    /// before returning (asyncio's `await cond.wait()`).
    ///
    /// `guard` must hold this condition's lock, else [`ConditionError::WaitUnacquired`].
    /// If the task is cancelled while waiting or re-acquiring, the lock is re-acquired
    /// first and the cancellation is then re-raised to the task's enclosing catch scope (or
    /// ends the task), which drops the guard. If this future is dropped any other way
    /// before it re-acquired the lock, the guard is left not holding it
    /// ([`LockGuard::holds`]) and its drop releases nothing.
    ///
    /// ```
    /// # aioloop::LocalLoop::new()?.run_until_complete(async {
    /// let cond = aioloop::sync::Condition::new();
    /// let other = aioloop::sync::Lock::new();
    /// let mut wrong = other.acquire().await;
    /// let err = cond.wait(&mut wrong).await.unwrap_err();
    /// assert_eq!(err.to_string(), "cannot wait on un-acquired lock");
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn wait(&self, guard: &mut LockGuard<'_>) -> Result<(), ConditionError> {
        let lock = self.lock();
        if !std::ptr::eq(guard.lock, lock) || !guard.held {
            return Err(ConditionError::WaitUnacquired);
        }
        guard.held = false;
        let waiting = CondWait {
            cond: self,
            waiter: Waiter::new(),
            queued: false,
            released: false,
        };
        let mut cancelled = crate::catch_cancel(waiting).await.err();
        loop {
            match crate::catch_cancel(lock.permits().acquire()).await {
                Ok(()) => break,
                Err(e) => cancelled = Some(e),
            }
        }
        guard.held = true;
        match cancelled {
            None => Ok(()),
            Some(e) => Err(ConditionError::Cancelled(e.reraise().await)),
        }
    }

    /// Waits until `predicate` returns true (asyncio's `wait_for`): checks it first, then
    /// after each wake-up, always with the lock held.
    ///
    /// ```
    /// # aioloop::LocalLoop::new()?.run_until_complete(async {
    /// let cond = aioloop::sync::Condition::new();
    /// let mut g = cond.acquire().await;
    /// cond.wait_for(&mut g, || true).await.unwrap(); // true at once: no wait
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn wait_for(
        &self,
        guard: &mut LockGuard<'_>,
        mut predicate: impl FnMut() -> bool,
    ) -> Result<(), ConditionError> {
        if !std::ptr::eq(guard.lock, self.lock()) || !guard.held {
            return Err(ConditionError::WaitUnacquired);
        }
        while !predicate() {
            self.wait(guard).await?;
        }
        Ok(())
    }

    /// Wakes up to `n` tasks waiting on this condition (asyncio's `notify(n)`); each
    /// returns from `wait` once it re-acquires the lock. The lock must be held, else
    /// [`ConditionError::NotifyUnacquired`]. Returns how many were woken.
    ///
    /// ```
    /// # aioloop::LocalLoop::new()?.run_until_complete(async {
    /// let cond = aioloop::sync::Condition::new();
    /// let _g = cond.acquire().await;
    /// assert_eq!(cond.notify(1), Ok(0)); // nobody waits
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn notify(&self, n: usize) -> Result<usize, ConditionError> {
        if !self.locked() {
            return Err(ConditionError::NotifyUnacquired);
        }
        Ok(notify_many(
            self.waiters.lock(),
            || self.waiters.lock(),
            |l| l,
            n,
        ))
    }

    /// Wakes every task waiting on this condition now (asyncio's `notify_all`).
    ///
    /// ```
    /// let cond = aioloop::sync::Condition::new();
    /// assert!(cond.notify_all().is_err()); // lock not held
    /// ```
    pub fn notify_all(&self) -> Result<usize, ConditionError> {
        self.notify(usize::MAX)
    }
}

impl Default for Condition {
    fn default() -> Self {
        Condition::new()
    }
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition")
            .field("locked", &self.locked())
            .field("waiters", &self.waiters.lock().len())
            .finish()
    }
}

/// Waiting for a notification. Its first poll queues the node and only then lets go of the
/// lock, in that order: a notifier needs the lock, so it cannot notify between the two and
/// nothing is missed (asyncio: release, then append, with no await between).
struct CondWait<'a> {
    cond: &'a Condition,
    waiter: Waiter,
    queued: bool,
    /// The lock was let go (the guard's `held` is already false).
    released: bool,
}

impl Future for CondWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: nothing is moved out; `waiter` is structurally pinned and dropped in place
        // with the future (invariant 17).
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: `this` is pinned, hence its field.
        let node = unsafe { Pin::new_unchecked(&this.waiter) };
        if !this.released {
            // SAFETY: waiters.rs rules 1 and 3: under the list's lock; `Drop` removes the
            // node and the future is dropped where pinned (invariant 17).
            unsafe { this.cond.waiters.lock().push(node, cx.waker()) };
            this.queued = true;
            this.released = true;
            this.cond.lock().unlock();
            return Poll::Pending;
        }
        let mut list = this.cond.waiters.lock();
        // SAFETY: waiters.rs rule 1: our node, the condition's list, under its lock.
        if unsafe { list.take_notified(node, cx.waker()) } {
            this.queued = false;
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for CondWait<'_> {
    fn drop(&mut self) {
        if !self.released {
            // Dropped before its first poll: `wait` re-acquires next, so let go now.
            self.cond.lock().unlock();
        }
        if !self.queued {
            return;
        }
        // SAFETY: pinned when pushed, dropped in place (invariant 17).
        let node = unsafe { Pin::new_unchecked(&self.waiter) };
        let mut list = self.cond.waiters.lock();
        // SAFETY: waiters.rs rule 1: our node, our list, under its lock.
        let w = match unsafe { list.remove(node) } {
            // Waiters.rs rule 4 (gh-112202): chosen by a notify we will not act on; the next
            // waiter gets it.
            WaitState::Notified => list.notify_one(),
            _ => None,
        };
        drop(list);
        wake(w);
    }
}
