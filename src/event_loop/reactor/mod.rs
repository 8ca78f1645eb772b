//! The reactor: I/O readiness on the poller every loop already parks in.
//!
//! Each loop — every runtime worker and every `LocalLoop` — owns one [`Driver`]: its
//! poller (the one it parks in and is woken through), the slab of sources
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
//! - **R12 (closed bits survive a drained read).** A harvested hang-up or peer half-close
//!   (`EPOLLHUP`, `EPOLLRDHUP`) sets `READ_CLOSED` (and `WRITE_CLOSED` for a hang-up)
//!   beside the readiness bit. A stream read shorter than its buffer emptied the socket,
//!   so it clears `READABLE` at once (R2's tick condition) — saving the `EWOULDBLOCK` read
//!   that would learn it — but keeps the closed bits: a FIN that arrived with the data
//!   produces no later edge, and the next read must still find the end of stream. An
//!   `EWOULDBLOCK` (R2) clears the closed bits too: a syscall that would block proves the
//!   direction open, and a stale closed bit would make every wait return at once. Only a
//!   poller that reports half-closes clears on short reads (`SHORT_READ_CLEARS`: the
//!   epoll backend; `polling` registers no `EPOLLRDHUP`). tokio's `ScheduledIo` keeps its
//!   closed bits the same way.
//! - **R9 (descriptor lifetime).** A registered descriptor stays open until its
//!   registration is dropped (which deletes it from the poller before the owner closes it):
//!   the `# Safety` contract of [`Registration::new`].
//!
//! The poller (`sys`): on Linux, epoll directly (`sys_epoll.rs`: one `epoll_wait` per
//! wait, an `eventfd` write per notify, half-closes reported); elsewhere the `polling`
//! crate (`sys_polling.rs`). ARCHITECTURE.md records the measurement behind the choice.
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

/// Whether a stream read shorter than its buffer may clear read readiness (rule R12):
/// only where the poller reports a peer's half-close as `READ_CLOSED`.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const SHORT_READ_CLEARS: bool = sys::REPORTS_READ_CLOSED;
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
    /// Reused between harvests: the waiters the events made ready, woken outside the slab
    /// lock (a waker may run arbitrary code, even register a source).
    wakers: Vec<std::task::Waker>,
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
            Some(q) => q.park(
                timeout,
                || self.has_sources_seqcst(),
                |t, left| self.poll(t, left),
            ),
            None => self.poll(timeout, &|| {}),
        }
    }

    /// A blocking or zero-timeout wait in the poller, then `left()` (the sleep is over:
    /// quiet.rs rule 3), then the dispatch of what it harvested.
    fn poll(&self, timeout: Option<Duration>, left: &dyn Fn()) -> usize {
        let mut h = self.harvest.lock();
        self.harvest_locked(&mut h, timeout, left)
    }

    /// The busy loop's zero-timeout harvest (R8): never sleeps, so it leaves the parking
    /// word alone.
    pub(crate) fn poll_now(&self) -> usize {
        self.poll(Some(Duration::ZERO), &|| {})
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
        let n = self.harvest_locked(&mut h, Some(Duration::ZERO), &|| {});
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

    fn harvest_locked(&self, h: &mut Harvest, timeout: Option<Duration>, left: &dyn Fn()) -> usize {
        let n = self.slab.lock().begin_harvest();
        let Harvest { events, wakers } = h;
        self.sys.wait(events, timeout);
        left();
        let mut count = 0;
        {
            // One slab lock for the whole batch: each event's bits go into its source's
            // word (R1) while the slab holds the source, so no `Arc` reference is taken per
            // event; the harvest ends here too, since no key is looked at after it (R6).
            let mut slab = self.slab.lock();
            events.drain(|key, bits| {
                if let Some(io) = slab.get(key) {
                    count += 1;
                    let (r, w) = io.dispatch(bits);
                    wakers.extend(r);
                    wakers.extend(w);
                }
            });
            slab.end_harvest(n);
        }
        for w in wakers.drain(..) {
            w.wake();
        }
        // Stamped once, after the dispatch: during a blocking wait the owner holds the
        // harvest lock, so a peer's `harvest_if_stuck` cannot take it anyway (R10).
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

    /// How many sources are registered here (an embedding host tells its own wake-up
    /// source from the rest: `LocalLoop::run_host_passes`).
    pub(crate) fn source_count(&self) -> usize {
        self.sources.load(Ordering::Relaxed)
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
    #[inline]
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

    /// Rule R12.
    pub(crate) fn clear_drained(&self, ev: ReadyEvent) {
        self.io.clear_drained(ev)
    }

    #[inline]
    fn bind(&self) -> io::Result<()> {
        if self.bound.load(Ordering::Acquire) {
            return Ok(());
        }
        self.bind_slow()
    }

    /// The first wait's registration (R7), out of line: every later wait only loads
    /// `bound`.
    #[inline(never)]
    fn bind_slow(&self) -> io::Result<()> {
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

// The system poller behind a [`Driver`]: epoll on Linux (one `epoll_wait` per wait, and
// the peer's half-close reported: rule R12), `polling` elsewhere — or on Linux with
// `--cfg aioloop_polling`, to test the fallback — and a fake under loom.
#[cfg(all(not(loom), target_os = "linux", not(aioloop_polling)))]
#[path = "sys_epoll.rs"]
mod sys;
#[cfg(all(not(loom), any(not(target_os = "linux"), aioloop_polling)))]
#[path = "sys_polling.rs"]
mod sys;
#[cfg(loom)]
#[path = "sys_fake.rs"]
mod sys;
