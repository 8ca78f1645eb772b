//! asyncio's C `Future` read and written in place, for the futures a native task awaits
//! most (every `StreamReader._wait_for_data`, every `loop.create_future()`).
//!
//! asyncio's C `Task`, awaiting a future of exactly the C `Future` type, reads the
//! future's struct: its loop, its blocking flag, its first callback slot, its state. Going
//! through the C descriptors instead (cfunc.rs) still costs a call per attribute and, for
//! `add_done_callback(wakeup, context=ctx)`, CPython's generic keyword parser (~160
//! instructions per await, callgrind). The struct (`FutureObj` in `_asynciomodule.c`) is
//! not public API, so this module does not assume it: [`CFuture::probe`] makes a future
//! with asyncio's own constructor, drives it through its public methods (set the blocking
//! flag, add a done callback, set a result or an exception, cancel) and checks that each
//! field it will use holds what the public API says at the offset expected for CPython
//! 3.10–3.13 (`PyObject` header, then `loop`, `callback0`, `context0`, `callbacks`,
//! `exception`, `exception_tb`, `result`, `source_tb`, `cancel_msg` pointers, then the
//! `state`, `log_tb` and `blocking` ints). Any mismatch, another version, or an error
//! during the probe leaves the task on the descriptor path.
//!
//! What is done in place, and only in the case shown (anything else goes through the
//! future's own methods, which raise asyncio's errors):
//! * `_asyncio_future_blocking`, `get_loop()`, `_asyncio_future_blocking = False`: the
//!   fields, on an initialised future (its loop set; the C getters raise otherwise);
//! * `add_done_callback(wakeup, context=ctx)`: on a pending future with no callback yet,
//!   the first callback slot, as the C method fills it (it schedules at once when done,
//!   and appends to a list when a callback is already there: those cases call it);
//! * `result()` in the wakeup, whose value the task does not need: a finished future
//!   with no exception returns normally (the C method clears `log_tb`, which only
//!   `set_exception` sets).
//!
//! Protocol: (1) every accessor is used only on an object whose type is exactly the type
//! the probe verified (callers check; a subclass may have a different layout); (2) the
//! GIL is held, so the fields do not change under a reader (the C methods run with it);
//! (3) a reference stored into the struct is a new one, as the C code stores it, and the
//! slot was empty (nothing is overwritten); the future's `tp_traverse`/`tp_clear` and
//! dealloc then own it as they own the ones the C method stores.

use std::mem::size_of;
use std::os::raw::c_int;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};

/// A pointer field's index after the object header (`FutureObj_HEAD`'s order).
#[derive(Clone, Copy)]
enum Ptr {
    Loop = 0,
    Callback0 = 1,
    Context0 = 2,
    Callbacks = 3,
    Exception = 4,
    Result = 6,
}

/// An `int` field's index after the nine pointer fields.
#[derive(Clone, Copy)]
enum Int {
    State = 0,
    LogTb = 1,
    Blocking = 2,
}

/// asyncio's `fut_state` values.
const PENDING: c_int = 0;
const CANCELLED: c_int = 1;
const FINISHED: c_int = 2;

const HEADER: usize = size_of::<ffi::PyObject>();
const POINTERS: usize = 9;

fn ptr_offset(f: Ptr) -> usize {
    HEADER + f as usize * size_of::<*mut ffi::PyObject>()
}

fn int_offset(f: Int) -> usize {
    HEADER + POINTERS * size_of::<*mut ffi::PyObject>() + f as usize * size_of::<c_int>()
}

/// Proof that asyncio's C `Future` type has the layout this module uses (only
/// [`CFuture::probe`] makes one).
pub(crate) struct CFuture {
    _verified: (),
}

/// The slot of pointer field `f` of `obj`.
///
/// # Safety
/// `obj` is a live object of the verified type (protocol rule 1).
unsafe fn ptr_slot(obj: *mut ffi::PyObject, f: Ptr) -> *mut *mut ffi::PyObject {
    // SAFETY: the verified layout puts the field at this offset, inside the object.
    unsafe { obj.cast::<u8>().add(ptr_offset(f)).cast() }
}

/// The slot of `int` field `f` of `obj`.
///
/// # Safety
/// As for [`ptr_slot`].
unsafe fn int_slot(obj: *mut ffi::PyObject, f: Int) -> *mut c_int {
    // SAFETY: as in `ptr_slot`.
    unsafe { obj.cast::<u8>().add(int_offset(f)).cast() }
}

impl CFuture {
    /// Checks the layout on a future made by `future_type` (asyncio's C `Future`); `None`
    /// when anything differs from what this module expects (module docs).
    pub(crate) fn probe(future_type: &Bound<'_, PyType>) -> Option<CFuture> {
        let py = future_type.py();
        let version = py.version_info();
        if (version.major, version.minor) < (3, 10) || (version.major, version.minor) > (3, 13) {
            return None;
        }
        // SAFETY: reading the size of a live type object.
        let basicsize = unsafe { (*future_type.as_type_ptr()).tp_basicsize };
        if usize::try_from(basicsize).unwrap_or(0) < int_offset(Int::Blocking) + size_of::<c_int>()
        {
            return None;
        }
        match Self::layout_matches(future_type) {
            Ok(true) => Some(CFuture { _verified: () }),
            _ => None,
        }
    }

    /// Drives three fresh futures through the public API and compares the fields.
    fn layout_matches(ty: &Bound<'_, PyType>) -> PyResult<bool> {
        let py = ty.py();
        // A stand-in loop: the constructor asks `get_debug()`, completion `call_soon`.
        let fake_loop = py.eval(
            c"__import__('types').SimpleNamespace(get_debug=lambda: False, call_soon=lambda *a, **k: None)",
            None,
            None,
        )?;
        let kw = PyDict::new(py);
        kw.set_item("loop", &fake_loop)?;
        let new = || ty.call((), Some(&kw));
        let ptr = |o: &Bound<'_, PyAny>, f| {
            // SAFETY: reading a field of a live future of this type at the offset under
            // test (inside the object: checked against `tp_basicsize` by `probe`).
            unsafe { *ptr_slot(o.as_ptr(), f) }
        };
        // SAFETY: as above, for the `int` fields.
        let int = |o: &Bound<'_, PyAny>, f| unsafe { *int_slot(o.as_ptr(), f) };
        let mut ok = true;

        let fut = new()?;
        ok &= ptr(&fut, Ptr::Loop) == fake_loop.as_ptr();
        for f in [
            Ptr::Callback0,
            Ptr::Context0,
            Ptr::Callbacks,
            Ptr::Exception,
            Ptr::Result,
        ] {
            ok &= ptr(&fut, f).is_null();
        }
        ok &= int(&fut, Int::State) == PENDING && int(&fut, Int::Blocking) == 0;
        fut.setattr("_asyncio_future_blocking", true)?;
        ok &= int(&fut, Int::Blocking) == 1;
        fut.setattr("_asyncio_future_blocking", false)?;
        ok &= int(&fut, Int::Blocking) == 0;
        let cb = py.eval(c"lambda f: None", None, None)?;
        let ctx = crate::asyncio::copy_context(py)?.into_bound(py);
        let cb_kw = PyDict::new(py);
        cb_kw.set_item("context", &ctx)?;
        fut.call_method("add_done_callback", (&cb,), Some(&cb_kw))?;
        ok &= ptr(&fut, Ptr::Callback0) == cb.as_ptr()
            && ptr(&fut, Ptr::Context0) == ctx.as_ptr()
            && ptr(&fut, Ptr::Callbacks).is_null();
        let value = PyDict::new(py);
        fut.call_method1("set_result", (&value,))?;
        ok &= int(&fut, Int::State) == FINISHED
            && ptr(&fut, Ptr::Result) == value.as_ptr()
            && ptr(&fut, Ptr::Exception).is_null()
            && ptr(&fut, Ptr::Callback0).is_null();

        let failed = new()?;
        let exc = pyo3::exceptions::PyValueError::new_err("probe").into_value(py);
        failed.call_method1("set_exception", (&exc,))?;
        ok &= int(&failed, Int::State) == FINISHED
            && ptr(&failed, Ptr::Exception) == exc.as_ptr()
            && int(&failed, Int::LogTb) == 1;
        failed.call_method0("exception")?;
        ok &= int(&failed, Int::LogTb) == 0;

        let cancelled = new()?;
        cancelled.call_method0("cancel")?;
        ok &= int(&cancelled, Int::State) == CANCELLED;
        Ok(ok)
    }

    /// The future's loop (borrowed), or `None` for a future whose `__init__` never ran.
    ///
    /// # Safety
    /// Protocol rule 1.
    pub(crate) unsafe fn loop_ptr(&self, obj: *mut ffi::PyObject) -> Option<*mut ffi::PyObject> {
        // SAFETY: the caller's contract; a read under the GIL (rule 2).
        let l = unsafe { *ptr_slot(obj, Ptr::Loop) };
        (!l.is_null()).then_some(l)
    }

    /// `_asyncio_future_blocking`, on an initialised future (`loop_ptr` is `Some`).
    ///
    /// # Safety
    /// Protocol rule 1.
    pub(crate) unsafe fn blocking(&self, obj: *mut ffi::PyObject) -> bool {
        // SAFETY: the caller's contract; a read under the GIL (rule 2).
        unsafe { *int_slot(obj, Int::Blocking) != 0 }
    }

    /// `_asyncio_future_blocking = False`, on an initialised future.
    ///
    /// # Safety
    /// Protocol rule 1.
    pub(crate) unsafe fn clear_blocking(&self, obj: *mut ffi::PyObject) {
        // SAFETY: the caller's contract; a write under the GIL (rule 2), the value the C
        // setter stores for a false value.
        unsafe { *int_slot(obj, Int::Blocking) = 0 }
    }

    /// `add_done_callback(cb, context=ctx)` when the future is pending with no callback:
    /// stores both in the first slot and returns true; otherwise changes nothing and
    /// returns false (the caller then calls the method).
    ///
    /// # Safety
    /// Protocol rule 1; `cb` and `ctx` are live (the future takes its own references).
    pub(crate) unsafe fn add_first_callback(
        &self,
        obj: *mut ffi::PyObject,
        cb: *mut ffi::PyObject,
        ctx: *mut ffi::PyObject,
    ) -> bool {
        // SAFETY: the caller's contract; reads and writes under the GIL (rule 2); the
        // slots are empty (checked), so nothing is overwritten, and the references stored
        // are new ones (rule 3).
        unsafe {
            if *int_slot(obj, Int::State) != PENDING
                || !(*ptr_slot(obj, Ptr::Callback0)).is_null()
                || !(*ptr_slot(obj, Ptr::Callbacks)).is_null()
                || self.loop_ptr(obj).is_none()
            {
                return false;
            }
            *ptr_slot(obj, Ptr::Callback0) = ffi::Py_NewRef(cb);
            *ptr_slot(obj, Ptr::Context0) = ffi::Py_NewRef(ctx);
        }
        true
    }

    /// Whether `result()` would return without raising: finished, with no exception.
    ///
    /// # Safety
    /// Protocol rule 1.
    pub(crate) unsafe fn finished_ok(&self, obj: *mut ffi::PyObject) -> bool {
        // SAFETY: the caller's contract; reads under the GIL (rule 2).
        unsafe {
            *int_slot(obj, Int::State) == FINISHED && (*ptr_slot(obj, Ptr::Exception)).is_null()
        }
    }
}
