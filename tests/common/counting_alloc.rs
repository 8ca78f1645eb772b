//! A `#[global_allocator]` that forwards to `std::alloc::System` and tells a counter the
//! size of every change (requested sizes, not the allocator's rounding). Shared by the
//! memory benchmark (live bytes, process-wide) and the fault suite (net bytes per thread):
//! each supplies its counter as a [`Tally`].
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::marker::PhantomData;

/// Where the byte counts go. `add` must not allocate: it runs inside the allocator.
pub trait Tally {
    /// `delta` bytes were allocated (positive) or freed (negative).
    fn add(delta: isize);
}

/// The allocator; install it with
/// `#[global_allocator] static A: Counting<MyTally> = Counting::new();`.
pub struct Counting<T>(PhantomData<T>);

impl<T> Counting<T> {
    pub const fn new() -> Self {
        Counting(PhantomData)
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees are ours; the bookkeeping around it never allocates.
unsafe impl<T: Tally> GlobalAlloc for Counting<T> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our caller upholds `GlobalAlloc::alloc`'s contract (non-zero size).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            T::add(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            T::add(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by this allocator, i.e. by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        T::add(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds the rest.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            T::add(new_size as isize - layout.size() as isize);
        }
        p
    }
}
