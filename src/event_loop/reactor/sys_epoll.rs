//! Linux: the reactor's poller straight on epoll (through rustix), behind the same
//! interface as the `polling` fallback (`sys_polling.rs`).
//!
//! Why not `polling` here: its `wait` costs five system calls (`timerfd_settime`, two
//! `epoll_ctl` to re-arm its notifier, `epoll_pwait`, a `read` of the eventfd) — a
//! zero-timeout wait measured 2.25 µs against 0.22 µs for a bare `epoll_wait` — and it
//! registers no `EPOLLRDHUP`, so a peer's half-close is not told apart from data. Here:
//!
//! - a wait is one `epoll_wait`; its timeout is epoll's, in milliseconds rounded up (as
//!   tokio's; a sub-millisecond timer fires up to 1 ms late when its loop has sources);
//! - the notifier is an `eventfd` registered edge-triggered and never read: each `write`
//!   is a new edge, so one `write` is a whole wake-up and the wait that harvests it leaves
//!   the epoll descriptor unreadable again (a `LocalLoop`'s host watches it). The counter
//!   is reset only if it would overflow;
//! - sources are registered edge-triggered for `IN | OUT | RDHUP` (rule R7), and a
//!   harvested event's flags become readiness bits, `READ_CLOSED` for a half-close
//!   (rule R12).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{eventfd, EventfdFlags, Timespec};

use super::readiness::{READABLE, READ_CLOSED, WRITABLE, WRITE_CLOSED};

/// Whether harvested events carry `READ_CLOSED` for a peer's half-close (rule R12).
pub(super) const REPORTS_READ_CLOSED: bool = true;

/// The notifier's key: a slab key's generation stays below `u32::MAX` (slab.rs).
const NOTIFY_KEY: u64 = u64::MAX;

/// Events harvested per wait; more stay queued in the kernel for the next one.
const EVENTS_PER_WAIT: usize = 1024;

/// Longest single wait: `epoll_wait` takes an `int` of milliseconds (a longer park
/// returns early, which `Park` allows).
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

pub(super) struct Sys {
    epoll: OwnedFd,
    notifier: OwnedFd,
}

pub(super) struct Events(Vec<epoll::Event>);

// SAFETY: an `epoll::Event` is `!Send` only because its data may hold a raw pointer;
// every event this backend registers carries a plain `u64` key (a slab key or
// `NOTIFY_KEY`, see `Sys::add` and `Sys::new`), so no pointer ever moves between threads
// with the buffer (reactor rule R5: events name sources by key).
unsafe impl Send for Events {}

impl Default for Events {
    fn default() -> Self {
        Events(Vec::with_capacity(EVENTS_PER_WAIT))
    }
}

/// A harvested event's flags as readiness bits (readiness.rs).
fn readiness(flags: EventFlags) -> usize {
    let mut bits = 0;
    if flags.intersects(EventFlags::IN | EventFlags::PRI) {
        bits |= READABLE;
    }
    if flags.contains(EventFlags::OUT) {
        bits |= WRITABLE;
    }
    if flags.contains(EventFlags::RDHUP) {
        bits |= READABLE | READ_CLOSED;
    }
    if flags.contains(EventFlags::HUP) {
        bits |= READABLE | WRITABLE | READ_CLOSED | WRITE_CLOSED;
    }
    // A pending error (a refused connect, an ICMP error on UDP) is read by the next
    // system call in either direction; it is not sticky, so no closed bit.
    if flags.contains(EventFlags::ERR) {
        bits |= READABLE | WRITABLE;
    }
    bits
}

impl Events {
    /// Hands each harvested `(key, readiness bits)` to `f` and empties the buffer.
    pub(super) fn drain(&mut self, mut f: impl FnMut(usize, usize)) {
        for e in self.0.drain(..) {
            // Copies out of the (packed) event before use.
            let (data, flags) = (e.data, e.flags);
            let key = data.u64();
            if key != NOTIFY_KEY {
                f(key as usize, readiness(flags));
            }
        }
    }
}

impl Sys {
    pub(super) fn new() -> io::Result<Sys> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let notifier = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(
            &epoll,
            &notifier,
            EventData::new_u64(NOTIFY_KEY),
            EventFlags::IN | EventFlags::ET,
        )?;
        Ok(Sys { epoll, notifier })
    }

    pub(super) fn wait(&self, events: &mut Events, timeout: Option<Duration>) {
        events.0.clear();
        let timeout = timeout.map(|d| {
            let d = d.min(MAX_WAIT);
            Timespec {
                tv_sec: d.as_secs() as _,
                tv_nsec: d.subsec_nanos() as _,
            }
        });
        // An error here (EINTR) is a spurious wake-up, which callers already handle.
        let _ = epoll::wait(&self.epoll, spare_capacity(&mut events.0), timeout.as_ref());
    }

    pub(super) fn notify(&self) {
        loop {
            match rustix::io::write(&self.notifier, &1u64.to_ne_bytes()) {
                Err(rustix::io::Errno::INTR) => {}
                // The counter would overflow (after 2^64 - 2 wake-ups without a read):
                // reset it and write again.
                Err(rustix::io::Errno::AGAIN) => {
                    let _ = rustix::io::read(&self.notifier, &mut [0u8; 8]);
                }
                // Fails otherwise only if the eventfd is gone: never while the loop lives.
                _ => return,
            }
        }
    }

    /// # Safety
    /// `fd` stays open until [`Sys::delete`] (reactor rule R9).
    pub(super) unsafe fn add(&self, fd: RawFd, key: usize) -> io::Result<()> {
        // SAFETY: the caller keeps `fd` open until `delete` (this function's contract), so
        // it is open for this call (reactor rule R9).
        let source = unsafe { BorrowedFd::borrow_raw(fd) };
        let flags = EventFlags::IN | EventFlags::OUT | EventFlags::RDHUP | EventFlags::ET;
        epoll::add(&self.epoll, source, EventData::new_u64(key as u64), flags)?;
        Ok(())
    }

    pub(super) fn delete(&self, fd: RawFd) {
        // SAFETY: `fd` is open: it stays open until its registration is dropped, which
        // is what calls this (reactor rule R9).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        // Fails only if the descriptor was never added or is already gone; nothing to do.
        let _ = epoll::delete(&self.epoll, fd);
    }

    pub(super) fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}
