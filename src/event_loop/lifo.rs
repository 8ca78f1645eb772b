//! The LIFO "next task" slot of a runtime worker: a task woken or spawned by the item this
//! worker is running is run right after it, before the rest of the ready queue.
//!
//! Message passing (a task wakes its peer, which answers and wakes it back; a task spawns
//! the next one of a chain) otherwise sends every hop through the back of the queue, behind
//! everything else that is ready, with the woken task's data long gone from the cache. The
//! slot is tokio's answer, and ours follows its rules:
//!
//! 1. **What goes in.** Only a task (never a callback) scheduled on the worker's own thread
//!    *while one of its items runs* ([`LifoSlot::running`] brackets the step), and never
//!    the running task itself (a task that woke itself yielded: it goes to the back of the
//!    queue, or `yield_now` would not let anyone else run). Timer wakes, remote work and
//!    everything scheduled between steps take the queue. A `LocalLoop` has no slot: its
//!    order is asyncio's (rules T2, S3).
//! 2. **One task, the first.** The slot holds the first task a step schedules; the ones
//!    after it take the back of the queue (stealable: the caller may wake a peer). tokio
//!    lets a newer task displace the older one instead; keeping the first preserves rule
//!    T2's order among the tasks one step creates (`create_task` in a loop starts them in
//!    creation order on one worker), and message passing — one wake per step — gains the
//!    same. What does change is the order against items queued *before* the step: the
//!    slot task runs ahead of them (ARCHITECTURE.md, divergences).
//! 3. **Not stealable.** The slot is a plain cell of the worker's thread: peers never see
//!    it, which costs no atomic on the hot path (tokio measured a stealable slot ~30%
//!    slower on message passing).
//! 4. **Bounded.** After a queued item, at most `MAX_LIFO_POLLS` slot tasks run in a row;
//!    the next one goes to the back of the queue, so two tasks that keep waking each other
//!    cannot starve the queue, timers, or remote work. An idle peer is woken for it only if
//!    the queue holds something else too: alone there, the spilled task is the next item
//!    this worker pops (it is running, between two items), so a woken peer could only find
//!    nothing or take a chain of message passing away from the cache it is warm in. A
//!    spawn chain spills every `MAX_LIFO_POLLS + 1` hops, and each of those wake-ups was a
//!    `futex` call on the chain's own thread (README, issue 9 item 6, fourth pass).
//! 5. **Never stranded.** The loop core drains the slot (by running it, or by rule 4's push)
//!    before it takes the next queued item, so the slot is empty whenever the worker looks
//!    for work, parks, or leaves its loop at shutdown; a task that sits in it is therefore
//!    never invisible to a parking worker's re-check, and shutdown's drain of the ready
//!    queue frees it. `LoopCore::clear` empties the slot as well, should that ever fail.
//!
//! Owns: at most one task reference, and the address of the running task. Must not: be
//! touched from another thread (it is a `Cell`, and `LoopCore` is not `Sync`).

use std::cell::Cell;

use crate::task::raw::Notified;

/// See the module docs.
pub(crate) struct LifoSlot {
    /// `false` for a `LocalLoop` (rule 1).
    enabled: bool,
    /// While an item of this core runs: the address of its task (0 for a callback); `None`
    /// between steps. An integer, not a pointer: it is only compared, and the core must stay
    /// `Send` (a worker hands it back to the dropping thread).
    running: Cell<Option<usize>>,
    slot: Cell<Option<Notified>>,
}

impl LifoSlot {
    pub(crate) fn new(enabled: bool) -> LifoSlot {
        LifoSlot {
            enabled,
            running: Cell::new(None),
            slot: Cell::new(None),
        }
    }

    /// Runs `f` (one step of an item, `task` being its task's address or null) with the
    /// slot open to what `f` schedules (rule 1).
    #[inline]
    pub(crate) fn running<R>(&self, task: *const (), f: impl FnOnce() -> R) -> R {
        if !self.enabled {
            return f();
        }
        /// Closes the slot again even if `f` unwinds.
        struct Close<'a>(&'a Cell<Option<usize>>);
        impl Drop for Close<'_> {
            fn drop(&mut self) {
                self.0.set(None);
            }
        }
        self.running.set(Some(task as usize));
        let _close = Close(&self.running);
        f()
    }

    /// Offers a task scheduled on this thread to the slot (rules 1 and 2): `Err` gives
    /// back one that must join the ready queue.
    #[inline]
    pub(crate) fn offer(&self, task: Notified) -> Result<(), Notified> {
        match self.running.get() {
            Some(current) if current != task.addr() as usize => match self.slot.take() {
                None => {
                    self.slot.set(Some(task));
                    Ok(())
                }
                Some(first) => {
                    self.slot.set(Some(first));
                    Err(task)
                }
            },
            _ => Err(task),
        }
    }

    /// Takes the task in the slot, if any.
    #[inline]
    pub(crate) fn take(&self) -> Option<Notified> {
        self.slot.take()
    }
}
