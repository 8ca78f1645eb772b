//! `Loop`: the Rust base class of `aioloop.EventLoop`, a `LocalLoop` plus the iteration
//! driver that waits for work with the GIL released.
//!
//! Driving: each iteration waits (GIL released) until the loop's fd is readable — work
//! from another thread — or its earliest timer is due, then runs one `LocalLoop` pass with
//! the GIL held, running everything that was ready when the pass began (asyncio's
//! `_run_once`). Between passes it checks Python's signal flags, so Ctrl-C interrupts a
//! waiting loop. A `KeyboardInterrupt`/`SystemExit` raised by a callback ends the pass's
//! run (the rest of the pass still runs) and propagates out of `run_forever`.
//!
//! Closing. `close()` releases at once everything queued, as asyncio's clears `_ready`
//! and `_scheduled`: the ready queue, other threads' posts and the handle pool are
//! emptied, the `LocalLoop`'s close drops the timers, and every handle they held has its
//! callback, arguments and context dropped (`Handle::discard`) even if the caller still
//! holds it — none can ever run, and a cycle through them then needs no collection. The
//! handles are not marked cancelled (asyncio's are not either).
//!
//! GC. The loop reports to the collector the handles it holds — queued, posted, pooled,
//! and pending timers' (timers.rs) —, the native Tasks whose steps it queues (with the
//! exception a step will throw in), and its task
//! factory, so a loop nobody closed whose callbacks or tasks reference it is collected
//! (its `__del__` closes it, `__clear__` releases its queues). What it cannot report keeps
//! objects alive: whatever the `LocalLoop` holds for the transports (their reader and
//! writer tasks).
//!
//! Protocol:
//! 1. The ready queue, the pool and the timer table are borrowed, and the loop's locks
//!    held, only between Python calls: an item is moved out before it runs or is dropped
//!    (a destructor may call back into the loop), so a borrow never meets a reentrant one
//!    and a lock is never waited for by the thread holding it.
//! 2. Another thread posts to `remote` under its lock only while its `closed` flag is
//!    clear; `close()` sets the flag under that lock and takes what was posted. So each
//!    `call_soon_threadsafe` either is refused ("Event loop is closed") or leaves a handle
//!    that a pass runs or `close()` releases: none is left behind.
//! 3. `__traverse__` visits only on the loop's thread and only what is not borrowed or
//!    locked at the time: an unvisited reference counts as one from outside, so a skipped
//!    visit only keeps more alive.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::BorrowedFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aioloop::{LocalLoop, LoopError, LoopHandle};
use pyo3::exceptions::{
    PyKeyboardInterrupt, PyRuntimeError, PySystemExit, PyTypeError, PyValueError,
};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use crate::asyncio::{copy_context, error_context};
use crate::handle::{Args, Handle, Payload, TimerHandle};
use crate::task::Task;
use crate::thread_bound::ThreadBound;
use crate::timers::Timers;

/// An entry of the loop's own ready queue: what `call_soon` and the native Task queue.
enum Ready {
    Handle(Py<Handle>),
    /// A native task's step, with the exception to throw in (no boxed closure per step).
    /// The queue owns the task, so the collector sees the reference (module docs: GC).
    Step(Py<Task>, Option<PyObject>),
}

struct Inner {
    lp: LocalLoop,
    /// asyncio's `_ready`: Python callbacks wait here rather than as closures on the
    /// `LocalLoop` (no boxed closure, no GIL re-entry per callback); each pass runs the ones
    /// queued when it began, then the `LocalLoop`'s own pass (`LocalLoop::run_host_passes`).
    ready: RefCell<VecDeque<Ready>>,
    stopping: Cell<bool>,
    /// Sources of the `LocalLoop`'s poller that only wake the loop (the signal self-pipe):
    /// passes while callbacks are queued do not harvest for them alone (run_host_passes).
    quiet_sources: Cell<usize>,
    /// A `KeyboardInterrupt`/`SystemExit` from a callback, raised after the pass.
    pending: RefCell<Option<PyErr>>,
    /// Handles the ready queue ran that nobody else held, emptied and kept for the next
    /// `call_soon`s (handle.rs: reuse, rule 4); at most `POOL_MAX`. They hold no
    /// reference to the loop, so the pool makes no cycle through it.
    pool: RefCell<Vec<Py<Handle>>>,
    /// The pending timers' handles (timers.rs), for the collector and `close()`.
    timers: Rc<Timers>,
}

/// `call_soon_threadsafe`'s handles from other threads, and whether `close()` has taken
/// them for good (rule 2).
#[derive(Default)]
struct Remote {
    handles: Vec<Py<Handle>>,
    closed: bool,
}

/// The most handles a loop keeps for reuse (a pass that runs more frees the rest).
const POOL_MAX: usize = 256;

/// The Rust core of `aioloop.EventLoop` (which subclasses it and `AbstractEventLoop`).
#[pyclass(subclass, frozen, module = "aioloop._aioloop")]
pub struct Loop {
    inner: ThreadBound<Inner>,
    handle: LoopHandle,
    /// `call_soon_threadsafe`'s handles from other threads (rule 2), in call order; the
    /// loop thread moves them to its ready queue before it queues anything itself and at
    /// the start of each pass, so a callback posted by a thread that then signalled the
    /// loop's thread runs before what that thread queues next (as asyncio's shared
    /// `_ready` does).
    remote: Mutex<Remote>,
    /// Whether `remote` may hold handles: set under its lock by a poster, cleared under it
    /// by the loop thread, read without it on every `call_soon`.
    has_remote: AtomicBool,
    /// asyncio's debug mode, mirrored here so that creating a handle need not ask Python.
    debug: AtomicBool,
    /// asyncio's `_task_factory` (read by `create_task` on every call: a field, not an
    /// instance-dictionary lookup).
    task_factory: Mutex<Option<PyObject>>,
    /// Whether `create_task` makes native tasks (the Python side's `_native_tasks`).
    native_tasks: AtomicBool,
    /// `loop.call_soon` as an attribute: one bound copy, made on first use (fastcall.rs).
    pub(crate) bound_call_soon: OnceLock<PyObject>,
}

pub(crate) fn loop_err(e: LoopError) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

impl Loop {
    /// The `LocalLoop` (its own thread only): the socket transports run their reader and
    /// writer tasks on it.
    pub(crate) fn local(&self) -> PyResult<&LocalLoop> {
        Ok(&self.inner.get()?.lp)
    }

    /// Whether the loop is closed (any thread).
    pub(crate) fn is_closed_now(&self) -> bool {
        self.handle.is_closed()
    }

    /// Queues a step of `task` (throwing `exc`) on this loop's ready queue (its own thread
    /// only); it runs with the GIL held, in order with `call_soon`'s callbacks.
    pub(crate) fn schedule_step(&self, task: Py<Task>, exc: Option<PyObject>) -> PyResult<()> {
        self.push_ready(Ready::Step(task, exc))
    }

    fn push_ready(&self, item: Ready) -> PyResult<()> {
        let inner = self.inner.get()?;
        if self.handle.is_closed() {
            return Err(loop_err(LoopError::Closed));
        }
        self.take_remote(inner);
        inner.ready.borrow_mut().push_back(item);
        Ok(())
    }

    /// Whether callbacks wait: queued, or posted by another thread (whose wake-up the
    /// `LocalLoop`'s pass may already have consumed before this loop took the handle).
    fn has_ready(&self, inner: &Inner) -> bool {
        !inner.ready.borrow().is_empty() || self.has_remote.load(Ordering::Acquire)
    }

    /// Moves other threads' `call_soon_threadsafe` handles to the ready queue (loop thread).
    #[inline]
    fn take_remote(&self, inner: &Inner) {
        if !self.has_remote.load(Ordering::Acquire) {
            return;
        }
        let posted = {
            let mut q = self.remote.lock().unwrap_or_else(|e| e.into_inner());
            self.has_remote.store(false, Ordering::Relaxed);
            std::mem::take(&mut q.handles)
        };
        inner
            .ready
            .borrow_mut()
            .extend(posted.into_iter().map(Ready::Handle));
    }

    /// Empties the ready queue, other threads' posts and the pool, and discards the
    /// payloads of the handles they held and of the pending timers' handles: none can run
    /// any more (module docs: closing). `close_remote`: refuse later posts for good.
    fn release_queued(&self, py: Python<'_>, inner: &Inner, close_remote: bool) {
        let remote = {
            let mut q = self.remote.lock().unwrap_or_else(|e| e.into_inner());
            q.closed |= close_remote;
            self.has_remote.store(false, Ordering::Relaxed);
            std::mem::take(&mut q.handles)
        };
        let ready = std::mem::take(&mut *inner.ready.borrow_mut());
        let pooled = std::mem::take(&mut *inner.pool.borrow_mut());
        // Released outside every lock and borrow (rule 1).
        for h in &remote {
            h.get().discard(py);
        }
        drop(remote);
        for item in ready {
            if let Ready::Handle(h) = &item {
                h.get().discard(py);
            }
            drop(item);
        }
        drop(pooled);
        for h in inner.timers.pending(py) {
            h.bind(py).as_super().get().discard(py);
        }
    }

    /// `call_soon(callback, *args, context=context)` from Rust.
    pub(crate) fn call_soon_impl(
        slf: &Bound<'_, Loop>,
        callback: PyObject,
        args: Args,
        context: Option<PyObject>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let lp = slf.get();
        let inner = lp.inner.get()?;
        if lp.handle.is_closed() {
            return Err(loop_err(LoopError::Closed));
        }
        let p = payload(py, callback, args, context)?;
        // Debug mode records each handle's creation traceback: a new object then.
        let reused = if lp.debug.load(Ordering::Relaxed) {
            None
        } else {
            inner.pool.borrow_mut().pop()
        };
        let h = match reused {
            Some(h) => {
                Handle::refill(h.bind(py), p, slf.clone().into_any().unbind());
                h
            }
            None => new_handle(slf, p)?,
        };
        lp.take_remote(inner);
        inner
            .ready
            .borrow_mut()
            .push_back(Ready::Handle(h.clone_ref(py)));
        Ok(h)
    }

    fn timer(
        slf: &Bound<'_, Loop>,
        when: f64,
        callback: PyObject,
        args: Py<PyTuple>,
        context: Option<PyObject>,
    ) -> PyResult<Py<TimerHandle>> {
        let py = slf.py();
        let inner = slf.get().inner.get()?;
        let base = Handle::new(
            payload(py, callback, Args::Tuple(args), context)?,
            slf.clone().into_any().unbind(),
            source_traceback(slf)?,
        );
        let h = Py::new(
            py,
            PyClassInitializer::from(base).add_subclass(TimerHandle::new(when)),
        )?;
        let slot = inner.timers.insert(h.clone_ref(py));
        let t = inner
            .lp
            .call_at(when, move || {
                if let Some(h) = slot.take() {
                    Python::with_gil(|py| Handle::run(h.bind(py).as_super()));
                }
            })
            .map_err(|e| match e {
                LoopError::InvalidDelay(d) => {
                    PyErr::new::<pyo3::exceptions::PyValueError, _>(d.to_string())
                }
                e => loop_err(e),
            })?;
        let _ = h.get().timer.set(t);
        Ok(h)
    }
}

/// The creating frames, in debug mode (asyncio's `format_helpers.extract_stack` of the
/// caller: this method has no Python frame of its own).
#[inline]
fn source_traceback(slf: &Bound<'_, Loop>) -> PyResult<Option<PyObject>> {
    if !slf.get().debug.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let py = slf.py();
    let frame = py.import("sys")?.getattr("_getframe")?.call1((0,))?;
    let tb = py
        .import("asyncio.format_helpers")?
        .getattr("extract_stack")?
        .call1((frame,))?;
    Ok(Some(tb.unbind()))
}

/// A `Handle` of this loop running `p`.
fn new_handle(slf: &Bound<'_, Loop>, p: Payload) -> PyResult<Py<Handle>> {
    let tb = source_traceback(slf)?;
    Py::new(
        slf.py(),
        Handle::new(p, slf.clone().into_any().unbind(), tb),
    )
}

fn payload(
    py: Python<'_>,
    callback: PyObject,
    args: Args,
    context: Option<PyObject>,
) -> PyResult<Payload> {
    let context = match context {
        Some(c) if !c.is_none(py) => c,
        _ => copy_context(py)?,
    };
    Ok(Payload {
        callback,
        args,
        context,
    })
}

/// Reports a callback's exception: `KeyboardInterrupt`/`SystemExit` are kept to be raised
/// out of `run_forever`; anything else goes to `loop.call_exception_handler`.
pub(crate) fn report_error(
    py: Python<'_>,
    lp: &Bound<'_, PyAny>,
    e: PyErr,
    message: String,
    key: &str,
    obj: &Bound<'_, PyAny>,
) {
    if e.is_instance_of::<PyKeyboardInterrupt>(py) || e.is_instance_of::<PySystemExit>(py) {
        if let Ok(l) = lp.downcast::<Loop>() {
            if let Ok(inner) = l.get().inner.get() {
                inner.pending.borrow_mut().get_or_insert(e);
                return;
            }
        }
        e.restore(py);
        return;
    }
    let exc = e.into_value(py);
    let r = error_context(py, message, exc.bind(py), key, obj)
        .and_then(|ctx| lp.call_method1("call_exception_handler", (ctx,)));
    if let Err(e) = r {
        // call_exception_handler guards itself; this is a broken override.
        e.print(py);
    }
}

/// `Task(coro, loop=lp, name=name, context=context)`: the common `create_task(coro)` as
/// `Task(coro, loop=lp)` through the reused keyword dictionary of future_new.rs; with a
/// name or a context, through vectorcall (CPython builds the dictionary).
fn new_asyncio_task(
    task_type: &Bound<'_, PyAny>,
    coro: &Bound<'_, PyAny>,
    lp: &Bound<'_, Loop>,
    name: Option<PyObject>,
    context: Option<PyObject>,
) -> PyResult<PyObject> {
    static ALL: GILOnceCell<Py<PyTuple>> = GILOnceCell::new();
    let py = lp.py();
    let none = py.None();
    let (name, context) = (name.unwrap_or_else(|| none.clone_ref(py)), context);
    if name.is_none(py) && context.as_ref().is_none_or(|c| c.is_none(py)) {
        if let Ok(ty) = task_type.downcast::<PyType>() {
            // The common case: through the reused keyword dictionary (future_new.rs).
            let args = PyTuple::new(py, [coro])?;
            return crate::future_new::new_with_loop(ty, &args, lp.as_any()).map(Bound::unbind);
        }
    }
    let kw = ALL.get_or_try_init(py, || {
        PyTuple::new(py, ["loop", "name", "context"]).map(Bound::unbind)
    })?;
    let context = context.unwrap_or(none);
    let args = [coro.as_ptr(), lp.as_ptr(), name.as_ptr(), context.as_ptr()];
    // SAFETY: GIL held (`py`); `args` holds one positional argument and one value per
    // name of `kw` (a live tuple of str the cell owns), all live borrowed references.
    let r = unsafe { ffi::PyObject_Vectorcall(task_type.as_ptr(), args.as_ptr(), 1, kw.as_ptr()) };
    // SAFETY: a new reference, or null with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, r) }.map(Bound::unbind)
}

/// Runs the callbacks that were queued when the pass began (asyncio's `ntodo`); returns
/// how many ran. The queue is borrowed only between callbacks, which may queue more.
fn run_ready(py: Python<'_>, lp: &Loop, inner: &Inner) -> usize {
    lp.take_remote(inner);
    let n = inner.ready.borrow().len();
    for ran in 0..n {
        let Some(item) = inner.ready.borrow_mut().pop_front() else {
            return ran;
        };
        match item {
            Ready::Handle(h) => {
                let h = h.into_bound(py);
                Handle::run(&h);
                let mut pool = inner.pool.borrow_mut();
                if pool.len() < POOL_MAX && Handle::recycle(&h) {
                    pool.push(h.unbind());
                }
            }
            Ready::Step(task, exc) => Task::run_step(&task.into_bound(py), exc),
        }
    }
    n
}

/// Waits until `fd` is readable or `timeout` passes (`None`: no limit); EINTR returns early
/// so that the caller checks Python's signals.
fn wait_readable(fd: i32, timeout: Option<Duration>) {
    let ms = match timeout {
        None => -1,
        Some(d) => i32::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
    };
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd on the stack for the duration of the call; `fd` is the
    // loop's poller, alive while the loop is (the caller holds it).
    unsafe { libc::poll(&mut p, 1, ms) };
}

#[pymethods]
impl Loop {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn py_new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let lp = LocalLoop::new().map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok(Loop {
            debug: AtomicBool::new(false),
            handle: lp.handle(),
            remote: Mutex::default(),
            has_remote: AtomicBool::new(false),
            task_factory: Mutex::new(None),
            native_tasks: AtomicBool::new(false),
            bound_call_soon: OnceLock::new(),
            inner: ThreadBound::new(Inner {
                lp,
                ready: RefCell::new(VecDeque::new()),
                stopping: Cell::new(false),
                quiet_sources: Cell::new(0),
                pending: RefCell::new(None),
                pool: RefCell::new(Vec::new()),
                timers: Rc::default(),
            }),
        })
    }

    /// asyncio's `loop.time()`: the loop clock, in seconds.
    fn time(&self) -> PyResult<f64> {
        Ok(self.inner.get()?.lp.time())
    }

    // `call_soon` is a raw fastcall method installed at import (fastcall.rs).

    #[pyo3(signature = (delay, callback, *args, context = None))]
    fn call_later(
        slf: &Bound<'_, Loop>,
        delay: Option<f64>,
        callback: PyObject,
        args: Py<PyTuple>,
        context: Option<PyObject>,
    ) -> PyResult<Py<TimerHandle>> {
        let delay = delay.ok_or_else(|| PyTypeError::new_err("delay must not be None"))?;
        let now = slf.get().inner.get()?.lp.time();
        Loop::timer(slf, now + delay, callback, args, context)
    }

    #[pyo3(signature = (when, callback, *args, context = None))]
    fn call_at(
        slf: &Bound<'_, Loop>,
        when: Option<f64>,
        callback: PyObject,
        args: Py<PyTuple>,
        context: Option<PyObject>,
    ) -> PyResult<Py<TimerHandle>> {
        let when = when.ok_or_else(|| PyTypeError::new_err("when cannot be None"))?;
        Loop::timer(slf, when, callback, args, context)
    }

    /// Any thread: queues the callback through the loop's `Send` handle and wakes it.
    #[pyo3(signature = (callback, *args, context = None))]
    fn call_soon_threadsafe(
        slf: &Bound<'_, Loop>,
        callback: PyObject,
        args: Py<PyTuple>,
        context: Option<PyObject>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let lp = slf.get();
        if lp.inner.get().is_ok() {
            // The loop's own thread: its ready queue, in order with call_soon.
            return Loop::call_soon_impl(slf, callback, Args::Tuple(args), context);
        }
        if lp.handle.is_closed() {
            return Err(loop_err(LoopError::Closed));
        }
        let h = new_handle(slf, payload(py, callback, Args::Tuple(args), context)?)?;
        let refused = {
            let mut q = lp.remote.lock().unwrap_or_else(|e| e.into_inner());
            if !q.closed {
                q.handles.push(h.clone_ref(py));
                lp.has_remote.store(true, Ordering::Release);
            }
            q.closed
        };
        if refused {
            // `close()` took the queue first: a handle posted now would never be released.
            return Err(loop_err(LoopError::Closed));
        }
        // Wakes a waiting loop: its next pass takes the handle (`take_remote`). Failing
        // here, the loop closed after the push, and its `close()` released the handle
        // (rule 2).
        lp.handle.call_soon_threadsafe(|| {}).map_err(loop_err)?;
        Ok(h)
    }

    /// asyncio's `stop()`: the running pass finishes, then `run_forever` returns.
    fn stop(&self) -> PyResult<()> {
        self.inner.get()?.stopping.set(true);
        Ok(())
    }

    /// The iterations of `run_forever` (the Python side sets the running loop and hooks).
    fn _run_forever_core(&self, py: Python<'_>) -> PyResult<()> {
        let inner = self.inner.get()?;
        let result = loop {
            let wait = if inner.stopping.get() || self.has_ready(inner) {
                Some(Duration::ZERO)
            } else {
                inner.lp.next_timeout()
            };
            // A busy connection never gets here between its messages: the passes go on
            // while each runs something (`run_host_passes`), the next one's zero-timeout
            // harvest finding the peer's answer.
            if wait != Some(Duration::ZERO) {
                let fd = inner.lp.as_raw_fd();
                py.allow_threads(move || wait_readable(fd, wait));
            }
            let mut signal_err = None;
            let ran = inner.lp.run_host_passes(
                || run_ready(py, self, inner),
                || self.has_ready(inner),
                || {
                    if inner.stopping.get() || inner.pending.borrow().is_some() {
                        return false;
                    }
                    match py.check_signals() {
                        Ok(()) => true,
                        Err(e) => {
                            signal_err = Some(e);
                            false
                        }
                    }
                },
                inner.quiet_sources.get(),
            );
            if let Err(e) = ran {
                break Err(loop_err(e));
            }
            if let Some(e) = inner.pending.borrow_mut().take() {
                break Err(e);
            }
            if let Some(e) = signal_err {
                break Err(e);
            }
            if let Err(e) = py.check_signals() {
                break Err(e);
            }
            if inner.stopping.get() {
                break Ok(());
            }
        };
        inner.stopping.set(false);
        result
    }

    /// Cancels what the Rust loop still holds, releases every queued callback and
    /// refuses new work (module docs: closing).
    fn _close_core(&self, py: Python<'_>) -> PyResult<()> {
        let inner = self.inner.get()?;
        // Drops the timers' closures: their slots discard the handles' payloads (timers.rs).
        inner.lp.close().map_err(loop_err)?;
        self.release_queued(py, inner, true);
        Ok(())
    }

    /// The collector's view of the loop: the handles it queues or keeps (module docs:
    /// GC; rule 3).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(f) = self.task_factory.try_lock() {
            if let Some(f) = f.as_ref() {
                visit.call(f)?;
            }
        }
        if let Ok(q) = self.remote.try_lock() {
            q.handles.iter().try_for_each(|h| visit.call(h))?;
        }
        let Ok(inner) = self.inner.get() else {
            return Ok(());
        };
        if let Ok(ready) = inner.ready.try_borrow() {
            for item in ready.iter() {
                match item {
                    Ready::Handle(h) => visit.call(h)?,
                    Ready::Step(task, exc) => {
                        visit.call(task)?;
                        if let Some(e) = exc {
                            visit.call(e)?;
                        }
                    }
                }
            }
        }
        if let Ok(pool) = inner.pool.try_borrow() {
            pool.iter().try_for_each(|h| visit.call(h))?;
        }
        inner.timers.visit(&visit)
    }

    /// Breaks cycles through an unreachable loop: drops its task factory and releases what
    /// its queues hold, as `close()` does (module docs: GC).
    fn __clear__(&self) {
        let factory = self
            .task_factory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        // Released after the lock (rule 1).
        drop(factory);
        if let Ok(inner) = self.inner.get() {
            Python::with_gil(|py| self.release_queued(py, inner, false));
        }
    }

    /// asyncio's `loop.create_task` (BaseEventLoop's, without a Python frame per task).
    #[pyo3(signature = (coro, *, name = None, context = None))]
    fn create_task(
        slf: &Bound<'_, Loop>,
        coro: &Bound<'_, PyAny>,
        name: Option<PyObject>,
        context: Option<PyObject>,
    ) -> PyResult<PyObject> {
        let py = slf.py();
        if slf.get().handle.is_closed() {
            return Err(PyRuntimeError::new_err("Event loop is closed"));
        }
        let has_factory = slf
            .get()
            .task_factory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if has_factory {
            return Ok(slf
                .call_method1(
                    pyo3::intern!(py, "_create_task_with_factory"),
                    (coro, name, context),
                )?
                .unbind());
        }
        if slf.get().native_tasks.load(Ordering::Relaxed) {
            let t = crate::task::Task::create(py, coro, slf, name, context)?;
            return Ok(t.into_any());
        }
        // Looked up on every call, as the Python version's `asyncio.Task` global was.
        let task_type = crate::asyncio::asyncio_module(py)?.getattr(pyo3::intern!(py, "Task"))?;
        new_asyncio_task(&task_type, coro, slf, name, context)
    }

    /// asyncio's `_task_factory`.
    #[getter(_task_factory)]
    fn task_factory_get(&self, py: Python<'_>) -> Option<PyObject> {
        let f = self.task_factory.lock().unwrap_or_else(|e| e.into_inner());
        f.as_ref().map(|f| f.clone_ref(py))
    }

    #[setter(_task_factory)]
    fn task_factory_set(&self, py: Python<'_>, factory: Option<PyObject>) {
        let factory = factory.filter(|f| !f.is_none(py));
        let old = std::mem::replace(
            &mut *self.task_factory.lock().unwrap_or_else(|e| e.into_inner()),
            factory,
        );
        // Released outside the lock: its destructor may run Python code.
        drop(old);
    }

    /// Whether `create_task` makes native `aioloop.Task`s.
    #[getter(_native_tasks)]
    fn native_tasks_get(&self) -> bool {
        self.native_tasks.load(Ordering::Relaxed)
    }

    #[setter(_native_tasks)]
    fn native_tasks_set(&self, on: bool) {
        self.native_tasks.store(on, Ordering::Relaxed);
    }

    /// `create_task`'s native `Task(coro, loop=self, name=name, context=context)` without
    /// the keyword dictionary a class call builds.
    #[pyo3(signature = (coro, name = None, context = None))]
    fn _new_native_task(
        slf: &Bound<'_, Loop>,
        coro: &Bound<'_, PyAny>,
        name: Option<PyObject>,
        context: Option<PyObject>,
    ) -> PyResult<Py<crate::task::Task>> {
        crate::task::Task::create(slf.py(), coro, slf, name, context)
    }

    /// How many of the poller's sources are the loop's own wake-up (the self-pipe's
    /// watcher): the Python side's `_internal_fds`.
    fn _set_quiet_sources(&self, n: usize) -> PyResult<()> {
        self.inner.get()?.quiet_sources.set(n);
        Ok(())
    }

    /// Mirrors `set_debug` (any thread).
    fn _set_debug_core(&self, on: bool) {
        self.debug.store(on, Ordering::Relaxed);
    }

    /// asyncio's `_add_reader`/`_add_writer` core: watches `fd` on the `LocalLoop`'s reactor
    /// and runs the returned handle once per iteration while `fd` is ready (level-triggered,
    /// rule N8), replacing an earlier watcher of the same direction. The Python side keeps
    /// the handle (to cancel it on removal) and checks `fd` against transports.
    #[pyo3(signature = (fd, write, callback, *args))]
    fn _add_watcher(
        slf: &Bound<'_, Loop>,
        fd: i32,
        write: bool,
        callback: PyObject,
        args: Py<PyTuple>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let inner = slf.get().inner.get()?;
        if fd < 0 {
            return Err(PyValueError::new_err(format!(
                "Invalid file descriptor: {fd}"
            )));
        }
        let h = new_handle(slf, payload(py, callback, Args::Tuple(args), None)?)?;
        let run = h.clone_ref(py);
        let cb = move || Python::with_gil(|py| Handle::run_repeating(run.bind(py)));
        // SAFETY: the borrow lasts only for this call, in which the watcher takes its own
        // duplicate of the descriptor (io::watch), so the registration never outlives the
        // open file it waits on (reactor rule R9). A number that is not open makes the
        // duplication fail with EBADF, which is returned as OSError.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let added = if write {
            inner.lp.add_writer(borrowed, cb)
        } else {
            inner.lp.add_reader(borrowed, cb)
        };
        added?;
        Ok(h)
    }

    /// asyncio's `_remove_reader`/`_remove_writer` core: whether a watcher was removed.
    fn _remove_watcher(&self, fd: i32, write: bool) -> PyResult<bool> {
        let inner = self.inner.get()?;
        if fd < 0 {
            return Ok(false);
        }
        // SAFETY: only the number is read (the watcher table is keyed by it); nothing is
        // done to the descriptor itself, so it need not be open (reactor rule R9 concerns
        // the watcher's own duplicate, which removal drops).
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        Ok(if write {
            inner.lp.remove_writer(borrowed)
        } else {
            inner.lp.remove_reader(borrowed)
        })
    }

    /// Any thread.
    fn _is_closed_core(&self) -> bool {
        self.handle.is_closed()
    }
}

// `get_debug()` (asyncio's `Future` and `Task` constructors ask it on every creation; any
// thread) and `create_future()` (future_new.rs; every stream read that waits), without a
// Python frame, as C methods of the class (rawmeth.rs), installed at module initialisation.
crate::rawmeth::raw_methods!(pub(crate) static RAW_METHODS on Loop = [
    noargs c"get_debug" (c"get_debug(): whether the loop is in asyncio's debug mode")
        |lp, _| {
            let on = lp.get().debug.load(Ordering::Relaxed);
            Ok(pyo3::types::PyBool::new(lp.py(), on).to_owned().into_any().unbind())
        };
    noargs c"create_future" (c"create_future(): a new asyncio Future attached to the loop")
        |lp, _| crate::future_new::create_future(lp.as_any()).map(Bound::unbind);
]);
