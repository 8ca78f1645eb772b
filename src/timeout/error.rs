//! The timeout module's errors, each with asyncio's message.

use std::fmt;

/// The deadline of a [`timeout`](crate::timeout), [`timeout_at`](crate::timeout_at),
/// [`Timeout`](crate::Timeout) scope or [`wait_for`](crate::wait_for) passed before the
/// future finished: asyncio's `TimeoutError` (rules X1, X2).
///
/// ```
/// use std::time::Duration;
///
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let r = rt.block_on(aioloop::timeout(
///     Duration::from_millis(10),
///     aioloop::sleep(Duration::from_secs(60)),
/// ));
/// assert_eq!(r, Err(aioloop::TimeoutError));
/// assert_eq!(aioloop::TimeoutError.to_string(), "TimeoutError");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TimeoutError;

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TimeoutError")
    }
}

impl std::error::Error for TimeoutError {}

/// Misuse of a [`Timeout`](crate::Timeout) (asyncio's `RuntimeError`s of `asyncio.Timeout`):
/// entering it twice, or moving its deadline when it is not active.
///
/// ```
/// use aioloop::{Timeout, TimeoutStateError};
///
/// let t = Timeout::after(std::time::Duration::from_secs(1));
/// let err = t.reschedule(None).unwrap_err();
/// assert_eq!(err, TimeoutStateError::NotEntered);
/// assert_eq!(err.to_string(), "Timeout has not been entered");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutStateError {
    /// [`Timeout::run`](crate::Timeout::run) on a timeout that was already entered (whether
    /// or not that scope has ended): "Timeout has already been entered".
    AlreadyEntered,
    /// [`Timeout::reschedule`](crate::Timeout::reschedule) before the timeout was entered:
    /// "Timeout has not been entered".
    NotEntered,
    /// `reschedule` after the deadline passed, while the scope is still unwinding:
    /// "Cannot change state of expiring Timeout".
    Expiring,
    /// `reschedule` after the scope ended by expiring: "Cannot change state of expired
    /// Timeout".
    Expired,
    /// `reschedule` after the scope ended without expiring: "Cannot change state of finished
    /// Timeout".
    Finished,
}

impl fmt::Display for TimeoutStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self {
            TimeoutStateError::AlreadyEntered => {
                return f.write_str("Timeout has already been entered")
            }
            TimeoutStateError::NotEntered => return f.write_str("Timeout has not been entered"),
            TimeoutStateError::Expiring => "expiring",
            TimeoutStateError::Expired => "expired",
            TimeoutStateError::Finished => "finished",
        };
        write!(f, "Cannot change state of {state} Timeout")
    }
}

impl std::error::Error for TimeoutStateError {}
