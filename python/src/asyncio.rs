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

cached!(enter_task, "asyncio.tasks", "_enter_task");
cached!(leave_task, "asyncio.tasks", "_leave_task");
cached!(register_task, "asyncio.tasks", "_register_task");
cached!(unregister_task, "asyncio.tasks", "_unregister_task");
cached!(cancelled_error, "asyncio", "CancelledError");
cached!(invalid_state_error, "asyncio", "InvalidStateError");
cached!(iscoroutine, "asyncio.coroutines", "iscoroutine");
cached!(get_loop, "asyncio.futures", "_get_loop");
cached!(isgenerator, "inspect", "isgenerator");

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
