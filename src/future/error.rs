//! The errors of [`Future`](crate::Future): asyncio's `InvalidStateError`, the outcome of
//! reading or awaiting a future ([`FutureError`]), and rule F7's "attached to a different
//! loop" ([`DifferentLoopError`]).

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use crate::error::{CancelledError, InvalidStateError};

/// An error stored in a [`Future`](crate::Future) by
/// [`set_exception`](crate::Future::set_exception): shared (not cloned) by every awaiter and
/// every call of [`result`](crate::Future::result) / [`exception`](crate::Future::exception),
/// as asyncio hands the same exception object to all of them.
///
/// ```
/// let e: aioloop::SharedError = std::sync::Arc::from(Box::<dyn std::error::Error + Send + Sync>::from("boom"));
/// assert_eq!(e.to_string(), "boom");
/// ```
pub type SharedError = Arc<dyn Error + Send + Sync + 'static>;

/// Rule F7: a [`Future`](crate::Future) of one loop was awaited on another (asyncio's
/// `RuntimeError: Task <..> got Future <..> attached to a different loop`).
///
/// ```
/// let a = aioloop::LocalLoop::new()?;
/// let b = aioloop::LocalLoop::new()?;
/// let fut = a.create_future::<u8>();
/// let err = b.run_until_complete(fut)?.unwrap_err();
/// let aioloop::FutureError::DifferentLoop(e) = &err else { unreachable!() };
/// assert_eq!(e.future_loop(), a.id());
/// assert!(err.to_string().ends_with("got Future <Future pending> attached to a different loop"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DifferentLoopError {
    pub(crate) task: String,
    pub(crate) future: String,
    pub(crate) future_loop: crate::task::LoopId,
    pub(crate) awaiting_loop: crate::task::LoopId,
}

impl DifferentLoopError {
    /// The loop the future belongs to.
    ///
    /// ```
    /// let a = aioloop::LocalLoop::new()?;
    /// let err = aioloop::LocalLoop::new()?.run_until_complete(a.create_future::<()>())?.unwrap_err();
    /// let aioloop::FutureError::DifferentLoop(e) = err else { unreachable!() };
    /// assert_eq!(e.future_loop(), a.id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn future_loop(&self) -> crate::task::LoopId {
        self.future_loop
    }

    /// The loop that awaited it.
    ///
    /// ```
    /// let a = aioloop::LocalLoop::new()?;
    /// let b = aioloop::LocalLoop::new()?;
    /// let err = b.run_until_complete(a.create_future::<()>())?.unwrap_err();
    /// let aioloop::FutureError::DifferentLoop(e) = err else { unreachable!() };
    /// assert_eq!(e.awaiting_loop(), b.id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn awaiting_loop(&self) -> crate::task::LoopId {
        self.awaiting_loop
    }
}

impl fmt::Display for DifferentLoopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Task {} got Future {} attached to a different loop",
            self.task, self.future
        )
    }
}

impl Error for DifferentLoopError {}

/// Why reading or awaiting a [`Future`](crate::Future) gave no value.
///
/// One error type serves [`result`](crate::Future::result),
/// [`exception`](crate::Future::exception) and `.await`, so `?` works the same on all three
/// and one `match` covers them, the way one `except` clause covers `fut.result()` and
/// `await fut` in Python. Which variants each can produce:
///
/// | | `Cancelled` | `Exception` | `InvalidState` | `DifferentLoop` |
/// |---|---|---|---|---|
/// | `result()` | cancelled | stored error | pending | — |
/// | `exception()` | cancelled | — (it is `Ok(Some(e))`) | pending | — |
/// | `.await` | cancelled | stored error | — | rule F7 |
///
/// ```
/// use aioloop::FutureError;
/// let lp = aioloop::LocalLoop::new()?;
/// let fut = lp.create_future::<u8>();
/// assert!(matches!(fut.result(), Err(FutureError::InvalidState(_))));
/// fut.cancel(Some("bye"));
/// let err = fut.result().unwrap_err();
/// assert!(err.is_cancelled());
/// assert_eq!(err.to_string(), "CancelledError: bye");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FutureError {
    /// The future was cancelled (asyncio's `CancelledError`, with the message given to
    /// `cancel`).
    Cancelled(CancelledError),
    /// The error stored with `set_exception`; the same `Arc` for every reader.
    Exception(SharedError),
    /// The future is still pending (from `result()` / `exception()`).
    InvalidState(InvalidStateError),
    /// Rule F7: awaited from a loop other than its own.
    DifferentLoop(DifferentLoopError),
}

impl FutureError {
    /// `true` for [`FutureError::Cancelled`].
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let fut = lp.create_future::<u8>();
    /// fut.cancel(None);
    /// assert!(fut.result().unwrap_err().is_cancelled());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, FutureError::Cancelled(_))
    }
}

impl fmt::Display for FutureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FutureError::Cancelled(e) => e.fmt(f),
            FutureError::Exception(e) => e.fmt(f),
            FutureError::InvalidState(e) => e.fmt(f),
            FutureError::DifferentLoop(e) => e.fmt(f),
        }
    }
}

impl From<InvalidStateError> for FutureError {
    fn from(e: InvalidStateError) -> Self {
        FutureError::InvalidState(e)
    }
}

impl Error for FutureError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        // Transparent for a stored error: `Display` already is the error's own.
        match self {
            FutureError::Exception(e) => e.source(),
            _ => None,
        }
    }
}
