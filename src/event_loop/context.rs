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

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::ptr;
use std::sync::Arc;

use super::callback::{Handle, Runnable};
use super::core::LoopCore;
use super::timers::TimerAction;
use crate::event_loop::exception::{ExceptionContext, HandlerSlot};
use crate::task::LoopId;

/// A loop of either kind (a runtime, a `LocalLoop`), as the loop layer and the features
/// above it see it. The loops implement it; nothing below the runtime names a runtime.
pub(crate) trait Loop: Send + Sync + 'static {
    fn id(&self) -> LoopId;
    /// asyncio's `call_soon_threadsafe` with a built callback: `false` if the loop is closed
    /// or shut down (the callback is then dropped, not run).
    fn call_soon_handle(&self, h: Handle) -> bool;
    /// The loop's exception-handler slot (and debug flag).
    fn exceptions(&self) -> &HandlerSlot;
    /// A timer from a thread that runs none of this loop's iterations (a `block_on`
    /// thread); the action comes back if the loop has no such threads.
    fn add_remote_timer(&self, when: i64, action: TimerAction) -> Result<(), TimerAction>;
    /// The reactor a source first waited on from a thread of this loop that runs none of
    /// its iterations (a `block_on` thread) registers on (reactor rule R7: worker `fd % n`).
    #[cfg_attr(loom, allow(dead_code))]
    fn io_driver(&self, fd: i32) -> Option<Arc<super::reactor::Driver>>;
    /// The loop's default executor (asyncio's `run_in_executor(None, …)`): its blocking
    /// pool, whose threads start on demand.
    fn blocking_pool(&self) -> &crate::blocking::Pool;
    /// For [`LoopRef::downcast`]: the kind check, without touching the count.
    fn as_any(&self) -> &dyn Any;
    /// For [`LoopRef::downcast`].
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// A counted reference to a loop: which loop a thread is running, where a `Future` or a
/// task group hands its callbacks. It carries the loop's concrete type, read once when it
/// is made, so that telling the kinds apart (spawning does it once per task) is a compare
/// with a constant rather than two calls through vtables (`as_any`, then `type_id`).
#[derive(Clone)]
pub(crate) struct LoopRef(Arc<dyn Loop>, TypeId);

impl LoopRef {
    pub(crate) fn new(l: Arc<dyn Loop>) -> LoopRef {
        let kind = l.as_any().type_id();
        LoopRef(l, kind)
    }

    /// Whether the loop is a `T`.
    #[inline]
    fn is_a<T: Loop>(&self) -> bool {
        self.1 == TypeId::of::<T>()
    }

    pub(crate) fn id(&self) -> LoopId {
        self.0.id()
    }

    /// asyncio's `loop.call_soon_threadsafe(f)` on whichever loop this is: `f` runs in a
    /// later iteration of that loop. `false` if the loop is closed or shut down (then `f`
    /// is dropped, not run).
    pub(crate) fn call_soon(&self, f: impl FnOnce() + Send + 'static) -> bool {
        // SAFETY: `f` is `Send`, so the callback may run on any thread of the loop.
        self.0.call_soon_handle(unsafe { Handle::new(f) })
    }

    /// asyncio's `loop.call_exception_handler(ctx)` (rules S8, S9): never panics.
    /// The loop's blocking pool (see [`Loop::blocking_pool`]).
    pub(crate) fn blocking_pool(&self) -> &crate::blocking::Pool {
        self.0.blocking_pool()
    }

    pub(crate) fn call_exception_handler(&self, ctx: ExceptionContext) {
        self.0.exceptions().call(ctx)
    }

    /// Whether this is the loop `target`.
    pub(crate) fn is<T: Loop>(&self, target: &T) -> bool {
        ptr::addr_eq(Arc::as_ptr(&self.0), target as *const T)
    }

    /// The loop as its concrete kind, if it is a `T` (the one place that tells the kinds
    /// apart: spawning, which is generic over the future).
    pub(crate) fn downcast<T: Loop>(&self) -> Option<Arc<T>> {
        // Check the kind first: a failed downcast then costs no reference-count traffic.
        if !self.is_a::<T>() {
            return None;
        }
        self.0.clone().into_any().downcast::<T>().ok()
    }

    /// [`downcast`](Self::downcast) without the reference-count traffic (spawning, once per
    /// task): the loop as a `W` that `wrap` builds around an `Arc<T>`, if it is a `T`. The
    /// `Arc` handed to `wrap` is an uncounted copy of this reference, so the `W` is lent
    /// for as long as `self` is borrowed and never dropped.
    ///
    /// # Safety
    /// `wrap` only moves the `Arc` into the `W` it returns (keeps no copy of it elsewhere,
    /// drops and forgets none), and `W` offers no way to move it out through a `&W` (cloning
    /// it is fine).
    #[inline]
    pub(crate) unsafe fn borrow_as<T: Loop, W>(
        &self,
        wrap: impl FnOnce(Arc<T>) -> W,
    ) -> Option<Lent<'_, W>> {
        if !self.is_a::<T>() {
            return None;
        }
        // SAFETY: the pointee is a `T` (checked above), and this `Arc<dyn Loop>` was made from
        // an `Arc<T>` by unsized coercion, so its data pointer is one `Arc::<T>::from_raw`
        // accepts. The `Arc` made here owns no count: it lives only inside the `W`, which
        // `Lent` never drops (and the caller's contract keeps it there), and it cannot
        // outlive the borrow of `self`, whose count keeps the loop alive.
        let arc = unsafe { Arc::from_raw(Arc::as_ptr(&self.0).cast::<T>()) };
        Some(Lent {
            value: std::mem::ManuallyDrop::new(wrap(arc)),
            _borrow: std::marker::PhantomData,
        })
    }
}

/// A value lent by [`LoopRef::borrow_as`] for the life of the borrow `'a`; never dropped
/// (it holds a reference it does not own).
pub(crate) struct Lent<'a, W> {
    value: std::mem::ManuallyDrop<W>,
    _borrow: std::marker::PhantomData<&'a LoopRef>,
}

impl<W> std::ops::Deref for Lent<'_, W> {
    type Target = W;
    fn deref(&self) -> &W {
        &self.value
    }
}

/// What a thread running a loop knows about it. Lives on the stack of the frame that runs
/// the loop.
pub(crate) struct LoopContext<'a> {
    pub(crate) owner: LoopRef,
    /// The loop's core when this thread runs its iterations; `None` on a `block_on` thread.
    pub(crate) core: Option<&'a LoopCore>,
}

crate::shim::thread_local! {
    static CONTEXT: Cell<*const LoopContext<'static>> = Cell::new(ptr::null());
}

/// This thread's running loop for as long as the guard lives: it owns the context (boxed,
/// so the address the thread-local holds stays put when the guard moves) and clears the
/// thread-local on drop, also on unwind. The pointer therefore never outlives what it
/// points to, and nothing borrowed by the context (`'a`) can end before the guard.
pub(crate) struct ContextGuard<'a> {
    ctx: Box<LoopContext<'a>>,
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Another loop already runs on this thread.
#[derive(Debug)]
pub(crate) struct AlreadyRunning;

/// Installs `ctx` as this thread's running loop until the guard drops.
pub(crate) fn enter(ctx: LoopContext<'_>) -> Result<ContextGuard<'_>, AlreadyRunning> {
    #[cfg(all(unix, not(loom)))]
    fork::forget_in_child_once();
    CONTEXT.with(|c| {
        if !c.get().is_null() {
            return Err(AlreadyRunning);
        }
        let guard = ContextGuard {
            ctx: Box::new(ctx),
            _not_send: std::marker::PhantomData,
        };
        // The lifetime is erased here; the guard, which owns the context, clears the pointer
        // before the context is dropped.
        c.set((&*guard.ctx as *const LoopContext<'_>).cast::<LoopContext<'static>>());
        crate::task::current::set_running_loop(Some(guard.ctx.owner.id()));
        Ok(guard)
    })
}

impl Drop for ContextGuard<'_> {
    fn drop(&mut self) {
        CONTEXT.with(|c| c.set(ptr::null()));
        crate::task::current::set_running_loop(None);
    }
}

/// A process forked while this thread ran a loop (a `ProcessPoolExecutor` worker forked by
/// a callback) goes on in the child inside that loop's frame, which never returns there: the
/// child's copy of this thread's state would claim the parent's loop for good, and no loop
/// could run on the child's only thread. asyncio resets its own running loop in a fork
/// hook; this is aioloop's (registered once, by the first loop entered).
#[cfg(all(unix, not(loom)))]
mod fork {
    use std::sync::Once;

    pub(super) fn forget_in_child_once() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            // SAFETY: registers a plain `extern "C"` function that lives for the whole
            // process; nothing is borrowed. A failure (ENOMEM) only leaves forks unhandled.
            unsafe { libc::pthread_atfork(None, None, Some(forget_in_child)) };
        });
    }

    /// In the child, on the forking thread: the parent's loop is not running here. Its
    /// context (a copy) is leaked, not dropped: it belongs to a frame that never resumes.
    extern "C" fn forget_in_child() {
        let _ = super::CONTEXT.try_with(|c| c.set(std::ptr::null()));
        crate::task::current::forget_running_loop();
    }
}

fn with<R>(f: impl FnOnce(Option<&LoopContext<'_>>) -> R) -> R {
    CONTEXT.with(|c| {
        let p = c.get();
        // SAFETY: a non-null pointer was set by `enter` to the context its guard owns, and
        // the guard nulls it before dropping that context.
        f(unsafe { p.as_ref() })
    })
}

pub(crate) fn current_loop_id() -> Option<LoopId> {
    crate::task::current::running_loop()
}

pub(crate) fn current_owner() -> Option<LoopRef> {
    with(|c| c.map(|c| c.owner.clone()))
}

/// Runs `f` with the loop running on this thread, borrowed (no reference-count traffic).
pub(crate) fn with_current_owner<R>(f: impl FnOnce(Option<&LoopRef>) -> R) -> R {
    with(|c| f(c.map(|c| &c.owner)))
}

/// Queues `item` on this thread's loop core if this thread runs an iteration of the loop
/// `target` (`LoopCore::push_local`: its ready queue or LIFO slot; `Ok(true)` when it
/// joined the stealable queue); otherwise gives it back.
#[inline]
pub(crate) fn try_push<T: Loop>(target: &T, item: Runnable) -> Result<bool, Runnable> {
    try_push_counted(target, item, false)
}

/// [`try_push`] of a task just spawned: pushed here, it is also counted in this loop's
/// counters (event_loop/stats.rs), in the same thread-local lookup.
#[inline]
pub(crate) fn try_push_spawned<T: Loop>(target: &T, item: Runnable) -> Result<bool, Runnable> {
    try_push_counted(target, item, true)
}

#[inline(always)]
fn try_push_counted<T: Loop>(target: &T, item: Runnable, spawned: bool) -> Result<bool, Runnable> {
    with(|c| match c {
        Some(LoopContext {
            owner,
            core: Some(core),
        }) if owner.is(target) => {
            if spawned {
                super::stats::LoopStats::bump(&core.stats.spawned, 1);
            }
            Ok(core.push_local(item))
        }
        _ => Err(item),
    })
}

/// Counts a task spawned on `target` in this thread's loop counters if this thread runs
/// iterations of `target` (an owner-only store, event_loop/stats.rs rule 1); `false`
/// elsewhere, where the caller counts it in its loop's shared counter.
#[inline]
pub(crate) fn count_spawn<T: Loop>(target: &T) -> bool {
    with(|c| match c {
        Some(LoopContext {
            owner,
            core: Some(core),
        }) if owner.is(target) => {
            super::stats::LoopStats::bump(&core.stats.spawned, 1);
            true
        }
        _ => false,
    })
}

/// `true` if this thread runs an iteration of the loop `target`.
pub(crate) fn is_thread_of<T: Loop>(target: &T) -> bool {
    with(|c| matches!(c, Some(LoopContext { owner, core: Some(_) }) if owner.is(target)))
}

/// A cheap lower bound of the clock on a thread that runs loop iterations: the reading its
/// loop last took to fire timers (`None` elsewhere).
pub(crate) fn timer_clock() -> Option<i64> {
    with(|c| c.and_then(|c| c.core).map(LoopCore::fired_at))
}

/// Registers a timer with this thread's loop: in its own heap if this thread runs its
/// iterations, else (a `block_on` thread) through the loop's remote-timer inbox. Gives
/// the action back when no loop runs here.
pub(crate) fn add_timer(when: i64, action: TimerAction) -> Result<(), TimerAction> {
    with(|c| match c {
        Some(LoopContext {
            core: Some(core), ..
        }) => {
            core.add_timer(when, action);
            Ok(())
        }
        Some(LoopContext { owner, core: None }) => owner.0.add_remote_timer(when, action),
        None => Err(action),
    })
}

/// The sleep wheel of the loop whose iterations this thread runs (`None` on a `block_on`
/// thread or with no loop: a `Sleep` then takes the timer-heap path of [`add_timer`]).
pub(crate) fn sleep_wheel() -> Option<crate::shim::Arc<super::wheel::SleepWheel>> {
    with(|c| c.and_then(|c| c.core).map(|core| core.sleeps().clone()))
}

/// [`add_timer`] restricted to a thread running iterations of `target` (a runtime's
/// `call_later`): gives the action back on any other thread.
pub(crate) fn add_timer_for<T: Loop>(
    target: &T,
    when: i64,
    action: TimerAction,
) -> Result<(), TimerAction> {
    with(|c| match c {
        Some(LoopContext {
            owner,
            core: Some(core),
        }) if owner.is(target) => {
            core.add_timer(when, action);
            Ok(())
        }
        _ => Err(action),
    })
}

// `aioloop::io` (not built under loom) is the only user; the models drive the driver directly.
#[cfg_attr(loom, allow(dead_code))]
/// The reactor a source waited on from this thread registers on (reactor rule R7): this
/// thread's loop's own driver if it runs iterations, else the owner's pick for `fd`; `None`
/// with no running loop here.
pub(crate) fn io_driver(fd: i32) -> Option<Arc<super::reactor::Driver>> {
    with(|c| match c {
        Some(LoopContext {
            core: Some(core), ..
        }) => Some(core.io().clone()),
        Some(LoopContext { owner, core: None }) => owner.0.io_driver(fd),
        None => None,
    })
}
