//! The thread-local "running loop" of this thread: which loop it belongs to and, on a
//! thread that runs a loop iteration (a runtime worker, a `LocalLoop`), that loop's core.
//!
//! Set for the whole life of a worker thread, for the duration of `block_on` on the calling
//! thread (no core: that thread runs no iteration), and while a `LocalLoop` runs. It answers
//! asyncio's "is there a running loop here?" (rules L6, L7, S6), lets a wake-up on a loop's
//! own thread push to that loop's ready queue without touching shared state, and tells
//! `sleep` whose timer heap to use.
//!
//! Must not: hold anything that outlives the frame that set it. The pointer it stores is
//! cleared by [`ContextGuard`] before that frame returns or unwinds.

use std::cell::Cell;
use std::ptr;
use std::sync::Arc;

use super::shared::Shared;
use super::Handle;
use crate::event_loop::callback::Runnable;
use crate::event_loop::core::LoopCore;
use crate::event_loop::local::LocalShared;
use crate::event_loop::timers::TimerAction;
use crate::exception::ExceptionContext;
use crate::task::LoopId;

/// Which loop a thread is running.
#[derive(Clone)]
pub(crate) enum Owner {
    Runtime(Handle),
    Local(Arc<LocalShared>),
}

impl Owner {
    pub(crate) fn id(&self) -> LoopId {
        match self {
            Owner::Runtime(h) => h.id(),
            Owner::Local(l) => l.id,
        }
    }

    /// asyncio's `loop.call_soon_threadsafe(f)` on whichever loop this is: `f` runs in a
    /// later iteration of that loop. `false` if the loop is closed or shut down (then `f`
    /// is dropped, not run).
    pub(crate) fn call_soon(&self, f: impl FnOnce() + Send + 'static) -> bool {
        match self {
            Owner::Runtime(h) => {
                let open = !h.shared().is_shutdown();
                h.call_soon(f);
                open
            }
            Owner::Local(l) => l.call_soon_send(f).is_some(),
        }
    }

    /// asyncio's `loop.get_debug()`.
    pub(crate) fn debug(&self) -> bool {
        match self {
            Owner::Runtime(h) => h.shared().exceptions.debug(),
            Owner::Local(l) => l.exceptions().debug(),
        }
    }

    /// asyncio's `loop.call_exception_handler(ctx)` (rules S8, S9): never panics.
    pub(crate) fn call_exception_handler(&self, ctx: ExceptionContext) {
        match self {
            Owner::Runtime(h) => h.shared().exceptions.call(ctx),
            Owner::Local(l) => l.exceptions().call(ctx),
        }
    }
}

/// What a thread running a loop knows about it. Lives on the stack of the frame that runs
/// the loop.
pub(crate) struct LoopContext<'a> {
    pub(crate) owner: Owner,
    /// The loop's core when this thread runs its iterations; `None` on a `block_on` thread.
    pub(crate) core: Option<&'a LoopCore>,
}

crate::sync::thread_local! {
    static CONTEXT: Cell<*const LoopContext<'static>> = Cell::new(ptr::null());
}

/// Clears the thread's context on drop (also on unwind).
pub(crate) struct ContextGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Another loop already runs on this thread.
#[derive(Debug)]
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
    with(|c| c.map(|c| c.owner.id()))
}

pub(crate) fn current_owner() -> Option<Owner> {
    with(|c| c.map(|c| c.owner.clone()))
}

pub(crate) fn current_handle() -> Option<Handle> {
    with(|c| match c {
        Some(LoopContext {
            owner: Owner::Runtime(h),
            ..
        }) => Some(h.clone()),
        _ => None,
    })
}

/// Pushes `item` onto this thread's ready queue if this thread runs an iteration of the
/// runtime `shared`; otherwise gives it back.
#[inline]
pub(crate) fn try_push_runtime(shared: &Shared, item: Runnable) -> Result<(), Runnable> {
    with(|c| match c {
        Some(LoopContext {
            owner: Owner::Runtime(h),
            core: Some(core),
        }) if ptr::eq(h.shared(), shared) => {
            core.ready.push(item);
            Ok(())
        }
        _ => Err(item),
    })
}

/// Pushes `item` onto this thread's ready queue if this thread runs the `LocalLoop`
/// `local`; otherwise gives it back.
#[inline]
pub(crate) fn try_push_local(local: &LocalShared, item: Runnable) -> Result<(), Runnable> {
    with(|c| match c {
        Some(LoopContext {
            owner: Owner::Local(l),
            core: Some(core),
        }) if ptr::eq(&**l, local) => {
            core.ready.push(item);
            Ok(())
        }
        _ => Err(item),
    })
}

/// `true` if this thread runs an iteration of the `LocalLoop` `local`.
pub(crate) fn is_thread_of(local: &LocalShared) -> bool {
    with(
        |c| matches!(c, Some(LoopContext { owner: Owner::Local(l), core: Some(_) }) if ptr::eq(&**l, local)),
    )
}

/// A cheap lower bound of the clock on a thread that runs loop iterations: the reading its
/// loop last took to fire timers (`None` elsewhere).
pub(crate) fn timer_clock() -> Option<i64> {
    with(|c| c.and_then(|c| c.core).map(LoopCore::fired_at))
}

/// Registers a timer with this thread's loop: in its own heap if this thread runs its
/// iterations, else (a `block_on` thread) through the runtime's remote-timer inbox. Gives
/// the action back when no loop runs here.
pub(crate) fn add_timer(when: i64, action: TimerAction) -> Result<(), TimerAction> {
    with(|c| match c {
        Some(LoopContext {
            core: Some(core), ..
        }) => {
            core.add_timer(when, action);
            Ok(())
        }
        Some(LoopContext {
            owner: Owner::Runtime(h),
            core: None,
        }) => {
            h.shared().add_remote_timer(when, action);
            Ok(())
        }
        _ => Err(action),
    })
}

/// [`add_timer`] restricted to a worker of `shared` (a runtime's `call_later`): gives the
/// action back on any other thread, which then uses the runtime's remote-timer inbox.
pub(crate) fn add_timer_for(
    shared: &Shared,
    when: i64,
    action: TimerAction,
) -> Result<(), TimerAction> {
    with(|c| match c {
        Some(LoopContext {
            owner: Owner::Runtime(h),
            core: Some(core),
        }) if ptr::eq(h.shared(), shared) => {
            core.add_timer(when, action);
            Ok(())
        }
        _ => Err(action),
    })
}
