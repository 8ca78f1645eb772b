//! The `bytes` objects a socket transport hands to `protocol.data_received`, recycled.
//!
//! Every read used to allocate a fresh `bytes`; above 512 bytes CPython takes those from
//! the C allocator (`malloc`/`free` of ~1 KiB per message, the largest single cost of a
//! read after the system calls). Most protocols drop the object before `data_received`
//! returns — they copy it (asyncio's `StreamReader` extends a `bytearray`) or only pass it
//! on (`transport.write(data)` sends or copies it) — so the transport keeps it as a
//! *spare* and, when the next read has the same length, copies the new bytes into the
//! spare instead of allocating: for a steady stream of equal messages (an echo, a
//! request/response protocol) no allocation at all.
//!
//! Protocol (what makes writing into an existing `bytes` sound):
//! 1. A spare is taken only when its reference count is 1: this transport's own reference
//!    is the only one, so no Python code can see the object — it is not interned (CPython
//!    shares only the empty and the one-byte `bytes`, never kept here: see
//!    [`MIN_LEN`]) and a `bytes` cannot be weakly referenced.
//! 2. Before it is handed out again its cached hash is reset (`ob_shash = -1`), as
//!    `_PyBytes_Resize` does, so that `hash()` is computed from the new content.
//! 3. Only while the GIL is on: with the GIL disabled (a free-threaded build running
//!    without it) a count of 1 does not exclude another thread still using a borrowed
//!    reference, so there no spare is kept (every read allocates, as before).

use std::cell::RefCell;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyBytes;

/// Shorter reads are not worth recycling: CPython's small-object allocator serves them
/// cheaply, and the one-byte `bytes` are shared singletons (rule 1).
const MIN_LEN: usize = 64;

/// A transport's spare `bytes` (see the module docs).
#[derive(Default)]
pub(crate) struct SpareBytes {
    spare: RefCell<Option<Py<PyBytes>>>,
}

impl SpareBytes {
    /// A `bytes` holding `data`: the spare, overwritten, when it has that length;
    /// otherwise a new object.
    pub(crate) fn take(&self, py: Python<'_>, data: &[u8]) -> Py<PyBytes> {
        if let Some(b) = self.spare.borrow_mut().take() {
            let p = b.as_ptr().cast::<ffi::PyBytesObject>();
            if len_of(py, &b) == data.len() {
                // SAFETY: rule 1 — the spare was only stored with a reference count of 1
                // and nobody else can have obtained it since (it never left this cell),
                // so writing its `len` content bytes is unobservable; rule 2 resets the
                // cached hash. `data` and the object's buffer do not overlap (`data` is
                // the receive buffer).
                unsafe {
                    let content = std::ptr::addr_of_mut!((*p).ob_sval).cast::<u8>();
                    std::ptr::copy_nonoverlapping(data.as_ptr(), content, data.len());
                    reset_hash(p);
                }
                return b;
            }
        }
        PyBytes::new(py, data).unbind()
    }

    /// Called once the protocol returned: keeps `b` as the spare if nobody else refers
    /// to it (rule 1); otherwise just drops this reference.
    pub(crate) fn give_back(&self, py: Python<'_>, b: Py<PyBytes>) {
        // SAFETY: the GIL is held (`py`) and `b` is a live object we hold a reference to.
        let sole = unsafe { ffi::Py_REFCNT(b.as_ptr()) } == 1;
        if sole && len_of(py, &b) >= MIN_LEN && gil_enabled(py) {
            *self.spare.borrow_mut() = Some(b);
        }
    }

    /// Drops the spare (the transport let go of its protocol).
    pub(crate) fn clear(&self) {
        self.spare.borrow_mut().take();
    }
}

fn len_of(_py: Python<'_>, b: &Py<PyBytes>) -> usize {
    // SAFETY: the GIL is held (`_py`); `b` is a live `bytes`, a variable-size object whose
    // `ob_size` is its length.
    unsafe { ffi::Py_SIZE(b.as_ptr()) as usize }
}

/// Whether the GIL is on (rule 3): always below 3.13; `sys._is_gil_enabled()` after.
fn gil_enabled(py: Python<'_>) -> bool {
    static ON: GILOnceCell<bool> = GILOnceCell::new();
    *ON.get_or_init(py, || {
        py.import("sys")
            .and_then(|sys| match sys.getattr("_is_gil_enabled") {
                Ok(f) => f.call0()?.is_truthy(),
                Err(_) => Ok(true),
            })
            .unwrap_or(false)
    })
}

/// Rule 2: the next `hash()` recomputes.
///
/// # Safety
/// `p` is a live `bytes` object that only the caller can see (rule 1); the GIL is held.
#[allow(deprecated)] // `ob_shash`: deprecated for readers, still the cache CPython keeps
unsafe fn reset_hash(p: *mut ffi::PyBytesObject) {
    // SAFETY: per this function's contract `p` points to a `PyBytesObject`.
    unsafe { (*p).ob_shash = -1 };
}
