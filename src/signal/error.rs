//! asyncio's errors for a signal that cannot be handled.

use std::fmt;
use std::io;

/// Why a signal cannot be listened for.
///
/// ```
/// let err = aioloop::signal::signal(aioloop::signal::SignalKind::from_raw(9)).unwrap_err();
/// assert_eq!(err.to_string(), "sig 9 cannot be caught");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SignalError {
    /// Not a signal number (asyncio's `ValueError: sig N out of range(1, NSIG)`).
    OutOfRange(i32),
    /// A signal no handler may catch: `SIGKILL`, `SIGSTOP`, and those signal-hook-registry
    /// refuses (`SIGILL`, `SIGFPE`, `SIGSEGV`) (asyncio's `RuntimeError: sig N cannot be
    /// caught`).
    CannotCatch(i32),
    /// The OS refused the registration or its socket pair.
    Io(io::Error),
}

/// One past the highest signal number (`signal.NSIG` in Python).
pub(crate) fn nsig() -> i32 {
    libc::SIGRTMAX() + 1
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalError::OutOfRange(s) => write!(f, "sig {s} out of range(1, {})", nsig()),
            SignalError::CannotCatch(s) => write!(f, "sig {s} cannot be caught"),
            SignalError::Io(e) => write!(f, "cannot handle the signal: {e}"),
        }
    }
}

impl std::error::Error for SignalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SignalError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SignalError> for io::Error {
    /// `InvalidInput` for a signal that cannot be handled; the OS error as it is.
    fn from(e: SignalError) -> io::Error {
        match e {
            SignalError::Io(e) => e,
            e => io::Error::new(io::ErrorKind::InvalidInput, e.to_string()),
        }
    }
}
