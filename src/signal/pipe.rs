//! The one signal mechanism (see `mod.rs`): a signal-hook-registry action that writes a
//! byte to a socket pair of the listener's own.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use super::error::{nsig, SignalError};

/// A registered listener for one signal: each delivery makes `read_end` readable. Dropping
/// it unregisters the action (waiting for a running one), then closes the write end.
pub(crate) struct Registration {
    id: signal_hook_registry::SigId,
    /// Written by the action; open until the action is unregistered (`Drop`).
    _write_end: UnixStream,
}

impl Registration {
    /// Registers a listener for `sig`; its read end (non-blocking) comes back beside it.
    pub(crate) fn new(sig: i32) -> Result<(Registration, UnixStream), SignalError> {
        if sig < 1 || sig >= nsig() {
            return Err(SignalError::OutOfRange(sig));
        }
        if signal_hook_registry::FORBIDDEN.contains(&sig) || sig == libc::SIGSTOP {
            return Err(SignalError::CannotCatch(sig));
        }
        let (read_end, write_end) = UnixStream::pair().map_err(SignalError::Io)?;
        // A full pipe must not block the handler: a wake-up is pending then anyway.
        write_end.set_nonblocking(true).map_err(SignalError::Io)?;
        read_end.set_nonblocking(true).map_err(SignalError::Io)?;
        let fd = write_end.as_raw_fd();
        let action = move || {
            // SAFETY: `write` is async-signal-safe; `fd` stays open until this action is
            // unregistered (`Registration::drop` unregisters before the close). A failed
            // write (buffer full) only drops a redundant wake-up.
            unsafe { libc::write(fd, b"!".as_ptr().cast(), 1) };
        };
        // SAFETY: the action only calls `write` (async-signal-safe); it allocates nothing
        // and takes no lock. signal-hook-registry preserves `errno` around it.
        let id = unsafe { signal_hook_registry::register(sig, action) }.map_err(|e| {
            if e.raw_os_error() == Some(libc::EINVAL) {
                SignalError::CannotCatch(sig)
            } else {
                SignalError::Io(e)
            }
        })?;
        Ok((
            Registration {
                id,
                _write_end: write_end,
            },
            read_end,
        ))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Returns once no handler runs our action; `_write_end` closes after this body.
        signal_hook_registry::unregister(self.id);
    }
}

/// Reads everything pending on a (non-blocking) read end: how many deliveries, coalesced.
/// `WouldBlock` when there were none.
pub(crate) fn drain(mut read_end: &UnixStream) -> io::Result<usize> {
    let mut buf = [0u8; 64];
    let mut total = 0;
    loop {
        match read_end.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && total > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}
