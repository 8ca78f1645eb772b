//! The reactor's poller through the `polling` crate: the fallback where the epoll backend
//! (`sys_epoll.rs`) does not apply (not Linux, or `--cfg aioloop_polling`).
//!
//! `polling` does not report a peer's half-close (`EPOLLRDHUP`) on its own, so stream
//! reads here clear read readiness only on `EWOULDBLOCK` (rule R12 needs the bit).

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use super::readiness::{READABLE, READ_CLOSED, WRITABLE, WRITE_CLOSED};

/// Whether harvested events carry `READ_CLOSED` for a peer's half-close (rule R12): not
/// through `polling`, which registers no `EPOLLRDHUP`.
pub(super) const REPORTS_READ_CLOSED: bool = false;

pub(super) struct Sys(polling::Poller);

pub(super) struct Events(polling::Events);

impl Default for Events {
    fn default() -> Self {
        Events(polling::Events::new())
    }
}

impl Events {
    /// Hands each harvested `(key, readiness bits)` to `f` and empties the buffer.
    pub(super) fn drain(&mut self, mut f: impl FnMut(usize, usize)) {
        for e in self.0.iter() {
            let r = if e.readable { READABLE } else { 0 };
            let w = if e.writable { WRITABLE } else { 0 };
            // A hang-up (EPOLLHUP, POLLHUP) closes both directions for good.
            let hup = if e.is_interrupt() {
                READABLE | WRITABLE | READ_CLOSED | WRITE_CLOSED
            } else {
                0
            };
            f(e.key, r | w | hup);
        }
        self.0.clear();
    }
}

impl Sys {
    pub(super) fn new() -> io::Result<Sys> {
        Ok(Sys(polling::Poller::new()?))
    }

    pub(super) fn wait(&self, events: &mut Events, timeout: Option<Duration>) {
        events.0.clear();
        // An error here (EINTR) is a spurious wake-up, which callers already handle.
        let _ = self.0.wait(&mut events.0, timeout);
    }

    pub(super) fn notify(&self) {
        // Fails only if the eventfd is gone, i.e. never while the loop is alive.
        let _ = self.0.notify();
    }

    /// # Safety
    /// `fd` stays open until [`Sys::delete`] (reactor rule R9).
    pub(super) unsafe fn add(&self, fd: RawFd, key: usize) -> io::Result<()> {
        // SAFETY: the caller keeps `fd` open until `delete` (this function's contract).
        unsafe {
            self.0
                .add_with_mode(fd, polling::Event::all(key), polling::PollMode::Edge)
        }
    }

    pub(super) fn delete(&self, fd: RawFd) {
        // SAFETY: `fd` is open: it stays open until its registration is dropped, which
        // is what calls this (reactor rule R9).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        // Fails only if the descriptor was never added or is already gone; nothing to do.
        let _ = self.0.delete(fd);
    }

    pub(super) fn as_fd(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.0)
    }
}
