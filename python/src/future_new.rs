//! `loop.create_future()` without a Python frame.
//!
//! asyncio's streams create a future for every read that has to wait
//! (`StreamReader._wait_for_data`), so on a request/response connection one per message:
//! `BaseEventLoop.create_future` is a Python function (`return futures.Future(loop=self)`).
//! Here the same call is made from Rust through vectorcall — no frame — always with the
//! `loop=` keyword. (Calling `Future()` bare when this loop is the running one saves the
//! keyword's dictionary but costs more: on 3.11 both the check and the constructor ask
//! asyncio's `_get_running_loop`, which makes a `getpid` system call each time — two per
//! future, two per round trip of a streams echo, ~0.5 µs each on this machine; uvloop and
//! rloop make none.) The future is asyncio's own `Future`; its constructor still asks
//! `loop.get_debug()`, which `Loop` answers in Rust as well.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyTuple;

use crate::asyncio;

/// `asyncio.futures.Future(loop=loop_)`.
pub(crate) fn create_future<'py>(loop_: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = loop_.py();
    static KWNAMES: GILOnceCell<Py<PyTuple>> = GILOnceCell::new();
    let future = asyncio::future_class(py)?;
    let kwnames =
        KWNAMES.get_or_try_init(py, || Ok::<_, PyErr>(PyTuple::new(py, ["loop"])?.unbind()))?;
    let args = [loop_.as_ptr()];
    // SAFETY: the GIL is held (`py`); `future` and `kwnames` are live objects the cells
    // own; `args` holds the one keyword value that the one name in `kwnames` describes
    // (no positional arguments: nargsf 0). The result is a new reference or NULL with an
    // exception set, which from_owned_ptr_or_err turns into the error.
    unsafe {
        let r = ffi::PyObject_Vectorcall(future.as_ptr(), args.as_ptr(), 0, kwnames.as_ptr());
        Bound::from_owned_ptr_or_err(py, r)
    }
}
