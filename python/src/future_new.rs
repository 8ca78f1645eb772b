//! `loop.create_future()` without a Python frame.
//!
//! asyncio's streams create a future for every read that has to wait
//! (`StreamReader._wait_for_data`), so on a request/response connection one per message:
//! `BaseEventLoop.create_future` is a Python function (`return futures.Future(loop=self)`).
//! Here the same call is made from Rust — no frame — always with the `loop=` keyword, in a
//! keyword dictionary reused from call to call. (Calling `Future()` bare when this loop is
//! the running one needs no dictionary but costs more: on 3.11 both the check and the
//! constructor ask asyncio's `_get_running_loop`, which makes a `getpid` system call each
//! time — two per future, two per round trip of a streams echo; uvloop and rloop make
//! none.) The future is asyncio's own `Future`; its constructor still asks
//! `loop.get_debug()`, which `Loop` answers in Rust as well.

use std::cell::OnceCell;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::asyncio;

thread_local! {
    /// The constructor's keyword dictionary `{"loop": ...}`, reused: the value is set just
    /// before the call and reset to `None` just after (no loop kept alive by it). A nested
    /// `create_future` (a `get_debug` override calling back) finds the constructor done
    /// with it: argument parsing comes first. Per thread, so never shared between two
    /// constructors running at once.
    static KWARGS: OnceCell<Py<PyDict>> = const { OnceCell::new() };
}

/// `asyncio.futures.Future(loop=loop_)`, as the class call would make it (`tp_new`, then
/// `tp_init` if an instance came back) but without building a keyword dictionary per call
/// (CPython's vectorcall-to-`tp_call` path builds one from the keyword names: ~a fifth of
/// the call).
pub(crate) fn create_future<'py>(loop_: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = loop_.py();
    let future = asyncio::future_class(py)?;
    new_with_loop(future.downcast::<PyType>()?, &PyTuple::empty(py), loop_)
}

/// `ty(*args, loop=loop_)` through the reused keyword dictionary (see `create_future`);
/// `create_task` makes asyncio's `Task(coro, loop=self)` this way too.
pub(crate) fn new_with_loop<'py>(
    ty: &Bound<'py, PyType>,
    args: &Bound<'py, PyTuple>,
    loop_: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = loop_.py();
    let kw = KWARGS.with(|cell| match cell.get() {
        Some(d) => d.bind(py).clone(),
        None => {
            let d = PyDict::new(py);
            cell.get_or_init(|| d.clone().unbind());
            d
        }
    });
    let key = pyo3::intern!(py, "loop");
    // SAFETY: GIL held; `kw` is a live dict and `key`/`loop_` live objects.
    if unsafe { ffi::PyDict_SetItem(kw.as_ptr(), key.as_ptr(), loop_.as_ptr()) } < 0 {
        return Err(PyErr::fetch(py));
    }
    let r = construct(ty, args, &kw);
    // SAFETY: as above; `None` is a live object.
    unsafe { ffi::PyDict_SetItem(kw.as_ptr(), key.as_ptr(), ffi::Py_None()) };
    r
}

/// `ty(*args, **kw)` the way `type.__call__` does it, for a `kw` the caller owns.
fn construct<'py>(
    ty: &Bound<'py, PyType>,
    args: &Bound<'py, PyTuple>,
    kw: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = ty.py();
    let tp = ty.as_type_ptr();
    // SAFETY: `tp` is a live type object (GIL held); its `tp_new` slot is read only.
    let Some(new) = (unsafe { (*tp).tp_new }) else {
        return Err(PyErr::new::<pyo3::exceptions::PyTypeError, _>(
            "cannot create asyncio.Future instances",
        ));
    };
    // SAFETY: `tp_new` called as CPython calls it: the type, an argument tuple and a dict
    // of keywords, all live; a new reference or null with an exception set.
    let obj = unsafe { Bound::from_owned_ptr_or_err(py, new(tp, args.as_ptr(), kw.as_ptr())) }?;
    // SAFETY: `obj` is live; as `type.__call__`, `__init__` runs only for an instance of
    // `ty`, through the object's own type's `tp_init` (read only).
    unsafe {
        if ffi::PyObject_TypeCheck(obj.as_ptr(), tp) != 0 {
            if let Some(init) = (*ffi::Py_TYPE(obj.as_ptr())).tp_init {
                if init(obj.as_ptr(), args.as_ptr(), kw.as_ptr()) < 0 {
                    return Err(PyErr::fetch(py));
                }
            }
        }
    }
    Ok(obj)
}
