//! asyncio's `Lock` (rule P1): a FIFO mutual-exclusion lock for tasks, with direct hand-off.
//! The counting and the waiter protocol are `permits.rs` with one permit.

use super::error::LockNotAcquired;
use super::permits::Permits;

/// asyncio's `Lock`: `acquire().await` waits, in FIFO order, until the lock is free and
/// returns a [`LockGuard`] that releases it when dropped (`async with lock:`).
///
/// Usable from every worker of a runtime and from a [`LocalLoop`](crate::LocalLoop) at once;
/// a waiting task is woken on its own loop. Acquiring and releasing without contention is
/// one compare-and-swap each and allocates nothing. A waiter cancelled after the lock was
/// handed to it passes the lock on (rule P1).
///
/// ```
/// use std::sync::Arc;
/// use aioloop::sync::Lock;
///
/// let rt = aioloop::Runtime::builder().workers(2).build()?;
/// let lock = Arc::new(Lock::new());
/// let total = rt.block_on(async {
///     let tasks: Vec<_> = (0..4)
///         .map(|_| {
///             let lock = lock.clone();
///             aioloop::create_task(async move {
///                 let _held = lock.acquire().await;
///                 aioloop::sleep(std::time::Duration::from_millis(1)).await;
///             })
///         })
///         .collect();
///     for t in tasks {
///         t.await.unwrap();
///     }
///     lock.locked()
/// });
/// assert!(!total);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Lock {
    permits: Permits,
}

impl Lock {
    /// An unlocked lock.
    ///
    /// ```
    /// assert!(!aioloop::sync::Lock::new().locked());
    /// ```
    pub fn new() -> Lock {
        Lock {
            permits: Permits::new(1),
        }
    }

    /// Waits until the lock is free and takes it (asyncio's `await lock.acquire()`). Waiters
    /// are served first come, first served; a task arriving while others wait queues behind
    /// them even if the lock happens to be free.
    ///
    /// Cancel-safe: a task cancelled while waiting leaves the queue, and one cancelled after
    /// the lock was handed to it (but before it resumed) hands it to the next waiter.
    ///
    /// ```
    /// # aioloop::LocalLoop::new()?.run_until_complete(async {
    /// let lock = aioloop::sync::Lock::new();
    /// let guard = lock.acquire().await;
    /// assert!(lock.locked());
    /// drop(guard);
    /// assert!(!lock.locked());
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn acquire(&self) -> LockGuard<'_> {
        self.permits.acquire().await;
        LockGuard {
            lock: self,
            held: true,
        }
    }

    /// Takes the lock if it is free and nobody waits for it, without waiting.
    ///
    /// ```
    /// let lock = aioloop::sync::Lock::new();
    /// let g = lock.try_acquire().unwrap();
    /// assert!(lock.try_acquire().is_none());
    /// drop(g);
    /// ```
    pub fn try_acquire(&self) -> Option<LockGuard<'_>> {
        // `then`, not `then_some`: a guard built and dropped on failure would release.
        self.permits.try_acquire().then(|| LockGuard {
            lock: self,
            held: true,
        })
    }

    /// Whether the lock is held (asyncio's `locked()`). While the lock is being handed from
    /// one holder to the next waiter it stays held.
    ///
    /// ```
    /// let lock = aioloop::sync::Lock::new();
    /// assert!(!lock.locked());
    /// ```
    pub fn locked(&self) -> bool {
        self.permits.locked()
    }

    /// Releases the lock held by a guard that was [forgotten](LockGuard::forget): the
    /// guard-less style of `lock.acquire(); try: … finally: lock.release()`. On an unlocked
    /// lock it is asyncio's `RuntimeError('Lock is not acquired.')`.
    ///
    /// Like asyncio's, it does not check *who* holds the lock: releasing a lock another
    /// guard holds releases it for that guard too (whose drop then releases it again).
    ///
    /// ```
    /// # aioloop::LocalLoop::new()?.run_until_complete(async {
    /// let lock = aioloop::sync::Lock::new();
    /// lock.acquire().await.forget();
    /// assert!(lock.locked());
    /// lock.release()?;
    /// assert!(lock.release().is_err());
    /// # Ok::<(), aioloop::sync::LockNotAcquired>(())
    /// # })??;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release(&self) -> Result<(), LockNotAcquired> {
        self.permits.release(Some(1)).map_err(|_| LockNotAcquired)
    }

    /// The hand-off a guard does on drop, and `Condition::wait` before waiting.
    pub(crate) fn unlock(&self) {
        // A held lock has count 0, so the bound of 1 cannot refuse.
        let _ = self.permits.release(Some(1));
    }

    pub(crate) fn permits(&self) -> &Permits {
        &self.permits
    }
}

impl Default for Lock {
    fn default() -> Self {
        Lock::new()
    }
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // asyncio's repr: "[locked]" / "[unlocked]", and the waiters.
        f.debug_struct("Lock")
            .field("locked", &self.locked())
            .field("waiters", &self.permits.waiting())
            .finish()
    }
}

/// Holds a [`Lock`]; dropping it releases the lock (to the next waiter, if any).
///
/// ```
/// # aioloop::LocalLoop::new()?.run_until_complete(async {
/// let lock = aioloop::sync::Lock::new();
/// {
///     let _guard = lock.acquire().await;
///     assert!(lock.locked());
/// }
/// assert!(!lock.locked());
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping the guard releases the lock at once"]
pub struct LockGuard<'a> {
    pub(crate) lock: &'a Lock,
    /// Whether the guard holds the lock: `Condition::wait` lets go of it while waiting, and
    /// a wait dropped without re-acquiring (not through a cancellation request) leaves it
    /// `false`, so the guard's drop does not release a lock it no longer holds.
    pub(crate) held: bool,
}

impl LockGuard<'_> {
    /// Keeps the lock held without a guard; release it later with [`Lock::release`].
    ///
    /// ```
    /// # aioloop::LocalLoop::new()?.run_until_complete(async {
    /// let lock = aioloop::sync::Lock::new();
    /// lock.acquire().await.forget();
    /// assert!(lock.locked());
    /// # lock.release().unwrap();
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forget(mut self) {
        self.held = false;
    }

    /// Whether this guard holds its lock (false only after a `Condition::wait` on it was
    /// dropped before it could re-acquire the lock).
    ///
    /// ```
    /// # aioloop::LocalLoop::new()?.run_until_complete(async {
    /// let lock = aioloop::sync::Lock::new();
    /// assert!(lock.acquire().await.holds());
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn holds(&self) -> bool {
        self.held
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if self.held {
            self.lock.unlock();
        }
    }
}

impl std::fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("held", &self.held)
            .finish()
    }
}
