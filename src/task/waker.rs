//! A built-in task's `Waker`: a header pointer and `WAKER_VTABLE`. Each waker owns one
//! reference to the task (state.rs rule 1), except the one a poll lends its future
//! ([`borrowed`]), which borrows the poller's reference.

use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::core::Header;
use super::raw::RawTask;
use super::state::TransitionToNotified;

static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

crate::shim::thread_local! {
    /// The header address of the task whose poll runs on this thread (0: none), with bit 0
    /// set once that task asked to yield (state.rs rule 7). Headers are word-aligned, so
    /// bit 0 of an address is free.
    static POLLING: Cell<usize> = Cell::new(0);
}

/// The poll of the task at `ptr` begins on this thread; returns the mark it displaced (an
/// eager first step runs inside another task's poll), for [`poll_end`].
#[inline]
pub(super) fn poll_begin(ptr: NonNull<Header>) -> usize {
    POLLING.with(|p| p.replace(ptr.as_ptr() as usize))
}

/// The poll begun by [`poll_begin`] returned (or unwound); restores `saved`. Returns
/// whether the task yielded during it (state.rs rule 7).
#[inline]
pub(super) fn poll_end(saved: usize) -> bool {
    POLLING.with(|p| p.replace(saved)) & 1 != 0
}

/// `yield_now`'s wake (rule X6): when `waker` is the waker of the built-in task being
/// polled on this thread, records the yield for its poller (state.rs rule 7) instead of a
/// wake, and returns `true`; otherwise does nothing and returns `false` (the caller wakes).
#[inline]
pub(crate) fn yield_polled_task(waker: &Waker) -> bool {
    if !std::ptr::eq(waker.vtable(), &WAKER_VTABLE) {
        return false;
    }
    let addr = waker.data() as usize;
    POLLING.with(|p| {
        let hit = p.get() == addr;
        if hit {
            p.set(addr | 1);
        }
        hit
    })
}

/// A waker for the task at `ptr` that borrows the caller's reference instead of taking one:
/// cloning it takes a real reference, and it is never dropped (`ManuallyDrop`), so a poll
/// costs no reference-count traffic.
///
/// # Safety
/// `ptr` is a live task header, and the caller holds a reference to it for as long as the
/// waker (not its clones) is used.
pub(super) unsafe fn borrowed(ptr: NonNull<Header>) -> ManuallyDrop<Waker> {
    // SAFETY: the vtable's functions uphold `RawWaker`'s contract for a header pointer whose
    // reference is held (the caller's, for this waker; their own, for clones).
    ManuallyDrop::new(unsafe { Waker::from_raw(RawWaker::new(ptr.as_ptr().cast(), &WAKER_VTABLE)) })
}

/// # Safety
/// `ptr` came from a waker of `WAKER_VTABLE`, which owns (or borrows) a reference to the
/// task, so the header is live for as long as the waker is (state.rs rule 1).
unsafe fn header_of<'a>(ptr: *const ()) -> (&'a Header, NonNull<Header>) {
    // SAFETY: a waker's data pointer is a non-null header pointer (see `borrowed`).
    let nn = unsafe { NonNull::new_unchecked(ptr as *mut Header) };
    // SAFETY: live, per the contract.
    (unsafe { nn.as_ref() }, nn)
}

/// # Safety
/// `RawWakerVTable::clone`'s contract, for a waker built by [`borrowed`] or cloned from one.
unsafe fn waker_clone(ptr: *const ()) -> RawWaker {
    // SAFETY: the caller's waker is live (the vtable's contract).
    let (header, _) = unsafe { header_of(ptr) };
    header.state.ref_inc();
    RawWaker::new(ptr, &WAKER_VTABLE)
}

/// # Safety
/// `RawWakerVTable::wake`'s contract: consumes the waker's own reference.
unsafe fn waker_wake(ptr: *const ()) {
    // SAFETY: the waker is live until this call consumes it.
    let (header, nn) = unsafe { header_of(ptr) };
    match header.state.transition_to_notified_by_val() {
        TransitionToNotified::DoNothing => {}
        // SAFETY: state.rs rule 5: our reference became the one NOTIFIED stands for, and
        // `schedule` takes it.
        TransitionToNotified::Submit => unsafe { (header.vtable.schedule)(nn) },
        // SAFETY: state.rs rule 1: ours was the last reference.
        TransitionToNotified::Dealloc => unsafe { (header.vtable.dealloc)(nn) },
    }
}

/// # Safety
/// `RawWakerVTable::wake_by_ref`'s contract: the waker keeps its reference.
unsafe fn waker_wake_by_ref(ptr: *const ()) {
    // SAFETY: the waker is live for this call.
    let (header, nn) = unsafe { header_of(ptr) };
    if header.state.transition_to_notified_by_ref() == TransitionToNotified::Submit {
        // SAFETY: state.rs rule 5: the transition took a new reference for NOTIFIED, and
        // `schedule` takes it.
        unsafe { (header.vtable.schedule)(nn) }
    }
}

/// # Safety
/// `RawWakerVTable::drop`'s contract: releases the waker's own reference.
unsafe fn waker_drop(ptr: *const ()) {
    // SAFETY: the waker is live until this call consumes it.
    let (_, nn) = unsafe { header_of(ptr) };
    // SAFETY: state.rs rule 1: the reference is the waker's, given up exactly once here.
    unsafe { RawTask::from_raw(nn).ref_dec() }
}
