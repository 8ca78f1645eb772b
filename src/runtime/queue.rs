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
    use crate::sync::{Arc, Mutex};
    use std::collections::VecDeque;

    pub(crate) enum Steal<T> {
        Empty,
        Success(T),
        #[allow(dead_code)]
        Retry,
    }

    pub(crate) struct Local<T> {
        q: Arc<Mutex<VecDeque<T>>>,
    }

    pub(crate) struct Stealer<T> {
        q: Arc<Mutex<VecDeque<T>>>,
    }

    pub(crate) struct Injector<T> {
        q: Mutex<VecDeque<T>>,
    }

    fn take_half<T>(src: &Mutex<VecDeque<T>>, dest: &Local<T>) -> Steal<T> {
        let mut batch: VecDeque<T> = {
            let mut s = src.lock();
            let n = s.len().div_ceil(2);
            s.drain(..n).collect()
        };
        match batch.pop_front() {
            None => Steal::Empty,
            Some(first) => {
                dest.q.lock().extend(batch);
                Steal::Success(first)
            }
        }
    }

    impl<T> Local<T> {
        pub(crate) fn new_fifo() -> Self {
            Local {
                q: Arc::new(Mutex::new(VecDeque::new())),
            }
        }
        pub(crate) fn push(&self, t: T) {
            self.q.lock().push_back(t)
        }
        pub(crate) fn pop(&self) -> Option<T> {
            self.q.lock().pop_front()
        }
        pub(crate) fn len(&self) -> usize {
            self.q.lock().len()
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.q.lock().is_empty()
        }
        pub(crate) fn stealer(&self) -> Stealer<T> {
            Stealer { q: self.q.clone() }
        }
    }

    impl<T> Stealer<T> {
        pub(crate) fn steal_batch_and_pop(&self, dest: &Local<T>) -> Steal<T> {
            take_half(&self.q, dest)
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.q.lock().is_empty()
        }
    }

    impl<T> Injector<T> {
        pub(crate) fn new() -> Self {
            Injector {
                q: Mutex::new(VecDeque::new()),
            }
        }
        pub(crate) fn push(&self, t: T) {
            self.q.lock().push_back(t)
        }
        pub(crate) fn steal(&self) -> Steal<T> {
            match self.q.lock().pop_front() {
                Some(t) => Steal::Success(t),
                None => Steal::Empty,
            }
        }
        pub(crate) fn steal_batch_and_pop(&self, dest: &Local<T>) -> Steal<T> {
            take_half(&self.q, dest)
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.q.lock().is_empty()
        }
    }
}
