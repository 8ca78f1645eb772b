//! Scheduled callbacks: asyncio's `Handle` and `TimerHandle`, and `Runnable`, the item a
//! loop's ready queue holds (a task to poll or a callback to call).
//!
//! A callback is one allocation shared by the ready queue (or the timer queue) and the
//! handles the user holds. Its closure is taken out and run — or dropped, if the callback
//! was cancelled — by the loop that dequeues it, on that loop's thread; cancelling from
//! elsewhere only sets a flag. That is why a `LocalLoop` can hold `!Send` closures behind a
//! `Send` handle: the closure itself never leaves the loop's thread.

use std::any::type_name;
use std::fmt;
use std::sync::Arc;

use crate::event_loop::exception::ExceptionContext;
use crate::shim::atomic::{AtomicBool, Ordering};
use crate::shim::UnsafeCell;
use crate::task::raw::Notified;

/// The type-erased side of a callback.
pub(crate) trait Callback: Send + Sync + 'static {
    /// Takes the closure and calls it, unless cancelled. Loop thread only.
    fn run(&self);
    /// Takes the closure and drops it. Loop thread only.
    fn discard(&self);
    fn cancel(&self);
    fn is_cancelled(&self) -> bool;
    /// The closure's type name, for reports.
    fn describe(&self) -> &'static str;
}

struct Cell<F> {
    cancelled: AtomicBool,
    f: UnsafeCell<Option<F>>,
}

// SAFETY: `f` is only accessed by one thread at a time that is allowed to: the loop thread
// that dequeues the callback, or — for a callback posted to a closed loop — the poster
// (`Handle::discard`). A runtime requires `F: Send` at `call_soon`, and a `LocalLoop`'s own
// callbacks are dequeued only on its thread (invariant 8: another thread reclaims a closed
// loop's inbox only after `close()` drained the loop's own). Everything else is the atomic
// flag.
unsafe impl<F> Send for Cell<F> {}
// SAFETY: `f` is touched only by the one thread that took the callback (see `Send` above),
// so shared access from other threads reaches only `cancelled`, an atomic.
unsafe impl<F> Sync for Cell<F> {}

impl<F: FnOnce() + 'static> Callback for Cell<F> {
    fn run(&self) {
        // SAFETY: loop thread only (module docs): no other access to `f` is possible now.
        let f = self.f.with_mut(|p| unsafe { (*p).take() });
        if let Some(f) = f {
            if !self.is_cancelled() {
                f();
            }
        }
    }

    fn discard(&self) {
        // SAFETY: loop thread only (module docs).
        let f = self.f.with_mut(|p| unsafe { (*p).take() });
        drop(f);
    }

    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    fn describe(&self) -> &'static str {
        type_name::<F>()
    }
}

/// asyncio's `Handle`: a callback scheduled with `call_soon` (or the callback part of a
/// [`TimerHandle`]). Cloneable; cancel it from any thread.
///
/// ```
/// let lp = aioloop::LocalLoop::new().unwrap();
/// let h = lp.call_soon(|| unreachable!("cancelled callbacks never run")).unwrap();
/// h.cancel();
/// assert!(h.cancelled());
/// lp.run_once(Some(std::time::Duration::ZERO)).unwrap();
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) cb: Arc<dyn Callback>,
}

impl Handle {
    /// # Safety
    /// If `F` is not `Send`, the callback must only ever be dequeued by a loop running on
    /// the calling thread.
    pub(crate) unsafe fn new<F: FnOnce() + 'static>(f: F) -> Handle {
        Handle {
            cb: Arc::new(Cell {
                cancelled: AtomicBool::new(false),
                f: UnsafeCell::new(Some(f)),
            }),
        }
    }

    /// Drops the closure without running it, on the calling thread (the loop's, or — for a
    /// `Send` callback posted to a closed loop — the poster's); a panic in its destructor
    /// becomes a report for the loop's handler (invariant 7).
    pub(crate) fn discard(&self) -> Result<(), ExceptionContext> {
        crate::unwind::catch(|| self.cb.discard()).map_err(|p| {
            let mut ctx =
                ExceptionContext::panicked(format!("Exception dropping callback {self:?}"), p);
            ctx.handle = Some(self.clone());
            ctx
        })
    }

    /// Cancels the callback: it will not run. Idempotent (rule S4).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new().unwrap();
    /// let h = lp.call_soon(|| {}).unwrap();
    /// h.cancel();
    /// h.cancel();
    /// assert!(h.cancelled());
    /// ```
    pub fn cancel(&self) {
        self.cb.cancel()
    }

    /// Whether [`cancel`](Handle::cancel) was called.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new().unwrap();
    /// assert!(!lp.call_soon(|| {}).unwrap().cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.cb.is_cancelled()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.cancelled() { " cancelled" } else { "" };
        write!(f, "<Handle{state} {}>", self.cb.describe())
    }
}

/// asyncio's `TimerHandle`: a callback scheduled with `call_later` / `call_at`.
///
/// ```
/// let lp = aioloop::LocalLoop::new().unwrap();
/// let t = lp.call_later(10.0, || {}).unwrap();
/// assert!(t.when() >= lp.time() + 9.0);
/// t.cancel();
/// assert!(t.cancelled());
/// ```
#[derive(Clone)]
pub struct TimerHandle {
    pub(crate) handle: Handle,
    /// The caller's `when`, as given to `call_at` (or `time() + delay` for `call_later`):
    /// the loop schedules by integer nanoseconds, but `when()` must give back the float
    /// unrounded, as asyncio's does.
    pub(crate) when: f64,
}

impl TimerHandle {
    /// Cancels the callback; a cancelled timer never runs and is purged from its loop's
    /// timer queue (rule S4).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new().unwrap();
    /// lp.call_later(0.0, || unreachable!()).unwrap().cancel();
    /// lp.run_once(Some(std::time::Duration::ZERO)).unwrap();
    /// ```
    pub fn cancel(&self) {
        self.handle.cancel()
    }

    /// Whether it was cancelled.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new().unwrap();
    /// assert!(!lp.call_later(1.0, || {}).unwrap().cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.handle.cancelled()
    }

    /// The scheduled time, on the loop clock ([`LocalLoop::time`](crate::LocalLoop::time)):
    /// exactly the float given to `call_at` (`call_later(d)` gives `time() + d`).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new().unwrap();
    /// let when = lp.time() + 0.1; // not a whole number of nanoseconds
    /// let t = lp.call_at(when, || {}).unwrap();
    /// assert_eq!(t.when(), when);
    /// ```
    pub fn when(&self) -> f64 {
        self.when
    }

    /// The plain [`Handle`] of the callback.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new().unwrap();
    /// let t = lp.call_later(1.0, || {}).unwrap();
    /// t.handle().cancel();
    /// assert!(t.cancelled());
    /// ```
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.cancelled() { " cancelled" } else { "" };
        write!(
            f,
            "<TimerHandle{state} when={} {}>",
            self.when(),
            self.handle.cb.describe()
        )
    }
}

/// What a ready queue holds.
pub(crate) enum Runnable {
    Task(Notified),
    Callback(Handle),
}
