//! Fixtures shared by the fault tests: counted tasks and callbacks.

use std::future::pending;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use aioloop::{Runtime, Task};

use crate::common::{wait_until, Counted};

/// Spawns `n` tasks that each hold a `Counted(drops)`, then suspend forever; returns their
/// handles once every one has been polled.
pub fn spawn_suspended(rt: &Runtime, n: usize, drops: &Arc<AtomicUsize>) -> Vec<Task<()>> {
    let polled = Arc::new(AtomicUsize::new(0));
    let tasks = (0..n)
        .map(|_| {
            let guard = Counted(drops.clone());
            let polled = polled.clone();
            rt.spawn(async move {
                let _guard = guard;
                polled.fetch_add(1, SeqCst);
                pending::<()>().await
            })
        })
        .collect();
    wait_until("every task suspended", || polled.load(SeqCst) == n);
    tasks
}

/// A closure that counts in `ran` when it runs and in `drops` when it is dropped (run or
/// not).
pub fn counted_callback(
    drops: &Arc<AtomicUsize>,
    ran: &Arc<AtomicUsize>,
) -> impl FnOnce() + Send + 'static {
    let (guard, ran) = (Counted(drops.clone()), ran.clone());
    move || {
        let _guard = guard;
        ran.fetch_add(1, SeqCst);
    }
}
