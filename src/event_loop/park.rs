//! Where an idle worker sleeps, and how it is woken.
//!
//! A worker parks inside its own `polling::Poller` (`wait` with the next deadline as the
//! timeout) and is woken with `Poller::notify`, which is sticky: a notify that arrives before
//! the `wait` makes the next `wait` return at once. That stickiness is what the parking
//! protocol in `idle.rs` relies on, so it is the whole contract of [`Park`]. The poller is a
//! system object loom cannot model; under `--cfg loom` a mutex-and-condvar double with the
//! same sticky contract stands in for it.

use std::io;
use std::time::Duration;

/// A place to sleep with a sticky wake-up token.
pub(crate) trait Park: Send + Sync {
    /// Sleeps until [`unpark`](Park::unpark) is called or `timeout` passes. Returns at once,
    /// consuming the token, if `unpark` was called since the last return. May return
    /// spuriously.
    fn park(&self, timeout: Option<Duration>);
    /// Wakes the parked thread, or makes its next `park` return at once.
    fn unpark(&self);
}

/// The real parker: a worker's `polling::Poller`.
#[cfg(not(loom))]
pub(crate) struct Parker {
    poller: polling::Poller,
    /// Only the owning worker locks this (uncontended); it is behind a lock so that `park`
    /// can take `&self` like `unpark`.
    events: crate::shim::Mutex<polling::Events>,
}

#[cfg(not(loom))]
impl Parker {
    pub(crate) fn new() -> io::Result<Parker> {
        Ok(Parker {
            poller: polling::Poller::new()?,
            events: crate::shim::Mutex::new(polling::Events::new()),
        })
    }
}

#[cfg(all(unix, not(loom)))]
impl Parker {
    /// The poller's descriptor (an epoll fd on Linux), readable when notified.
    pub(crate) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.poller)
    }
}

#[cfg(not(loom))]
impl Park for Parker {
    fn park(&self, timeout: Option<Duration>) {
        let mut events = self.events.lock();
        events.clear();
        // An error here (EINTR) is a spurious wake-up, which callers already handle.
        let _ = self.poller.wait(&mut events, timeout);
    }

    fn unpark(&self) {
        // Fails only if the eventfd is gone, i.e. never while the runtime is alive.
        let _ = self.poller.notify();
    }
}

/// loom's stand-in: a flag and a condvar, sticky like `Poller::notify`.
#[cfg(loom)]
pub(crate) struct Parker {
    notified: loom::sync::Mutex<bool>,
    cv: loom::sync::Condvar,
}

#[cfg(loom)]
impl Parker {
    pub(crate) fn new() -> io::Result<Parker> {
        Ok(Parker {
            notified: loom::sync::Mutex::new(false),
            cv: loom::sync::Condvar::new(),
        })
    }
}

#[cfg(loom)]
impl Park for Parker {
    fn park(&self, timeout: Option<Duration>) {
        // Positive timeouts are not modelled: loom has no clock, and the scheduler never
        // relies on one for correctness (timers only shorten sleeps). A zero timeout is a
        // non-blocking poll, as `Poller::wait` makes it: take the token if there is one.
        let mut n = self.notified.lock().unwrap();
        if timeout == Some(Duration::ZERO) {
            *n = false;
            return;
        }
        while !*n {
            n = self.cv.wait(n).unwrap();
        }
        *n = false;
    }

    fn unpark(&self) {
        *self.notified.lock().unwrap() = true;
        self.cv.notify_one();
    }
}
