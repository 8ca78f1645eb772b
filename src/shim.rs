//! The one synchronisation shim.
//!
//! Every atomic, lock, `UnsafeCell`, thread and thread-local that the scheduler and the task
//! core use is imported from here, never from `std` directly. Under `--cfg loom` the same
//! names resolve to [loom]'s model-checked doubles, so the production code is the code that
//! the models in `loom-tests/` explore. Sizes and intervals that loom must be able to reach
//! the edges of (queue capacities, fairness intervals) live in [`tuning`] for the same reason.
//!
//! What must not come through here: the process-wide id counter (uniqueness only, never part
//! of a happens-before argument) and third-party crates' internals (crossbeam's deques and
//! dashmap's shards), which the shim replaces wholesale under loom (see `runtime::queue` and
//! `task::registry`).

#![allow(dead_code, unused_imports)]

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::Arc;
    pub(crate) use std::sync::MutexGuard;
    pub(crate) use std::thread;

    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{
            fence, AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering,
        };
    }

    /// A `std::sync::Mutex` whose `lock` ignores poisoning: the scheduler's critical sections
    /// never run user code, so a poisoned lock still guards consistent data.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T: ?Sized>(std::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(std::sync::Mutex::new(value))
        }
    }

    impl<T: ?Sized> Mutex<T> {
        pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// The lock if it is free now (poisoning ignored, as in `lock`).
        pub(crate) fn try_lock(&self) -> Option<std::sync::MutexGuard<'_, T>> {
            match self.0.try_lock() {
                Ok(g) => Some(g),
                Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }

        /// The value, through exclusive access (no locking; poisoning ignored).
        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// A `std::sync::Condvar` for the shim's [`Mutex`], ignoring poisoning like its `lock`.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(std::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(std::sync::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(
            &self,
            g: std::sync::MutexGuard<'a, T>,
        ) -> std::sync::MutexGuard<'a, T> {
            self.0.wait(g).unwrap_or_else(|e| e.into_inner())
        }

        /// Waits at most `d`; `true` in the second place when the wait timed out. `g`
        /// guards `_m` (loom's double needs the mutex itself).
        pub(crate) fn wait_timeout<'a, T>(
            &self,
            _m: &'a Mutex<T>,
            g: std::sync::MutexGuard<'a, T>,
            d: std::time::Duration,
        ) -> (std::sync::MutexGuard<'a, T>, bool) {
            let (g, r) = self.0.wait_timeout(g, d).unwrap_or_else(|e| e.into_inner());
            (g, r.timed_out())
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one()
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all()
        }
    }

    /// `std::cell::UnsafeCell` with loom's closure-based access API.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T: ?Sized>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }
    }

    impl<T: ?Sized> UnsafeCell<T> {
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    /// Declares a thread-local with a `const` initialiser (no lazy-init check on access).
    macro_rules! shim_thread_local {
        ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;) => {
            std::thread_local! { $(#[$attr])* static $name: $t = const { $init }; }
        };
    }
    pub(crate) use shim_thread_local as thread_local;
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::Arc;
    pub(crate) use loom::sync::MutexGuard;
    pub(crate) use loom::thread;

    pub(crate) mod atomic {
        pub(crate) use loom::sync::atomic::{
            fence, AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering,
        };
    }

    /// loom's mutex with the same poison-ignoring `lock` as the std build.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// The lock if it is free now (poisoning ignored, as in `lock`).
        pub(crate) fn try_lock(&self) -> Option<loom::sync::MutexGuard<'_, T>> {
            match self.0.try_lock() {
                Ok(g) => Some(g),
                Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }

        /// The value, through exclusive access (no locking; poisoning ignored).
        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().unwrap_or_else(|e| e.into_inner())
        }
    }

    impl<T: Default> Default for Mutex<T> {
        fn default() -> Self {
            Mutex::new(T::default())
        }
    }

    /// loom's condvar. loom cannot model time, so `wait_timeout` with a zero duration is a
    /// timeout that fires at once (the lock is released and taken again, so other threads
    /// may act in between, as during a real wait), and any other duration waits for a
    /// notify: a model explores a keep-alive expiry by configuring a zero keep-alive.
    #[derive(Debug)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(loom::sync::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(
            &self,
            g: loom::sync::MutexGuard<'a, T>,
        ) -> loom::sync::MutexGuard<'a, T> {
            self.0.wait(g).unwrap_or_else(|e| e.into_inner())
        }

        pub(crate) fn wait_timeout<'a, T>(
            &self,
            m: &'a Mutex<T>,
            g: loom::sync::MutexGuard<'a, T>,
            d: std::time::Duration,
        ) -> (loom::sync::MutexGuard<'a, T>, bool) {
            if d.is_zero() {
                drop(g);
                loom::thread::yield_now();
                return (m.lock(), true);
            }
            (self.wait(g), false)
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one()
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all()
        }
    }

    pub(crate) use loom::cell::UnsafeCell;

    macro_rules! shim_thread_local {
        ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;) => {
            loom::thread_local! { $(#[$attr])* static $name: $t = $init; }
        };
    }
    pub(crate) use shim_thread_local as thread_local;
}

pub(crate) use imp::*;

/// Sizes and intervals, shrunk under loom so that models reach queue-full and fairness edges
/// within a few steps.
pub(crate) mod tuning {
    /// A worker takes work from the global injector at least once every this many
    /// iterations, even when its local queue is never empty (starvation freedom for tasks
    /// spawned from outside the runtime).
    #[cfg(not(loom))]
    pub(crate) const GLOBAL_QUEUE_INTERVAL: u32 = 31;
    #[cfg(loom)]
    pub(crate) const GLOBAL_QUEUE_INTERVAL: u32 = 2;

    /// At most how many tasks a worker moves from the injector to its queue at once
    /// (`runtime/worker.rs`, `pull_injector`): half of a 256-slot queue, tokio's figure.
    /// Two under loom, so that models see a pull that leaves work behind.
    #[cfg(not(loom))]
    pub(crate) const REMOTE_BATCH: usize = 128;
    #[cfg(loom)]
    pub(crate) const REMOTE_BATCH: usize = 2;

    /// Upper bound on how many tasks one iteration runs, even if more were ready when it
    /// started: bounds the time between two looks at the injector and the poller.
    #[cfg(not(loom))]
    pub(crate) const MAX_BATCH: usize = 256;
    #[cfg(loom)]
    pub(crate) const MAX_BATCH: usize = 2;

    /// Tasks a worker runs in a row from its LIFO slot after one queued item
    /// (`event_loop/lifo.rs`, rule 4); tokio's figure. One under loom, so that models reach
    /// the spill to the queue.
    #[cfg(not(loom))]
    pub(crate) const MAX_LIFO_POLLS: usize = 3;
    #[cfg(loom)]
    pub(crate) const MAX_LIFO_POLLS: usize = 1;

    /// Items a busy loop runs between two zero-timeout harvests of its poller (reactor
    /// rule R8): bounds how long a loop that never parks leaves its sockets unserved.
    #[cfg(not(loom))]
    pub(crate) const IO_INTERVAL: usize = 61;
    #[cfg(loom)]
    pub(crate) const IO_INTERVAL: usize = 2;

    /// How long a worker's poller may go unharvested, while it owns sources, before an
    /// idle peer harvests it (reactor rule R10), and the longest an idle worker sleeps
    /// while a peer with sources is running: the bound on how long a task that never
    /// yields can stall the sockets of its worker, when another worker is idle.
    pub(crate) const PEER_IO_STALE: std::time::Duration = std::time::Duration::from_millis(1);

    /// Slab positions a registry snapshot visits per shard lock hold (`task::registry`,
    /// rule 3): the longest a listing makes a spawn or a completion wait (microseconds).
    /// One under loom, so that models interleave writers between any two positions.
    #[cfg(not(loom))]
    pub(crate) const REGISTRY_SLICE: usize = 512;
    #[cfg(loom)]
    pub(crate) const REGISTRY_SLICE: usize = 1;

    /// Rounds a registry snapshot waits for a shard's waiting writers before a slice, when
    /// every shard it has left is busy (`task::registry`, rule 7): the first [`REGISTRY_STEP_ASIDE_SPINS`] short spins,
    /// the rest yields.
    #[cfg(not(loom))]
    pub(crate) const REGISTRY_STEP_ASIDE: usize = 64;
    #[cfg(loom)]
    pub(crate) const REGISTRY_STEP_ASIDE: usize = 1;
    /// See [`REGISTRY_STEP_ASIDE`] (under loom a spin is a yield too).
    #[cfg(not(loom))]
    pub(crate) const REGISTRY_STEP_ASIDE_SPINS: usize = 16;
    #[cfg(loom)]
    pub(crate) const REGISTRY_STEP_ASIDE_SPINS: usize = 1;
}
