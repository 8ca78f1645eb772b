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
//! The descriptor. asyncio's C `Task` and `Future` reach `call_soon` with
//! `PyObject_GetAttr(loop, "call_soon")` (they pass `context=`, so not through the method
//! lookup that skips binding): with a plain method descriptor every task step and every
//! future callback allocates a bound method (callgrind, 10k `create_task` + gather: ~1,460
//! instructions per lookup, about a tenth of the workload). So `call_soon` on `Loop`'s type
//! is this module's own descriptor type instead: (a) flagged as a method descriptor, so
//! Python's `loop.call_soon(...)` (the specialised method lookup) and C's method calls pass
//! the loop as the first argument to its vectorcall without binding anything; (b) its
//! `__get__`, which `GetAttr` uses, returns the loop's one bound copy, made on first use
//! and kept in the `Loop`: a built-in function whose `self` is a weak reference to the loop
//! (a strong one would make every loop a reference cycle the collector cannot see through
//! the Rust field). A subclass's own `call_soon` is found first, as for any method.
//!
//! Protocol: (1) the descriptor's vectorcall and `__get__` check that the object is a
//! `Loop` (or subclass) before calling; the bound copy's `self` is a weak reference made by
//! `bound` to a `Loop`, which is either dead or still that `Loop`; (2) CPython calls them
//! with the GIL held; (3) `args` holds `PyVectorcall_NARGS(nargsf)` positional arguments
//! followed by one value per name of `kwnames` (the vectorcall convention); (4) no Rust
//! panic unwinds into CPython; (5) a descriptor object is only made by `install`, which
//! sets its vectorcall slot (the type cannot be instantiated from Python).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyString, PyTuple, PyType};

use crate::handle::Args;
use crate::loop_core::Loop;

/// The descriptor object: a `PyObject` header and the vectorcall slot CPython calls.
#[repr(C)]
struct Descriptor {
    ob_base: ffi::PyObject,
    vectorcall: ffi::vectorcallfunc,
}

const DOC: &std::ffi::CStr = c"call_soon(callback, *args, context=None): queue callback(*args) to run on the next pass, in context (asyncio's Handle)";

/// `Loop`'s type object, set once by `install` (it lives as long as the interpreter): the
/// type checks of rule 1 compare against it directly rather than through PyO3's lazily
/// initialised type object on every call.
static LOOP_TYPE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(ptr::null_mut());

/// Whether `obj` is a `Loop` (or subclass) instance (rule 1).
fn is_loop(obj: *mut ffi::PyObject) -> bool {
    let ty = LOOP_TYPE.load(Ordering::Relaxed);
    // SAFETY: `obj` is a live object (callers hold it, GIL held); `ty`, when set, is the
    // live `Loop` type; PyType_IsSubtype only reads both types.
    !ty.is_null() && unsafe { ffi::PyType_IsSubtype(ffi::Py_TYPE(obj), ty) } != 0
}

/// Installs the `call_soon` descriptor on `Loop`'s type (module initialisation).
pub(crate) fn install(loop_type: &Bound<'_, PyType>) -> PyResult<()> {
    let py = loop_type.py();
    LOOP_TYPE.store(loop_type.as_type_ptr(), Ordering::Relaxed);
    // The type's definition must outlive it, i.e. the interpreter: leaked once.
    let members: &'static mut [ffi::PyMemberDef; 2] = Box::leak(Box::new([
        ffi::PyMemberDef {
            name: c"__vectorcalloffset__".as_ptr(),
            type_code: ffi::Py_T_PYSSIZET,
            offset: std::mem::offset_of!(Descriptor, vectorcall) as ffi::Py_ssize_t,
            flags: ffi::Py_READONLY,
            doc: ptr::null(),
        },
        ffi::PyMemberDef::default(),
    ]));
    let descr_get: ffi::descrgetfunc = descr_get;
    let call: ffi::ternaryfunc = ffi::PyVectorcall_Call;
    let slots: &'static mut [ffi::PyType_Slot; 5] = Box::leak(Box::new([
        ffi::PyType_Slot {
            slot: ffi::Py_tp_descr_get,
            pfunc: descr_get as *mut std::ffi::c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_call,
            pfunc: call as *mut std::ffi::c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_members,
            pfunc: members.as_mut_ptr().cast(),
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_doc,
            pfunc: DOC.as_ptr().cast_mut().cast(),
        },
        ffi::PyType_Slot {
            slot: 0,
            pfunc: ptr::null_mut(),
        },
    ]));
    let spec: &'static mut ffi::PyType_Spec = Box::leak(Box::new(ffi::PyType_Spec {
        name: c"aioloop._aioloop.call_soon_descriptor".as_ptr(),
        basicsize: std::mem::size_of::<Descriptor>() as std::ffi::c_int,
        itemsize: 0,
        flags: (ffi::Py_TPFLAGS_DEFAULT
            | ffi::Py_TPFLAGS_HAVE_VECTORCALL
            | ffi::Py_TPFLAGS_METHOD_DESCRIPTOR
            | ffi::Py_TPFLAGS_DISALLOW_INSTANTIATION
            | ffi::Py_TPFLAGS_IMMUTABLETYPE) as std::ffi::c_uint,
        slots: slots.as_mut_ptr(),
    }));
    // SAFETY: GIL held; `spec` and what it points to are 'static. A new reference to the
    // type, or null with an exception set.
    let ty = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyType_FromSpec(spec)) }?;
    // SAFETY: `ty` is the type just made, whose instances are `Descriptor`s (basicsize);
    // a new reference or null with an exception set.
    let obj = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyType_GenericAlloc(ty.as_ptr().cast::<ffi::PyTypeObject>(), 0),
        )
    }?;
    // SAFETY: `obj` is a new, zeroed `Descriptor` (rule 5: its slot is set before any use).
    unsafe { (*obj.as_ptr().cast::<Descriptor>()).vectorcall = descr_vectorcall };
    loop_type.setattr("call_soon", obj)
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
    ml_doc: DOC.as_ptr(),
});

/// `lp`'s bound `call_soon`, made once (module docs).
fn bound<'py>(lp: &Bound<'py, Loop>) -> PyResult<Bound<'py, PyAny>> {
    let py = lp.py();
    if let Some(f) = lp.get().bound_call_soon.get() {
        return Ok(f.bind(py).clone());
    }
    // SAFETY: GIL held; `lp` is live. A new reference, or null with an exception set.
    let weak = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyWeakref_NewRef(lp.as_ptr(), ptr::null_mut()))
    }?;
    // SAFETY: `BOUND_DEF` is 'static and never written (CPython only reads definitions);
    // `weak` refers to a `Loop` (protocol rule 1). The function takes its own reference
    // to `weak`; a new reference or null with an exception set.
    let f = unsafe {
        let def = ptr::addr_of!(BOUND_DEF.0).cast_mut();
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyCFunction_NewEx(def, weak.as_ptr(), ptr::null_mut()),
        )
    }?;
    let f = lp.get().bound_call_soon.get_or_init(|| f.unbind());
    Ok(f.bind(py).clone())
}

/// The descriptor's `__get__`: itself from the class, the loop's bound copy from a loop.
unsafe extern "C" fn descr_get(
    descr: *mut ffi::PyObject,
    obj: *mut ffi::PyObject,
    _ty: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls descriptors with the GIL held (protocol rule 2).
    let py = unsafe { Python::assume_gil_acquired() };
    // SAFETY: GIL held; `None` is a live object.
    if obj.is_null() || obj == unsafe { ffi::Py_None() } {
        // SAFETY: `descr` is live (the caller holds it); the new reference is returned.
        unsafe { ffi::Py_INCREF(descr) };
        return descr;
    }
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `obj` is a live object borrowed for this call (rule 2).
        let obj = unsafe { Bound::from_borrowed_ptr(py, obj) };
        if !is_loop(obj.as_ptr()) {
            return Err(not_a_loop(&obj));
        }
        // SAFETY: checked just above (rule 1).
        let lp = unsafe { obj.downcast_unchecked::<Loop>() };
        bound(lp).map(Bound::into_ptr)
    }));
    finish(py, r)
}

/// The descriptor called unbound (`Loop.call_soon(loop, ...)`, and what Python's method
/// calls do): the loop is the first argument (rule 1: checked here).
unsafe extern "C" fn descr_vectorcall(
    _descr: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: libc::size_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls with the GIL held (protocol rule 2).
    let py = unsafe { Python::assume_gil_acquired() };
    // SAFETY: a plain read of the count (rule 3).
    let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf) };
    if nargs < 1 {
        PyTypeError::new_err("descriptor 'call_soon' of 'Loop' object needs an argument")
            .restore(py);
        return ptr::null_mut();
    }
    // SAFETY: rule 3 — `args[0]` is a live borrowed reference.
    let slf = unsafe { *args };
    if !is_loop(slf) {
        // SAFETY: as above.
        let obj = unsafe { Bound::from_borrowed_ptr(py, slf) };
        not_a_loop(&obj).restore(py);
        return ptr::null_mut();
    }
    // SAFETY: `slf` is a `Loop` (checked: rule 1); the rest of `args` is the call's
    // arguments without it, keyword values still following the positionals (rule 3).
    unsafe { call_soon(slf, args.add(1), nargs - 1, kwnames) }
}

fn not_a_loop(obj: &Bound<'_, PyAny>) -> PyErr {
    let name = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    PyTypeError::new_err(format!(
        "descriptor 'call_soon' for 'Loop' objects doesn't apply to a '{name}' object"
    ))
}

/// A raw entry's result: the object, or null with the error (or a panic's) set (rule 4).
fn finish(
    py: Python<'_>,
    r: std::thread::Result<PyResult<*mut ffi::PyObject>>,
) -> *mut ffi::PyObject {
    match r {
        Ok(Ok(obj)) => obj,
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

/// The bound copy's entry: resolves the weak reference, then as `call_soon`.
unsafe extern "C" fn call_soon_bound(
    weak: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: `weak` is the weak reference `bound` made (protocol rule 1); GIL held (rule
    // 2). A borrowed reference: the loop, or None once it is gone.
    let slf = unsafe { ffi::PyWeakref_GetObject(weak) };
    if slf.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: GIL held (rule 2); None is a live object to compare against.
    if slf == unsafe { ffi::Py_None() } {
        // SAFETY: GIL held (rule 2).
        let py = unsafe { Python::assume_gil_acquired() };
        // The loop was collected, so closed by its finaliser (a `call_soon` taken from
        // a loop nobody else holds).
        PyRuntimeError::new_err("Event loop is closed").restore(py);
        return ptr::null_mut();
    }
    // SAFETY: a live `Loop` (rule 1), borrowed for the call: the caller's `args` do not
    // own it, so hold a reference while it runs (creating the handle may run Python code
    // in debug mode).
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
    finish(py, result)
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
    // SAFETY: rule 1 — the descriptor (or `bound`) checked the type before the call.
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
    let rest = match positional[1..] {
        // SAFETY: a live borrowed reference (rule 3); the handle takes its own.
        [one] => Args::One(unsafe { Bound::from_borrowed_ptr(py, one) }.unbind()),
        ref more => Args::Tuple(tuple_of(py, more)?),
    };
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
