//! asyncio's `Semaphore` and `BoundedSemaphore` (rules P4, P5) over `permits.rs`.

use super::error::TooManyReleases;
use super::permits::Permits;

/// asyncio's `Semaphore`: a counter of permits; `acquire().await` takes one, waiting in FIFO
/// order while there are none, and returns a [`SemaphorePermit`] that gives it back when
/// dropped.
///
/// A permit released while tasks wait goes straight to the first of them; a waiter
/// cancelled after it was handed a permit passes it on (asyncio's fix for gh-90155), so no
/// permit is ever lost to a cancellation (rule P4). Usable from every worker and from a
/// [`LocalLoop`](crate::LocalLoop) at once; acquiring and releasing without contention is
/// one compare-and-swap each and allocates nothing.
///
/// ```
/// use std::sync::{atomic::{AtomicUsize, Ordering}, Arc};
/// use aioloop::sync::Semaphore;
///
/// let rt = aioloop::Runtime::builder().workers(2).build()?;
/// let sem = Arc::new(Semaphore::new(2));
/// let inside = Arc::new(AtomicUsize::new(0));
/// rt.block_on(async {
///     let tasks: Vec<_> = (0..8)
///         .map(|_| {
///             let (sem, inside) = (sem.clone(), inside.clone());
///             aioloop::create_task(async move {
///                 let _permit = sem.acquire().await;
///                 assert!(inside.fetch_add(1, Ordering::SeqCst) < 2);
///                 aioloop::sleep(std::time::Duration::from_millis(1)).await;
///                 inside.fetch_sub(1, Ordering::SeqCst);
///             })
///         })
///         .collect();
///     for t in tasks {
///         t.await.unwrap();
///     }
/// });
/// assert!(!sem.locked());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Semaphore {
    permits: Permits,
}

impl Semaphore {
    /// A semaphore with `value` permits (asyncio's `Semaphore(value)`; a negative value is
    /// unrepresentable here).
    ///
    /// # Panics
    /// If `value` exceeds `usize::MAX >> 1`.
    ///
    /// ```
    /// let sem = aioloop::sync::Semaphore::new(0);
    /// assert!(sem.locked());
    /// ```
    pub fn new(value: usize) -> Semaphore {
        Semaphore {
            permits: Permits::new(value),
        }
    }

    /// Waits for a permit and takes it (asyncio's `await sem.acquire()`).
    ///
    /// ```
    /// # aioloop::LocalLoop::new()?.run_until_complete(async {
    /// let sem = aioloop::sync::Semaphore::new(1);
    /// let permit = sem.acquire().await;
    /// assert!(sem.locked());
    /// drop(permit);
    /// assert!(!sem.locked());
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn acquire(&self) -> SemaphorePermit<'_> {
        self.permits.acquire().await;
        SemaphorePermit {
            permits: &self.permits,
            bound: None,
        }
    }

    /// Takes a permit if one is free and nobody waits, without waiting.
    ///
    /// ```
    /// let sem = aioloop::sync::Semaphore::new(1);
    /// let p = sem.try_acquire().unwrap();
    /// assert!(sem.try_acquire().is_none());
    /// drop(p);
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        // `then`, not `then_some`: a guard built and dropped on failure would release.
        self.permits.try_acquire().then(|| SemaphorePermit {
            permits: &self.permits,
            bound: None,
        })
    }

    /// Adds a permit (asyncio's `release()`), handing it to the first waiter if any. Like
    /// asyncio's, it may raise the count above the initial value; see [`BoundedSemaphore`].
    ///
    /// # Panics
    /// If the count would exceed `usize::MAX >> 1`.
    ///
    /// ```
    /// let sem = aioloop::sync::Semaphore::new(0);
    /// sem.release();
    /// assert_eq!(sem.value(), 1);
    /// ```
    pub fn release(&self) {
        // Unbounded: cannot refuse.
        let _ = self.permits.release(None);
    }

    /// Whether an `acquire()` would wait now (asyncio's `locked()`): no permit free, or
    /// tasks already waiting.
    ///
    /// ```
    /// assert!(!aioloop::sync::Semaphore::new(1).locked());
    /// ```
    pub fn locked(&self) -> bool {
        self.permits.locked()
    }

    /// Permits free now (asyncio's `_value`: not counting permits handed to waiters).
    ///
    /// ```
    /// assert_eq!(aioloop::sync::Semaphore::new(3).value(), 3);
    /// ```
    pub fn value(&self) -> usize {
        self.permits.available()
    }
}

impl std::fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.value())
            .field("waiters", &self.permits.waiting())
            .finish()
    }
}

/// asyncio's `BoundedSemaphore`: a [`Semaphore`] whose `release()` refuses to raise the count
/// above its initial value, with `ValueError('BoundedSemaphore released too many times')`
/// (rule P5).
///
/// ```
/// # aioloop::LocalLoop::new()?.run_until_complete(async {
/// use aioloop::sync::BoundedSemaphore;
///
/// let sem = BoundedSemaphore::new(1);
/// sem.acquire().await.forget();
/// sem.release()?;
/// assert!(sem.release().is_err());
/// # Ok::<(), aioloop::sync::TooManyReleases>(())
/// # })??;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BoundedSemaphore {
    permits: Permits,
    bound: usize,
}

impl BoundedSemaphore {
    /// A bounded semaphore with `value` permits, which is also its bound.
    ///
    /// # Panics
    /// If `value` exceeds `usize::MAX >> 1`.
    ///
    /// ```
    /// assert_eq!(aioloop::sync::BoundedSemaphore::new(2).value(), 2);
    /// ```
    pub fn new(value: usize) -> BoundedSemaphore {
        BoundedSemaphore {
            permits: Permits::new(value),
            bound: value,
        }
    }

    /// Waits for a permit and takes it, as [`Semaphore::acquire`].
    ///
    /// ```
    /// # aioloop::LocalLoop::new()?.run_until_complete(async {
    /// let sem = aioloop::sync::BoundedSemaphore::new(1);
    /// let _p = sem.acquire().await;
    /// assert!(sem.locked());
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn acquire(&self) -> SemaphorePermit<'_> {
        self.permits.acquire().await;
        SemaphorePermit {
            permits: &self.permits,
            bound: Some(self.bound),
        }
    }

    /// Takes a permit if one is free and nobody waits, without waiting.
    ///
    /// ```
    /// assert!(aioloop::sync::BoundedSemaphore::new(1).try_acquire().is_some());
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        // `then`, not `then_some`: a guard built and dropped on failure would release.
        self.permits.try_acquire().then(|| SemaphorePermit {
            permits: &self.permits,
            bound: Some(self.bound),
        })
    }

    /// Gives a permit back; refused with [`TooManyReleases`] if the count is already at its
    /// initial value.
    ///
    /// ```
    /// let sem = aioloop::sync::BoundedSemaphore::new(0);
    /// assert!(sem.release().is_err());
    /// ```
    pub fn release(&self) -> Result<(), TooManyReleases> {
        self.permits
            .release(Some(self.bound))
            .map_err(|_| TooManyReleases)
    }

    /// Whether an `acquire()` would wait now.
    ///
    /// ```
    /// assert!(aioloop::sync::BoundedSemaphore::new(0).locked());
    /// ```
    pub fn locked(&self) -> bool {
        self.permits.locked()
    }

    /// Permits free now.
    ///
    /// ```
    /// assert_eq!(aioloop::sync::BoundedSemaphore::new(1).value(), 1);
    /// ```
    pub fn value(&self) -> usize {
        self.permits.available()
    }
}

impl std::fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("value", &self.value())
            .field("bound", &self.bound)
            .field("waiters", &self.permits.waiting())
            .finish()
    }
}

/// One permit of a [`Semaphore`] or [`BoundedSemaphore`]; dropping it gives the permit back.
///
/// ```
/// # aioloop::LocalLoop::new()?.run_until_complete(async {
/// let sem = aioloop::sync::Semaphore::new(1);
/// {
///     let _permit = sem.acquire().await;
///     assert_eq!(sem.value(), 0);
/// }
/// assert_eq!(sem.value(), 1);
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping the permit releases it at once"]
pub struct SemaphorePermit<'a> {
    permits: &'a Permits,
    /// A `BoundedSemaphore`'s bound.
    bound: Option<usize>,
}

impl SemaphorePermit<'_> {
    /// Keeps the permit taken without a guard (give it back with `release()`).
    ///
    /// ```
    /// # aioloop::LocalLoop::new()?.run_until_complete(async {
    /// let sem = aioloop::sync::Semaphore::new(1);
    /// sem.acquire().await.forget();
    /// assert_eq!(sem.value(), 0);
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        // Refused only if the bounded semaphore was over-released by hand while this permit
        // was out (asyncio's `async with` exit would raise ValueError there); the count then
        // stays at its bound, which is what the refusal means.
        let _ = self.permits.release(self.bound);
    }
}

impl std::fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SemaphorePermit")
    }
}
