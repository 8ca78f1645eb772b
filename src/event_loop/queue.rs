//! Run queues: crossbeam's work-stealing deques normally; under loom, mutex-guarded doubles
//! with the same methods, so that the models explore pushes and steals interleaving with the
//! parking protocol (crossbeam's own atomics are invisible to loom).
//!
//! Every worker owns a FIFO [`Local`] queue that peers steal from through its [`Stealer`];
//! tasks scheduled from outside any worker go to the runtime's one [`Injector`].

#[cfg(not(loom))]
pub(crate) use crossbeam_deque::{Injector, Steal, Stealer, Worker as Local};

#[cfg(not(loom))]
pub(crate) fn new_local<T>() -> Local<T> {
    Local::new_fifo()
}

#[cfg(loom)]
pub(crate) use self::mock::{Injector, Local, Steal, Stealer};

#[cfg(loom)]
pub(crate) fn new_local<T>() -> Local<T> {
    Local::new_fifo()
}

/// At most how many tasks one steal from a peer's queue takes (it takes half the queue up
/// to this). crossbeam's default batch is 32: a worker that spawns a burst of thousands
/// then feeds its idle peer 32 at a time, one steal operation (an epoch pin and a CAS on
/// the victim's queue head) and one trip through the parking protocol per 32 tasks, and
/// the two workers end up stealing the burst back and forth. Half of the queue balances the
/// burst in a step or two, as tokio's steal does (half of its 256-slot queue at most).
pub(crate) const STEAL_LIMIT: usize = 1024;

/// Takes from a steal source until it answers something other than `Retry`.
pub(crate) fn retry<T>(mut f: impl FnMut() -> Steal<T>) -> Option<T> {
    loop {
        match f() {
            Steal::Success(t) => return Some(t),
            Steal::Empty => return None,
            Steal::Retry => continue,
        }
    }
}

#[cfg(loom)]
mod mock {
    //! The items live under a loom mutex, but the emptiness and length checks read two
    //! atomic indices with the orderings crossbeam uses, never the mutex: a worker's
    //! parking re-check (`Shared::has_work`) gets no happens-before edge from a push for
    //! free, so the models see exactly the stale reads the real lock-free deques allow and
    //! the `SeqCst` fences of the parking protocol (idle.rs, rule 2) have to do their job.
    //!
    //! - `Local` (crossbeam `Worker`): the owner pushes with a `Release` store of `back`;
    //!   pops and steals advance `front` with `SeqCst` RMWs. `Stealer::is_empty` loads
    //!   `front` (`Acquire`), fences (`SeqCst`), loads `back` (`Acquire`).
    //! - `Injector`: pushes advance `tail`, steals advance `head`, both `SeqCst` RMWs;
    //!   `is_empty` loads both `SeqCst`.

    use crate::shim::atomic::{fence, AtomicUsize, Ordering};
    use crate::shim::{Arc, Mutex};
    use std::collections::VecDeque;

    pub(crate) enum Steal<T> {
        Empty,
        Success(T),
        #[allow(dead_code)]
        Retry,
    }

    /// One queue: items under the mutex; `front` counts items taken, `back` items added.
    /// Both are only written while the mutex is held.
    struct Inner<T> {
        items: Mutex<VecDeque<T>>,
        front: AtomicUsize,
        back: AtomicUsize,
    }

    impl<T> Inner<T> {
        fn new() -> Self {
            Inner {
                items: Mutex::new(VecDeque::new()),
                front: AtomicUsize::new(0),
                back: AtomicUsize::new(0),
            }
        }

        /// Removes up to half of the items (at least one), front first.
        fn take_half(&self) -> VecDeque<T> {
            self.take_half_up_to(usize::MAX)
        }

        /// Removes up to half of the items (at least one) and at most `limit`, front first.
        fn take_half_up_to(&self, limit: usize) -> VecDeque<T> {
            let mut q = self.items.lock();
            let n = q.len().div_ceil(2).min(limit);
            let batch: VecDeque<T> = q.drain(..n).collect();
            if n > 0 {
                self.front.fetch_add(n, Ordering::SeqCst);
            }
            batch
        }
    }

    pub(crate) struct Local<T> {
        q: Arc<Inner<T>>,
    }

    pub(crate) struct Stealer<T> {
        q: Arc<Inner<T>>,
    }

    pub(crate) struct Injector<T> {
        q: Inner<T>,
    }

    fn first_to_caller<T>(mut batch: VecDeque<T>, dest: &Local<T>) -> Steal<T> {
        match batch.pop_front() {
            None => Steal::Empty,
            Some(first) => {
                for t in batch {
                    dest.push(t);
                }
                Steal::Success(first)
            }
        }
    }

    impl<T> Local<T> {
        pub(crate) fn new_fifo() -> Self {
            Local {
                q: Arc::new(Inner::new()),
            }
        }
        pub(crate) fn push(&self, t: T) {
            let mut q = self.q.items.lock();
            q.push_back(t);
            let b = self.q.back.load(Ordering::Relaxed);
            self.q.back.store(b + 1, Ordering::Release);
        }
        pub(crate) fn pop(&self) -> Option<T> {
            let mut q = self.q.items.lock();
            let t = q.pop_front();
            if t.is_some() {
                self.q.front.fetch_add(1, Ordering::SeqCst);
            }
            t
        }
        pub(crate) fn len(&self) -> usize {
            let b = self.q.back.load(Ordering::Relaxed);
            let f = self.q.front.load(Ordering::SeqCst);
            b.saturating_sub(f)
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.len() == 0
        }
        pub(crate) fn stealer(&self) -> Stealer<T> {
            Stealer { q: self.q.clone() }
        }
    }

    impl<T> Stealer<T> {
        pub(crate) fn steal_batch_with_limit_and_pop(
            &self,
            dest: &Local<T>,
            _limit: usize,
        ) -> Steal<T> {
            first_to_caller(self.q.take_half(), dest)
        }
        pub(crate) fn len(&self) -> usize {
            let b = self.q.back.load(Ordering::Acquire);
            let f = self.q.front.load(Ordering::Acquire);
            b.saturating_sub(f)
        }
        pub(crate) fn is_empty(&self) -> bool {
            let f = self.q.front.load(Ordering::Acquire);
            fence(Ordering::SeqCst);
            let b = self.q.back.load(Ordering::Acquire);
            b <= f
        }
    }

    impl<T> Injector<T> {
        pub(crate) fn new() -> Self {
            Injector { q: Inner::new() }
        }
        pub(crate) fn push(&self, t: T) {
            let mut q = self.q.items.lock();
            q.push_back(t);
            self.q.back.fetch_add(1, Ordering::SeqCst);
        }
        pub(crate) fn steal(&self) -> Steal<T> {
            let mut q = self.q.items.lock();
            match q.pop_front() {
                Some(t) => {
                    self.q.front.fetch_add(1, Ordering::SeqCst);
                    Steal::Success(t)
                }
                None => Steal::Empty,
            }
        }
        pub(crate) fn steal_batch_with_limit_and_pop(
            &self,
            dest: &Local<T>,
            limit: usize,
        ) -> Steal<T> {
            first_to_caller(self.q.take_half_up_to(limit), dest)
        }
        pub(crate) fn is_empty(&self) -> bool {
            let f = self.q.front.load(Ordering::SeqCst);
            let b = self.q.back.load(Ordering::SeqCst);
            b <= f
        }
        pub(crate) fn len(&self) -> usize {
            let b = self.q.back.load(Ordering::SeqCst);
            let f = self.q.front.load(Ordering::SeqCst);
            b.saturating_sub(f)
        }
    }
}

/// The one way work is handed to a loop from a thread that may race the loop's closing
/// (a `schedule` from another thread, a remote timer, a post to a `LocalLoop`'s inbox).
///
/// `publish` makes the work visible (pushes it, sets a flag); then a `SeqCst` fence; then
/// `closed` is read. The closing side does the mirror image — sets `closed`, fences, drains
/// — so by Dekker's argument one of the two sees the other: either the closer drains our
/// work, or we see `closed` and `reclaim` it ourselves, so no reference is stranded in a
/// queue nobody reads. What a poster may take back is the caller's to decide: a
/// `LocalLoop`'s inbox may hold the loop's own `!Send` work until `close()` is done with it
/// (`LocalShared::schedule`). If the loop is open, `wake` it; the fence also pairs with a parking
/// consumer's announce-then-recheck (runtime/idle.rs rule 2, `LocalShared::wake`), so the
/// wake is not lost either.
pub(crate) fn hand_off(
    publish: impl FnOnce(),
    closed: &crate::shim::atomic::AtomicBool,
    reclaim: impl FnOnce(),
    wake: impl FnOnce(),
) {
    use crate::shim::atomic::{fence, Ordering};
    publish();
    fence(Ordering::SeqCst);
    if closed.load(Ordering::SeqCst) {
        reclaim();
    } else {
        wake();
    }
}
