//! Where an idle loop sleeps, and how it is woken.
//!
//! A loop parks inside its own poller (its reactor [`Driver`]: `wait` with the next deadline
//! as the timeout) and is woken with `Poller::notify` — or, a runtime worker with no I/O
//! source, in a condvar (reactor rule R11). Either way the wake-up is sticky: one that
//! arrives before the sleep makes the next sleep return at once. That stickiness is what
//! the parking protocol in `runtime/idle.rs` relies on, so it is the whole contract of
//! [`Park`]. Every park also dispatches the I/O events its wait harvested (reactor rule R8).
//! Under `--cfg loom` the driver's poller is a mutex-and-condvar fake with the same sticky
//! contract (`reactor/mod.rs`).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::reactor::Driver;

/// A place to sleep with a sticky wake-up token.
pub(crate) trait Park: Send + Sync {
    /// Sleeps until [`unpark`](Park::unpark) is called, I/O readiness arrives or `timeout`
    /// passes. Returns at once, consuming the token, if `unpark` was called since the last
    /// return. May return spuriously. Returns how many I/O sources it made ready.
    fn park(&self, timeout: Option<Duration>) -> usize;
    /// Wakes the parked thread, or makes its next `park` return at once.
    fn unpark(&self);
}

/// A loop's parker: its reactor driver.
pub(crate) struct Parker {
    driver: Arc<Driver>,
}

impl Parker {
    /// A `LocalLoop`'s parker: every wake-up makes its poller's descriptor readable.
    pub(crate) fn new() -> io::Result<Parker> {
        Ok(Parker {
            driver: Arc::new(Driver::new()?),
        })
    }

    /// A runtime worker's parker: with no I/O source registered it sleeps in a condvar
    /// (reactor rule R11).
    pub(crate) fn new_worker() -> io::Result<Parker> {
        Ok(Parker {
            driver: Arc::new(Driver::new_worker()?),
        })
    }

    /// The driver, for the loop core's busy harvests and for registrations (rule R7).
    pub(crate) fn driver(&self) -> &Arc<Driver> {
        &self.driver
    }

    /// The poller's descriptor (an epoll fd on Linux), readable when notified or when a
    /// registered source became ready.
    #[cfg(not(loom))]
    pub(crate) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.driver.as_fd()
    }
}

impl Park for Parker {
    fn park(&self, timeout: Option<Duration>) -> usize {
        self.driver.park(timeout)
    }

    fn unpark(&self) {
        self.driver.unpark()
    }
}
