//! The hottest small methods as plain C methods (`METH_NOARGS`/`METH_O` definitions),
//! installed on their PyO3 class at module initialisation in place of PyO3's wrappers.
//!
//! A streams round trip calls `loop.create_future()`, `loop.get_debug()` (asyncio's C
//! `Future` constructor asks it), `transport.write(data)` and `transport.is_closing()`
//! (`StreamWriter.drain`) once or twice each. Through `#[pymethods]` each call pays PyO3's
//! trampoline (GIL-count bookkeeping, panic guard), its check of `self`'s type against a
//! lazily initialised type object and its argument extraction: callgrind measured ~90–110
//! instructions of trampoline per call plus ~40 for the type check, more than `get_debug`
//! or `is_closing` themselves. As C methods of the class, CPython's method descriptor
//! checks `self`'s type itself and calls the function with the argument as is (and
//! Python's specialised calls of a `METH_NOARGS`/`METH_O` descriptor reach it directly).
//!
//! Protocol: (1) a definition here is installed only on the class its function expects
//! (`install`), as a method descriptor, so CPython calls it only with `self` an instance
//! of that class or a subclass (the descriptor's own check), (2) with the GIL held and
//! the argument its flags name; (3) no Rust panic unwinds into CPython (`entry`).

use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// A static method definition; CPython only reads it.
pub(crate) struct RawDef(pub(crate) ffi::PyMethodDef);

// SAFETY: the definition is immutable (CPython never writes through the pointer it is
// given) and its pointers are to 'static C strings and a function.
unsafe impl Sync for RawDef {}

impl RawDef {
    /// A `METH_NOARGS` method `f(self, NULL)`.
    pub(crate) const fn noargs(
        name: &'static CStr,
        f: ffi::PyCFunction,
        doc: &'static CStr,
    ) -> RawDef {
        RawDef::new(name, f, ffi::METH_NOARGS, doc)
    }

    /// A `METH_O` method `f(self, arg)`.
    pub(crate) const fn one_arg(
        name: &'static CStr,
        f: ffi::PyCFunction,
        doc: &'static CStr,
    ) -> RawDef {
        RawDef::new(name, f, ffi::METH_O, doc)
    }

    const fn new(
        name: &'static CStr,
        f: ffi::PyCFunction,
        flags: std::os::raw::c_int,
        doc: &'static CStr,
    ) -> RawDef {
        RawDef(ffi::PyMethodDef {
            ml_name: name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer { PyCFunction: f },
            ml_flags: flags,
            ml_doc: doc.as_ptr(),
        })
    }
}

/// `$vis static $name: [RawDef; N]`: C methods of `$T`'s class, for [`install`] on that
/// class only (protocol rule 1). Each is `noargs`/`one_arg` (its flags), a Python name, a
/// docstring, and a body `|slf, arg| -> PyResult<PyObject>` (`slf: &Bound<$T>`, `arg`:
/// `None` for `noargs`) run under [`entry`].
macro_rules! raw_methods {
    ($vis:vis static $name:ident on $T:ty = [$(
        $kind:ident $py:literal ($doc:literal) |$slf:ident, $arg:pat_param| $body:expr;
    )+]) => {
        $vis static $name: [$crate::rawmeth::RawDef; [$($py),+].len()] = [$(
            $crate::rawmeth::RawDef::$kind(
                $py,
                {
                    unsafe extern "C" fn raw(
                        slf: *mut pyo3::ffi::PyObject,
                        arg: *mut pyo3::ffi::PyObject,
                    ) -> *mut pyo3::ffi::PyObject {
                        // SAFETY: installed on `$T`'s class with the flags `$kind` names
                        // (rawmeth.rs rules 1 and 2).
                        unsafe { $crate::rawmeth::on::<$T>(slf, arg, |$slf, $arg| $body) }
                    }
                    raw
                },
                $doc,
            )
        ),+];
    };
}
pub(crate) use raw_methods;

/// Installs `defs` on `ty` as method descriptors (protocol rule 1: each definition's
/// function expects `ty`'s instances), replacing the attributes of the same names.
pub(crate) fn install(ty: &Bound<'_, PyType>, defs: &'static [RawDef]) -> PyResult<()> {
    let py = ty.py();
    for def in defs {
        let p = std::ptr::addr_of!(def.0).cast_mut();
        // SAFETY: GIL held; `ty` is a live type and `def` a 'static definition CPython
        // only reads. A new reference, or null with an exception set.
        let descr = unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_type_ptr(), p))
        }?;
        // SAFETY: `ml_name` points at a 'static C string.
        let name = unsafe { CStr::from_ptr(def.0.ml_name) };
        ty.setattr(name.to_str()?, descr)?;
    }
    Ok(())
}

/// The C side of a method: runs `f` under a panic guard and converts its result to
/// CPython's convention (a new reference, or null with the exception set) (rule 3).
pub(crate) fn entry(f: impl FnOnce(Python<'_>) -> PyResult<PyObject>) -> *mut ffi::PyObject {
    // SAFETY: CPython calls methods with the GIL held (rule 2).
    let py = unsafe { Python::assume_gil_acquired() };
    match catch_unwind(AssertUnwindSafe(|| f(py))) {
        Ok(Ok(obj)) => obj.into_ptr(),
        Ok(Err(e)) => {
            e.restore(py);
            std::ptr::null_mut()
        }
        Err(_) => {
            PyRuntimeError::new_err("aioloop: a method panicked (a bug)").restore(py);
            std::ptr::null_mut()
        }
    }
}

/// The body of a method installed on `T`'s class: `f(self, arg)` under `entry` (`arg`:
/// null for a `METH_NOARGS` method).
///
/// # Safety
/// `slf` and `arg` are what CPython passes to a definition installed (rule 1) on `T`'s
/// class: `self`, live for the call, and the argument its flags name (rule 2).
pub(crate) unsafe fn on<T: pyo3::PyClass>(
    slf: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
    f: impl FnOnce(&Bound<'_, T>, Option<&Bound<'_, PyAny>>) -> PyResult<PyObject>,
) -> *mut ffi::PyObject {
    entry(|py| {
        // SAFETY: live borrowed references for the call, of which we take our own (the
        // caller's contract); the method descriptor checked that `slf` is a `T` (rule 1).
        let (slf, arg) = unsafe {
            (
                Bound::from_borrowed_ptr(py, slf).downcast_into_unchecked::<T>(),
                Bound::from_borrowed_ptr_or_opt(py, arg),
            )
        };
        f(&slf, arg.as_ref())
    })
}
