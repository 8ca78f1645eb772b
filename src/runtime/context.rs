//! The thread-local "running loop" of this thread: which runtime it belongs to and, on a
//! worker thread, that worker's local run queue.
//!
//! Set for the whole life of a worker thread, and for the duration of `block_on` on the
//! calling thread. It answers asyncio's "is there a running loop here?" (rules L6, L7, S6)
//! and lets a wake-up on a worker push to that worker's own queue without touching shared
//! state.
//!
//! Must not: hold anything that outlives the frame that set it. The pointer it stores is
//! cleared by [`ContextGuard`] before that frame returns or unwinds.

use std::cell::Cell;
use std::ptr;

use super::queue::Local;
use super::shared::Shared;
use super::Handle;
use crate::task::raw::Notified;
use crate::task::LoopId;

/// What a thread running a loop knows about it. Lives on the stack of the frame that runs
/// the loop.
pub(crate) struct LoopContext<'a> {
    pub(crate) handle: Handle,
    /// The worker's own queue; `None` on a `block_on` thread.
    pub(crate) local: Option<&'a Local<Notified>>,
}

crate::sync::thread_local! {
    static CONTEXT: Cell<*const LoopContext<'static>> = Cell::new(ptr::null());
}

/// Clears the thread's context on drop (also on unwind).
pub(crate) struct ContextGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Another loop already runs on this thread.
pub(crate) struct AlreadyRunning;

/// Installs `ctx` as this thread's running loop until the guard drops.
pub(crate) fn enter(ctx: &LoopContext<'_>) -> Result<ContextGuard, AlreadyRunning> {
    CONTEXT.with(|c| {
        if !c.get().is_null() {
            return Err(AlreadyRunning);
        }
        // The lifetime is erased; the guard clears the pointer before `ctx` goes away
        // (the guard's lifetime is tied to the caller's frame, which also owns `ctx`).
        c.set((ctx as *const LoopContext<'_>).cast::<LoopContext<'static>>());
        Ok(ContextGuard {
            _not_send: std::marker::PhantomData,
        })
    })
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        CONTEXT.with(|c| c.set(ptr::null()));
    }
}

fn with<R>(f: impl FnOnce(Option<&LoopContext<'_>>) -> R) -> R {
    CONTEXT.with(|c| {
        let p = c.get();
        // SAFETY: a non-null pointer was set by `enter` from a context that outlives the
        // guard, and the guard nulls it before the context is dropped.
        f(unsafe { p.as_ref() })
    })
}

pub(crate) fn current_loop_id() -> Option<LoopId> {
    with(|c| c.map(|c| c.handle.id()))
}

pub(crate) fn current_handle() -> Option<Handle> {
    with(|c| c.map(|c| c.handle.clone()))
}

/// Pushes `task` onto this thread's worker queue if this thread is a worker of `shared`;
/// otherwise gives it back.
#[inline]
pub(crate) fn try_push_local(shared: &Shared, task: Notified) -> Result<(), Notified> {
    with(|c| match c {
        Some(LoopContext {
            handle,
            local: Some(local),
        }) if ptr::eq(handle.shared(), shared) => {
            local.push(task);
            Ok(())
        }
        _ => Err(task),
    })
}

/// `true` if this thread is one of `shared`'s workers.
pub(crate) fn is_worker_of(shared: &Shared) -> bool {
    with(|c| matches!(c, Some(c) if c.local.is_some() && ptr::eq(c.handle.shared(), shared)))
}
