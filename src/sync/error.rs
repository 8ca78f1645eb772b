//! The errors of `aioloop::sync`, each with asyncio's message (rule P7).

use std::fmt;

use crate::CancelledError;

/// `Lock::release` on a lock nobody holds: asyncio's `RuntimeError('Lock is not
/// acquired.')` (rule P1).
///
/// ```
/// let lock = aioloop::sync::Lock::new();
/// assert_eq!(lock.release().unwrap_err().to_string(), "Lock is not acquired.");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockNotAcquired;

impl fmt::Display for LockNotAcquired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lock is not acquired.")
    }
}

impl std::error::Error for LockNotAcquired {}

/// `BoundedSemaphore::release` above the initial value: asyncio's
/// `ValueError('BoundedSemaphore released too many times')` (rule P4).
///
/// ```
/// let sem = aioloop::sync::BoundedSemaphore::new(1);
/// let err = sem.release().unwrap_err();
/// assert_eq!(err.to_string(), "BoundedSemaphore released too many times");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyReleases;

impl fmt::Display for TooManyReleases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoundedSemaphore released too many times")
    }
}

impl std::error::Error for TooManyReleases {}

/// A misuse of a `Condition`, or the cancellation its `wait` re-raises after re-acquiring
/// the lock (rule P3).
///
/// ```
/// use aioloop::sync::{Condition, ConditionError};
///
/// let cond = Condition::new();
/// assert_eq!(cond.notify(1), Err(ConditionError::NotifyUnacquired));
/// assert_eq!(
///     ConditionError::NotifyUnacquired.to_string(),
///     "cannot notify on un-acquired lock"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionError {
    /// `wait` with a guard that does not hold this condition's lock: asyncio's
    /// `RuntimeError('cannot wait on un-acquired lock')`.
    WaitUnacquired,
    /// `notify`/`notify_all` while the lock is not held: asyncio's
    /// `RuntimeError('cannot notify on un-acquired lock')`.
    NotifyUnacquired,
    /// The waiting task was cancelled; the lock has been re-acquired (the guard holds it
    /// again). Inside a task the cancellation is re-raised to the enclosing catch scope
    /// instead of being returned; this value is seen only outside a task.
    Cancelled(CancelledError),
}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConditionError::WaitUnacquired => f.write_str("cannot wait on un-acquired lock"),
            ConditionError::NotifyUnacquired => f.write_str("cannot notify on un-acquired lock"),
            ConditionError::Cancelled(c) => c.fmt(f),
        }
    }
}

impl std::error::Error for ConditionError {}

/// A `Barrier` that was aborted or reset while a task waited on it, or that is broken
/// when a task arrives: asyncio's `BrokenBarrierError` (rule P6).
///
/// ```
/// # aioloop::LocalLoop::new()?.run_until_complete(async {
/// let barrier = aioloop::sync::Barrier::new(2)?;
/// barrier.abort();
/// let err = barrier.wait().await.unwrap_err();
/// assert_eq!(err.to_string(), "Barrier aborted");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?
/// # ?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokenBarrierError {
    /// The barrier was broken when the task arrived ("Barrier aborted").
    Aborted,
    /// The barrier was aborted or reset while the task waited ("Abort or reset of
    /// barrier").
    AbortedOrReset,
}

impl fmt::Display for BrokenBarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokenBarrierError::Aborted => f.write_str("Barrier aborted"),
            BrokenBarrierError::AbortedOrReset => f.write_str("Abort or reset of barrier"),
        }
    }
}

impl std::error::Error for BrokenBarrierError {}

/// `Barrier::new(0)`: asyncio's `ValueError('parties must be > 0')` (rule P6).
///
/// ```
/// let err = aioloop::sync::Barrier::new(0).unwrap_err();
/// assert_eq!(err.to_string(), "parties must be > 0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidParties;

impl fmt::Display for InvalidParties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("parties must be > 0")
    }
}

impl std::error::Error for InvalidParties {}
