//! asyncio's functions and classes the binding calls, looked up once per interpreter.

use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyDict;

macro_rules! cached {
    ($name:ident, $module:literal, $attr:literal) => {
        pub(crate) fn $name(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
            static CELL: GILOnceCell<PyObject> = GILOnceCell::new();
            CELL.get_or_try_init(py, || {
                Ok::<_, PyErr>(py.import($module)?.getattr($attr)?.unbind())
            })
            .map(|o| o.bind(py))
        }
    };
}

/// The `asyncio` module, imported once.
pub(crate) fn asyncio_module(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static CELL: GILOnceCell<PyObject> = GILOnceCell::new();
    CELL.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("asyncio")?.into_any().unbind())
    })
    .map(|o| o.bind(py))
}

cached!(enter_task, "asyncio.tasks", "_enter_task");
cached!(leave_task, "asyncio.tasks", "_leave_task");
cached!(register_task, "asyncio.tasks", "_register_task");
cached!(unregister_task, "asyncio.tasks", "_unregister_task");
cached!(cancelled_error, "asyncio", "CancelledError");
cached!(invalid_state_error, "asyncio", "InvalidStateError");
cached!(iscoroutine, "asyncio.coroutines", "iscoroutine");
cached!(get_loop, "asyncio.futures", "_get_loop");
cached!(isgenerator, "inspect", "isgenerator");
cached!(task_name_counter, "asyncio.tasks", "_task_name_counter");
cached!(future_class, "asyncio.futures", "Future");
cached!(
    buffered_protocol_class,
    "asyncio.protocols",
    "BufferedProtocol"
);
cached!(logger, "asyncio.log", "logger");
cached!(reprlib_repr, "reprlib", "repr");

/// `f(*args)` through vectorcall (no argument tuple: the task-lifetime functions run on
/// every step of a native task).
pub(crate) fn vectorcall<'py>(
    f: &Bound<'py, PyAny>,
    args: &[*mut pyo3::ffi::PyObject],
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: GIL held (`f`'s lifetime); `args` are live references borrowed for the
    // call; no keywords.
    let r = unsafe {
        pyo3::ffi::PyObject_Vectorcall(f.as_ptr(), args.as_ptr(), args.len(), std::ptr::null_mut())
    };
    // SAFETY: a new reference, or null with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(f.py(), r) }
}

/// `f(a)` through vectorcall.
pub(crate) fn call1<'py>(
    f: &Bound<'py, PyAny>,
    a: &Bound<'_, impl Sized>,
) -> PyResult<Bound<'py, PyAny>> {
    vectorcall(f, &[a.as_ptr()])
}

/// `f(a, b)` through vectorcall.
pub(crate) fn call2<'py>(
    f: &Bound<'py, PyAny>,
    a: &Bound<'_, impl Sized>,
    b: &Bound<'_, impl Sized>,
) -> PyResult<Bound<'py, PyAny>> {
    vectorcall(f, &[a.as_ptr(), b.as_ptr()])
}

/// `{'message': ..., 'exception': ..., key: obj}` for `loop.call_exception_handler`.
pub(crate) fn error_context<'py>(
    py: Python<'py>,
    message: String,
    exc: &Bound<'py, PyAny>,
    key: &str,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("message", message)?;
    d.set_item("exception", exc)?;
    d.set_item(key, obj)?;
    Ok(d)
}

/// `contextvars.copy_context()` without the Python call.
pub(crate) fn copy_context(py: Python<'_>) -> PyResult<PyObject> {
    // SAFETY: GIL held (`py`); PyContext_CopyCurrent returns a new reference or NULL with
    // an exception set, which from_owned_ptr_or_err turns into the error.
    unsafe { Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyContext_CopyCurrent()) }
        .map(Bound::unbind)
}

/// `fut.add_done_callback(cb, context=ctx)` through vectorcall (no keyword dictionary: a
/// native task does this on every await of a future).
pub(crate) fn add_done_callback(
    fut: &Bound<'_, PyAny>,
    cb: &Bound<'_, PyAny>,
    ctx: &Bound<'_, PyAny>,
) -> PyResult<()> {
    static KWNAMES: GILOnceCell<Py<pyo3::types::PyTuple>> = GILOnceCell::new();
    let py = fut.py();
    let kwnames = KWNAMES.get_or_try_init(py, || {
        pyo3::types::PyTuple::new(py, [pyo3::intern!(py, "context")]).map(Bound::unbind)
    })?;
    let name = pyo3::intern!(py, "add_done_callback");
    let args = [fut.as_ptr(), cb.as_ptr(), ctx.as_ptr()];
    // SAFETY: GIL held (`py`); `args` holds self, one positional and the value of the one
    // keyword `kwnames` names, all live for the call (the vectorcall convention: nargs
    // counts self and the positional, not the keyword value).
    let r = unsafe {
        pyo3::ffi::PyObject_VectorcallMethod(name.as_ptr(), args.as_ptr(), 2, kwnames.as_ptr())
    };
    // SAFETY: a new reference, or null with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, r) }.map(drop)
}
