//! The loop's exception handler (rules S8, S9): where a panic or error that nobody can
//! receive goes — a panicking callback, an error stored in a `Future` that nobody retrieved
//! (rule F6), a task's panic that nobody retrieved (T8), and, in debug mode, a task
//! destroyed while pending (T11).
//!
//! A loop (a runtime, shared by its workers, or a `LocalLoop`) has one handler slot. The
//! default handler writes the report to stderr. A custom handler that panics itself does not
//! take the loop down: the default handler reports both panics.

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use crate::error::PanicError;
use crate::events;
use crate::shim::atomic::{AtomicBool, AtomicU64, Ordering};
use crate::shim::Mutex;
use crate::task::raw::TaskReport;
use crate::task::TaskRef;
use crate::unwind::{catch, Payload};

/// What the exception handler is told: asyncio's context dict, with the keys that apply
/// (rule S9).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let lp = aioloop::LocalLoop::new().unwrap();
/// let s = seen.clone();
/// lp.set_exception_handler(Some(Arc::new(move |ctx: &aioloop::ExceptionContext| {
///     s.lock().unwrap().push(ctx.message.clone());
/// })));
/// lp.call_soon(|| panic!("boom")).unwrap();
/// lp.run_once(Some(std::time::Duration::ZERO)).unwrap();
/// assert!(seen.lock().unwrap()[0].starts_with("Exception in callback"));
/// ```
#[non_exhaustive]
pub struct ExceptionContext {
    /// asyncio's `message`: what happened.
    pub message: String,
    /// asyncio's `exception`: the panic, if the report is about one.
    pub exception: Option<PanicError>,
    /// asyncio's `task`: the task concerned, if any.
    pub task: Option<TaskRef>,
    /// asyncio's `handle`: the callback concerned, if any.
    pub handle: Option<events::Handle>,
    /// asyncio's `future`: a description of the future concerned, if any (its repr, e.g.
    /// `<Future finished exception=..>`, rule F6).
    pub future: Option<String>,
    /// An error that is not a panic, if the report is about one: the error stored in a
    /// [`Future`](crate::Future) that nobody retrieved (rule F6).
    pub error: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ExceptionContext {
    /// A context with just a message.
    ///
    /// ```
    /// let ctx = aioloop::ExceptionContext::new("something odd");
    /// assert_eq!(ctx.message, "something odd");
    /// ```
    pub fn new(message: impl Into<String>) -> ExceptionContext {
        ExceptionContext {
            message: message.into(),
            exception: None,
            task: None,
            handle: None,
            future: None,
            error: None,
        }
    }

    /// A report about a panic caught outside any task's own poll (invariant 7: a waker, a
    /// completion hook, a destructor run by the loop).
    pub(crate) fn panicked(message: impl Into<String>, payload: Payload) -> ExceptionContext {
        let mut ctx = ExceptionContext::new(message);
        ctx.exception = Some(PanicError::new(payload));
        ctx
    }
}

impl fmt::Debug for ExceptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExceptionContext")
            .field("message", &self.message)
            .field("exception", &self.exception)
            .field("task", &self.task)
            .field("handle", &self.handle)
            .field("future", &self.future)
            .field("error", &self.error)
            .finish()
    }
}

impl ExceptionContext {
    /// asyncio's wording of what a task reports (task/raw.rs, `TaskReport`).
    pub(crate) fn about_task(task: TaskRef, report: TaskReport) -> ExceptionContext {
        let mut ctx = match report {
            TaskReport::Unretrieved(p) => {
                let mut ctx = ExceptionContext::new("Task exception was never retrieved");
                ctx.exception = Some(p);
                ctx
            }
            TaskReport::DestroyedPending => {
                ExceptionContext::new("Task was destroyed but it is pending!")
            }
            TaskReport::AwaiterWaker(p) => {
                ExceptionContext::panicked("Exception in the waker of a task's awaiter", p)
            }
            TaskReport::Hook(p) => {
                ExceptionContext::panicked("Exception in a completion hook (a waiter's waker)", p)
            }
        };
        ctx.task = Some(task);
        ctx
    }
}

/// A custom exception handler (asyncio's `loop.set_exception_handler(fn)`).
///
/// A report about a task (its `task` field is set) is handled in that task's context
/// (rule T12, as asyncio does since 3.12): the handler reads the context variables the
/// task had set.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use aioloop::contextvars::ContextVar;
///
/// static REQUEST: ContextVar<u32> = ContextVar::new("request");
/// let seen = Arc::new(Mutex::new(None));
/// let s = seen.clone();
/// let lp = aioloop::LocalLoop::new()?;
/// lp.set_exception_handler(Some(Arc::new(move |ctx: &aioloop::ExceptionContext| {
///     *s.lock().unwrap() = Some((ctx.message.clone(), REQUEST.get()));
/// })));
/// let t = lp.create_task(async {
///     REQUEST.set(7);
///     panic!("failed while serving request 7");
/// })?;
/// t.detach(); // nobody will read the panic: it is reported when the task ends
/// lp.run_once(Some(std::time::Duration::ZERO))?;
/// let seen = seen.lock().unwrap().clone();
/// assert_eq!(seen, Some(("Task exception was never retrieved".to_owned(), Some(7))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type ExceptionHandler = Arc<dyn Fn(&ExceptionContext) + Send + Sync + 'static>;

/// The default handler: writes the report to stderr (asyncio logs it at error level).
///
/// ```
/// aioloop::default_exception_handler(&aioloop::ExceptionContext::new("just a test"));
/// ```
pub fn default_exception_handler(ctx: &ExceptionContext) {
    let mut line = ctx.message.clone();
    if let Some(h) = &ctx.handle {
        line.push_str(&format!("\nhandle: {h:?}"));
    }
    if let Some(t) = &ctx.task {
        line.push_str(&format!("\ntask: {t}"));
    }
    if let Some(fut) = &ctx.future {
        line.push_str(&format!("\nfuture: {fut}"));
    }
    if let Some(e) = &ctx.exception {
        line.push_str(&format!("\n{e}"));
    }
    if let Some(e) = &ctx.error {
        line.push_str(&format!("\n{e}"));
    }
    // Not `eprintln!`, which panics when stderr is gone (a daemon whose reader died): a
    // report that cannot be written is lost, not a reason to unwind a loop thread.
    let _ = writeln!(std::io::stderr(), "aioloop: {line}");
}

/// One loop's handler slot, and its debug flag (asyncio's `loop.set_debug`).
pub(crate) struct HandlerSlot {
    handler: Mutex<Option<ExceptionHandler>>,
    debug: AtomicBool,
    /// Task tracking without debug mode (`Builder::track_tasks`, task/observe.rs).
    track_tasks: AtomicBool,
    /// `debug || track_tasks`, kept by their setters: the spawn path reads one flag.
    tracking: AtomicBool,
    /// asyncio's `slow_callback_duration`, in nanoseconds (debug mode only, O6).
    slow_callback_nanos: AtomicU64,
}

impl Default for HandlerSlot {
    fn default() -> Self {
        HandlerSlot {
            handler: Mutex::new(None),
            debug: AtomicBool::new(false),
            track_tasks: AtomicBool::new(false),
            tracking: AtomicBool::new(false),
            slow_callback_nanos: AtomicU64::new(100_000_000),
        }
    }
}

impl HandlerSlot {
    pub(crate) fn set_debug(&self, on: bool) {
        // Relaxed: a report switch, not a synchronisation point.
        self.update_tracking(|| self.debug.store(on, Ordering::Relaxed));
    }

    /// Changes `debug` or `track_tasks` (`set`) and recomputes `tracking` from both. The
    /// handler's lock serialises the setters, so concurrent ones cannot leave a stale
    /// `tracking` behind (the lock is held for two loads and three stores, no user code).
    fn update_tracking(&self, set: impl FnOnce()) {
        let _serialised = self.handler.lock();
        set();
        let on = self.debug.load(Ordering::Relaxed) || self.track_tasks.load(Ordering::Relaxed);
        self.tracking.store(on, Ordering::Relaxed);
    }

    pub(crate) fn debug(&self) -> bool {
        self.debug.load(Ordering::Relaxed)
    }

    pub(crate) fn set_track_tasks(&self, on: bool) {
        self.update_tracking(|| self.track_tasks.store(on, Ordering::Relaxed));
    }

    /// New tasks record their creation site and poll statistics (task/observe.rs): in
    /// debug mode, with task tracking on, or with the `tracing` feature (for the spans).
    #[inline]
    pub(crate) fn tracks_tasks(&self) -> bool {
        // `--cfg aioloop_unobserved` (measurement only, benches/observe_cost.sh) compiles
        // observation out, for the A/B of what it costs when nobody looks.
        !cfg!(aioloop_unobserved)
            && (cfg!(feature = "tracing") || self.tracking.load(Ordering::Relaxed))
    }

    pub(crate) fn set_slow_callback_duration(&self, d: std::time::Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.slow_callback_nanos.store(nanos, Ordering::Relaxed);
    }

    pub(crate) fn slow_callback_duration(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.slow_callback_nanos.load(Ordering::Relaxed))
    }

    pub(crate) fn set(&self, handler: Option<ExceptionHandler>) {
        *self.handler.lock() = handler;
    }

    pub(crate) fn get(&self) -> Option<ExceptionHandler> {
        self.handler.lock().clone()
    }

    /// asyncio's `call_exception_handler`: never panics.
    ///
    /// Everything that runs code the loop does not own happens inside `catch`: the handler,
    /// the default handler (user `Display` and `TaskLike::name` impls), and the drop of the
    /// context, whose panic payload may itself panic when dropped (invariant 7).
    pub(crate) fn call(&self, ctx: ExceptionContext) {
        let handler = self.get();
        let failed = catch(move || {
            let Some(handler) = handler else {
                default_exception_handler(&ctx);
                return;
            };
            // Rule T12 (asyncio 3.12+, gh-96704): a custom handler hearing about a task runs
            // in that task's context; the default handler, like asyncio's, in the current one.
            let called = match &ctx.task {
                Some(task) => task.run_in_context(|| catch(|| handler(&ctx))),
                None => catch(|| handler(&ctx)),
            };
            if let Err(p) = called {
                // Rule S8: the handler itself failed; report both with the default one.
                let mut both = ExceptionContext::new("Unhandled error in exception handler");
                both.exception = Some(PanicError::new(p));
                default_exception_handler(&both);
                default_exception_handler(&ctx);
            }
        });
        // A panic out of the above (the default handler's formatting, a payload's drop) is
        // dropped here in turn, caught: its own payload may be just as hostile.
        if let Err(p) = failed {
            let _ = crate::unwind::drop_caught(p);
        }
    }
}
