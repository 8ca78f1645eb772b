//! A native task: drives a coroutine with `send`/`throw` from Rust and keeps itself visible
//! to asyncio through its task-lifetime functions, as the "Extending" page prescribes:
//! `_register_task` from the constructor, `_enter_task`/`_leave_task` around every
//! `send`/`throw`, `_unregister_task` when it finishes. It is a future to asyncio
//! (`_asyncio_future_blocking`, `add_done_callback`, `result`, `cancel`, ...), so
//! `gather`, `wait_for`, `TaskGroup` and `asyncio.timeout` work on it.
//!
//! The step follows `asyncio.Task.__step` (3.11) line by line; the state is behind a mutex
//! held only between Python calls (callbacks may re-enter the task), not the GIL.
//!
//! The type takes part in Python's cycle collector, and reports itself when destroyed
//! pending or with an exception nobody retrieved, as asyncio's C Task does: module
//! `task_gc`.

use std::sync::Mutex;

use pyo3::exceptions::{
    PyKeyboardInterrupt, PyRuntimeError, PyStopIteration, PySystemExit, PyTypeError,
};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::pyclass::{PyTraverseError, PyVisit};
use pyo3::sync::GILOnceCell;
use pyo3::types::PyDict;

use crate::asyncio;
use crate::cfunc::FastFunction;
use crate::cfuture::CFuture;
use crate::handle::{run_in_context, Args};
use crate::loop_core::{report_error, Loop};
use crate::task_await::Awaited;

#[derive(Clone, Copy, PartialEq)]
enum St {
    Pending,
    Cancelled,
    Finished,
}

struct State {
    st: St,
    result: Option<PyObject>,
    exception: Option<PyObject>,
    cancelled_exc: Option<PyObject>,
    cancel_message: Option<PyObject>,
    must_cancel: bool,
    num_cancels: u64,
    callbacks: Vec<(PyObject, PyObject)>,
    fut_waiter: Option<PyObject>,
    blocking: bool,
    name: Name,
    log_traceback: bool,
    /// The task's wakeup callable, made on its first await of a future and reused for the
    /// next ones (asyncio's C Task makes one per await). It refers back to the task: the
    /// reference is dropped when the task finishes or makes a bare `yield`, so the cycle
    /// lasts only while the task waits on futures (when the awaited future's callback
    /// already makes one).
    wakeup: Option<PyObject>,
    /// asyncio's `_log_destroy_pending`: whether destroying the task pending is reported
    /// (`run_until_complete` turns it off for the task it makes, whose abandonment the
    /// caller sees as an exception).
    log_destroy_pending: bool,
}

/// A task's name: given, or asyncio's default `Task-<n>` made into a string only when
/// asked for (most tasks never are; 3.12's tasks name themselves lazily the same way).
enum Name {
    Given(PyObject),
    Counter(u64),
}

/// What `__clear__` takes out of a task's state: released after the lock.
type Cleared = ([Option<PyObject>; 6], Vec<(PyObject, PyObject)>);

impl State {
    /// `__traverse__` over the state: every Python object it holds.
    fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        for o in [
            &self.result,
            &self.exception,
            &self.cancelled_exc,
            &self.cancel_message,
            &self.fut_waiter,
            &self.wakeup,
        ]
        .into_iter()
        .flatten()
        {
            visit.call(o)?;
        }
        for (cb, ctx) in &self.callbacks {
            visit.call(cb)?;
            visit.call(ctx)?;
        }
        if let Name::Given(n) = &self.name {
            visit.call(n)?;
        }
        Ok(())
    }

    /// Takes out the references that can close a cycle; the task stays a valid, inert
    /// object (its result and callbacks gone, as asyncio's C Task's `tp_clear` leaves it).
    /// The name, a `str`, is visited but kept: a string closes no cycle.
    fn cleared(&mut self) -> Cleared {
        (
            [
                self.result.take(),
                self.exception.take(),
                self.cancelled_exc.take(),
                self.cancel_message.take(),
                self.fut_waiter.take(),
                self.wakeup.take(),
            ],
            std::mem::take(&mut self.callbacks),
        )
    }

    fn name(&mut self, py: Python<'_>) -> PyObject {
        if let Name::Counter(n) = self.name {
            let s = pyo3::types::PyString::new(py, &format!("Task-{n}"));
            self.name = Name::Given(s.into_any().unbind());
        }
        match &self.name {
            Name::Given(s) => s.clone_ref(py),
            Name::Counter(_) => unreachable!("materialised above"),
        }
    }
}

/// A task implemented in Rust (`aioloop.Task`), created by `EventLoop(native_tasks=True)`
/// or `aioloop.task_factory`.
#[pyclass(frozen, weakref, dict, module = "aioloop._aioloop")]
pub struct Task {
    coro: PyObject,
    loop_: Py<Loop>,
    context: PyObject,
    state: Mutex<State>,
}

/// What `await task` iterates: yields the task while it is pending, then returns its result.
#[pyclass(module = "aioloop._aioloop")]
pub struct TaskIter {
    task: Option<Py<Task>>,
}

extern "C" {
    // pyo3-ffi 0.23 declares it without its `PySendResult` return value.
    fn PyIter_Send(
        iter: *mut ffi::PyObject,
        arg: *mut ffi::PyObject,
        presult: *mut *mut ffi::PyObject,
    ) -> std::os::raw::c_int;
}

enum Sent {
    Yielded(PyObject),
    Returned(PyObject),
}

fn send_none(py: Python<'_>, coro: &Bound<'_, PyAny>) -> PyResult<Sent> {
    let mut out: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: GIL held; `coro` is alive; PyIter_Send returns a new reference in `out`
    // on PYGEN_RETURN (0) and PYGEN_NEXT (1), and sets an exception on -1.
    let r = unsafe { PyIter_Send(coro.as_ptr(), ffi::Py_None(), &mut out) };
    if r < 0 {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `out` is a new, non-null reference (see above).
    let obj = unsafe { PyObject::from_owned_ptr(py, out) };
    Ok(if r == 0 {
        Sent::Returned(obj)
    } else {
        Sent::Yielded(obj)
    })
}

fn throw(py: Python<'_>, coro: &Bound<'_, PyAny>, exc: PyObject) -> PyResult<Sent> {
    match coro.call_method1("throw", (exc,)) {
        Ok(y) => Ok(Sent::Yielded(y.unbind())),
        Err(e) if e.is_instance_of::<PyStopIteration>(py) => {
            let v = e.value(py).getattr("value")?.unbind();
            Ok(Sent::Returned(v))
        }
        Err(e) => Err(e),
    }
}

/// A cached lookup of one of asyncio's functions (asyncio.rs).
type Lookup = for<'py> fn(Python<'py>) -> PyResult<&'py Bound<'py, PyAny>>;

#[derive(Clone, Copy)]
enum Lifetime {
    Enter,
    Leave,
}

/// `asyncio._enter_task(loop, task)` / `_leave_task(loop, task)`: asyncio's C functions
/// called through their definitions when they are the C ones (cfunc.rs), else through
/// vectorcall. Either way the call the "Extending" page prescribes is made.
fn lifetime_call(
    py: Python<'_>,
    which: Lifetime,
    lp: &Bound<'_, Loop>,
    task: &Bound<'_, Task>,
) -> PyResult<()> {
    static ENTER: GILOnceCell<Option<FastFunction>> = GILOnceCell::new();
    static LEAVE: GILOnceCell<Option<FastFunction>> = GILOnceCell::new();
    let (cell, lookup): (_, Lookup) = match which {
        Lifetime::Enter => (&ENTER, asyncio::enter_task),
        Lifetime::Leave => (&LEAVE, asyncio::leave_task),
    };
    let fast = match cell.get(py) {
        Some(fast) => fast,
        None => cell.get_or_init(py, || lookup(py).ok().and_then(FastFunction::of)),
    };
    match fast {
        Some(fast) => fast.call(py, &[lp.as_ptr(), task.as_ptr()]),
        None => asyncio::call2(lookup(py)?, lp, task),
    }
    .map(drop)
}

impl Task {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a step of the task (with `exc` to throw) on its loop.
    fn schedule_step(slf: &Bound<'_, Task>, exc: Option<PyObject>) -> PyResult<()> {
        let task = slf.clone().unbind();
        slf.get().loop_.get().schedule_step(task, exc)
    }

    /// Runs a step the loop queued (`schedule_step`) in the task's context, reporting an
    /// exception to the loop as asyncio reports one from its `__step` handle.
    pub(crate) fn run_step(t: &Bound<'_, Task>, exc: Option<PyObject>) {
        let py = t.py();
        let ctx = t.get().context.bind(py);
        if let Err(e) = run_in_context(py, ctx, || Task::step(t, exc)) {
            let lp = t.get().loop_.bind(py).clone().into_any();
            report_error(
                py,
                &lp,
                e,
                format!(
                    "Exception in callback {}.__step()",
                    t.repr().map(|r| r.to_string()).unwrap_or_default()
                ),
                "task",
                t.as_any(),
            );
        }
    }

    fn make_cancelled_error(py: Python<'_>, st: &mut State) -> PyResult<PyObject> {
        if let Some(e) = st.cancelled_exc.take() {
            return Ok(e);
        }
        let cls = asyncio::cancelled_error(py)?;
        Ok(match &st.cancel_message {
            None => cls.call0()?.unbind(),
            Some(m) => cls.call1((m,))?.unbind(),
        })
    }

    /// Moves the task to a final state and schedules its done callbacks.
    fn finish(slf: &Bound<'_, Task>, f: impl FnOnce(&mut State)) -> PyResult<()> {
        let py = slf.py();
        let (callbacks, _wakeup) = {
            let mut st = slf.get().lock();
            f(&mut st);
            (std::mem::take(&mut st.callbacks), st.wakeup.take())
        };
        asyncio::call1(asyncio::unregister_task(py)?, slf)?;
        let lp = slf.get().loop_.bind(py);
        for (cb, ctx) in callbacks {
            let args = Args::One(slf.clone().into_any().unbind());
            Loop::call_soon_impl(lp, cb, args, Some(ctx))?;
        }
        Ok(())
    }

    fn step(slf: &Bound<'_, Task>, exc: Option<PyObject>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let mut exc = exc;
        // Dropped after the lock is released (a deallocation may run Python code that
        // calls back into the task), as a Bound: a direct decref, without PyO3's check for
        // the GIL that dropping a `Py` makes.
        let _old_waiter;
        {
            let mut st = this.lock();
            if st.st != St::Pending {
                drop(st);
                return Err(PyErr::from_value(
                    asyncio::invalid_state_error(py)?
                        .call1((format!("_step(): already done: {}", slf.repr()?),))?,
                ));
            }
            if st.must_cancel {
                let is_cancel = match &exc {
                    Some(e) => e.bind(py).is_instance(asyncio::cancelled_error(py)?)?,
                    None => false,
                };
                if !is_cancel {
                    exc = Some(Task::make_cancelled_error(py, &mut st)?);
                }
                st.must_cancel = false;
            }
            _old_waiter = st.fut_waiter.take().map(|f| f.into_bound(py));
        }
        let lp = this.loop_.bind(py);
        lifetime_call(py, Lifetime::Enter, lp, slf)?;
        let coro = this.coro.bind(py);
        let sent = match exc {
            None => send_none(py, coro),
            Some(e) => throw(py, coro, e),
        };
        let r = Task::after_send(slf, sent);
        let left = lifetime_call(py, Lifetime::Leave, lp, slf);
        r?;
        left.map(drop)
    }

    fn after_send(slf: &Bound<'_, Task>, sent: PyResult<Sent>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        match sent {
            Ok(Sent::Returned(v)) => Task::finish(slf, |st| {
                if st.must_cancel {
                    st.must_cancel = false;
                    st.st = St::Cancelled;
                } else {
                    st.result = Some(v);
                    st.st = St::Finished;
                }
            }),
            Err(e) if e.is_instance(py, asyncio::cancelled_error(py)?) => {
                let v = e.into_value(py).into_any();
                Task::finish(slf, |st| {
                    st.cancelled_exc = Some(v);
                    st.cancel_message = None;
                    st.st = St::Cancelled;
                })
            }
            Err(e) => {
                let fatal = e.is_instance_of::<PyKeyboardInterrupt>(py)
                    || e.is_instance_of::<PySystemExit>(py);
                let v = e.clone_ref(py).into_value(py).into_any();
                Task::finish(slf, |st| {
                    st.exception = Some(v);
                    st.log_traceback = true;
                    st.st = St::Finished;
                })?;
                if fatal {
                    Err(e)
                } else {
                    Ok(())
                }
            }
            // A bare `yield` (asyncio.sleep(0)): first, as asyncio's C Task tests it, sparing
            // the AttributeError a lookup of `_asyncio_future_blocking` on None would build.
            Ok(Sent::Yielded(result)) if result.is_none(py) => {
                let wakeup = this.lock().wakeup.take();
                drop(wakeup);
                Task::schedule_step(slf, None)
            }
            Ok(Sent::Yielded(result)) => {
                let result = &result.into_bound(py);
                if let Some(f) = crate::task_await::in_place(result) {
                    if let Some(r) = Task::wait_in_place(slf, result, f) {
                        return r;
                    }
                }
                let awaited = Awaited::new(result)?;
                let blocking = awaited.blocking()?;
                let err = |msg: String| -> PyResult<()> {
                    Task::schedule_step(
                        slf,
                        Some(PyRuntimeError::new_err(msg).into_value(py).into_any()),
                    )
                };
                match blocking {
                    Some(blocking) => {
                        let its_loop = awaited.get_loop()?;
                        if !its_loop.is(this.loop_.bind(py)) {
                            err(format!(
                                "Task {} got Future {} attached to a different loop",
                                slf.repr()?,
                                result.repr()?
                            ))
                        } else if !blocking {
                            err(format!(
                                "yield was used instead of yield from in task {} with {}",
                                slf.repr()?,
                                result.repr()?
                            ))
                        } else if result.is(slf) {
                            err(format!("Task cannot await on itself: {}", slf.repr()?))
                        } else {
                            awaited.clear_blocking()?;
                            let wakeup = Task::wakeup_callable(slf)?;
                            awaited.add_wakeup(&wakeup, this.context.bind(py))?;
                            let msg = {
                                let mut st = this.lock();
                                st.fut_waiter = Some(result.clone().unbind());
                                Task::pending_cancel(py, &st)
                            };
                            Task::pass_on_cancel(slf, result, msg)
                        }
                    }
                    None if asyncio::isgenerator(py)?.call1((result,))?.is_truthy()? => {
                        err(format!(
                            "yield was used instead of yield from for generator in task {} with {}",
                            slf.repr()?,
                            result.repr()?
                        ))
                    }
                    None => err(format!("Task got bad yield: {}", result.repr()?)),
                }
            }
        }
    }

    /// The message of a cancellation requested while the step ran (`_must_cancel`), which
    /// goes on to the future the task now waits on.
    fn pending_cancel(py: Python<'_>, st: &State) -> Option<Option<PyObject>> {
        st.must_cancel
            .then(|| st.cancel_message.as_ref().map(|m| m.clone_ref(py)))
    }

    /// `if self._must_cancel: if self._fut_waiter.cancel(msg=...): self._must_cancel = False`.
    fn pass_on_cancel(
        slf: &Bound<'_, Task>,
        fut: &Bound<'_, PyAny>,
        msg: Option<Option<PyObject>>,
    ) -> PyResult<()> {
        let Some(msg) = msg else {
            return Ok(());
        };
        let kw = PyDict::new(slf.py());
        kw.set_item("msg", msg)?;
        if fut.call_method("cancel", (), Some(&kw))?.is_truthy()? {
            slf.get().lock().must_cancel = false;
        }
        Ok(())
    }

    /// The step's end when the coroutine yielded an initialised asyncio C `Future` (`f`:
    /// its verified layout, cfuture.rs) — what streams await on every read: asyncio's
    /// checks and bookkeeping on the struct, with one lock of the task's state. `None`
    /// (nothing done) when the generic path must decide: the future is of another loop,
    /// was yielded bare, or this is the task's first await (no wakeup made yet).
    fn wait_in_place(
        slf: &Bound<'_, Task>,
        fut: &Bound<'_, PyAny>,
        f: &CFuture,
    ) -> Option<PyResult<()>> {
        let py = slf.py();
        let this = slf.get();
        let p = fut.as_ptr();
        // SAFETY: `in_place` gave `f` for this object: exactly the verified type,
        // initialised (cfuture.rs rule 1).
        let ours = unsafe { f.blocking(p) && f.loop_ptr(p) == Some(this.loop_.as_ptr()) };
        if !ours {
            return None;
        }
        let (wakeup, msg) = {
            let mut st = this.lock();
            let wakeup = st.wakeup.as_ref()?.clone_ref(py).into_bound(py);
            st.fut_waiter = Some(fut.clone().unbind());
            (wakeup, Task::pending_cancel(py, &st))
        };
        // SAFETY: as above; a C Future is never the task itself (asyncio's self-await
        // check); the wakeup and the context are live.
        let stored = unsafe {
            f.clear_blocking(p);
            f.add_first_callback(p, wakeup.as_ptr(), this.context.as_ptr())
        };
        if !stored {
            // Not the first callback: through the future's own method.
            let added =
                Awaited::new(fut).and_then(|a| a.add_wakeup(&wakeup, this.context.bind(py)));
            if let Err(e) = added {
                let undone = this.lock().fut_waiter.take();
                drop(undone);
                return Some(Err(e));
            }
        }
        Some(Task::pass_on_cancel(slf, fut, msg))
    }

    /// `_asyncio_future_blocking`.
    pub(crate) fn blocking_now(&self) -> bool {
        self.lock().blocking
    }

    /// `_asyncio_future_blocking = False`.
    pub(crate) fn clear_blocking(&self) {
        self.lock().blocking = false;
    }

    /// The task's loop, as a plain object.
    pub(crate) fn loop_any<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.loop_.bind(py).clone().into_any()
    }

    /// `add_done_callback(f, context=context)` with the context already chosen.
    pub(crate) fn push_done_callback(
        slf: &Bound<'_, Task>,
        f: PyObject,
        context: PyObject,
    ) -> PyResult<()> {
        let py = slf.py();
        {
            let mut st = slf.get().lock();
            if st.st == St::Pending {
                st.callbacks.push((f, context));
                return Ok(());
            }
        }
        let args = Args::One(slf.clone().into_any().unbind());
        Loop::call_soon_impl(slf.get().loop_.bind(py), f, args, Some(context))?;
        Ok(())
    }

    /// The task's wakeup callable: the cached one, or a new one that is cached.
    pub(crate) fn wakeup_callable<'py>(slf: &Bound<'py, Task>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if let Some(w) = &slf.get().lock().wakeup {
            return Ok(w.bind(py).clone());
        }
        // Made without the lock: an allocation can run the garbage collector, hence
        // arbitrary finalizers that may call back into this task.
        let w = crate::task_await::new_wakeup(slf)?;
        slf.get().lock().wakeup = Some(w.clone().unbind());
        Ok(w)
    }

    /// `__wakeup(future)`: the next step, throwing what `future.result()` raises.
    pub(crate) fn wakeup(slf: &Bound<'_, Task>, future: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        if let Some(f) = crate::task_await::in_place(future) {
            // SAFETY: `in_place` gave `f` for this object (cfuture.rs rule 1).
            if unsafe { f.finished_ok(future.as_ptr()) } {
                return Task::step(slf, None);
            }
        }
        match Awaited::new(future)?.check_result() {
            Ok(()) => Task::step(slf, None),
            Err(e) => Task::step(slf, Some(e.into_value(py).into_any())),
        }
    }

    /// asyncio's `Task.__del__` (`tp_finalize`, module `task_gc`): a task destroyed pending
    /// (unless `_log_destroy_pending` was turned off), or holding an exception nobody
    /// retrieved, is reported to its loop's exception handler.
    pub(crate) fn finalize(slf: &Bound<'_, Task>) -> PyResult<()> {
        let py = slf.py();
        let (pending, exc) = {
            let mut st = slf.get().lock();
            let pending = st.st == St::Pending && st.log_destroy_pending;
            let exc = if st.log_traceback {
                st.log_traceback = false;
                st.exception.as_ref().map(|e| e.clone_ref(py))
            } else {
                None
            };
            (pending, exc)
        };
        let handler = || {
            slf.get()
                .loop_
                .bind(py)
                .getattr(pyo3::intern!(py, "call_exception_handler"))
        };
        if pending {
            let ctx = PyDict::new(py);
            ctx.set_item("message", "Task was destroyed but it is pending!")?;
            ctx.set_item("task", slf)?;
            handler()?.call1((ctx,))?;
        }
        if let Some(exc) = exc {
            let ctx = PyDict::new(py);
            ctx.set_item("message", "Task exception was never retrieved")?;
            ctx.set_item("exception", exc)?;
            ctx.set_item("future", slf)?;
            handler()?.call1((ctx,))?;
        }
        Ok(())
    }

    /// Creates and schedules a task (the constructor, also used by the task factory).
    pub(crate) fn create(
        py: Python<'_>,
        coro: &Bound<'_, PyAny>,
        lp: &Bound<'_, Loop>,
        name: Option<PyObject>,
        context: Option<PyObject>,
    ) -> PyResult<Py<Task>> {
        // SAFETY: GIL held; a type check on a live object.
        let is_coro = unsafe { ffi::PyCoro_CheckExact(coro.as_ptr()) } != 0
            || asyncio::iscoroutine(py)?.call1((coro,))?.is_truthy()?;
        if !is_coro {
            return Err(PyTypeError::new_err(format!(
                "a coroutine was expected, got {}",
                coro.repr()?
            )));
        }
        let context = match context {
            Some(c) if !c.is_none(py) => c,
            _ => asyncio::copy_context(py)?,
        };
        let name = match name {
            Some(n) if !n.is_none(py) => Name::Given(n.bind(py).str()?.into_any().unbind()),
            // asyncio's counter, shared with its Python Task, read now as asyncio does.
            _ => Name::Counter(asyncio::task_name_counter(py)?.call0()?.extract()?),
        };
        let task = Bound::new(
            py,
            Task {
                coro: coro.clone().unbind(),
                loop_: lp.clone().unbind(),
                context,
                state: Mutex::new(State {
                    st: St::Pending,
                    result: None,
                    exception: None,
                    cancelled_exc: None,
                    cancel_message: None,
                    must_cancel: false,
                    num_cancels: 0,
                    callbacks: Vec::new(),
                    fut_waiter: None,
                    blocking: false,
                    name,
                    log_traceback: false,
                    wakeup: None,
                    log_destroy_pending: true,
                }),
            },
        )?;
        Task::schedule_step(&task, None)?;
        asyncio::call1(asyncio::register_task(py)?, &task)?;
        Ok(task.unbind())
    }
}

#[pymethods]
impl Task {
    #[new]
    #[pyo3(signature = (coro, *, r#loop, name = None, context = None))]
    fn py_new(
        py: Python<'_>,
        coro: &Bound<'_, PyAny>,
        r#loop: &Bound<'_, PyAny>,
        name: Option<PyObject>,
        context: Option<PyObject>,
    ) -> PyResult<Py<Task>> {
        let lp = r#loop
            .downcast::<Loop>()
            .map_err(|_| PyTypeError::new_err("aioloop.Task needs an aioloop event loop"))?;
        Task::create(py, coro, lp, name, context)
    }

    fn _wakeup(slf: &Bound<'_, Task>, future: &Bound<'_, PyAny>) -> PyResult<()> {
        Task::wakeup(slf, future)
    }

    #[getter]
    fn _asyncio_future_blocking(&self) -> bool {
        self.lock().blocking
    }

    #[setter(_asyncio_future_blocking)]
    fn set_blocking(&self, v: bool) -> PyResult<()> {
        if v {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "_asyncio_future_blocking can only be set to False",
            ));
        }
        self.lock().blocking = false;
        Ok(())
    }

    #[getter]
    fn _source_traceback(&self) -> Option<PyObject> {
        None
    }

    #[getter]
    fn _log_destroy_pending(&self) -> bool {
        self.lock().log_destroy_pending
    }

    #[setter(_log_destroy_pending)]
    fn set_log_destroy_pending(&self, v: bool) {
        self.lock().log_destroy_pending = v;
    }

    /// Visits what the task references, for the cycle collector (module `task_gc`).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.coro)?;
        visit.call(&self.loop_)?;
        visit.call(&self.context)?;
        // The collector runs on any allocation, including one made by this thread while it
        // holds the state's lock (a `clone_ref` does not allocate, but building an error
        // or a tuple inside a locked section does): waiting would deadlock and the lock
        // is not reentrant. A held lock means the fields are not visited this time: an
        // unvisited reference counts as one from outside, so the collector only keeps
        // more alive than it could, never frees what is still referenced.
        let st = match self.state.try_lock() {
            Ok(st) => st,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(()),
        };
        st.visit(&visit)
    }

    /// Breaks the cycles through the task's state (module `task_gc`).
    fn __clear__(&self) {
        let taken = self.lock().cleared();
        // Released after the lock: a destructor may run Python code that calls the task.
        drop(taken);
    }

    #[getter]
    fn _loop(&self, py: Python<'_>) -> Py<Loop> {
        self.loop_.clone_ref(py)
    }

    #[getter]
    fn _coro(&self, py: Python<'_>) -> PyObject {
        self.coro.clone_ref(py)
    }

    #[getter]
    fn _fut_waiter(&self, py: Python<'_>) -> Option<PyObject> {
        self.lock().fut_waiter.as_ref().map(|f| f.clone_ref(py))
    }

    #[getter]
    fn _cancel_message(&self, py: Python<'_>) -> Option<PyObject> {
        self.lock().cancel_message.as_ref().map(|m| m.clone_ref(py))
    }

    #[setter(_cancel_message)]
    fn set_cancel_message(&self, msg: Option<PyObject>) {
        self.lock().cancel_message = msg;
    }

    #[getter]
    fn _must_cancel(&self) -> bool {
        self.lock().must_cancel
    }

    #[getter]
    fn _state(&self) -> &'static str {
        match self.lock().st {
            St::Pending => "PENDING",
            St::Cancelled => "CANCELLED",
            St::Finished => "FINISHED",
        }
    }

    #[pyo3(signature = (msg = None))]
    fn cancel(&self, py: Python<'_>, msg: Option<PyObject>) -> PyResult<bool> {
        let waiter = {
            let mut st = self.lock();
            st.log_traceback = false;
            if st.st != St::Pending {
                return Ok(false);
            }
            st.num_cancels += 1;
            st.fut_waiter.as_ref().map(|f| f.clone_ref(py))
        };
        if let Some(w) = waiter {
            let kw = PyDict::new(py);
            kw.set_item("msg", msg.as_ref().map(|m| m.clone_ref(py)))?;
            if w.bind(py)
                .call_method("cancel", (), Some(&kw))?
                .is_truthy()?
            {
                return Ok(true);
            }
        }
        let mut st = self.lock();
        st.must_cancel = true;
        st.cancel_message = msg;
        Ok(true)
    }

    fn cancelling(&self) -> u64 {
        self.lock().num_cancels
    }

    fn uncancel(&self) -> u64 {
        let mut st = self.lock();
        st.num_cancels = st.num_cancels.saturating_sub(1);
        st.num_cancels
    }

    fn cancelled(&self) -> bool {
        self.lock().st == St::Cancelled
    }

    fn done(&self) -> bool {
        self.lock().st != St::Pending
    }

    pub(crate) fn result(&self, py: Python<'_>) -> PyResult<PyObject> {
        let mut st = self.lock();
        match st.st {
            St::Cancelled => {
                let e = Task::make_cancelled_error(py, &mut st)?;
                Err(PyErr::from_value(e.into_bound(py)))
            }
            St::Pending => Err(PyErr::from_value(
                asyncio::invalid_state_error(py)?.call1(("Result is not ready.",))?,
            )),
            St::Finished => {
                st.log_traceback = false;
                if let Some(e) = &st.exception {
                    return Err(PyErr::from_value(e.bind(py).clone()));
                }
                Ok(st
                    .result
                    .as_ref()
                    .map(|r| r.clone_ref(py))
                    .unwrap_or_else(|| py.None()))
            }
        }
    }

    fn exception(&self, py: Python<'_>) -> PyResult<Option<PyObject>> {
        let mut st = self.lock();
        match st.st {
            St::Cancelled => {
                let e = Task::make_cancelled_error(py, &mut st)?;
                Err(PyErr::from_value(e.into_bound(py)))
            }
            St::Pending => Err(PyErr::from_value(
                asyncio::invalid_state_error(py)?.call1(("Exception is not set.",))?,
            )),
            St::Finished => {
                st.log_traceback = false;
                Ok(st.exception.as_ref().map(|e| e.clone_ref(py)))
            }
        }
    }

    fn _make_cancelled_error(&self, py: Python<'_>) -> PyResult<PyObject> {
        Task::make_cancelled_error(py, &mut self.lock())
    }

    #[pyo3(signature = (f, *, context = None))]
    fn add_done_callback(
        slf: &Bound<'_, Task>,
        f: PyObject,
        context: Option<PyObject>,
    ) -> PyResult<()> {
        let py = slf.py();
        let context = match context {
            Some(c) if !c.is_none(py) => c,
            _ => asyncio::copy_context(py)?,
        };
        Task::push_done_callback(slf, f, context)
    }

    fn remove_done_callback(&self, py: Python<'_>, f: &Bound<'_, PyAny>) -> PyResult<usize> {
        let callbacks = std::mem::take(&mut self.lock().callbacks);
        let mut kept = Vec::with_capacity(callbacks.len());
        let mut removed = 0;
        for (cb, ctx) in callbacks {
            if cb.bind(py).eq(f)? {
                removed += 1;
            } else {
                kept.push((cb, ctx));
            }
        }
        let mut st = self.lock();
        kept.append(&mut st.callbacks);
        st.callbacks = kept;
        Ok(removed)
    }

    fn get_loop(&self, py: Python<'_>) -> Py<Loop> {
        self.loop_.clone_ref(py)
    }

    fn get_coro(&self, py: Python<'_>) -> PyObject {
        self.coro.clone_ref(py)
    }

    fn get_context(&self, py: Python<'_>) -> PyObject {
        self.context.clone_ref(py)
    }

    fn get_name(&self, py: Python<'_>) -> PyObject {
        self.lock().name(py)
    }

    fn set_name(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let s = value.str()?.into_any().unbind();
        self.lock().name = Name::Given(s);
        Ok(())
    }

    #[pyo3(signature = (*, limit = None))]
    fn get_stack(slf: &Bound<'_, Task>, limit: Option<PyObject>) -> PyResult<PyObject> {
        let py = slf.py();
        let f = py
            .import("asyncio.base_tasks")?
            .getattr("_task_get_stack")?;
        Ok(f.call1((slf, limit))?.unbind())
    }

    fn set_result(&self, _result: PyObject) -> PyResult<()> {
        Err(PyRuntimeError::new_err(
            "Task does not support set_result operation",
        ))
    }

    fn set_exception(&self, _exception: PyObject) -> PyResult<()> {
        Err(PyRuntimeError::new_err(
            "Task does not support set_exception operation",
        ))
    }

    fn __await__(slf: &Bound<'_, Task>) -> TaskIter {
        TaskIter {
            task: Some(slf.clone().unbind()),
        }
    }

    fn __iter__(slf: &Bound<'_, Task>) -> TaskIter {
        Task::__await__(slf)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        // A snapshot under the lock, formatted after it: a result's or an exception's
        // `__repr__` is Python code, which may call this task back (`done()`), and the
        // lock is not reentrant.
        let (state, name, exception, result) = {
            let mut st = self.lock();
            let state = match st.st {
                St::Pending if st.must_cancel => "cancelling",
                St::Pending => "pending",
                St::Cancelled => "cancelled",
                St::Finished => "finished",
            };
            let exception = st.exception.as_ref().map(|e| e.clone_ref(py));
            let result = match st.st {
                St::Finished => st.result.as_ref().map(|r| r.clone_ref(py)),
                _ => None,
            };
            (state, st.name(py), exception, result)
        };
        let extra = match (exception, result) {
            (Some(e), _) => format!(" exception={}", e.bind(py).repr()?),
            // asyncio limits the result's repr with reprlib (`_future_repr_info`).
            (None, Some(r)) => format!(" result={}", asyncio::reprlib_repr(py)?.call1((r,))?),
            (None, None) => String::new(),
        };
        Ok(format!(
            "<Task {state} name={} coro={}{extra}>",
            name.bind(py).repr()?,
            self.coro.bind(py).repr()?
        ))
    }

    #[classmethod]
    fn __class_getitem__(
        cls: &Bound<'_, pyo3::types::PyType>,
        _item: PyObject,
    ) -> Py<pyo3::types::PyType> {
        cls.clone().unbind()
    }
}

#[pymethods]
impl TaskIter {
    /// It sits in the awaiting coroutine's frame, so in the cycle of a task awaiting
    /// another: task → coroutine → this → awaited task → its wakeup → task.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(t) = &self.task {
            visit.call(t)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.task = None;
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<PyObject> {
        let Some(task) = self.task.as_ref().map(|t| t.clone_ref(py)) else {
            return Err(PyStopIteration::new_err(()));
        };
        let t = task.bind(py);
        if !t.get().done() {
            t.get().lock().blocking = true;
            return Ok(task.into_any());
        }
        self.task = None;
        let r = t.get().result(py)?;
        Err(PyStopIteration::new_err((r,)))
    }

    fn send(&mut self, py: Python<'_>, _value: PyObject) -> PyResult<PyObject> {
        self.__next__(py)
    }

    #[pyo3(signature = (typ, val = None, _tb = None))]
    fn throw(
        &mut self,
        py: Python<'_>,
        typ: PyObject,
        val: Option<PyObject>,
        _tb: Option<PyObject>,
    ) -> PyResult<PyObject> {
        let t = typ.bind(py);
        let e = match val {
            Some(v) if !v.is_none(py) => PyErr::from_value(v.into_bound(py)),
            _ if t.is_instance_of::<pyo3::types::PyType>() => PyErr::from_value(t.call0()?),
            _ => PyErr::from_value(t.clone()),
        };
        Err(e)
    }
}
