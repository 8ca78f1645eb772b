//! The reactor: I/O readiness on the poller every loop already parks in.
//!
//! Each loop — every runtime worker and every `LocalLoop` — owns one [`Driver`]: its
//! `polling::Poller` (the one it parks in and is woken through), the slab of sources
//! registered on it, and the harvest that turns the poller's events into readiness.
//!
//! ```text
//!   task on any worker                      owning loop's thread
//!   ──────────────────                      ────────────────────
//!   Registration::poll_ready(dir) ─bind──►  Driver (poller + slab)   (once, lazily: R7)
//!     word has dir's bit? → do the syscall     │ park / busy harvest (R8)
//!     EWOULDBLOCK → clear_readiness (R2)       ▼
//!     else store waker in dir's slot (R3)   event(key) → slab[key] (R5) → set_readiness
//!                                              (R1) → wake the slot's waker → the task
//!                                              joins this loop's ready queue
//! ```
//!
//! # Protocol rules
//!
//! - **R1 (dispatch).** A harvested event sets its readiness bits and bumps the tick of the
//!   source's word in one read-modify-write, *then* takes the waker slot lock and wakes the
//!   waiters of the directions that became ready.
//! - **R2 (clear).** A task that saw readiness `(tick, bits)` and got `EWOULDBLOCK` clears
//!   `bits` only if the word's tick is still `tick`: a dispatch after its syscall may carry a
//!   newer edge, which must not be lost (edge-triggered registrations report each change once).
//!   A drained read (shorter than its buffer) may clear the same way without the
//!   `EWOULDBLOCK`, except readability marked `NO_DRAIN` (a harvest that could not tell
//!   whether the peer shut down, or a fresh source); `READ_CLOSED` (`EPOLLRDHUP`: the peer
//!   shut down) is never cleared, so an EOF that came with the data is still read.
//! - **R3 (wait).** A waiting task stores its waker under the slot lock and reads the word
//!   again under that lock. With R1 (word first, lock second) either the waiter's re-read
//!   sees the dispatch's bits, or the dispatch finds the waker in the slot: no lost wake.
//! - **R4 (one waiter per direction).** Each source has one reader and one writer slot; a
//!   second waiter in a direction replaces the first (asyncio's `add_reader` replaces too).
//!   The replaced waker is not woken; split halves give each direction its own owner.
//! - **R5 (generation).** A slab key is the slot index plus the slot's generation; an event
//!   whose key's generation is not the slot's current one is ignored, so a descriptor number
//!   reused by a new source never receives the old source's events.
//! - **R6 (release).** Deregistering removes the descriptor from the poller, then releases
//!   the slot (its generation moves on at once); the slot is reused only after a harvest
//!   that began after the release has ended.
//! - **R7 (home poller).** A source registers once, lazily, on the poller of the loop whose
//!   thread first waits on it (a thread running no iteration of a runtime — a `block_on`
//!   thread — picks worker `fd % n`). Registrations never migrate: whichever worker runs the
//!   task does the syscall itself, and the home poller's harvest wakes the task onto the
//!   home loop's queue. The registration is edge-triggered, so no re-arming is needed.
//! - **R8 (harvest).** The home loop's thread harvests its driver (and, by R10, an idle
//!   peer when the home loop is stuck): every blocking wait
//!   (park) dispatches the events it harvested; a busy loop harvests with a zero timeout
//!   every `IO_INTERVAL` items run and when its queue drained but it found work elsewhere.
//!   A zero-timeout harvest by the running owner may consume a stale wake-up token: tokens
//!   matter only between announcing "parked" and parking, and the owner never harvests there.
//! - **R10 (an idle peer harvests a stuck loop).** A runtime worker about to park harvests
//!   a peer's driver that has sources and has not been harvested for `PEER_IO_STALE`
//!   (`Driver::harvest_if_stuck`), so that a task that never yields does not stall the
//!   sockets of its worker. It try-locks the harvest: an owner parked in its poller holds
//!   that lock, so a sleeping loop is never harvested by another thread. The zero-timeout
//!   wait may consume a wake-up written to the poller — a `LocalLoop`'s only token, or the
//!   copy sent to a worker that announced it sleeps in its poller (R11) but has not taken
//!   the harvest lock yet — so the harvester notifies the poller afterwards to give it back
//!   (the owner's next park may return spuriously, which `Park` allows). The woken tasks join the harvester's queue (the one loop in R8 whose
//!   events another thread dispatches). While a peer with sources runs, an idle worker parks
//!   for at most `PEER_IO_STALE`.
//! - **R11 (where a worker sleeps).** A runtime worker whose driver has no source sleeps
//!   in a condvar instead of its poller, and a wake-up goes where the parking word says it
//!   sleeps; a source registered meanwhile moves it to the poller. The protocol (a sticky
//!   token in one word, announce-then-sleep, the registration handshake) is numbered in
//!   `reactor/quiet.rs`. A `LocalLoop`'s driver always sleeps in its poller: its host may
//!   watch the poller's descriptor, which every wake-up must make readable.
//! - **R9 (descriptor lifetime).** A registered descriptor stays open until its
//!   registration is dropped (which deletes it from the poller before the owner closes it):
//!   the `# Safety` contract of [`Registration::new`].
//!
//! Under `--cfg loom` the poller is a fake (a condvar, a sticky token and a queue of
//! injected events) so the models drive the real word, slots, slab and dispatch.

mod quiet;
pub(crate) mod readiness;
pub(crate) mod slab;

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub(crate) use readiness::{Direction, ReadyEvent, ScheduledIo, READABLE, WRITABLE};
#[cfg(not(loom))]
use readiness::{NO_DRAIN, READ_CLOSED};
use slab::Slab;

use crate::shim::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::shim::Mutex;

/// One loop's poller, the sources registered on it, and its harvest.
pub(crate) struct Driver {
    sys: sys::Sys,
    slab: Mutex<Slab>,
    /// The harvest's buffers; the owning loop's thread locks it, and held across its park
    /// (so a peer's `try_lock` fails while it sleeps: rule R10).
    harvest: Mutex<Harvest>,
    /// Registered sources (a lock-free `has_sources`).
    sources: AtomicUsize,
    /// The loop clock when a harvest last began or ended (rule R10's staleness).
    harvested_at: AtomicU64,
    /// A runtime worker's condvar for parks with no source registered (rule R11); `None`
    /// for a `LocalLoop`, whose host may watch the poller's descriptor for every wake-up.
    quiet: Option<quiet::Quiet>,
}

#[derive(Default)]
struct Harvest {
    events: sys::Events,
    /// Reused between harvests: the sources made ready, dispatched outside the slab lock.
    ready: Vec<(Arc<ScheduledIo>, usize)>,
}

impl Driver {
    /// A driver whose every wake-up goes through its poller (a `LocalLoop`'s: its host may
    /// be watching the poller's descriptor).
    pub(crate) fn new() -> io::Result<Driver> {
        Self::with_quiet(None)
    }

    /// A runtime worker's driver: it sleeps in a condvar while it has no source (R11).
    pub(crate) fn new_worker() -> io::Result<Driver> {
        Self::with_quiet(Some(quiet::Quiet::new()))
    }

    fn with_quiet(quiet: Option<quiet::Quiet>) -> io::Result<Driver> {
        Ok(Driver {
            sys: sys::Sys::new()?,
            slab: Mutex::new(Slab::default()),
            harvest: Mutex::new(Harvest::default()),
            sources: AtomicUsize::new(0),
            harvested_at: AtomicU64::new(0),
            quiet,
        })
    }

    /// Sleeps for at most `timeout` (sticky token: `Park`'s contract): in the poller, then
    /// dispatching what it harvested (rules R1, R8), or, for a worker with no source, in
    /// its condvar (R11). Returns how many sources were made ready.
    pub(crate) fn park(&self, timeout: Option<Duration>) -> usize {
        match &self.quiet {
            Some(q) => q.park(timeout, || self.has_sources_seqcst(), |t| self.poll(t)),
            None => self.poll(timeout),
        }
    }

    /// A blocking or zero-timeout wait in the poller, dispatching what it harvested.
    fn poll(&self, timeout: Option<Duration>) -> usize {
        let mut h = self.harvest.lock();
        self.harvest_locked(&mut h, timeout)
    }

    /// The busy loop's zero-timeout harvest (R8): never sleeps, so it leaves the parking
    /// word alone.
    pub(crate) fn poll_now(&self) -> usize {
        self.poll(Some(Duration::ZERO))
    }

    /// Rule R10: harvests (zero timeout) if this driver has sources, was last harvested
    /// more than `stale` ago and its owner is not parked in it; then gives the owner its
    /// wake-up token back. Returns how many sources it made ready.
    pub(crate) fn harvest_if_stuck(&self, stale: Duration) -> usize {
        if !self.has_sources() {
            return 0;
        }
        let last = self.harvested_at.load(Ordering::Relaxed) as i64;
        let now = super::clock::now();
        if now.saturating_sub(last) < stale.as_nanos() as i64 {
            return 0;
        }
        let Some(mut h) = self.harvest.try_lock() else {
            return 0;
        };
        let n = self.harvest_locked(&mut h, Some(Duration::ZERO));
        drop(h);
        // The wait may have consumed a token meant for the owner: for a `LocalLoop` its only
        // token; for a worker, the poller's copy written to an owner that announced it
        // sleeps there (R11) but had not yet taken the harvest lock. Give it back.
        self.sys.notify();
        n
    }

    fn stamp(&self) {
        self.harvested_at
            .store(super::clock::now() as u64, Ordering::Relaxed);
    }

    fn harvest_locked(&self, h: &mut Harvest, timeout: Option<Duration>) -> usize {
        self.stamp();
        let n = self.slab.lock().begin_harvest();
        let Harvest { events, ready } = h;
        self.sys.wait(events, timeout);
        {
            let slab = self.slab.lock();
            events.drain(|key, bits| {
                if let Some(io) = slab.get(key) {
                    ready.push((io.clone(), bits));
                }
            });
        }
        let count = ready.len();
        // Outside the slab lock: a waker may run arbitrary code, even register a source.
        for (io, bits) in ready.drain(..) {
            io.set_readiness(bits);
        }
        self.slab.lock().end_harvest(n);
        self.stamp();
        count
    }

    /// Wakes the loop parked here, or makes its next park return at once.
    pub(crate) fn unpark(&self) {
        match &self.quiet {
            Some(q) => q.unpark(|| self.sys.notify()),
            None => self.sys.notify(),
        }
    }

    /// Whether any source is registered here (a busy loop skips its harvest otherwise).
    pub(crate) fn has_sources(&self) -> bool {
        self.sources.load(Ordering::Relaxed) > 0
    }

    /// `has_sources` in the order rule R11 needs (quiet.rs, rule 4).
    fn has_sources_seqcst(&self) -> bool {
        self.sources.load(Ordering::SeqCst) > 0
    }

    /// Registers `fd` for both directions, edge-triggered, under a fresh key.
    ///
    /// # Safety
    /// `fd` stays open until [`Driver::deregister`] is called for the returned key (R9).
    pub(crate) unsafe fn register(&self, fd: RawFd, io: Arc<ScheduledIo>) -> io::Result<usize> {
        let key = self.slab.lock().insert(io);
        // SAFETY: the caller keeps `fd` open until `deregister` (this function's contract).
        if let Err(e) = unsafe { self.sys.add(fd, key) } {
            self.slab.lock().remove(key);
            return Err(e);
        }
        self.sources.fetch_add(1, Ordering::SeqCst);
        if let Some(q) = &self.quiet {
            // R11: an owner asleep in its condvar would not hear this source's events.
            q.source_added(|| self.sys.notify());
        }
        Ok(key)
    }

    /// Removes `fd` from the poller and releases its slot (R6).
    pub(crate) fn deregister(&self, fd: RawFd, key: usize) {
        self.sys.delete(fd);
        if self.slab.lock().remove(key).is_some() {
            self.sources.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The poller's descriptor, readable when notified or when a source became ready.
    #[cfg(not(loom))]
    pub(crate) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.sys.as_fd()
    }

    /// loom: an event for `key` arrives in the fake poller.
    #[cfg(loom)]
    pub(crate) fn inject(&self, key: usize, ready: usize) {
        self.sys.inject(key, ready)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The loop is gone: nobody will dispatch again. Waking the waiters lets them see an
        // error from their next syscall instead of waiting forever.
        let sources = self.slab.lock().drain();
        for io in sources {
            io.set_readiness(READABLE | WRITABLE);
        }
    }
}

// `aioloop::io` (not built under loom) is the only user; the models drive the driver directly.
#[cfg_attr(loom, allow(dead_code))]
/// A source's registration: its readiness word from the start, its home poller once a
/// task first waits (R7).
pub(crate) struct Registration {
    fd: RawFd,
    io: Arc<ScheduledIo>,
    bound: AtomicBool,
    home: Mutex<Option<(Arc<Driver>, usize)>>,
}

#[cfg_attr(loom, allow(dead_code))]
impl Registration {
    /// # Safety
    /// `fd` stays open until this registration is dropped (rule R9).
    pub(crate) unsafe fn new(fd: RawFd) -> Registration {
        Registration {
            fd,
            io: Arc::new(ScheduledIo::default()),
            bound: AtomicBool::new(false),
            home: Mutex::new(None),
        }
    }

    /// Ready when the word has `dir`'s bit; registers on first need (R7). An error if no
    /// loop runs on this thread or the poller refuses the descriptor.
    pub(crate) fn poll_ready(
        &self,
        dir: Direction,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<ReadyEvent>> {
        if let Err(e) = self.bind() {
            return Poll::Ready(Err(e));
        }
        self.io.poll_ready(dir, cx).map(Ok)
    }

    /// Rule R2.
    pub(crate) fn clear_readiness(&self, ev: ReadyEvent) {
        self.io.clear_readiness(ev)
    }

    /// `ScheduledIo::clear_drained`: the clear after a drained read or a partial write.
    pub(crate) fn clear_drained(&self, ev: ReadyEvent) {
        self.io.clear_drained(ev)
    }

    fn bind(&self) -> io::Result<()> {
        if self.bound.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut home = self.home.lock();
        if home.is_some() {
            return Ok(());
        }
        let driver = super::context::io_driver(self.fd).ok_or_else(|| {
            io::Error::other("no running event loop: I/O needs a runtime or a running LocalLoop")
        })?;
        // SAFETY: `self.fd` stays open until `self` drops (`new`'s contract), and `drop`
        // deregisters it first (R9).
        let key = unsafe { driver.register(self.fd, self.io.clone())? };
        *home = Some((driver, key));
        self.bound.store(true, Ordering::Release);
        Ok(())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some((driver, key)) = self.home.lock().take() {
            driver.deregister(self.fd, key);
        }
        self.io.clear_wakers();
    }
}

/// The system poller behind a [`Driver`].
#[cfg(not(loom))]
mod sys {
    use std::io;
    use std::os::fd::{BorrowedFd, RawFd};
    use std::time::Duration;

    use super::{NO_DRAIN, READABLE, READ_CLOSED, WRITABLE};

    pub(super) struct Sys(polling::Poller);

    /// What a wait harvested: through `polling`, or — a zero-timeout harvest — straight
    /// from `epoll_wait` (`raw`).
    pub(super) struct Events(polling::Events, Vec<libc::epoll_event>);

    /// How many events one zero-timeout `epoll_wait` takes (the rest wait for the next).
    const RAW_EVENTS: usize = 1024;

    /// `polling`'s key for its own notifier and timer descriptors.
    const POLLING_NOTIFY_KEY: u64 = usize::MAX as u64;

    impl Default for Events {
        fn default() -> Self {
            Events(polling::Events::new(), Vec::new())
        }
    }

    impl Events {
        /// Hands each harvested `(key, readiness bits)` to `f` and empties the buffer.
        pub(super) fn drain(&mut self, mut f: impl FnMut(usize, usize)) {
            for e in self.0.iter() {
                // polling's events do not say whether the peer shut down: a short read
                // must not clear this readability.
                let r = if e.readable { READABLE | NO_DRAIN } else { 0 };
                let w = if e.writable { WRITABLE } else { 0 };
                f(e.key, r | w);
            }
            self.0.clear();
            // The same flag sets as polling's `Event::readable` / `writable`.
            let rd = (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLPRI) as u32;
            let wr = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;
            for e in self.1.drain(..) {
                let (key, flags) = (e.u64, e.events);
                if key == POLLING_NOTIFY_KEY {
                    continue;
                }
                let mut r = if flags & rd != 0 { READABLE } else { 0 };
                if flags & libc::EPOLLRDHUP as u32 != 0 {
                    r |= READABLE | READ_CLOSED;
                }
                if flags & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                    r |= NO_DRAIN;
                }
                let w = if flags & wr != 0 { WRITABLE } else { 0 };
                f(key as usize, r | w);
            }
        }
    }

    impl Sys {
        pub(super) fn new() -> io::Result<Sys> {
            Ok(Sys(polling::Poller::new()?))
        }

        pub(super) fn wait(&self, events: &mut Events, timeout: Option<Duration>) {
            events.0.clear();
            if timeout == Some(Duration::ZERO) && self.harvest_raw(&mut events.1) {
                return;
            }
            // An error here (EINTR) is a spurious wake-up, which callers already handle.
            let _ = self.0.wait(&mut events.0, timeout);
        }

        /// A zero-timeout harvest as one `epoll_wait`: `polling`'s wait also re-arms its
        /// timer (`timerfd_settime`, `epoll_ctl`) and its notifier (`read`, `epoll_ctl`)
        /// every time — four system calls a busy loop pays per iteration. Whether that
        /// sufficed: `false` when one of polling's own descriptors fired (a notification
        /// token, or its timer), which its wait must then clear and re-arm, as before.
        fn harvest_raw(&self, raw: &mut Vec<libc::epoll_event>) -> bool {
            raw.clear();
            raw.reserve(RAW_EVENTS);
            let fd = std::os::fd::AsRawFd::as_raw_fd(&self.0);
            // SAFETY: `raw` has room for RAW_EVENTS events (reserved above), which is what
            // epoll_wait may write; `fd` is the poller's epoll descriptor, open while
            // `self` is.
            let n = unsafe { libc::epoll_wait(fd, raw.as_mut_ptr(), RAW_EVENTS as i32, 0) };
            if n <= 0 {
                // Nothing ready, or EINTR: a spurious wake-up callers handle.
                return true;
            }
            // SAFETY: epoll_wait initialised the first `n` (<= RAW_EVENTS) entries.
            unsafe { raw.set_len(n as usize) };
            !raw.iter().any(|e| {
                let key = e.u64;
                key == POLLING_NOTIFY_KEY
            })
        }

        pub(super) fn notify(&self) {
            // Fails only if the eventfd is gone, i.e. never while the loop is alive.
            let _ = self.0.notify();
        }

        /// # Safety
        /// `fd` stays open until [`Sys::delete`] (reactor rule R9).
        pub(super) unsafe fn add(&self, fd: RawFd, key: usize) -> io::Result<()> {
            // polling's `Event::all` in edge mode, plus EPOLLRDHUP (which polling cannot ask
            // for): the raw harvest then knows when the peer shut down (READ_CLOSED).
            let flags = libc::EPOLLIN
                | libc::EPOLLOUT
                | libc::EPOLLHUP
                | libc::EPOLLERR
                | libc::EPOLLPRI
                | libc::EPOLLRDHUP
                | libc::EPOLLET;
            let mut ev = libc::epoll_event {
                events: flags as u32,
                u64: key as u64,
            };
            let epfd = std::os::fd::AsRawFd::as_raw_fd(&self.0);
            // SAFETY: `ev` is a valid epoll_event for the call; `epfd` is the poller's
            // epoll descriptor; the caller keeps `fd` open until `delete` (this function's
            // contract, reactor rule R9), which removes it through polling (EPOLL_CTL_DEL).
            if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
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
}

/// loom's fake poller: a sticky token, a queue of injected events and a condvar.
#[cfg(loom)]
mod sys {
    use std::io;
    use std::os::fd::RawFd;
    use std::time::Duration;

    #[derive(Default)]
    struct State {
        notified: bool,
        events: Vec<(usize, usize)>,
    }

    pub(super) struct Sys {
        state: loom::sync::Mutex<State>,
        cv: loom::sync::Condvar,
    }

    #[derive(Default)]
    pub(super) struct Events(Vec<(usize, usize)>);

    impl Events {
        pub(super) fn drain(&mut self, mut f: impl FnMut(usize, usize)) {
            for (key, bits) in self.0.drain(..) {
                f(key, bits);
            }
        }
    }

    impl Sys {
        pub(super) fn new() -> io::Result<Sys> {
            Ok(Sys {
                state: loom::sync::Mutex::new(State::default()),
                cv: loom::sync::Condvar::new(),
            })
        }

        pub(super) fn wait(&self, events: &mut Events, timeout: Option<Duration>) {
            let mut s = self.state.lock().unwrap();
            // Positive timeouts are not modelled (loom has no clock); a zero timeout polls.
            if timeout != Some(Duration::ZERO) {
                while !s.notified && s.events.is_empty() {
                    s = self.cv.wait(s).unwrap();
                }
            }
            s.notified = false;
            events.0.append(&mut s.events);
        }

        pub(super) fn notify(&self) {
            self.state.lock().unwrap().notified = true;
            self.cv.notify_one();
        }

        pub(super) fn inject(&self, key: usize, ready: usize) {
            self.state.lock().unwrap().events.push((key, ready));
            self.cv.notify_one();
        }

        /// # Safety
        /// None under loom; the signature matches the real poller's.
        pub(super) unsafe fn add(&self, _fd: RawFd, _key: usize) -> io::Result<()> {
            Ok(())
        }

        pub(super) fn delete(&self, _fd: RawFd) {}
    }
}
