//! asyncio's `Handle` and `TimerHandle`: a Python callback queued on the loop.
//!
//! The loop queues a Rust closure that holds the `Handle` object and runs it; cancelling
//! sets the flag the closure checks and drops the callback and its arguments at once (as
//! asyncio does), and a timer's cancel also purges it from aioloop's timer heap.

use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::loop_core::report_error;

/// A callback, its arguments and the `contextvars.Context` it runs in.
pub(crate) struct Payload {
    pub(crate) callback: PyObject,
    pub(crate) args: Py<PyTuple>,
    pub(crate) context: PyObject,
}

impl Payload {
    /// Drops the references through `py` (a `Py`'s own drop first asks whether this thread
    /// holds the GIL, once per reference; this runs once per callback).
    pub(crate) fn release(self, py: Python<'_>) {
        drop(self.callback.into_bound(py));
        drop(self.args.into_bound(py));
        drop(self.context.into_bound(py));
    }
}

/// asyncio's `Handle` (what `call_soon` returns): `cancel()`, `cancelled()`.
#[pyclass(subclass, frozen, weakref, module = "aioloop._aioloop")]
pub struct Handle {
    payload: Mutex<Option<Payload>>,
    cancelled: AtomicBool,
    /// Released by hand in `Drop` (with the GIL, without PyO3's check for it).
    loop_: ManuallyDrop<PyObject>,
    /// Where it was created, in debug mode (asyncio's `_source_traceback`).
    source_traceback: Option<PyObject>,
}

impl Drop for Handle {
    /// Releases the loop reference directly: dropping a `Py` asks PyO3 whether this
    /// thread holds the GIL (a thread-local read), once per callback on the hot path.
    fn drop(&mut self) {
        // SAFETY: a `Handle` is built only inside GIL-holding code and moved at once into
        // its Python object (`Py::new`), whose deallocation — with the GIL — drops it; a
        // failed `Py::new` drops it in that same GIL-holding code.
        let py = unsafe { Python::assume_gil_acquired() };
        // SAFETY: taken once, here; the field is not used after.
        let l = unsafe { ManuallyDrop::take(&mut self.loop_) };
        drop(l.into_bound(py));
    }
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
            payload: Mutex::new(Some(payload)),
            cancelled: AtomicBool::new(false),
            loop_: ManuallyDrop::new(loop_),
            source_traceback,
        }
    }

    /// Runs the callback in its context (once), reporting an exception to the loop.
    pub(crate) fn run(slf: &Bound<'_, Handle>) {
        let py = slf.py();
        let h = slf.get();
        if h.cancelled.load(Ordering::Acquire) {
            return;
        }
        let Some(p) = h.payload.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        if let Err(e) = run_in_context(py, p.context.bind(py), || {
            call_spread(p.callback.bind(py), p.args.bind(py))
        }) {
            let what = format!("Exception in callback {}", describe(&p));
            report_error(py, h.loop_.bind(py), e, what, "handle", slf.as_any());
        }
        p.release(py);
    }

    /// Runs the callback in its context without consuming it: an `add_reader`/`add_writer`
    /// handle runs once per iteration its descriptor is ready, until cancelled.
    pub(crate) fn run_repeating(slf: &Bound<'_, Handle>) {
        let py = slf.py();
        let h = slf.get();
        if h.cancelled.load(Ordering::Acquire) {
            return;
        }
        let (callback, args, context) = {
            let p = h.payload.lock().unwrap_or_else(|e| e.into_inner());
            let Some(p) = p.as_ref() else { return };
            (
                p.callback.clone_ref(py),
                p.args.clone_ref(py),
                p.context.clone_ref(py),
            )
        };
        if let Err(e) = run_in_context(py, context.bind(py), || {
            callback.bind(py).call1(args.bind(py)).map(drop)
        }) {
            let p = Payload {
                callback,
                args,
                context,
            };
            let what = format!("Exception in callback {}", describe(&p));
            report_error(py, h.loop_.bind(py), e, what, "handle", slf.as_any());
        }
    }
}

/// `callback(*args)` through vectorcall, straight from the tuple's items (no
/// `PyObject_Call` unpacking the tuple again on every callback).
fn call_spread(callback: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
    let py = callback.py();
    let n = args.len();
    // SAFETY: `args` is a live tuple (not the limited API: `PyTupleObject`'s layout is
    // CPython's), whose `n` items stay alive while it does, which outlasts the call.
    let items = unsafe {
        (*args.as_ptr().cast::<ffi::PyTupleObject>())
            .ob_item
            .as_ptr()
    };
    // SAFETY: GIL held (`py`); `items` holds `n` live references (above); no keywords.
    let r = unsafe { ffi::PyObject_Vectorcall(callback.as_ptr(), items, n, std::ptr::null_mut()) };
    // SAFETY: a new reference, or null with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, r) }.map(drop)
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
        format!("{name}{}", p.args.bind(py))
    })
}

#[pymethods]
impl Handle {
    /// Cancels the callback: it will not run; drops it and its arguments.
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        let dropped = self
            .payload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(dropped);
    }

    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    fn get_context(&self, py: Python<'_>) -> Option<PyObject> {
        let p = self.payload.lock().unwrap_or_else(|e| e.into_inner());
        p.as_ref().map(|p| p.context.clone_ref(py))
    }

    #[getter]
    fn _source_traceback(&self, py: Python<'_>) -> Option<PyObject> {
        self.source_traceback.as_ref().map(|t| t.clone_ref(py))
    }

    fn _run(slf: &Bound<'_, Handle>) {
        Handle::run(slf)
    }

    fn __repr__(&self) -> String {
        let p = self.payload.lock().unwrap_or_else(|e| e.into_inner());
        let cb = p.as_ref().map(describe).unwrap_or_default();
        let state = if self.cancelled() { " cancelled" } else { "" };
        format!("<Handle{state} {cb}>")
    }
}

#[pymethods]
impl TimerHandle {
    fn when(&self) -> f64 {
        self.when
    }

    fn cancel(slf: &Bound<'_, TimerHandle>) {
        slf.as_super().get().cancel();
        if let Some(t) = slf.get().timer.get() {
            t.cancel();
        }
    }

    fn __repr__(slf: &Bound<'_, TimerHandle>) -> String {
        let base = slf.as_super().get().__repr__();
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
