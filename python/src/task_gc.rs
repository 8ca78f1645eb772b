//! The native Task in Python's cycle collector, and its finalizer.
//!
//! A pending task is in a reference cycle as soon as it waits: task → awaited future →
//! done callback (the task's wakeup) → task, and task → cached wakeup → task. asyncio's C
//! Task is a GC type, so such a task, once abandoned (its future dropped, its loop closed
//! with its wakeup queued), is collected and reported — "Task was destroyed but it is
//! pending!". `aioloop.Task` does the same:
//!
//! * `__traverse__`/`__clear__` (PyO3, task.rs) make it a GC type and cover the Rust
//!   fields. PyO3 neither visits nor clears the instance dictionary its `dict` option adds
//!   (asyncio code and tests set attributes on tasks), so [`install`] wraps the type's
//!   `tp_traverse`/`tp_clear` to visit and clear it, at `tp_dictoffset` as CPython places
//!   it.
//! * PyO3 0.23 has no `__del__`; [`install`] sets `tp_finalize` (PEP 442), which reports a
//!   task destroyed pending or with an exception nobody retrieved to the loop's exception
//!   handler, with the task in the context (asyncio's `TaskObj_finalize`/
//!   `FutureObj_finalize`). The collector calls it on an unreachable task before any
//!   `tp_clear`, with the task intact; for a task freed by its reference count the wrapped
//!   `tp_dealloc` calls it first through `PyObject_CallFinalizerFromDealloc`, which runs
//!   it at most once per object and stops the deallocation if the handler resurrected
//!   the task.
//!
//! A task that is scheduled — its step or wakeup handle queued, a timer pending for it —
//! is reachable from its loop (loop_core.rs reports those references: GC), so it is
//! collected only with a loop that is itself garbage, as asyncio's is.
//!
//! Protocol: (1) the wrappers are installed once, on the Task type before any instance
//! exists, and keep the original slots, which they call; (2) the type is final (no Python
//! subclass can change its layout), so every object the wrappers get is an `aioloop.Task`
//! with its dictionary pointer at the type's positive `tp_dictoffset`; (3) CPython calls
//! the slots with the GIL held; (4) no Rust panic unwinds into CPython.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::task::Task;

/// The slots PyO3 made, called by the wrappers (rule 1).
struct Original {
    dealloc: ffi::destructor,
    traverse: ffi::traverseproc,
    clear: ffi::inquiry,
}

static ORIGINAL: OnceLock<Original> = OnceLock::new();

/// Wraps the Task type's slots (rule 1). Idempotent.
pub(crate) fn install(ty: &Bound<'_, PyType>) -> PyResult<()> {
    let tp = ty.as_type_ptr();
    // SAFETY: GIL held; `tp` is the live Task type object, a heap type PyO3 made with
    // `__traverse__`/`__clear__` (so GC slots) and `dict` (so a positive dict offset);
    // its slots are plain fields of the (non-limited API) type struct, written here before
    // the module is returned to Python, so before any Task exists (rule 1).
    unsafe {
        if (*tp).tp_dealloc.map(|f| f as usize) == Some(dealloc as ffi::destructor as usize) {
            return Ok(());
        }
        let (Some(dealloc_), Some(traverse_), Some(clear_)) =
            ((*tp).tp_dealloc, (*tp).tp_traverse, (*tp).tp_clear)
        else {
            return Err(PyRuntimeError::new_err("aioloop.Task: no GC slots"));
        };
        if (*tp).tp_dictoffset <= 0 || (*tp).tp_flags & ffi::Py_TPFLAGS_BASETYPE != 0 {
            return Err(PyRuntimeError::new_err("aioloop.Task: unexpected layout"));
        }
        let orig = ORIGINAL.get_or_init(|| Original {
            dealloc: dealloc_,
            traverse: traverse_,
            clear: clear_,
        });
        if orig.dealloc as usize != dealloc_ as usize {
            return Err(PyRuntimeError::new_err("aioloop.Task: type made twice"));
        }
        (*tp).tp_dealloc = Some(dealloc);
        (*tp).tp_traverse = Some(traverse);
        (*tp).tp_clear = Some(clear);
        (*tp).tp_finalize = Some(finalize);
        ffi::PyType_Modified(tp);
    }
    Ok(())
}

fn original() -> &'static Original {
    ORIGINAL
        .get()
        .expect("the wrappers are installed after ORIGINAL is set")
}

/// Where `obj`'s instance dictionary pointer lives.
///
/// # Safety
/// `obj` is a live `aioloop.Task` (rule 2).
unsafe fn dict_slot(obj: *mut ffi::PyObject) -> *mut *mut ffi::PyObject {
    // SAFETY: rule 2 — the type's positive `tp_dictoffset` is inside the object.
    unsafe {
        let off = (*ffi::Py_TYPE(obj)).tp_dictoffset;
        obj.cast::<u8>().offset(off).cast()
    }
}

/// The Task type's `tp_traverse`: PyO3's, then the instance dictionary.
///
/// # Safety
/// Called by CPython only (rule 3): `obj` is a live `aioloop.Task` (rule 2), `visit` and
/// `arg` the collector's.
unsafe extern "C" fn traverse(
    obj: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut std::os::raw::c_void,
) -> std::os::raw::c_int {
    // SAFETY: rule 1 — PyO3's traverse, called as CPython calls it (rule 3); it catches
    // panics itself (rule 4).
    let r = unsafe { (original().traverse)(obj, visit, arg) };
    if r != 0 {
        return r;
    }
    // SAFETY: rules 2–3; the dictionary pointer is null or a live reference the object
    // owns, visited without touching its reference count.
    unsafe {
        let d = *dict_slot(obj);
        if d.is_null() {
            0
        } else {
            visit(d, arg)
        }
    }
}

/// The Task type's `tp_clear`: PyO3's, then the instance dictionary.
///
/// # Safety
/// Called by CPython only (rule 3), on a live `aioloop.Task` (rule 2).
unsafe extern "C" fn clear(obj: *mut ffi::PyObject) -> std::os::raw::c_int {
    // SAFETY: rule 1 — PyO3's clear (panics caught by its trampoline, rule 4).
    let r = unsafe { (original().clear)(obj) };
    // SAFETY: rules 2–3; `Py_CLEAR`: the slot is emptied before the reference is released,
    // so code run by the release finds no dictionary rather than a freed one.
    unsafe {
        let slot = dict_slot(obj);
        let d = std::mem::replace(&mut *slot, std::ptr::null_mut());
        if !d.is_null() {
            ffi::Py_DECREF(d);
        }
    }
    r
}

/// The Task type's `tp_dealloc`: the finalizer first (PEP 442), then PyO3's.
///
/// # Safety
/// Called by CPython only (rule 3), once, on an `aioloop.Task` whose reference count
/// reached zero (rule 2).
unsafe extern "C" fn dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: rule 3; CPython's contract for a finalizer called from `tp_dealloc`: the
    // object's reference count is 0 and it is still tracked; a negative result means the
    // finalizer resurrected it, and it must not be freed.
    if unsafe { ffi::PyObject_CallFinalizerFromDealloc(obj) } < 0 {
        return;
    }
    // SAFETY: rule 1 — PyO3's deallocation, called as CPython calls it.
    unsafe { (original().dealloc)(obj) }
}

/// The Task type's `tp_finalize`: reports a task destroyed pending or with an exception
/// nobody retrieved (module docs).
///
/// # Safety
/// Called by CPython only (rule 3), on a live `aioloop.Task` (rule 2).
unsafe extern "C" fn finalize(obj: *mut ffi::PyObject) {
    // SAFETY: CPython calls finalizers with the GIL held (rule 3).
    let py = unsafe { Python::assume_gil_acquired() };
    let (mut t, mut v, mut tb) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    // SAFETY: GIL held; a finalizer keeps the exception being raised, if any (PEP 442).
    unsafe { ffi::PyErr_Fetch(&mut t, &mut v, &mut tb) };
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `obj` is live for the call (rule 3) and an aioloop Task (rule 2).
        let task = unsafe { Bound::from_borrowed_ptr(py, obj) };
        // SAFETY: every object this slot gets is an `aioloop.Task` (rule 2).
        Task::finalize(unsafe { task.downcast_unchecked::<Task>() })
    }));
    let err = match r {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(PyRuntimeError::new_err(
            "aioloop: Task finalizer panicked (a bug)",
        )),
    };
    if let Some(e) = err {
        e.restore(py);
        // SAFETY: GIL held, an exception set; `obj` is live.
        unsafe { ffi::PyErr_WriteUnraisable(obj) };
    }
    // SAFETY: GIL held; the references fetched above, handed back.
    unsafe { ffi::PyErr_Restore(t, v, tb) };
}
