//! asyncio's `Handle` and `TimerHandle`: a Python callback queued on the loop.
//!
//! The loop's ready queue holds the `Handle` object and runs it; cancelling sets the flag
//! the run checks and drops the callback and its arguments at once (as asyncio does), and
//! a timer's cancel also purges it from aioloop's timer heap. A handle that can never run
//! — its loop closed with it queued, or its timer dropped unfired — drops them too
//! (`Handle::discard`), without being marked cancelled (asyncio's `close()` only clears
//! its queues).
//!
//! State: a handle's payload, cancelled flag and loop reference sit behind one `Mutex`
//! (the binding keeps no data behind the GIL alone: free-threading ready).
//!
//! Arguments. A callback with exactly one argument — a future's done callback, a task's
//! wakeup — keeps it as is (`Args::One`), not in a 1-tuple; a native task's wakeup is run as
//! the task's step directly (`task_await::wakeup_target`), in the handle's context.
//!
//! Reuse. A `Handle` the ready queue ran and nobody else holds goes back to its loop's
//! pool (`Handle::recycle`) with its payload and loop reference dropped, and the loop's
//! next `call_soon` fills it again (`Handle::refill`) instead of allocating a new object:
//! no one can observe the old object any more, so this is asyncio's behaviour with one
//! allocation and deallocation fewer per callback.
//!
//! GC. A handle is a GC type: its callback may reference the loop or an object holding
//! the handle (a bound method of a protocol that keeps its timer handle; arguments that
//! hold the handle), and a handle the loop ran keeps its loop reference, so cycles through
//! handles are common and only the collector can free them. `__traverse__` reports the
//! payload, the loop and the debug traceback; `__clear__` drops the payload and the loop.
//! The loop reports the handles it queues (loop_core.rs, `Loop::__traverse__`).
//!
//! Protocol:
//! 1. The state lock is never held across Python code: no call, and no drop of a Python
//!    reference (which may run a finaliser) inside it — references are cloned or moved
//!    out and dropped or called after it is released (`Locked::with`).
//! 2. `__traverse__` takes the lock only if it is free: the collector runs on any
//!    allocation, possibly by the thread holding the lock, which is not reentrant. An
//!    unvisited reference counts as one from outside, so a skipped visit only keeps more
//!    alive, never frees what is referenced.
//! 3. A `Handle` is built only by GIL-holding code and moved at once into its Python
//!    object, which CPython deallocates with the GIL held; so it is dropped with the GIL.
//! 4. Reuse requires that nothing but the ready queue can reach the object: reference
//!    count one, no weak reference, exactly `Handle` (no Python subclass with other
//!    fields), no debug traceback. A pooled handle holds no reference (no payload, no
//!    loop), so the pool forms no cycle and a pooled handle's traverse visits nothing.
//! 5. `HANDLE_TYPE` is set at module initialisation, before any handle exists, to the
//!    `Handle` type object, which lives as long as the interpreter.
//! 6. `Handle`'s and `TimerHandle`'s `tp_traverse` is [`traverse`], set by `install_type`
//!    at module initialisation, before any handle exists, in place of PyO3's trampoline
//!    (which walked the base types and checked a thread-local on every call: a quarter of
//!    a collection's cost per handle). CPython calls it with the GIL held, on a live
//!    object whose layout starts as `Handle`'s (the type or a subtype); it visits what
//!    `__traverse__` does, calls nothing else and does not panic.

use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, OnceLock};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::{Borrowed, PyTraverseError, PyVisit};

use crate::loop_core::report_error;
use crate::task::Task;
use crate::task_await::wakeup_target;

/// A callback, its arguments and the `contextvars.Context` it runs in.
pub(crate) struct Payload {
    pub(crate) callback: PyObject,
    pub(crate) args: Args,
    pub(crate) context: PyObject,
}

/// A callback's positional arguments. Most callbacks take exactly one — a future's done
/// callbacks (`cb(fut)`, every task wakeup) — which is kept as is: no 1-tuple to allocate
/// and free per callback.
pub(crate) enum Args {
    Tuple(Py<PyTuple>),
    One(PyObject),
}

impl Args {
    fn release(self, py: Python<'_>) {
        match self {
            Args::Tuple(t) => drop(t.into_bound(py)),
            Args::One(a) => drop(a.into_bound(py)),
        }
    }

    fn clone_ref(&self, py: Python<'_>) -> Args {
        match self {
            Args::Tuple(t) => Args::Tuple(t.clone_ref(py)),
            Args::One(a) => Args::One(a.clone_ref(py)),
        }
    }

    /// The one object the handle holds for its arguments (the tuple, or the lone
    /// argument), for the collector.
    fn as_any(&self) -> &PyObject {
        match self {
            Args::Tuple(t) => t.as_any(),
            Args::One(a) => a,
        }
    }

    /// `callback(*args)`.
    fn call(&self, callback: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = callback.py();
        match self {
            Args::Tuple(t) => call_spread(callback, t.bind(py)),
            Args::One(a) => vectorcall(callback, &[a.as_ptr()]),
        }
    }

    /// As the tuple's `str` would show them.
    fn describe(&self, py: Python<'_>) -> String {
        match self {
            Args::Tuple(t) => t.bind(py).to_string(),
            Args::One(a) => match a.bind(py).repr() {
                Ok(r) => format!("({r},)"),
                Err(_) => "(<unrepresentable>,)".to_string(),
            },
        }
    }
}

impl Payload {
    /// Drops the references through `py` (a `Py`'s own drop first asks whether this thread
    /// holds the GIL, once per reference; this runs once per callback).
    pub(crate) fn release(self, py: Python<'_>) {
        drop(self.callback.into_bound(py));
        self.args.release(py);
        drop(self.context.into_bound(py));
    }

    fn clone_ref(&self, py: Python<'_>) -> Payload {
        Payload {
            callback: self.callback.clone_ref(py),
            args: self.args.clone_ref(py),
            context: self.context.clone_ref(py),
        }
    }
}

/// What a `Handle` changes over its life (module docs: state).
struct State {
    payload: Option<Payload>,
    cancelled: bool,
    /// `None` while the handle waits in its loop's pool.
    loop_: Option<PyObject>,
}

/// The handle's `State` behind its lock (module docs: state).
struct Locked<T>(Mutex<T>);

impl<T> Locked<T> {
    /// Runs `f` on the value under the lock. `f` must not run Python code (rule 1).
    #[inline]
    fn with<R>(&self, _py: Python<'_>, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Runs `f` on the value unless the lock is held (rule 2: the collector's traverse).
    fn try_with<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        match self.0.try_lock() {
            Ok(g) => Some(f(&g)),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(f(&e.into_inner())),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

/// asyncio's `Handle` (what `call_soon` returns): `cancel()`, `cancelled()`.
#[pyclass(subclass, frozen, weakref, module = "aioloop._aioloop")]
pub struct Handle {
    state: Locked<State>,
    /// Where it was created, in debug mode (asyncio's `_source_traceback`); a handle with
    /// one is never reused.
    source_traceback: Option<PyObject>,
}

impl Drop for Handle {
    /// Releases the references directly: dropping a `Py` asks PyO3 whether this thread
    /// holds the GIL (a thread-local read), three times per callback on the hot path.
    fn drop(&mut self) {
        // SAFETY: dropped with the GIL held (rule 3): by its object's deallocation, or by
        // the GIL-holding code that built it when `Py::new` failed.
        let py = unsafe { Python::assume_gil_acquired() };
        let st = self.state.0.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = st.payload.take() {
            p.release(py);
        }
        if let Some(l) = st.loop_.take() {
            drop(l.into_bound(py));
        }
    }
}

/// `Handle`'s type object (rule 5): `recycle` compares against it without PyO3's lazy
/// type lookup.
static HANDLE_TYPE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());

/// Records `Handle`'s type object for `recycle` (rule 5) and installs [`traverse`] on both
/// handle types (rule 6); at module initialisation, `TimerHandle` already made.
pub(crate) fn install_type(py: Python<'_>) {
    let handle = py.get_type::<Handle>().as_type_ptr();
    HANDLE_TYPE.store(handle, Ordering::Relaxed);
    for tp in [handle, py.get_type::<TimerHandle>().as_type_ptr()] {
        // SAFETY: GIL held; `tp` is a live heap type PyO3 made with GC slots (`Handle`'s
        // `__traverse__`, inherited by `TimerHandle`), written before any instance exists
        // (rule 6); `PyType_Modified` drops CPython's caches of the type.
        unsafe {
            (*tp).tp_traverse = Some(traverse);
            ffi::PyType_Modified(tp);
        }
    }
}

/// The handle types' `tp_traverse` (rule 6): `__traverse__`'s visit, straight from the
/// slot.
///
/// # Safety
/// Called by CPython only: GIL held, `obj` a live object of `Handle`'s layout, `visit` and
/// `arg` the collector's (rule 6).
unsafe extern "C" fn traverse(
    obj: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut std::os::raw::c_void,
) -> std::os::raw::c_int {
    // SAFETY: rule 6 — the GIL is held and `obj` is live for the call; borrowed without
    // touching its reference count (the collector is counting them).
    let obj = unsafe { Borrowed::from_ptr(Python::assume_gil_acquired(), obj) };
    // SAFETY: rule 6 — the object's layout starts as `Handle`'s.
    let h = unsafe { obj.downcast_unchecked::<Handle>() }.get();
    // SAFETY: rule 6 — the collector's `visit` on a live reference the handle owns.
    let r = h.each_ref(|o| match unsafe { visit(o.as_ptr(), arg) } {
        0 => Ok(()),
        r => Err(r),
    });
    r.err().unwrap_or(0)
}

/// asyncio's `TimerHandle` (what `call_later`/`call_at` return): also `when()`.
#[pyclass(extends = Handle, frozen, module = "aioloop._aioloop")]
pub struct TimerHandle {
    when: f64,
    pub(crate) timer: OnceLock<aioloop::events::TimerHandle>,
}

impl Handle {
    pub(crate) fn new(
        payload: Payload,
        loop_: PyObject,
        source_traceback: Option<PyObject>,
    ) -> Handle {
        Handle {
            state: Locked(Mutex::new(State {
                payload: Some(payload),
                cancelled: false,
                loop_: Some(loop_),
            })),
            source_traceback,
        }
    }

    /// Whether the ready queue may keep `h`, which it has just run, for `refill` (rule 4);
    /// if so, drops what it still holds.
    pub(crate) fn recycle(h: &Bound<'_, Handle>) -> bool {
        let py = h.py();
        let obj = h.as_ptr();
        // SAFETY: `obj` is a live object (`h`) and the GIL is held (`py`): its reference
        // count, its type and the type's weak-list offset are memory CPython keeps valid
        // while it lives, and the weak-list slot is read only when the type is `Handle`
        // (rule 5), whose positive offset PyO3's `weakref` option placed inside the object.
        let reusable = unsafe {
            let ty = ffi::Py_TYPE(obj);
            ffi::Py_REFCNT(obj) == 1
                && ty == HANDLE_TYPE.load(Ordering::Relaxed)
                && (*ty).tp_weaklistoffset > 0
                && (*obj
                    .cast::<u8>()
                    .add((*ty).tp_weaklistoffset as usize)
                    .cast::<*mut ffi::PyObject>())
                .is_null()
        };
        if !reusable || h.get().source_traceback.is_some() {
            return false;
        }
        let (payload, loop_) = h.get().state.with(py, |s| {
            s.cancelled = false;
            (s.payload.take(), s.loop_.take())
        });
        if let Some(p) = payload {
            p.release(py);
        }
        drop(loop_);
        true
    }

    /// Drops the callback, its arguments and its context of a handle that can never run
    /// (its loop closed, or its timer was dropped unfired) without marking it cancelled:
    /// asyncio's `close()` clears its queues and leaves the handles' flags alone.
    pub(crate) fn discard(&self, py: Python<'_>) {
        if let Some(p) = self.state.with(py, |s| s.payload.take()) {
            p.release(py);
        }
    }

    /// Makes a recycled handle (`recycle` returned true for it) run `payload` on `loop_`.
    pub(crate) fn refill(h: &Bound<'_, Handle>, payload: Payload, loop_: PyObject) {
        h.get().state.with(h.py(), |s| {
            s.payload = Some(payload);
            s.cancelled = false;
            s.loop_ = Some(loop_);
        });
    }

    fn loop_obj<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        let l = self
            .state
            .with(py, |s| s.loop_.as_ref().map(|l| l.clone_ref(py)));
        l.map(|l| l.into_bound(py))
    }

    /// Runs the callback in its context (once), reporting an exception to the loop.
    pub(crate) fn run(slf: &Bound<'_, Handle>) {
        let py = slf.py();
        let h = slf.get();
        let Some(p) = h
            .state
            .with(py, |s| if s.cancelled { None } else { s.payload.take() })
        else {
            return;
        };
        if let Err(e) = run_in_context(py, p.context.bind(py), || {
            let callback = p.callback.bind(py);
            // A task's wakeup on the future it awaited: the step at once, without the call
            // through CPython into the wakeup's C entry (task_await.rs: `wakeup_target`).
            if let (Args::One(fut), Some(task)) = (&p.args, wakeup_target(callback)) {
                return Task::wakeup(&task, fut.bind(py));
            }
            p.args.call(callback)
        }) {
            let what = format!("Exception in callback {}", describe(&p));
            if let Some(l) = h.loop_obj(py) {
                report_error(py, &l, e, what, "handle", slf.as_any());
            }
        }
        p.release(py);
    }

    /// Runs the callback in its context without consuming it: an `add_reader`/`add_writer`
    /// handle runs once per iteration its descriptor is ready, until cancelled.
    pub(crate) fn run_repeating(slf: &Bound<'_, Handle>) {
        let py = slf.py();
        let h = slf.get();
        let Some(p) = h.state.with(py, |s| {
            if s.cancelled {
                None
            } else {
                s.payload.as_ref().map(|p| p.clone_ref(py))
            }
        }) else {
            return;
        };
        if let Err(e) = run_in_context(py, p.context.bind(py), || p.args.call(p.callback.bind(py)))
        {
            let what = format!("Exception in callback {}", describe(&p));
            if let Some(l) = h.loop_obj(py) {
                report_error(py, &l, e, what, "handle", slf.as_any());
            }
        }
        p.release(py);
    }

    /// Calls `f` on every Python object the handle holds, for the collector; a held lock
    /// skips the state (rule 2).
    fn each_ref<E>(&self, mut f: impl FnMut(&PyObject) -> Result<(), E>) -> Result<(), E> {
        if let Some(tb) = &self.source_traceback {
            f(tb)?;
        }
        self.state
            .try_with(|s| {
                if let Some(p) = &s.payload {
                    f(&p.callback)?;
                    f(p.args.as_any())?;
                    f(&p.context)?;
                }
                s.loop_.as_ref().map_or(Ok(()), f)
            })
            .unwrap_or(Ok(()))
    }

    fn is_cancelled(&self, py: Python<'_>) -> bool {
        self.state.with(py, |s| s.cancelled)
    }

    fn payload_ref(&self, py: Python<'_>) -> Option<Payload> {
        self.state
            .with(py, |s| s.payload.as_ref().map(|p| p.clone_ref(py)))
    }
}

/// `callback(*args)` through vectorcall, straight from the tuple's items (no
/// `PyObject_Call` unpacking the tuple again on every callback).
fn call_spread(callback: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
    let n = args.len();
    // SAFETY: `args` is a live tuple (not the limited API: `PyTupleObject`'s layout is
    // CPython's), whose `n` items follow its header and stay alive while it does, which
    // outlasts the call; the pointer is derived from the object's, which spans them.
    let items = unsafe {
        let items = std::ptr::addr_of!((*args.as_ptr().cast::<ffi::PyTupleObject>()).ob_item);
        std::slice::from_raw_parts(items.cast::<*mut ffi::PyObject>(), n)
    };
    vectorcall(callback, items)
}

/// `callback(*args)` through vectorcall, positional arguments only.
fn vectorcall(callback: &Bound<'_, PyAny>, args: &[*mut ffi::PyObject]) -> PyResult<()> {
    // SAFETY: GIL held (`callback`'s lifetime); `args` are live references borrowed for
    // the call; no keywords.
    let r = unsafe {
        ffi::PyObject_Vectorcall(
            callback.as_ptr(),
            args.as_ptr(),
            args.len(),
            std::ptr::null_mut(),
        )
    };
    // SAFETY: a new reference, or null with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(callback.py(), r) }.map(drop)
}

/// Calls `f` inside `context` (`Context.run` without building an argument tuple).
pub(crate) fn run_in_context<T>(
    py: Python<'_>,
    context: &Bound<'_, PyAny>,
    f: impl FnOnce() -> PyResult<T>,
) -> PyResult<T> {
    // SAFETY: the GIL is held (`py`) and `context` is a live object; PyContext_Enter
    // type-checks it and fails with an exception set on anything but a Context.
    if unsafe { ffi::PyContext_Enter(context.as_ptr()) } < 0 {
        return Err(PyErr::fetch(py));
    }
    let r = f();
    // SAFETY: the context entered above, on this thread, with the GIL held.
    if unsafe { ffi::PyContext_Exit(context.as_ptr()) } < 0 {
        return Err(PyErr::fetch(py));
    }
    r
}

fn describe(p: &Payload) -> String {
    Python::with_gil(|py| {
        let cb = p.callback.bind(py);
        let name = cb
            .getattr("__qualname__")
            .map(|n| n.to_string())
            .unwrap_or_else(|_| cb.to_string());
        format!("{name}{}", p.args.describe(py))
    })
}

#[pymethods]
impl Handle {
    /// Cancels the callback: it will not run; drops it and its arguments.
    fn cancel(&self, py: Python<'_>) {
        let dropped = self.state.with(py, |s| {
            s.cancelled = true;
            s.payload.take()
        });
        if let Some(p) = dropped {
            p.release(py);
        }
    }

    fn cancelled(&self, py: Python<'_>) -> bool {
        self.is_cancelled(py)
    }

    /// The collector's view of the handle (module docs: GC). Declaring it makes PyO3 build
    /// a GC type; CPython then calls [`traverse`], which visits the same (rule 6).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.each_ref(|o| visit.call(o))
    }

    /// Breaks a cycle through the handle: drops its payload and loop reference (module
    /// docs: GC). The debug traceback stays: frame summaries hold no objects of the cycle.
    fn __clear__(&self) {
        let taken = {
            let mut s = self.state.0.lock().unwrap_or_else(|e| e.into_inner());
            (s.payload.take(), s.loop_.take())
        };
        // Released after the lock (rule 1).
        drop(taken);
    }

    fn get_context(&self, py: Python<'_>) -> Option<PyObject> {
        self.state
            .with(py, |s| s.payload.as_ref().map(|p| p.context.clone_ref(py)))
    }

    #[getter]
    fn _source_traceback(&self, py: Python<'_>) -> Option<PyObject> {
        self.source_traceback.as_ref().map(|t| t.clone_ref(py))
    }

    fn _run(slf: &Bound<'_, Handle>) {
        Handle::run(slf)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let cb = match self.payload_ref(py) {
            Some(p) => {
                let d = describe(&p);
                p.release(py);
                d
            }
            None => String::new(),
        };
        let state = if self.is_cancelled(py) {
            " cancelled"
        } else {
            ""
        };
        format!("<Handle{state} {cb}>")
    }
}

#[pymethods]
impl TimerHandle {
    fn when(&self) -> f64 {
        self.when
    }

    fn cancel(slf: &Bound<'_, TimerHandle>) {
        slf.as_super().get().cancel(slf.py());
        if let Some(t) = slf.get().timer.get() {
            t.cancel();
        }
    }

    fn __repr__(slf: &Bound<'_, TimerHandle>) -> String {
        let base = slf.as_super().get().__repr__(slf.py());
        format!("<TimerHandle when={}{}", slf.get().when, &base[7..])
    }
}

impl TimerHandle {
    pub(crate) fn new(when: f64) -> TimerHandle {
        TimerHandle {
            when,
            timer: OnceLock::new(),
        }
    }
}
