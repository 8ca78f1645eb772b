//! The suite's allocator counts, per thread, the net bytes that thread has allocated: lets
//! a test bound the memory one loop of calls keeps (a million cancels of one task must not
//! grow anything per call) without seeing the other tests' allocations.

use std::cell::Cell;

#[path = "../common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{Counting, Tally};

thread_local! {
    // `const` and `Cell`: no lazy initialisation and no destructor, so the allocator may
    // touch it at any time, also while the thread's other thread-locals are torn down.
    static NET: Cell<isize> = const { Cell::new(0) };
}

struct PerThread;

impl Tally for PerThread {
    fn add(delta: isize) {
        let _ = NET.try_with(|n| n.set(n.get() + delta));
    }
}

#[global_allocator]
static COUNTING: Counting<PerThread> = Counting::new();

/// Bytes allocated minus bytes freed by this thread so far (memory another thread frees
/// counts there, not here).
pub fn net_bytes() -> isize {
    NET.with(Cell::get)
}
