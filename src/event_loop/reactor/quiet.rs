//! Where a runtime worker with no I/O sources sleeps: a mutex and condvar (a futex on
//! Linux) instead of its poller (reactor rule R11).
//!
//! Sleeping in a `polling::Poller` costs five system calls per wait (one `epoll_wait` with
//! the Linux epoll backend, `sys_epoll.rs`) and waking it an `eventfd` write; a worker
//! whose poller holds no source can wait for nothing but a notification, which a condvar
//! delivers with one `futex` call on each side (tokio parks
//! every worker that does not hold its I/O driver the same way). A worker that has sources
//! still sleeps in its poller, so readiness wakes it.
//!
//! # Protocol
//!
//! One word, `state`, says where the owner is: `EMPTY` (running), `NOTIFIED` (a wake-up
//! token is waiting), `IN_CONDVAR` or `IN_POLLER` (asleep there). Only the owner moves it
//! out of `NOTIFIED` and into an `IN_*` state; a waker only swaps in `NOTIFIED`.
//!
//! 1. **Sticky token.** `unpark` swaps `NOTIFIED` in and wakes the sleeper the swapped-out
//!    value names (the condvar under its mutex, or the poller). A `park` that finds
//!    `NOTIFIED` consumes it and returns at once: `Park`'s contract.
//! 2. **Announce, then sleep.** The owner moves `EMPTY → IN_*` with a compare-exchange; if a
//!    token arrived first, the exchange fails and it consumes the token instead of
//!    sleeping. The condvar announcement is made under the condvar's mutex, and `unpark`
//!    notifies under it, so the notification cannot fall between the announcement and
//!    the wait.
//! 3. **Leaving.** Every return swaps `EMPTY` back in, consuming a token that arrived while
//!    it slept (it was the reason for waking, or a spurious wake that `Park` allows). A
//!    token that also reached the poller (`IN_POLLER`) leaves the poller's own token set:
//!    the next poller wait returns at once, a spurious wake-up. A poller sleep leaves as
//!    soon as the wait returns, *before* the harvest is dispatched: the tasks it wakes are
//!    queued by the owner itself, whose wake-ups then only leave a token (consumed by the
//!    next park without a system call) instead of writing the poller's eventfd and making
//!    the next wait return at once — an `eventfd` write and a spurious `epoll_wait` per
//!    park that found I/O, measured on the echo benchmark.
//! 4. **A source added while asleep in the condvar.** A source registered on a sleeping
//!    worker's poller (from a thread that is not that worker) must not go unheard. The
//!    registrant counts the source, then reads `state` (`source_added`); the owner announces
//!    `IN_CONDVAR`, then reads the source count again, each with a `SeqCst` fence between
//!    its write and its read, so one of them sees the other: the registrant wakes the owner, or the owner withdraws its announcement and
//!    sleeps in the poller instead.

use std::time::Duration;

use crate::shim::atomic::{fence, AtomicUsize, Ordering::SeqCst};
use crate::shim::{Condvar, Mutex};

const EMPTY: usize = 0;
const NOTIFIED: usize = 1;
const IN_CONDVAR: usize = 2;
const IN_POLLER: usize = 3;

/// The condvar a source-less worker sleeps on, and the word that says where it sleeps.
pub(crate) struct Quiet {
    state: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Quiet {
    pub(crate) fn new() -> Quiet {
        Quiet {
            state: AtomicUsize::new(EMPTY),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    /// Sleeps until [`unpark`](Quiet::unpark) or `timeout`: in the condvar while
    /// `has_sources()` is false, else through `poll` (the poller wait, which calls the
    /// `left` function it is given once the wait returned, then dispatches what it
    /// harvested: rule 3). Returns what `poll` returned, or 0.
    pub(crate) fn park(
        &self,
        timeout: Option<Duration>,
        has_sources: impl Fn() -> bool,
        poll: impl FnOnce(Option<Duration>, &dyn Fn()) -> usize,
    ) -> usize {
        // Rule 1: a token consumed here is this park's whole wait.
        if self
            .state
            .compare_exchange(NOTIFIED, EMPTY, SeqCst, SeqCst)
            .is_ok()
        {
            return 0;
        }
        if has_sources() {
            return self.park_in_poller(timeout, poll);
        }
        let guard = self.lock.lock();
        if !self.announce(IN_CONDVAR) {
            return 0;
        }
        // Rule 4: a source registered before our announcement is seen here. The fence
        // pairs with `source_added`'s (a store then a load on each side: Dekker's shape).
        fence(SeqCst);
        if has_sources() {
            drop(guard);
            if self.state.swap(EMPTY, SeqCst) == NOTIFIED {
                return 0;
            }
            return self.park_in_poller(timeout, poll);
        }
        let mut guard = guard;
        match timeout {
            None => {
                while self.state.load(SeqCst) != NOTIFIED {
                    guard = self.cv.wait(guard);
                }
            }
            Some(d) => {
                // One timed wait: an early (spurious) return is allowed by `Park`.
                if self.state.load(SeqCst) != NOTIFIED {
                    guard = self.cv.wait_timeout(&self.lock, guard, d).0;
                }
            }
        }
        drop(guard);
        // Rule 3.
        self.state.swap(EMPTY, SeqCst);
        0
    }

    fn park_in_poller(
        &self,
        timeout: Option<Duration>,
        poll: impl FnOnce(Option<Duration>, &dyn Fn()) -> usize,
    ) -> usize {
        if !self.announce(IN_POLLER) {
            return 0;
        }
        // Rule 3, called by `poll` between its wait and its dispatch.
        poll(timeout, &|| {
            self.state.swap(EMPTY, SeqCst);
        })
    }

    /// Rule 2: `EMPTY → to`, or consume the token that came first (`false`: do not sleep).
    fn announce(&self, to: usize) -> bool {
        match self.state.compare_exchange(EMPTY, to, SeqCst, SeqCst) {
            Ok(_) => true,
            Err(_) => {
                // Only a waker changed it since our check, and wakers only swap in NOTIFIED.
                // A swap, not a store: it reads the latest waker's token, so this thread
                // sees everything that waker did before waking it (a shutdown flag, say).
                self.state.swap(EMPTY, SeqCst);
                false
            }
        }
    }

    /// Rule 1: wakes the owner where it sleeps (`notify_poller` if in its poller), or
    /// leaves it a token.
    pub(crate) fn unpark(&self, notify_poller: impl FnOnce()) {
        match self.state.swap(NOTIFIED, SeqCst) {
            IN_CONDVAR => {
                // Rule 2: under the mutex, so the owner is in `wait`, not before it.
                drop(self.lock.lock());
                self.cv.notify_one();
            }
            IN_POLLER => notify_poller(),
            _ => {}
        }
    }

    /// Rule 4: a source was counted; an owner asleep in the condvar moves to its poller.
    pub(crate) fn source_added(&self, notify_poller: impl FnOnce()) {
        fence(SeqCst);
        if self.state.load(SeqCst) == IN_CONDVAR {
            self.unpark(notify_poller);
        }
    }
}
