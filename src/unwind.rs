//! Catching the panics of code the crate calls but does not own: a future's or an output's
//! destructor, a waker, a callback, a hook. Invariant 7 (ARCHITECTURE.md): no loop thread
//! unwinds, so every such call goes through here and its panic becomes a value — a task's
//! outcome or a report for the loop's exception handler.
//!
//! Owns: nothing. May import: nothing of the crate (it is the bottom layer with `sync`).

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A caught panic's payload.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// Runs `f`, handing back its panic instead of unwinding.
///
/// `AssertUnwindSafe`: what `f` touches is either its own (a value being dropped, a waker
/// being woken) or state whose protocol is finished before the call (the task is complete,
/// the entry popped), so nothing half-updated is observed after a panic.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Payload> {
    catch_unwind(AssertUnwindSafe(f))
}

/// Drops `value`, handing back a panic of its destructor.
pub(crate) fn drop_caught<T>(value: T) -> Result<(), Payload> {
    catch(move || drop(value))
}
