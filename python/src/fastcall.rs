//! `Loop.call_soon` as a raw `METH_FASTCALL | METH_KEYWORDS` method.
//!
//! `call_soon` is the loop's hottest entry: every callback of a busy loop, every step of
//! asyncio's C `Task` (`call_soon(self.__step, context=...)`) and every future callback
//! comes through it. PyO3's generated wrapper spends as much as the call itself does
//! (callgrind, 100k chained `call_soon`s: ~300 of ~2,800 instructions per callback) on
//! generic work this method does not need: collecting `*args` through the generic argument
//! parser, checking `self`'s type against a lazily initialised type object, and the GIL
//! bookkeeping of its trampoline. This wrapper does only what `call_soon` needs: one
//! positional `callback`, the rest as the argument tuple, one keyword `context`.
//!
//! The bound copy. asyncio's C `Task` and `Future` reach `call_soon` with
//! `PyObject_GetAttr(loop, "call_soon")` (it passes `context=`, so not through the method
//! lookup that skips binding): every task step and every future callback allocates a bound
//! method — a GC-tracked object, so also a step toward the next young collection (callgrind,
//! 10k `create_task` + gather: ~1,460 instructions per lookup, about a tenth of the whole
//! workload). `EventLoop.__init__` therefore stores, in the loop's instance dictionary, one
//! built-in function bound for good: its `self` is a weak reference to the loop (a strong
//! one would make every loop a reference cycle), which the entry resolves. Attribute
//! lookup finds it there without allocating. It is installed only when the loop's class
//! does not override `call_soon` (a subclass's own method must win).
//!
//! Protocol: (1) the method is installed on `Loop`'s type through a method descriptor
//! (`PyDescr_NewMethod`), which checks that `self` is a `Loop` (or subclass) before
//! calling; the bound copy's `self` is a weak reference made by `bind` to a `Loop`
//! (checked there), which is either dead or still that `Loop`; (2) CPython calls it with
//! the GIL held; (3) `args` holds `PyVectorcall_NARGS(nargsf)` positional arguments
//! followed by one value per name of `kwnames` (the vectorcall convention); (4) no Rust
//! panic unwinds into CPython.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyString, PyTuple, PyType};

use crate::loop_core::Loop;

/// Installs the fast `call_soon` on `Loop`'s type (module initialisation).
pub(crate) fn install(loop_type: &Bound<'_, PyType>) -> PyResult<()> {
    let py = loop_type.py();
    // The definition must outlive the type, which lives as long as the interpreter.
    let def: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: c"call_soon".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: call_soon,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: c"call_soon(callback, *args, context=None): queue callback(*args) to run on the next pass, in context (asyncio's Handle)".as_ptr(),
    }));
    // SAFETY: `loop_type` is a live type object and `def` a valid, 'static method
    // definition (protocol rule 1: the descriptor type-checks `self` against it).
    let descr = unsafe { ffi::PyDescr_NewMethod(loop_type.as_type_ptr(), def) };
    // SAFETY: a new reference or null with an exception set.
    let descr = unsafe { Bound::from_owned_ptr_or_err(py, descr) }?;
    loop_type.setattr("call_soon", descr)
}

/// The bound copy's definition (module docs): `self` is a weak reference to the loop.
struct BoundDef(ffi::PyMethodDef);

// SAFETY: the definition is immutable (CPython only reads a `PyMethodDef`) and its pointers
// are to 'static C strings and a function, valid from any thread.
unsafe impl Sync for BoundDef {}

static BOUND_DEF: BoundDef = BoundDef(ffi::PyMethodDef {
    ml_name: c"call_soon".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer {
        PyCFunctionFastWithKeywords: call_soon_bound,
    },
    ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
    ml_doc: c"call_soon(callback, *args, context=None): queue callback(*args) to run on the next pass, in context (asyncio's Handle)".as_ptr(),
});

/// `loop`'s bound `call_soon` for its instance dictionary (module docs).
pub(crate) fn bind<'py>(lp: &Bound<'py, Loop>) -> PyResult<Bound<'py, PyAny>> {
    let py = lp.py();
    // SAFETY: GIL held; `lp` is live. A new reference, or null with an exception set.
    let weak = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyWeakref_NewRef(lp.as_ptr(), ptr::null_mut()))
    }?;
    // SAFETY: `BOUND_DEF` is 'static and never written (CPython only reads definitions);
    // `weak` refers to a `Loop` (protocol rule 1). The function takes its own reference
    // to `weak`; a new reference or null with an exception set.
    unsafe {
        let def = ptr::addr_of!(BOUND_DEF.0).cast_mut();
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyCFunction_NewEx(def, weak.as_ptr(), ptr::null_mut()),
        )
    }
}

/// The bound copy's entry: resolves the weak reference, then as `call_soon`.
unsafe extern "C" fn call_soon_bound(
    weak: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: `weak` is the weak reference `bind` made (protocol rule 1); GIL held (rule
    // 2). A borrowed reference: the loop, or None once it is gone.
    let slf = unsafe { ffi::PyWeakref_GetObject(weak) };
    if slf.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: GIL held (rule 2); None is immortal enough to compare against.
    if slf == unsafe { ffi::Py_None() } {
        // SAFETY: GIL held (rule 2).
        let py = unsafe { Python::assume_gil_acquired() };
        // The loop was collected, so closed by its finaliser (a `call_soon` taken from
        // a loop nobody else holds).
        PyRuntimeError::new_err("Event loop is closed").restore(py);
        return ptr::null_mut();
    }
    // SAFETY: a live `Loop` (rule 1), borrowed for the call: the caller's `args` do not
    // own it, so hold a reference while it runs (a callback cannot run here, but the
    // handle's creation may run Python code in debug mode).
    unsafe {
        ffi::Py_INCREF(slf);
        let r = call_soon(slf, args, nargsf, kwnames);
        ffi::Py_DECREF(slf);
        r
    }
}

/// The C entry point (protocol rules 2–4).
unsafe extern "C" fn call_soon(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls methods with the GIL held (protocol rule 2).
    let py = unsafe { Python::assume_gil_acquired() };
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the arguments are as CPython passes them (protocol rules 1 and 3).
        unsafe { call_soon_inner(py, slf, args, nargsf, kwnames) }
    }));
    match result {
        Ok(Ok(handle)) => handle,
        Ok(Err(e)) => {
            e.restore(py);
            ptr::null_mut()
        }
        Err(_) => {
            PyRuntimeError::new_err("aioloop: call_soon panicked (a bug)").restore(py);
            ptr::null_mut()
        }
    }
}

/// # Safety
/// `slf` is a live `Loop` (rule 1); `args` holds `PyVectorcall_NARGS(nargsf)` positional
/// arguments followed by one per name of `kwnames` (a tuple of `str`, or null) (rule 3).
unsafe fn call_soon_inner(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject> {
    // SAFETY: `slf` is a live object borrowed for this call (rule 1: a `Loop`).
    let slf = unsafe { Bound::from_borrowed_ptr(py, slf) };
    // SAFETY: rule 1 — the method descriptor checked the type before the call.
    let slf = unsafe { slf.downcast_unchecked::<Loop>() };
    // The count without the PY_VECTORCALL_ARGUMENTS_OFFSET flag, which is the sign bit
    // (rule 3): a bit reinterpretation, not a numeric conversion.
    let nargs = (nargsf as usize) & !ffi::PY_VECTORCALL_ARGUMENTS_OFFSET;
    if nargs == 0 {
        return Err(PyTypeError::new_err(
            "call_soon() missing 1 required positional argument: 'callback'",
        ));
    }
    // SAFETY: rule 3 — `args[0..nargs]` are live borrowed references.
    let positional = unsafe { std::slice::from_raw_parts(args, nargs) };
    // SAFETY: as above; the handle takes its own reference.
    let callback = unsafe { Bound::from_borrowed_ptr(py, positional[0]) }.unbind();
    let rest = tuple_of(py, &positional[1..])?;
    let mut context = None;
    if !kwnames.is_null() {
        // SAFETY: rule 3 — `kwnames` is a live tuple of str.
        let names = unsafe { Bound::from_borrowed_ptr(py, kwnames) };
        // SAFETY: CPython passes a tuple (rule 3).
        let names = unsafe { names.downcast_unchecked::<PyTuple>() };
        let want = pyo3::intern!(py, "context");
        for (i, name) in names.iter().enumerate() {
            if !is_name(&name, want)? {
                return Err(PyTypeError::new_err(format!(
                    "call_soon() got an unexpected keyword argument '{name}'"
                )));
            }
            // SAFETY: rule 3 — the value of the i-th keyword follows the positionals.
            let value = unsafe { *args.add(nargs + i) };
            // SAFETY: a live borrowed reference (rule 3).
            context = Some(unsafe { Bound::from_borrowed_ptr(py, value) }.unbind());
        }
    }
    let handle = Loop::call_soon_impl(slf, callback, rest, context)?;
    Ok(handle.into_ptr())
}

/// Whether the keyword `name` is `want`. Names compare by identity first: PyO3's interned
/// string, or the other `"context"` object seen (on 3.11 asyncio's C `Task` passes its
/// static `_Py_ID(context)`, which is not the interned one), kept alive here.
fn is_name(name: &Bound<'_, PyAny>, want: &Bound<'_, PyString>) -> PyResult<bool> {
    static OTHER: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
    let py = name.py();
    if name.is(want) || OTHER.get(py).is_some_and(|o| name.is(o)) {
        return Ok(true);
    }
    let equal = name.eq(want)?;
    if equal {
        let _ = OTHER.set(py, name.clone().unbind());
    }
    Ok(equal)
}

/// A new tuple of `items` (borrowed references).
fn tuple_of(py: Python<'_>, items: &[*mut ffi::PyObject]) -> PyResult<Py<PyTuple>> {
    let n = ffi::Py_ssize_t::try_from(items.len()).unwrap_or(ffi::Py_ssize_t::MAX);
    // SAFETY: GIL held (rule 2); `PyTuple_New(0)` is the shared empty tuple.
    let t = unsafe { ffi::PyTuple_New(n) };
    // SAFETY: a new reference or null with an exception set.
    let t = unsafe { Bound::from_owned_ptr_or_err(py, t) }?;
    for (i, &item) in items.iter().enumerate() {
        // SAFETY: `item` is a live borrowed reference (rule 3); the tuple is new, of
        // length `n`, and slot `i < n` is empty, so SET_ITEM steals the new reference.
        unsafe {
            ffi::Py_INCREF(item);
            ffi::PyTuple_SET_ITEM(t.as_ptr(), i as ffi::Py_ssize_t, item);
        }
    }
    // SAFETY: `t` is a tuple (PyTuple_New).
    Ok(unsafe { t.downcast_into_unchecked::<PyTuple>() }.unbind())
}
