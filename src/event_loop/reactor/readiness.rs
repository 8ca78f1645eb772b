//! One source's shared readiness: the readiness word and its two waker slots (the module
//! rules R1–R4 of `reactor/mod.rs`).
//!
//! Whichever thread runs the task that owns the source does the syscall itself; the word
//! only says whether trying is worthwhile. The poller that harvested an edge sets bits and
//! bumps the tick; a task that got `EWOULDBLOCK` clears the bits it saw, but only if the
//! tick is still the one it saw (rule R2), so an edge that arrived meanwhile is not lost.
//!
//! Two more bits say a direction is closed for good (the peer's half-close or a hang-up):
//! a clear after a short read keeps them (rule R12), so a read that emptied the socket
//! still finds the end of stream without a new edge.

use std::task::{Context, Poll, Waker};

use crate::shim::atomic::{AtomicUsize, Ordering};
use crate::shim::Mutex;

/// Bit: the source may be readable.
pub(crate) const READABLE: usize = 1;
/// Bit: the source may be writable.
pub(crate) const WRITABLE: usize = 2;
/// Bit: the peer shut down its writing side or hung up (`EPOLLRDHUP`, `EPOLLHUP`): reads
/// will not block again (rule R12).
pub(crate) const READ_CLOSED: usize = 4;
/// Bit: the connection hung up (`EPOLLHUP`): writes will not block again.
pub(crate) const WRITE_CLOSED: usize = 8;
const CLOSED_MASK: usize = READ_CLOSED | WRITE_CLOSED;
const READY_MASK: usize = READABLE | WRITABLE | CLOSED_MASK;
const TICK_SHIFT: usize = 16;
const TICK_MASK: usize = 0xFFFF << TICK_SHIFT;

/// Which way a task waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    pub(crate) fn mask(self) -> usize {
        match self {
            Direction::Read => READABLE | READ_CLOSED,
            Direction::Write => WRITABLE | WRITE_CLOSED,
        }
    }
}

/// What a successful readiness wait saw: the bits of its direction and the tick they
/// carried (the argument of [`ScheduledIo::clear_readiness`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadyEvent {
    pub(crate) tick: usize,
    pub(crate) ready: usize,
}

#[derive(Default)]
struct Waiters {
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Waiters {
    fn slot(&mut self, dir: Direction) -> &mut Option<Waker> {
        match dir {
            Direction::Read => &mut self.reader,
            Direction::Write => &mut self.writer,
        }
    }
}

/// The readiness of one registered source, shared by the poller that owns the
/// registration and every task that waits on the source.
pub(crate) struct ScheduledIo {
    /// Low bits: `READABLE | WRITABLE | READ_CLOSED | WRITE_CLOSED`; bits 16..32: the tick, bumped by every dispatch.
    word: AtomicUsize,
    waiters: Mutex<Waiters>,
}

impl Default for ScheduledIo {
    fn default() -> Self {
        ScheduledIo {
            // A fresh source is tried at once: asyncio's `sock_*` call the syscall first,
            // and an edge-triggered registration reports only changes after it is made.
            word: AtomicUsize::new(READABLE | WRITABLE),
            waiters: Mutex::new(Waiters::default()),
        }
    }
}

impl ScheduledIo {
    /// Rule R1: the dispatcher's side. Sets `ready` and bumps the tick in one RMW, then
    /// takes the waiter slot of each direction that became ready and wakes it outside the
    /// lock (a waker may run arbitrary code).
    pub(crate) fn set_readiness(&self, ready: usize) {
        let (reader, writer) = self.dispatch(ready);
        if let Some(w) = reader {
            w.wake();
        }
        if let Some(w) = writer {
            w.wake();
        }
    }

    /// Rule R1 without the wake: sets `ready`, bumps the tick, and returns the waiters of
    /// the directions that became ready (reader, writer) for the caller to wake once it
    /// holds no lock. The harvest dispatches a whole batch this way under one slab lock,
    /// without an `Arc` reference per event.
    pub(crate) fn dispatch(&self, ready: usize) -> (Option<Waker>, Option<Waker>) {
        let ready = ready & READY_MASK;
        let mut cur = self.word.load(Ordering::Acquire);
        loop {
            let tick = ((cur & TICK_MASK) >> TICK_SHIFT).wrapping_add(1) & 0xFFFF;
            let next = (tick << TICK_SHIFT) | (cur & READY_MASK) | ready;
            match self
                .word
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        let mut w = self.waiters.lock();
        let r = if ready & Direction::Read.mask() != 0 {
            w.reader.take()
        } else {
            None
        };
        let wr = if ready & Direction::Write.mask() != 0 {
            w.writer.take()
        } else {
            None
        };
        (r, wr)
    }

    /// Rule R3: the waiting task's side. Ready at once if the word has the direction's bit;
    /// otherwise the waker goes into the direction's one slot (replacing the previous
    /// waiter's, rule R4) and the word is read again under the slot lock.
    #[inline]
    pub(crate) fn poll_ready(&self, dir: Direction, cx: &mut Context<'_>) -> Poll<ReadyEvent> {
        if let Some(ev) = self.ready_now(dir) {
            return Poll::Ready(ev);
        }
        self.wait(dir, cx)
    }

    /// Rule R3's slow half, out of line so the ready path above inlines into every
    /// stream operation.
    #[inline(never)]
    fn wait(&self, dir: Direction, cx: &mut Context<'_>) -> Poll<ReadyEvent> {
        let mut w = self.waiters.lock();
        let slot = w.slot(dir);
        match slot {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        match self.ready_now(dir) {
            Some(ev) => Poll::Ready(ev),
            None => Poll::Pending,
        }
    }

    #[inline]
    fn ready_now(&self, dir: Direction) -> Option<ReadyEvent> {
        let cur = self.word.load(Ordering::Acquire);
        let ready = cur & dir.mask();
        (ready != 0).then_some(ReadyEvent {
            tick: (cur & TICK_MASK) >> TICK_SHIFT,
            ready,
        })
    }

    /// Rule R2: forgets the readiness `ev` reported (its syscall said `EWOULDBLOCK`), unless
    /// a dispatch bumped the tick since: that edge may be newer than the syscall. The
    /// closed bits go too: a syscall that would block proves the direction is not closed
    /// (without this, a stale closed bit would make every wait return at once).
    pub(crate) fn clear_readiness(&self, ev: ReadyEvent) {
        self.clear_bits(ev.tick, ev.ready)
    }

    /// Rule R12: after a read that emptied the socket without blocking (shorter than its
    /// buffer), forgets `READABLE` under the same tick condition as R2 but keeps the closed
    /// bits: a half-close that arrived with the data produces no later edge, and the next
    /// read must still see it.
    pub(crate) fn clear_drained(&self, ev: ReadyEvent) {
        self.clear_bits(ev.tick, ev.ready & !CLOSED_MASK)
    }

    fn clear_bits(&self, tick: usize, bits: usize) {
        let mut cur = self.word.load(Ordering::Acquire);
        loop {
            if (cur & TICK_MASK) >> TICK_SHIFT != tick {
                return;
            }
            let next = cur & !bits;
            match self
                .word
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Drops both waiters without waking them (the source is going away).
    pub(crate) fn clear_wakers(&self) {
        let old = std::mem::take(&mut *self.waiters.lock());
        drop(old);
    }

    /// The readiness bits (for the loom models).
    #[cfg_attr(not(loom), allow(dead_code))]
    pub(crate) fn readiness(&self) -> usize {
        self.word.load(Ordering::Acquire) & READY_MASK
    }
}
