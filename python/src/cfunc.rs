//! Calls into functions, methods and attributes that CPython implements in C, made through
//! their C definitions instead of the generic call protocol.
//!
//! A native task calls asyncio's C `_enter_task`/`_leave_task` around every step and, for
//! every future it awaits, reads and clears `_asyncio_future_blocking`, reads `_loop`,
//! calls `add_done_callback` and later `result()`. Through `PyObject_Vectorcall` or a
//! descriptor's `__get__`, each of these pays for the generic protocol (thread-state
//! lookup, recursion guard, result check, the descriptor's type check) before reaching the
//! few instructions it wraps; callgrind measured ~1,260 more instructions per await than
//! asyncio's C `Task`, which calls the same C functions directly. Here the function pointer
//! is taken once from the object's C definition (`PyMethodDef`, `PyGetSetDef`: public,
//! non-limited CPython API) and called as CPython's own method wrappers call it.
//!
//! Protocol: (1) a definition is used only on `self` objects of the exact type it was
//! taken from (callers check: the C function does not); (2) every call is made with the GIL
//! held, with the arguments the definition's calling convention (its `ml_flags`, checked
//! when the definition is taken) prescribes; (3) the cached objects are kept alive by the
//! cell that holds them, so the pointers taken from them stay valid for the interpreter's
//! lifetime.

use std::os::raw::c_void;

use pyo3::ffi;
use pyo3::prelude::*;

/// The result convention of a C call: a new reference, or NULL with an exception set.
///
/// # Safety
/// GIL held; `r` comes from a C function following that convention.
unsafe fn owned<'py>(py: Python<'py>, r: *mut ffi::PyObject) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: the caller's contract.
    unsafe { Bound::from_owned_ptr_or_err(py, r) }
}

/// Whether `p`'s type is exactly `ty` (a pointer comparison on a live object).
fn is_exactly(p: *mut ffi::PyObject, ty: *mut ffi::PyTypeObject) -> bool {
    // SAFETY: `p` is a live object (the callers hold a reference); reading its type.
    unsafe { ffi::Py_TYPE(p) == ty }
}

/// A builtin function whose definition is `METH_FASTCALL | METH_KEYWORDS` (argument clinic
/// functions such as `_asyncio._enter_task`).
pub(crate) struct FastFunction {
    /// Keeps the function, hence `module` and the definition, alive (rule 3).
    _func: PyObject,
    module: PyObject,
    meth: ffi::PyCFunctionFastWithKeywords,
}

impl FastFunction {
    /// The definition of `f`, or `None` if `f` is not such a builtin function.
    pub(crate) fn of(f: &Bound<'_, PyAny>) -> Option<FastFunction> {
        let p = f.as_ptr();
        // SAFETY: GIL held; a type check on a live object.
        if unsafe { ffi::PyCFunction_CheckExact(p) } == 0 {
            return None;
        }
        // SAFETY: `p` is exactly a builtin function object, whose struct is
        // PyCFunctionObject; its `m_ml` points at its static definition.
        let (def, module) = unsafe {
            let obj = p.cast::<ffi::PyCFunctionObject>();
            (&*(*obj).m_ml, (*obj).m_self)
        };
        if def.ml_flags != ffi::METH_FASTCALL | ffi::METH_KEYWORDS {
            return None;
        }
        // SAFETY: the flags say which member of the union the definition holds.
        let meth = unsafe { def.ml_meth.PyCFunctionFastWithKeywords };
        let module = if module.is_null() {
            f.py().None()
        } else {
            // SAFETY: a live object the function references; we take our own reference.
            unsafe { Bound::from_borrowed_ptr(f.py(), module) }.unbind()
        };
        Some(FastFunction {
            _func: f.clone().unbind(),
            module,
            meth,
        })
    }

    /// `f(*args)`, positional arguments only.
    pub(crate) fn call<'py>(
        &self,
        py: Python<'py>,
        args: &[*mut ffi::PyObject],
    ) -> PyResult<Bound<'py, PyAny>> {
        let n = args.len() as ffi::Py_ssize_t;
        // SAFETY: rule 2 — GIL held (`py`), the convention checked in `of`; `args` are
        // live references borrowed for the call; no keywords.
        unsafe {
            owned(
                py,
                (self.meth)(self.module.as_ptr(), args.as_ptr(), n, std::ptr::null_mut()),
            )
        }
    }
}

/// A C method (from a `method_descriptor`), by its calling convention.
pub(crate) enum Method {
    NoArgs(ffi::PyCFunction),
    FastKeywords(ffi::PyCFunctionFastWithKeywords),
}

/// A method of a C type: its descriptor (kept alive, rule 3) and its implementation.
pub(crate) struct CMethod {
    _descr: PyObject,
    meth: Method,
}

impl CMethod {
    /// The implementation behind `descr` (a type's `method_descriptor`), or `None`.
    pub(crate) fn of(descr: &Bound<'_, PyAny>) -> Option<CMethod> {
        let p = descr.as_ptr();
        if !is_exactly(p, std::ptr::addr_of_mut!(ffi::PyMethodDescr_Type)) {
            return None;
        }
        // SAFETY: a `method_descriptor` is a PyMethodDescrObject, whose `d_method` points
        // at the type's static definition.
        let def = unsafe { &*(*p.cast::<ffi::PyMethodDescrObject>()).d_method };
        let meth = if def.ml_flags == ffi::METH_NOARGS {
            // SAFETY: the flags say which member of the union is set.
            Method::NoArgs(unsafe { def.ml_meth.PyCFunction })
        } else if def.ml_flags == ffi::METH_FASTCALL | ffi::METH_KEYWORDS {
            // SAFETY: as above.
            Method::FastKeywords(unsafe { def.ml_meth.PyCFunctionFastWithKeywords })
        } else {
            return None;
        };
        Some(CMethod {
            _descr: descr.clone().unbind(),
            meth,
        })
    }

    /// `slf.method(*args, **dict(zip(kwnames, kwvalues)))`: `args` holds the positional
    /// arguments followed by the keyword values (the vectorcall layout, without `self`).
    ///
    /// # Safety
    /// `slf`'s type is exactly the type the descriptor belongs to (rule 1); `kwnames` is
    /// null or a tuple of `str` whose length is `args.len() - nargs`.
    pub(crate) unsafe fn call<'py>(
        &self,
        slf: &Bound<'py, PyAny>,
        args: &[*mut ffi::PyObject],
        nargs: usize,
        kwnames: *mut ffi::PyObject,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        match self.meth {
            Method::NoArgs(f) => {
                if nargs != 0 || !kwnames.is_null() {
                    return Err(pyo3::exceptions::PyTypeError::new_err(
                        "method takes no arguments",
                    ));
                }
                // SAFETY: rule 2 — METH_NOARGS is called with NULL as its argument;
                // `slf` is of the method's type (the caller's contract).
                unsafe { owned(py, f(slf.as_ptr(), std::ptr::null_mut())) }
            }
            // SAFETY: rule 2 — the vectorcall layout without self; the caller vouches for
            // `slf` and `kwnames`.
            Method::FastKeywords(f) => unsafe {
                owned(
                    py,
                    f(
                        slf.as_ptr(),
                        args.as_ptr(),
                        nargs as ffi::Py_ssize_t,
                        kwnames,
                    ),
                )
            },
        }
    }
}

/// A C attribute (a `getset_descriptor`): its getter and setter.
pub(crate) struct CGetSet {
    _descr: PyObject,
    get: ffi::getter,
    set: Option<ffi::setter>,
    closure: *mut c_void,
}

// SAFETY: `closure` is the static definition's opaque pointer, only handed back to the
// definition's own functions, with the GIL held (rule 2); the rest is Send + Sync.
unsafe impl Send for CGetSet {}
// SAFETY: as above; nothing is mutated through the pointer here.
unsafe impl Sync for CGetSet {}

impl CGetSet {
    /// The getter/setter behind `descr` (a type's `getset_descriptor`), or `None`.
    pub(crate) fn of(descr: &Bound<'_, PyAny>) -> Option<CGetSet> {
        if !is_exactly(
            descr.as_ptr(),
            std::ptr::addr_of_mut!(ffi::PyGetSetDescr_Type),
        ) {
            return None;
        }
        // SAFETY: a `getset_descriptor` is a PyGetSetDescrObject whose `d_getset` points
        // at the type's static definition.
        let def = unsafe { &*(*descr.as_ptr().cast::<ffi::PyGetSetDescrObject>()).d_getset };
        Some(CGetSet {
            _descr: descr.clone().unbind(),
            get: def.get?,
            set: def.set,
            closure: def.closure,
        })
    }

    /// `obj.<attr>`.
    ///
    /// # Safety
    /// `obj`'s type is exactly the type the descriptor belongs to (rule 1).
    pub(crate) unsafe fn get<'py>(&self, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: rule 2 and the caller's contract.
        unsafe { owned(obj.py(), (self.get)(obj.as_ptr(), self.closure)) }
    }

    /// `obj.<attr> = value`.
    ///
    /// # Safety
    /// As for [`CGetSet::get`].
    pub(crate) unsafe fn set(
        &self,
        obj: &Bound<'_, PyAny>,
        value: *mut ffi::PyObject,
    ) -> PyResult<()> {
        let Some(set) = self.set else {
            return Err(pyo3::exceptions::PyAttributeError::new_err(
                "read-only attribute",
            ));
        };
        // SAFETY: rule 2 and the caller's contract; `value` is a live reference.
        if unsafe { set(obj.as_ptr(), value, self.closure) } < 0 {
            Err(PyErr::fetch(obj.py()))
        } else {
            Ok(())
        }
    }
}
