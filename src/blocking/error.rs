//! What awaiting a blocking job can end with besides its value.

use std::fmt;
use std::time::Duration;

use crate::error::{NoRunningLoop, PanicError};

/// Why a [`Blocking`](crate::Blocking) job produced no value, or why a shutdown of the
/// default executor did not finish in time.
///
/// ```
/// let err = aioloop::ExecutorError::Shutdown;
/// assert_eq!(err.to_string(), "Executor shutdown has been called");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ExecutorError {
    /// The executor was shut down before the job could start (asyncio's
    /// `RuntimeError('Executor shutdown has been called')`): a submission after
    /// `shutdown_default_executor`, or a queued job discarded when its loop was dropped.
    Shutdown,
    /// The closure panicked; the panic was caught on the pool thread (which keeps serving).
    Panicked(PanicError),
    /// No pool thread could be started (the OS refused a thread) and none is running.
    Spawn(std::io::Error),
    /// `to_thread` was called with no running loop on this thread.
    NoRunningLoop(NoRunningLoop),
    /// `shutdown_default_executor(timeout)` gave up waiting for running jobs (asyncio's
    /// warning, word for word, typo included); the jobs keep running.
    JoinTimeout(Duration),
}

impl ExecutorError {
    /// `true` for [`ExecutorError::Panicked`].
    ///
    /// ```
    /// assert!(!aioloop::ExecutorError::Shutdown.is_panic());
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(self, ExecutorError::Panicked(_))
    }
}

impl fmt::Display for ExecutorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecutorError::Shutdown => f.write_str("Executor shutdown has been called"),
            ExecutorError::Panicked(p) => match p.message() {
                Some(m) => write!(f, "the blocking function panicked: {m}"),
                None => f.write_str("the blocking function panicked"),
            },
            ExecutorError::Spawn(e) => write!(f, "cannot start a blocking-pool thread: {e}"),
            ExecutorError::NoRunningLoop(e) => e.fmt(f),
            ExecutorError::JoinTimeout(t) => write!(
                f,
                "The executor did not finishing joining its threads within {} seconds.",
                t.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for ExecutorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExecutorError::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ExecutorError> for std::io::Error {
    /// For code that speaks `io::Result` (host-name resolution): a panic or a shutdown
    /// becomes `io::ErrorKind::Other` with its message.
    fn from(e: ExecutorError) -> std::io::Error {
        match e {
            ExecutorError::Spawn(e) => e,
            e => std::io::Error::other(e.to_string()),
        }
    }
}
