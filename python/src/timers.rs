//! The loop's pending `call_later`/`call_at` handles, where the collector and `close()`
//! can reach them.
//!
//! A timer waits in the `LocalLoop`'s heap as a Rust closure, a reference no `tp_traverse`
//! reports: a timer whose callback references the loop (`asyncio.sleep`'s future does)
//! would make a cycle the collector cannot see. So the pending `TimerHandle`s sit in the
//! loop's `Timers` table, which `Loop::__traverse__` reports, and the closure holds only
//! a [`Slot`], the handle's index in it.
//!
//! Protocol:
//! 1. A slot holds its handle from [`Timers::insert`] until the closure runs
//!    ([`Slot::take`]) or is dropped unrun — cancelled and purged, or dropped by the
//!    loop's `close()` — whose `Drop` empties the slot and discards the handle's payload
//!    (handle.rs: it can never run now).
//! 2. An index is freed only by the `Slot` that owns it, once: a reused index never lets
//!    an old `Slot` reach a newer timer's handle.
//! 3. The table is borrowed only to insert, remove or visit, never across Python code:
//!    handles are moved out and dropped or discarded after the borrow ends.
//! 4. The table is the loop thread's (an `Rc` inside the loop's thread-bound state): the
//!    closures run and are dropped there, and a traverse from another thread visits
//!    nothing (thread_bound.rs).

use std::cell::RefCell;
use std::rc::Rc;

use pyo3::prelude::*;
use pyo3::{PyTraverseError, PyVisit};

use crate::handle::TimerHandle;

#[derive(Default)]
struct Table {
    slots: Vec<Option<Py<TimerHandle>>>,
    free: Vec<usize>,
}

/// The pending timers' handles of one loop (module docs).
#[derive(Default)]
pub(crate) struct Timers(RefCell<Table>);

impl Timers {
    /// Keeps `h` until its slot is taken or dropped (rule 1).
    pub(crate) fn insert(self: &Rc<Self>, h: Py<TimerHandle>) -> Slot {
        let mut t = self.0.borrow_mut();
        let index = match t.free.pop() {
            Some(i) => {
                t.slots[i] = Some(h);
                i
            }
            None => {
                t.slots.push(Some(h));
                t.slots.len() - 1
            }
        };
        Slot {
            table: Rc::clone(self),
            index: Some(index),
        }
    }

    fn remove(&self, index: usize) -> Option<Py<TimerHandle>> {
        let mut t = self.0.borrow_mut();
        let h = t.slots[index].take();
        t.free.push(index);
        h
    }

    /// The pending handles, cloned out of the table (rule 3).
    pub(crate) fn pending(&self, py: Python<'_>) -> Vec<Py<TimerHandle>> {
        let t = self.0.borrow();
        t.slots.iter().flatten().map(|h| h.clone_ref(py)).collect()
    }

    /// `__traverse__` over the pending handles. The table is never borrowed across Python
    /// code (rule 3), so no collection should find it borrowed; if one did, skipping it
    /// only keeps more alive.
    pub(crate) fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        let Ok(t) = self.0.try_borrow() else {
            return Ok(());
        };
        t.slots.iter().flatten().try_for_each(|h| visit.call(h))
    }
}

/// A pending timer's place in its loop's [`Timers`], owned by the timer's closure.
pub(crate) struct Slot {
    table: Rc<Timers>,
    /// `None` once taken (rule 2).
    index: Option<usize>,
}

impl Slot {
    /// The handle, for the closure to run it (rule 1).
    pub(crate) fn take(mut self) -> Option<Py<TimerHandle>> {
        let i = self.index.take()?;
        self.table.remove(i)
    }
}

impl Drop for Slot {
    /// The timer was dropped without running: its callback never will (rule 1).
    fn drop(&mut self) {
        let Some(i) = self.index.take() else {
            return;
        };
        if let Some(h) = self.table.remove(i) {
            Python::with_gil(|py| {
                let h = h.into_bound(py);
                h.as_super().get().discard(py);
            });
        }
    }
}
