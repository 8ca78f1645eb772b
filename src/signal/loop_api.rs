//! asyncio's `add_signal_handler`/`remove_signal_handler` on [`LocalLoop`] and [`Handle`]:
//! one [`Registration`] per (loop, signal), its read end watched with the loop's
//! `add_reader`, so the callback runs on the loop (asyncio schedules it with `call_soon`).
//! A second handler for the same signal on the same loop replaces the first: the old one is
//! taken out (reader removed, action unregistered) before the new one is registered, so
//! the two never both run.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;

use super::pipe::{drain, Registration};
use super::SignalError;
use crate::event_loop::reactor::Direction;
use crate::shim::Mutex;
use crate::task::LoopId;
use crate::{Handle, LocalLoop};

/// A loop's handler for one signal: the registration, and the read end's descriptor
/// number (the `add_reader` key; the descriptor itself lives in the reader's callback).
struct Installed {
    _reg: Registration,
    fd: RawFd,
}

type Table = Mutex<HashMap<(LoopId, i32), Installed>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Takes out `loop_id`'s handler for `sig`, if any: its reader first, then its action.
fn remove(loop_id: LoopId, sig: i32) -> bool {
    let old = table().lock().remove(&(loop_id, sig));
    match old {
        Some(old) => {
            crate::io::watch::remove(loop_id, old.fd, Direction::Read);
            drop(old);
            true
        }
        None => false,
    }
}

/// Replaces `loop_id`'s handler for `sig`: `add` hands the read end to the loop's
/// `add_reader` (with the caller's callback, `Send` or not).
fn install(
    loop_id: LoopId,
    sig: i32,
    add: impl FnOnce(UnixStream) -> std::io::Result<()>,
) -> Result<(), SignalError> {
    remove(loop_id, sig);
    let (reg, read_end) = Registration::new(sig)?;
    let fd = read_end.as_raw_fd();
    add(read_end).map_err(SignalError::Io)?;
    table()
        .lock()
        .insert((loop_id, sig), Installed { _reg: reg, fd });
    Ok(())
}

/// The reader callback: drain the deliveries, then call the handler once for them. (The
/// returned closure is `Send` when `callback` is.)
fn on_readable(read_end: UnixStream, mut callback: impl FnMut()) -> impl FnMut() {
    move || {
        // `Ok(0)`: the write end closed (the handler is being replaced); no delivery.
        if matches!(drain(&read_end), Ok(n) if n > 0) {
            callback()
        }
    }
}

/// A descriptor of the read end for `add_reader` to watch (it keeps its own copy), so
/// that the read end itself can move into the callback.
fn watch_fd(read_end: &UnixStream) -> std::io::Result<UnixStream> {
    read_end.try_clone()
}

impl LocalLoop {
    /// asyncio's `loop.add_signal_handler(sig, callback)`: calls `callback` on this loop
    /// after `sig` arrives (deliveries between two iterations coalesce into one call). A
    /// second handler for `sig` replaces the first.
    ///
    /// # Errors
    /// [`SignalError::OutOfRange`] (asyncio's `ValueError`), [`SignalError::CannotCatch`]
    /// for `SIGKILL`/`SIGSTOP` (asyncio's `RuntimeError`), [`SignalError::Io`].
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let lp = aioloop::LocalLoop::new()?;
    /// let got = Rc::new(Cell::new(false));
    /// let g = got.clone();
    /// lp.add_signal_handler(libc::SIGUSR2, move || g.set(true))?;
    /// // SAFETY: raising a signal this process now handles.
    /// unsafe { libc::raise(libc::SIGUSR2) };
    /// while !got.get() {
    ///     lp.run_once(Some(std::time::Duration::from_millis(10)))?;
    /// }
    /// assert!(lp.remove_signal_handler(libc::SIGUSR2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_signal_handler(
        &self,
        sig: i32,
        callback: impl FnMut() + 'static,
    ) -> Result<(), SignalError> {
        install(self.id(), sig, |read_end| {
            self.add_reader(&watch_fd(&read_end)?, on_readable(read_end, callback))
        })
    }

    /// asyncio's `loop.remove_signal_handler(sig)`: whether a handler was removed.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// assert!(!lp.remove_signal_handler(libc::SIGUSR2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove_signal_handler(&self, sig: i32) -> bool {
        remove(self.id(), sig)
    }
}

impl Handle {
    /// asyncio's `loop.add_signal_handler(sig, callback)` on the runtime: calls `callback`
    /// on one of its workers after `sig` arrives (deliveries in between coalesce). A second
    /// handler for `sig` replaces the first.
    ///
    /// # Errors
    /// As [`LocalLoop::add_signal_handler`].
    ///
    /// ```
    /// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let got = Arc::new(AtomicBool::new(false));
    /// let g = got.clone();
    /// rt.handle().add_signal_handler(libc::SIGUSR2, move || g.store(true, Ordering::SeqCst))?;
    /// // SAFETY: raising a signal this process now handles.
    /// unsafe { libc::raise(libc::SIGUSR2) };
    /// while !got.load(Ordering::SeqCst) {
    ///     std::thread::sleep(std::time::Duration::from_millis(1));
    /// }
    /// assert!(rt.handle().remove_signal_handler(libc::SIGUSR2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_signal_handler(
        &self,
        sig: i32,
        callback: impl FnMut() + Send + 'static,
    ) -> Result<(), SignalError> {
        install(self.id(), sig, |read_end| {
            self.add_reader(&watch_fd(&read_end)?, on_readable(read_end, callback))
        })
    }

    /// asyncio's `loop.remove_signal_handler(sig)` on the runtime: whether a handler was
    /// removed.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// assert!(!rt.handle().remove_signal_handler(libc::SIGHUP));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn remove_signal_handler(&self, sig: i32) -> bool {
        remove(self.id(), sig)
    }
}
