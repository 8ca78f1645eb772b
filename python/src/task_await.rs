//! What a native task does with the future its coroutine yields, without Python-level
//! attribute lookups for the futures it meets most: asyncio's C `Future` (every
//! `StreamReader._wait_for_data`, `loop.create_future()`), asyncio's C `Task` and
//! aioloop's own `Task`.
//!
//! `Task.__step` reads `_asyncio_future_blocking`, calls `get_loop()`, clears the flag,
//! builds a bound `__wakeup` and calls `add_done_callback`; the wakeup calls `result()`.
//! Made generically, that is an attribute lookup on the future's type and a bound object
//! for each of the six. asyncio's C `Task` skips them for its exact `Future` type by
//! reading the struct; that struct is private, so here the same effect comes from the
//! descriptors themselves: for an object whose type is *exactly* one of asyncio's C types
//! (so no subclass can override an attribute) the getset descriptors
//! (`_asyncio_future_blocking`, `_loop`) and method descriptors (`result`,
//! `add_done_callback`) are looked up once per interpreter and called directly. For an
//! aioloop `Task` the fields are read in Rust. Any other object goes the generic way,
//! exactly as asyncio's Python `Task` does.
//!
//! For an exact C `Future` whose layout checked out (cfuture.rs), the task goes further and
//! reads and writes the struct, as asyncio's C Task does ([`in_place`], used by
//! `Task::wait_in_place` and `Task::wakeup`).
//!
//! The wakeup callback is a C function object bound to the task (`PyCFunction_NewEx` on
//! one static `METH_O` definition), as asyncio's C `Task` makes it: no lookup, and a call
//! without an argument parser. asyncio makes one per await; the native Task makes one on
//! its first await of a future and reuses it (`Task::wakeup_callable`). When the future
//! queues it on an aioloop loop (`call_soon(wakeup, fut)`), the loop recognises it
//! ([`wakeup_target`]) and runs the task's step directly instead of calling it.
//!
//! Protocol: (1) the cached descriptors are used only on objects whose type is exactly the
//! type they were taken from (a descriptor checks `self` itself as well); (2) the wakeup
//! function's `self` is always an aioloop `Task` — only [`wakeup_callable`] binds it, to a
//! task; (3) CPython calls it with the GIL held and one argument; (4) no Rust panic unwinds
//! into CPython.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyType;

use crate::asyncio;
use crate::cfunc::{CGetSet, CMethod};
use crate::cfuture::CFuture;
use crate::task::Task;

/// One of asyncio's C future types and the C definitions of what a task uses of it.
struct CType {
    ty: Py<PyType>,
    /// The struct's fields, for asyncio's C `Future` when its layout checks out (cfuture.rs).
    fields: Option<CFuture>,
    blocking: CGetSet,
    loop_: CGetSet,
    result: CMethod,
    add_done_callback: CMethod,
}

impl CType {
    /// `None` if any of the four is not what asyncio's C types define (then the type goes
    /// the generic way).
    fn new(ty: &Bound<'_, PyAny>, with_fields: bool) -> PyResult<Option<CType>> {
        let getset = |name: &str| ty.getattr(name).map(|d| CGetSet::of(&d));
        let method = |name: &str| ty.getattr(name).map(|d| CMethod::of(&d));
        let (Some(blocking), Some(loop_), Some(result), Some(add_done_callback)) = (
            getset("_asyncio_future_blocking")?,
            getset("_loop")?,
            method("result")?,
            method("add_done_callback")?,
        ) else {
            return Ok(None);
        };
        let ty = ty.downcast::<PyType>()?;
        Ok(Some(CType {
            fields: with_fields.then(|| CFuture::probe(ty)).flatten(),
            ty: ty.clone().unbind(),
            blocking,
            loop_,
            result,
            add_done_callback,
        }))
    }
}

/// asyncio's C `Future` and `Task`, when asyncio uses them (its Python fallbacks have no
/// getset descriptors and go the generic way), and aioloop's `Task` (compared by pointer:
/// PyO3's type-object accessor costs more than the comparison on every await).
struct CTypes {
    future: Option<CType>,
    task: Option<CType>,
    native: Py<PyType>,
}

fn c_types(py: Python<'_>) -> PyResult<&'static CTypes> {
    static CELL: GILOnceCell<CTypes> = GILOnceCell::new();
    CELL.get_or_try_init(py, || {
        let c = |name: &str, with_fields: bool| -> PyResult<Option<CType>> {
            let ty = py.import("asyncio")?.getattr(name)?;
            let is_c = ty
                .getattr("__module__")
                .and_then(|m| m.extract::<String>())
                .is_ok_and(|m| m == "_asyncio");
            if is_c {
                CType::new(&ty, with_fields)
            } else {
                Ok(None)
            }
        };
        Ok(CTypes {
            future: c("Future", true)?,
            task: c("Task", false)?,
            native: py.get_type::<Task>().unbind(),
        })
    })
}

/// The verified layout (cfuture.rs) when `obj` is exactly asyncio's C `Future`, that
/// layout checked out, and `obj` is initialised: the object may then be read and written in
/// place.
pub(crate) fn in_place(obj: &Bound<'_, PyAny>) -> Option<&'static CFuture> {
    let c = c_types(obj.py()).ok()?.future.as_ref()?;
    let f = c.fields.as_ref()?;
    // SAFETY: `obj` is live; its type pointer is compared, not dereferenced.
    if unsafe { ffi::Py_TYPE(obj.as_ptr()) }.cast::<ffi::PyObject>() != c.ty.as_ptr() {
        return None;
    }
    // SAFETY: exactly the verified type (cfuture.rs rule 1).
    unsafe { f.loop_ptr(obj.as_ptr()) }.map(|_| f)
}

/// How the yielded object is handled.
enum How<'py> {
    C(&'static CType),
    Native(&'py Bound<'py, Task>),
    Generic,
}

/// The object a task's coroutine yielded, with the way to reach its future protocol.
pub(crate) struct Awaited<'a, 'py> {
    obj: &'a Bound<'py, PyAny>,
    how: How<'a>,
}

impl<'a, 'py> Awaited<'a, 'py> {
    /// Classifies `obj` by its exact type.
    pub(crate) fn new(obj: &'a Bound<'py, PyAny>) -> PyResult<Self> {
        let py = obj.py();
        let types = c_types(py)?;
        // SAFETY: `obj` is live; reading its type pointer (compared, not dereferenced).
        let ty = unsafe { ffi::Py_TYPE(obj.as_ptr()) }.cast::<ffi::PyObject>();
        if ty == types.native.as_ptr() {
            // SAFETY: the object's type is exactly aioloop's Task (checked just above).
            let t = unsafe { obj.downcast_unchecked::<Task>() };
            return Ok(Awaited {
                obj,
                how: How::Native(t),
            });
        }
        let how = [&types.future, &types.task]
            .into_iter()
            .flatten()
            .find(|c| ty == c.ty.as_ptr())
            .map_or(How::Generic, How::C);
        Ok(Awaited { obj, how })
    }

    /// The verified struct layout (cfuture.rs) when `c` has one and the future is
    /// initialised (its loop set: the C methods raise otherwise, so those go through them).
    fn fields(&self, c: &'static CType) -> Option<&'static CFuture> {
        let f = c.fields.as_ref()?;
        // SAFETY: `How::C(c)` is chosen for objects of exactly `c`'s type, whose layout
        // `c.fields` verified (cfuture.rs rule 1).
        unsafe { f.loop_ptr(self.obj.as_ptr()) }.map(|_| f)
    }

    /// `_asyncio_future_blocking`, or `None` when the object is not a future (no such
    /// attribute, or `None`).
    pub(crate) fn blocking(&self) -> PyResult<Option<bool>> {
        let py = self.obj.py();
        let v = match &self.how {
            How::Native(t) => return Ok(Some(t.get().blocking_now())),
            How::C(c) => {
                if let Some(f) = self.fields(c) {
                    // SAFETY: `fields` is `Some` only for the verified type (rule 1).
                    return Ok(Some(unsafe { f.blocking(self.obj.as_ptr()) }));
                }
                // SAFETY: `How::C` is chosen for exactly `c`'s type (rule 1).
                let b = unsafe { c.blocking.get(self.obj) }?;
                // SAFETY: reading the address of the `True` singleton; the C getter
                // returns only `True` or `False`.
                return Ok(Some(b.as_ptr() == unsafe { ffi::Py_True() }));
            }
            How::Generic => self
                .obj
                .getattr(pyo3::intern!(py, "_asyncio_future_blocking")),
        };
        match v {
            Ok(b) if !b.is_none() => Ok(Some(b.is_truthy()?)),
            _ => Ok(None),
        }
    }

    /// The future's loop: `get_loop()`, or asyncio's `futures._get_loop` for a future
    /// without that method.
    pub(crate) fn get_loop(&self) -> PyResult<Bound<'py, PyAny>> {
        let py = self.obj.py();
        match &self.how {
            How::Native(t) => Ok(t.get().loop_any(py)),
            How::C(c) => match self.fields(c) {
                // SAFETY: `fields` is `Some` only for the verified type (rule 1), and only
                // when the loop is set; the borrowed loop gets its own reference.
                Some(f) => Ok(unsafe {
                    let l = f
                        .loop_ptr(self.obj.as_ptr())
                        .unwrap_or_else(|| ffi::Py_None());
                    Bound::from_borrowed_ptr(py, l)
                }),
                // SAFETY: as in `blocking`.
                None => unsafe { c.loop_.get(self.obj) },
            },
            How::Generic => match self.obj.call_method0(pyo3::intern!(py, "get_loop")) {
                Ok(l) => Ok(l),
                Err(_) => asyncio::call1(asyncio::get_loop(py)?, self.obj),
            },
        }
    }

    /// `_asyncio_future_blocking = False`.
    pub(crate) fn clear_blocking(&self) -> PyResult<()> {
        let py = self.obj.py();
        match &self.how {
            How::Native(t) => {
                t.get().clear_blocking();
                Ok(())
            }
            How::C(c) => match self.fields(c) {
                Some(f) => {
                    // SAFETY: as in `blocking`.
                    unsafe { f.clear_blocking(self.obj.as_ptr()) };
                    Ok(())
                }
                // SAFETY: as in `blocking`.
                None => unsafe { c.blocking.set(self.obj, ffi::Py_False()) },
            },
            How::Generic => self
                .obj
                .setattr(pyo3::intern!(py, "_asyncio_future_blocking"), false),
        }
    }

    /// `add_done_callback(wakeup, context=ctx)` (`wakeup`: the task's).
    pub(crate) fn add_wakeup(
        &self,
        wakeup: &Bound<'py, PyAny>,
        ctx: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        let py = self.obj.py();
        match &self.how {
            How::Native(t) => {
                Task::push_done_callback(t, wakeup.clone().unbind(), ctx.clone().unbind())
            }
            How::C(c) => {
                if let Some(f) = self.fields(c) {
                    // SAFETY: as in `blocking`; both objects are live.
                    if unsafe {
                        f.add_first_callback(self.obj.as_ptr(), wakeup.as_ptr(), ctx.as_ptr())
                    } {
                        return Ok(());
                    }
                }
                let args = [wakeup.as_ptr(), ctx.as_ptr()];
                // SAFETY: as in `blocking`; one positional argument and the value of the
                // one keyword `context_kwnames` names.
                unsafe {
                    c.add_done_callback
                        .call(self.obj, &args, 1, context_kwnames(py)?.as_ptr())
                }
                .map(drop)
            }
            How::Generic => asyncio::add_done_callback(self.obj, wakeup, ctx),
        }
    }

    /// `result()`, for the wakeup: its value is not needed, only whether it raises.
    pub(crate) fn check_result(&self) -> PyResult<()> {
        let py = self.obj.py();
        match &self.how {
            How::Native(t) => t.get().result(py).map(drop),
            How::C(c) => {
                if let Some(f) = self.fields(c) {
                    // SAFETY: as in `blocking`.
                    if unsafe { f.finished_ok(self.obj.as_ptr()) } {
                        return Ok(());
                    }
                }
                // SAFETY: as in `blocking`; no arguments.
                unsafe { c.result.call(self.obj, &[], 0, std::ptr::null_mut()) }.map(drop)
            }
            How::Generic => self.obj.call_method0(pyo3::intern!(py, "result")).map(drop),
        }
    }
}

/// The keyword names `("context",)`.
fn context_kwnames(py: Python<'_>) -> PyResult<&Bound<'_, pyo3::types::PyTuple>> {
    static KWNAMES: GILOnceCell<Py<pyo3::types::PyTuple>> = GILOnceCell::new();
    KWNAMES
        .get_or_try_init(py, || {
            pyo3::types::PyTuple::new(py, [pyo3::intern!(py, "context")]).map(Bound::unbind)
        })
        .map(|t| t.bind(py))
}

/// The static definition every wakeup function object points at; CPython only reads it.
struct WakeupDef(ffi::PyMethodDef);

// SAFETY: the definition is immutable after construction (CPython never writes through
// the pointer it is given) and its pointers are to static C strings and a function.
unsafe impl Sync for WakeupDef {}

static WAKEUP_DEF: WakeupDef = WakeupDef(ffi::PyMethodDef {
    ml_name: c"_wakeup".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer {
        PyCFunction: wakeup,
    },
    ml_flags: ffi::METH_O,
    ml_doc: c"the task's wakeup: runs its next step once the awaited future is done".as_ptr(),
});

/// The task a wakeup function object (from [`new_wakeup`]) is bound to; `None` for any
/// other callable. The loop runs a queued wakeup through this (handle.rs) rather than
/// calling it.
pub(crate) fn wakeup_target<'py>(f: &Bound<'py, PyAny>) -> Option<Bound<'py, Task>> {
    let p = f.as_ptr();
    // SAFETY: `p` is live; its type is compared, then (being exactly a builtin function,
    // a PyCFunctionObject) its definition pointer read.
    let def = unsafe {
        if ffi::Py_TYPE(p) != std::ptr::addr_of_mut!(ffi::PyCFunction_Type) {
            return None;
        }
        (*p.cast::<ffi::PyCFunctionObject>()).m_ml
    };
    if !std::ptr::eq(def, std::ptr::addr_of!(WAKEUP_DEF.0)) {
        return None;
    }
    // SAFETY: a function made from `WAKEUP_DEF` has a Task as `self` (rule 2), which it
    // keeps alive while `f` lives.
    Some(unsafe {
        let task = (*p.cast::<ffi::PyCFunctionObject>()).m_self;
        Bound::from_borrowed_ptr(f.py(), task).downcast_into_unchecked::<Task>()
    })
}

/// A new callable `wakeup(future)` bound to `task` (protocol rule 2).
pub(crate) fn new_wakeup<'py>(task: &Bound<'py, Task>) -> PyResult<Bound<'py, PyAny>> {
    let def = std::ptr::addr_of!(WAKEUP_DEF.0).cast_mut();
    // SAFETY: GIL held; `def` is 'static and only read by CPython (see WakeupDef);
    // `task` is live and the function object takes its own reference to it.
    let f = unsafe { ffi::PyCFunction_NewEx(def, task.as_ptr(), std::ptr::null_mut()) };
    // SAFETY: a new reference or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(task.py(), f) }
}

/// The C entry point of the wakeup (protocol rules 2–4).
unsafe extern "C" fn wakeup(
    slf: *mut ffi::PyObject,
    fut: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    crate::rawmeth::entry(|py| {
        // SAFETY: `slf` and `fut` are live borrowed references for the call (rule 3); by
        // rule 2 `slf` is an aioloop Task.
        let (task, fut) = unsafe {
            (
                Bound::from_borrowed_ptr(py, slf).downcast_into_unchecked::<Task>(),
                Bound::from_borrowed_ptr(py, fut),
            )
        };
        Task::wakeup(&task, &fut)?;
        Ok(py.None())
    })
}
