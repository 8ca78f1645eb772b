//! The three retrieval orders (rule Q2) as the storage behind one generic queue: asyncio's
//! `Queue`, `LifoQueue` and `PriorityQueue` differ only in their `_init`, `_put` and `_get`,
//! and so do ours. Everything else (waiting, shutdown, `task_done`) lives once, in the core.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// A retrieval order for a [`GenericQueue`](super::GenericQueue): [`Fifo`], [`Lifo`] or
/// [`Priority`]. Sealed: the storage it selects is internal.
///
/// ```
/// use aioloop::queue::{GenericQueue, Lifo};
///
/// fn newest_first<T>(q: &GenericQueue<T, Lifo>) -> Option<T> {
///     q.get_nowait().ok()
/// }
/// let q = aioloop::queue::LifoQueue::new(0);
/// q.put_nowait(1).unwrap();
/// q.put_nowait(2).unwrap();
/// assert_eq!(newest_first(&q), Some(2));
/// ```
pub trait Order<T>: sealed::Sealed {
    /// The storage this order keeps its items in.
    #[doc(hidden)]
    type Store: sealed::Store<T>;
    /// The asyncio class name, for `Debug`.
    #[doc(hidden)]
    const NAME: &'static str;
}

/// First in, first out: [`Queue`](super::Queue) (a `VecDeque`).
///
/// ```
/// let q: aioloop::queue::GenericQueue<u8, aioloop::queue::Fifo> = aioloop::queue::Queue::new(0);
/// q.put_nowait(1).unwrap();
/// q.put_nowait(2).unwrap();
/// assert_eq!(q.get_nowait(), Ok(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fifo;

/// Last in, first out: [`LifoQueue`](super::LifoQueue) (a `Vec` used as a stack).
///
/// ```
/// let q: aioloop::queue::GenericQueue<u8, aioloop::queue::Lifo> = aioloop::queue::LifoQueue::new(0);
/// q.put_nowait(1).unwrap();
/// q.put_nowait(2).unwrap();
/// assert_eq!(q.get_nowait(), Ok(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Lifo;

/// Lowest first: [`PriorityQueue`](super::PriorityQueue) (a binary heap, as asyncio's uses
/// `heapq`). Items that compare equal come out in no particular order, as in asyncio; put
/// `(priority, sequence, item)` tuples to break ties by arrival.
///
/// ```
/// let q: aioloop::queue::GenericQueue<u8, aioloop::queue::Priority> =
///     aioloop::queue::PriorityQueue::new(0);
/// q.put_nowait(3).unwrap();
/// q.put_nowait(1).unwrap();
/// assert_eq!(q.get_nowait(), Ok(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Priority;

impl<T> Order<T> for Fifo {
    type Store = VecDeque<T>;
    const NAME: &'static str = "Queue";
}

impl<T> Order<T> for Lifo {
    type Store = Vec<T>;
    const NAME: &'static str = "LifoQueue";
}

impl<T: Ord> Order<T> for Priority {
    type Store = BinaryHeap<Reverse<T>>;
    const NAME: &'static str = "PriorityQueue";
}

pub(crate) mod sealed {
    use super::*;

    pub trait Sealed {}
    impl Sealed for Fifo {}
    impl Sealed for Lifo {}
    impl Sealed for Priority {}

    /// asyncio's `_init` / `_put` / `_get` / `qsize`, plus a look at the items for `Debug`.
    pub trait Store<T> {
        /// Storage for a queue of at most `maxsize` items (0: unbounded). Bounded queues
        /// allocate once, up front, so that a put never reallocates; unbounded ones grow.
        fn with_maxsize(maxsize: usize) -> Self;
        fn push(&mut self, item: T);
        fn pop(&mut self) -> Option<T>;
        fn len(&self) -> usize;
        /// The items in storage order (heap order for a priority queue, as asyncio's repr).
        fn items(&self) -> Vec<&T>;
    }

    /// Bounded queues reserve their capacity up front, but not absurd capacities: a caller
    /// asking for a queue of `usize::MAX` items means "big", not "allocate it now".
    fn initial_capacity(maxsize: usize) -> usize {
        maxsize.min(1024)
    }

    impl<T> Store<T> for VecDeque<T> {
        fn with_maxsize(maxsize: usize) -> Self {
            VecDeque::with_capacity(initial_capacity(maxsize))
        }
        fn push(&mut self, item: T) {
            self.push_back(item)
        }
        fn pop(&mut self) -> Option<T> {
            self.pop_front()
        }
        fn len(&self) -> usize {
            VecDeque::len(self)
        }
        fn items(&self) -> Vec<&T> {
            self.iter().collect()
        }
    }

    impl<T> Store<T> for Vec<T> {
        fn with_maxsize(maxsize: usize) -> Self {
            Vec::with_capacity(initial_capacity(maxsize))
        }
        fn push(&mut self, item: T) {
            Vec::push(self, item)
        }
        fn pop(&mut self) -> Option<T> {
            Vec::pop(self)
        }
        fn len(&self) -> usize {
            Vec::len(self)
        }
        fn items(&self) -> Vec<&T> {
            self.iter().collect()
        }
    }

    impl<T: Ord> Store<T> for BinaryHeap<Reverse<T>> {
        fn with_maxsize(maxsize: usize) -> Self {
            BinaryHeap::with_capacity(initial_capacity(maxsize))
        }
        fn push(&mut self, item: T) {
            BinaryHeap::push(self, Reverse(item))
        }
        fn pop(&mut self) -> Option<T> {
            BinaryHeap::pop(self).map(|Reverse(item)| item)
        }
        fn len(&self) -> usize {
            BinaryHeap::len(self)
        }
        fn items(&self) -> Vec<&T> {
            self.iter().map(|Reverse(item)| item).collect()
        }
    }
}
