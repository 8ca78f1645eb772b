//! The task allocation's layout, and one typed accessor per field that the protocol guards.
//!
//! ```text
//!  Cell<F, S>  (#[repr(C)], one Box)
//!  ┌─────────────────────────────┐
//!  │ Header                      │  state word · &'static Vtable · id · extra   (32 bytes)
//!  │ scheduler: S                │  the loop's side of the task (`Schedule`)
//!  │ join_waker: Option<Waker>   │  the `Task<T>` handle's waker (state.rs rule 4)
//!  │ stage: Running(F)           │  the future (rule 2), then
//!  │      | Finished(Result)     │  its output (rule 3), then
//!  │      | Consumed             │  nothing
//!  └─────────────────────────────┘
//! ```
//!
//! `extra` is a pointer to the block of task/cancel.rs (cancellation requests, done
//! callbacks, the context), null until first needed. Everything outside the task core sees
//! only `NonNull<Header>` and calls through the vtable, so handles, wakers, run queues and
//! the registry are not generic over the future.
//!
//! The accessors below are the only code that touches `stage` and `join_waker`; each states
//! in its `# Safety` which rule of state.rs entitles the caller.

use std::future::Future;
use std::ptr::{self, NonNull};
use std::task::{Context, Poll, Waker};

use super::cancel::ExtraSlot;
use super::raw::Vtable;
use super::registry::RegistryPos;
use super::state::State;
use crate::error::TaskError;
use crate::shim::UnsafeCell;
use crate::unwind;

/// The part of every task that is the same whatever its future: read through a
/// `NonNull<Header>` by everything that is not generic.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) state: State,
    pub(crate) vtable: &'static Vtable,
    pub(crate) id: u64,
    /// The task's extra block (task/cancel.rs); null until first needed.
    pub(crate) extra: ExtraSlot,
    /// Where the registry keeps the task's entry (task/registry.rs, rule 6).
    pub(crate) registry_pos: RegistryPos,
}

// SAFETY: the header's fields are an atomic, a `&'static`, an immutable integer (state.rs
// rule 6), the extra slot (an atomic pointer to a mutex-guarded block), and the registry
// position, accessed only under its registry shard's lock (task/registry.rs, rule 6).
unsafe impl Send for Header {}
// SAFETY: every mutation of the header goes through those atomics or those mutexes.
unsafe impl Sync for Header {}

pub(super) enum Stage<F: Future> {
    Running(F),
    Finished(Result<F::Output, TaskError>),
    Consumed,
}

#[repr(C)]
pub(super) struct Cell<F: Future, S> {
    pub(super) header: Header,
    pub(super) scheduler: S,
    join_waker: UnsafeCell<Option<Waker>>,
    stage: UnsafeCell<Stage<F>>,
}

impl<F: Future, S> Cell<F, S> {
    pub(super) fn new(header: Header, scheduler: S, future: F) -> Box<Cell<F, S>> {
        Box::new(Cell {
            header,
            scheduler,
            join_waker: UnsafeCell::new(None),
            stage: UnsafeCell::new(Stage::Running(future)),
        })
    }

    /// The cell behind a header pointer.
    ///
    /// # Safety
    /// `ptr` points to the header of a live `Cell<F, S>` (the vtable that dispatched to the
    /// caller was built for exactly these `F, S`), and the caller holds a reference for as
    /// long as it uses the result (state.rs rule 1).
    pub(super) unsafe fn from_header<'a>(ptr: NonNull<Header>) -> &'a Cell<F, S> {
        // SAFETY: `Cell` is `repr(C)` with the header first, so the header pointer is the
        // cell pointer; liveness is the caller's contract.
        unsafe { ptr.cast::<Cell<F, S>>().as_ref() }
    }

    /// Polls the future where it lies.
    ///
    /// # Safety
    /// The caller set `RUNNING` (state.rs rule 2) and the stage holds the future.
    pub(super) unsafe fn poll_future(&self, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.stage.with_mut(|p| {
            // SAFETY: rule 2 gives the caller exclusive access to the stage.
            let Stage::Running(fut) = (unsafe { &mut *p }) else {
                unreachable!("a running task's stage holds its future")
            };
            // SAFETY: the future lives in the task allocation, which never moves, and stays
            // there until `drop_future` drops it in place (rule 2).
            unsafe { std::pin::Pin::new_unchecked(fut) }.poll(cx)
        })
    }

    /// Drops the future where it lies and marks the stage `Consumed`, catching a panic of
    /// its destructor.
    ///
    /// Pin's drop guarantee: the future was polled through `Pin::new_unchecked` on its
    /// place in the allocation, so it may have handed out its own address (the waiter list
    /// of a semaphore, a mutex, a channel). Its destructor must run at that same address,
    /// which a `mem::replace` followed by a drop on the stack would break.
    ///
    /// # Safety
    /// The caller set `RUNNING` (state.rs rule 2) and the stage still holds the future.
    pub(super) unsafe fn drop_future(&self) -> std::thread::Result<()> {
        self.stage.with_mut(|p| {
            // SAFETY: rule 2: exclusive access; the stage holds a valid value, dropped
            // exactly once here and overwritten below without a second drop.
            let dropped = unwind::catch(|| unsafe { ptr::drop_in_place(p) });
            // SAFETY: state.rs rule 2: still exclusive. The old value is gone (even if its destructor
            // panicked, the drop glue ran the rest of it), so writing without dropping it is
            // what is wanted.
            unsafe { ptr::write(p, Stage::Consumed) };
            dropped
        })
    }

    /// Stores the output.
    ///
    /// # Safety
    /// The caller set `RUNNING`, the future is gone, and `COMPLETE` is not published yet
    /// (state.rs rule 3: nobody else reads the stage until then).
    pub(super) unsafe fn store_output(&self, output: Result<F::Output, TaskError>) {
        // SAFETY: state.rs rule 3: RUNNING is ours and COMPLETE unpublished, so nobody else
        // reads the stage; it is `Consumed`, so nothing is overwritten
        // that needed dropping in place.
        self.stage
            .with_mut(|p| unsafe { *p = Stage::Finished(output) });
    }

    /// Takes the output out, leaving `Consumed`. `None` if it was taken before. An output
    /// was never pinned, so moving it is fine; the future goes through `drop_future`.
    ///
    /// # Safety
    /// The caller is entitled to the output by state.rs rule 3 (`COMPLETE` with
    /// `JOIN_INTEREST` for the handle, or the completing thread without it).
    pub(super) unsafe fn take_output(&self) -> Option<Result<F::Output, TaskError>> {
        // SAFETY: rule 3 gives the caller exclusive access to the stage.
        let stage = self
            .stage
            .with_mut(|p| unsafe { std::mem::replace(&mut *p, Stage::Consumed) });
        match stage {
            Stage::Finished(out) => Some(out),
            Stage::Consumed => None,
            Stage::Running(_) => unreachable!("a future moved out of its task"),
        }
    }

    /// Whether the stored join waker would wake the same task as `waker`.
    ///
    /// # Safety
    /// `JOIN_WAKER` is set (state.rs rule 4: nobody writes the field, shared reads are
    /// fine).
    pub(super) unsafe fn join_waker_will_wake(&self, waker: &Waker) -> bool {
        // SAFETY: state.rs rule 4: JOIN_WAKER is set (this function's contract), so nobody
        // writes the field and shared reads are fine.
        self.join_waker
            .with(|w| unsafe { &*w }.as_ref().is_some_and(|w| w.will_wake(waker)))
    }

    /// Wakes the stored join waker (if any), handing back a panic of it.
    ///
    /// # Safety
    /// `COMPLETE` and `JOIN_WAKER` are set and the caller is the completing thread (state.rs
    /// rule 4: it may read the field).
    pub(super) unsafe fn wake_join_waker(&self) -> Result<(), unwind::Payload> {
        self.join_waker.with(|w| {
            // SAFETY: state.rs rule 4: COMPLETE and JOIN_WAKER are set and we complete the
            // task (this function's contract): nobody writes the field, we may read it.
            match unsafe { &*w } {
                Some(w) => unwind::catch(|| w.wake_by_ref()),
                None => Ok(()),
            }
        })
    }

    /// Replaces the join waker, handing back the old one for the caller to drop (a waker's
    /// drop is code the loop does not own).
    ///
    /// # Safety
    /// The caller owns the field by state.rs rule 4: the handle while `JOIN_WAKER` and
    /// `COMPLETE` are clear (or a transition just gave the field back to it), or the
    /// completing thread after clearing `JOIN_WAKER` once the handle is gone.
    #[must_use]
    pub(super) unsafe fn set_join_waker(&self, waker: Option<Waker>) -> Option<Waker> {
        // SAFETY: state.rs rule 4: the caller owns the field (this function's contract), so
        // nobody else reads or writes it now.
        self.join_waker
            .with_mut(|w| unsafe { std::mem::replace(&mut *w, waker) })
    }
}
