//! asyncio's queues (rules Q1–Q8): [`Queue`] (FIFO), [`LifoQueue`] and [`PriorityQueue`],
//! one generic core ([`GenericQueue`]) over three storages (`order.rs`).
//!
//! ```text
//! q = asyncio.Queue(maxsize=8)           let q = Arc::new(Queue::new(8));
//! await q.put(item)                      q.put(item).await?;          // Err: QueueShutDown
//! item = await q.get()                   let item = q.get().await?;
//! q.put_nowait(item)                     q.put_nowait(item)?;         // Err: QueueFull / ShutDown
//! q.task_done(); await q.join()          q.task_done()?; q.join().await;
//! q.shutdown(immediate=True)             q.shutdown(true);
//! ```
//!
//! # Thread safety
//!
//! asyncio's queue is confined to its loop; this one is shared: every method takes `&self`
//! and may be called from any worker, from a `LocalLoop`, and (the non-async ones) from a
//! thread that runs no loop at all, which is how a blocking producer feeds tasks. All state
//! (the items, the unfinished count, the shutdown flag, the waiter lists) sits behind one
//! lock that is never held across an await, never while user code runs (items dropped by
//! `shutdown(immediate)` are dropped after it is released; the one exception is the items'
//! own `Debug`, which the queue's `Debug` calls) and never while a waker is woken.
//! A woken task runs on its own loop: its `Waker` queues it there.
//!
//! # The protocol
//!
//! As asyncio's, a waiting `get` is *notified*, not handed an item: `put_nowait` stores the
//! item and wakes the first waiting getter, which takes an item (any item) when it runs. A
//! getter that finds the queue empty again (a `get_nowait` elsewhere came first) waits again.
//! So the only place an item leaves the queue is a `get` that returns it, and cancellation
//! cannot lose one (Q5). What cancellation can lose is the *notification*: a getter that was
//! woken and then dropped before it ran passes its wake-up on to the next getter if the queue
//! still holds an item (asyncio's `_wakeup_next` in `get`'s `except:`); putters likewise.
//! The waiter lists themselves are in `waiting.rs`.

mod error;
mod order;
mod waiting;

pub use error::{
    GetNowaitError, PutNowaitError, QueueEmpty, QueueFull, QueueShutDown, TaskDoneError,
};
pub use order::{Fifo, Lifo, Order, Priority};
pub use waiting::{Get, Join, Put};

use std::fmt;
use std::marker::PhantomData;
use std::task::Waker;

use crate::shim::Mutex;
use crate::sync::waiters::{self, WaitList};
use order::sealed::Store;

/// A FIFO queue: asyncio's `asyncio.Queue`. `Queue::new(0)` is unbounded.
///
/// ```
/// use std::sync::Arc;
/// use aioloop::queue::Queue;
///
/// let rt = aioloop::Runtime::builder().workers(2).build()?;
/// let total = rt.block_on(async {
///     let q = Arc::new(Queue::new(4));
///     let consumer = aioloop::create_task({
///         let q = q.clone();
///         async move {
///             let mut sum = 0;
///             while let Ok(n) = q.get().await {
///                 sum += n;
///                 q.task_done().unwrap();
///             }
///             sum // get() failed: the queue was shut down and is empty
///         }
///     });
///     for n in 1..=10 {
///         q.put(n).await.unwrap(); // waits while 4 items are queued
///     }
///     q.join().await; // every item was taken and marked done
///     q.shutdown(false);
///     consumer.await.unwrap()
/// });
/// assert_eq!(total, 55);
/// # Ok::<(), std::io::Error>(())
/// ```
pub type Queue<T> = GenericQueue<T, Fifo>;

/// A LIFO queue (a stack): asyncio's `asyncio.LifoQueue`.
///
/// ```
/// let q = aioloop::queue::LifoQueue::new(0);
/// for n in [1, 3, 2] {
///     q.put_nowait(n).unwrap();
/// }
/// let out: Vec<_> = std::iter::from_fn(|| q.get_nowait().ok()).collect();
/// assert_eq!(out, [2, 3, 1]);
/// ```
pub type LifoQueue<T> = GenericQueue<T, Lifo>;

/// A queue that returns its lowest item first: asyncio's `asyncio.PriorityQueue`. Items are
/// typically `(priority, data)` tuples.
///
/// ```
/// let q = aioloop::queue::PriorityQueue::new(0);
/// for n in [1, 3, 2] {
///     q.put_nowait(n).unwrap();
/// }
/// let out: Vec<_> = std::iter::from_fn(|| q.get_nowait().ok()).collect();
/// assert_eq!(out, [1, 2, 3]);
/// ```
pub type PriorityQueue<T> = GenericQueue<T, Priority>;

/// The queue behind [`Queue`], [`LifoQueue`] and [`PriorityQueue`]; `O` is the retrieval
/// order. Use those names: `GenericQueue` appears only where code is generic over the order.
///
/// ```
/// use aioloop::queue::{GenericQueue, Order};
///
/// fn drain<T, O: Order<T>>(q: &GenericQueue<T, O>) -> Vec<T> {
///     std::iter::from_fn(|| q.get_nowait().ok()).collect()
/// }
/// let q = aioloop::queue::Queue::new(0);
/// q.put_nowait('a').unwrap();
/// assert_eq!(drain(&q), ['a']);
/// ```
pub struct GenericQueue<T, O: Order<T>> {
    maxsize: usize,
    state: Mutex<State<T, O::Store>>,
}

/// Everything the lock guards.
struct State<T, S> {
    store: S,
    /// Items put and not yet marked done with `task_done` (asyncio's `_unfinished_tasks`).
    unfinished: usize,
    shutdown: bool,
    /// Tasks waiting in `get` for an item, in `put` for a free slot, in `join` for the
    /// unfinished count to reach zero (`waiting.rs`).
    getters: WaitList,
    putters: WaitList,
    joiners: WaitList,
    _items: PhantomData<fn() -> T>,
}

impl<T, S: Store<T>> State<T, S> {
    fn full(&self, maxsize: usize) -> bool {
        maxsize > 0 && self.store.len() >= maxsize
    }

    /// asyncio's `_put` plus its bookkeeping: the unfinished count goes up and the first
    /// waiting getter is notified (returned, to be woken once the lock is released).
    pub(super) fn store_item(&mut self, item: T) -> Option<Waker> {
        self.store.push(item);
        self.unfinished += 1;
        self.getters.notify_one()
    }
}

impl<T, O: Order<T>> GenericQueue<T, O> {
    /// A queue of at most `maxsize` items; `0` means unbounded (asyncio's `maxsize <= 0`).
    /// A bounded queue allocates its storage here, once (up to 1024 slots; beyond that it
    /// grows as needed).
    ///
    /// ```
    /// let q = aioloop::queue::Queue::<u8>::new(0);
    /// assert!(!q.full());
    /// let q = aioloop::queue::PriorityQueue::<(u8, &str)>::new(16);
    /// assert_eq!(q.maxsize(), 16);
    /// ```
    pub fn new(maxsize: usize) -> Self {
        GenericQueue {
            maxsize,
            state: Mutex::new(State {
                store: O::Store::with_maxsize(maxsize),
                unfinished: 0,
                shutdown: false,
                getters: WaitList::new(),
                putters: WaitList::new(),
                joiners: WaitList::new(),
                _items: PhantomData,
            }),
        }
    }

    /// The number of items the queue holds at most; `0` means unbounded (rule Q1).
    ///
    /// ```
    /// assert_eq!(aioloop::queue::LifoQueue::<()>::new(3).maxsize(), 3);
    /// ```
    pub fn maxsize(&self) -> usize {
        self.maxsize
    }

    /// The number of items in the queue now (rule Q1). Other threads may change it at any
    /// moment; asyncio's promise that it holds until the next await is a single-thread one.
    ///
    /// ```
    /// let q = aioloop::queue::Queue::new(0);
    /// q.put_nowait(()).unwrap();
    /// assert_eq!(q.qsize(), 1);
    /// ```
    pub fn qsize(&self) -> usize {
        self.state.lock().store.len()
    }

    /// Whether the queue holds no item (rule Q1).
    ///
    /// ```
    /// let q = aioloop::queue::Queue::new(0);
    /// assert!(q.empty());
    /// q.put_nowait(1).unwrap();
    /// assert!(!q.empty());
    /// ```
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether the queue holds `maxsize` items; never true for an unbounded queue (rule Q1).
    ///
    /// ```
    /// let q = aioloop::queue::Queue::new(1);
    /// q.put_nowait(1).unwrap();
    /// assert!(q.full());
    /// ```
    pub fn full(&self) -> bool {
        self.state.lock().full(self.maxsize)
    }

    /// Puts `item` if there is room now (rule Q3). Callable from any thread, loop or not.
    /// Fails with [`QueueShutDown`] after [`shutdown`](Self::shutdown) (whether or not the
    /// queue is full), else with [`QueueFull`]; either way the item comes back. On success
    /// the unfinished count goes up by one (Q6) and the first waiting `get` is woken (Q4).
    ///
    /// ```
    /// use aioloop::queue::{PutNowaitError, Queue};
    ///
    /// let q = Queue::new(1);
    /// assert!(q.put_nowait(1).is_ok());
    /// assert!(matches!(q.put_nowait(2), Err(PutNowaitError::Full(_))));
    /// ```
    pub fn put_nowait(&self, item: T) -> Result<(), PutNowaitError<T>> {
        let mut st = self.state.lock();
        if st.shutdown {
            return Err(PutNowaitError::ShutDown(QueueShutDown(item)));
        }
        if st.full(self.maxsize) {
            return Err(PutNowaitError::Full(QueueFull(item)));
        }
        let getter = st.store_item(item);
        drop(st);
        waiters::wake(getter);
        Ok(())
    }

    /// Takes an item if there is one now (rule Q3). Callable from any thread, loop or not.
    /// After [`shutdown(false)`](Self::shutdown) the remaining items can still be taken;
    /// once the queue is empty (or after `shutdown(true)`) it fails with [`QueueShutDown`]
    /// instead of [`QueueEmpty`]. On success the first waiting `put` is woken (Q4).
    ///
    /// ```
    /// use aioloop::queue::{GetNowaitError, Queue, QueueEmpty};
    ///
    /// let q = Queue::new(0);
    /// q.put_nowait("job").unwrap();
    /// assert_eq!(q.get_nowait(), Ok("job"));
    /// assert_eq!(q.get_nowait(), Err(GetNowaitError::Empty(QueueEmpty)));
    /// ```
    pub fn get_nowait(&self) -> Result<T, GetNowaitError> {
        let mut st = self.state.lock();
        match st.store.pop() {
            Some(item) => {
                let putter = st.putters.notify_one();
                drop(st);
                waiters::wake(putter);
                Ok(item)
            }
            None if st.shutdown => Err(GetNowaitError::ShutDown(QueueShutDown(()))),
            None => Err(GetNowaitError::Empty(QueueEmpty)),
        }
    }

    /// Takes the next item, waiting while the queue is empty (rules Q4, Q5): asyncio's
    /// `await q.get()`. Waiting getters are woken in the order they started waiting, one per
    /// item put. Fails with [`QueueShutDown`] once the queue is shut down and empty (or shut
    /// down immediately). Cancelling it (dropping the future) never loses an item: an item
    /// leaves the queue only in the `get` that returns it, and a getter that had been woken
    /// for an item passes its wake-up on.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let rt = aioloop::Runtime::builder().workers(2).build()?;
    /// rt.block_on(async {
    ///     let q = Arc::new(aioloop::queue::Queue::new(0));
    ///     let getter = aioloop::create_task({
    ///         let q = q.clone();
    ///         async move { q.get().await }
    ///     });
    ///     q.put_nowait("item").unwrap(); // wakes the getter, on its own loop
    ///     assert_eq!(getter.await.unwrap(), Ok("item"));
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn get(&self) -> Get<'_, T, O> {
        Get::new(self)
    }

    /// Puts `item`, waiting while the queue is full (rules Q4, Q5): asyncio's
    /// `await q.put(item)`. Fails with [`QueueShutDown`] (holding the item) if the queue is
    /// or gets shut down before there is room. A cancelled put puts nothing, and a putter
    /// woken for a free slot that is then cancelled passes its wake-up on.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let rt = aioloop::Runtime::builder().workers(2).build()?;
    /// rt.block_on(async {
    ///     let q = Arc::new(aioloop::queue::Queue::new(1));
    ///     q.put(1).await.unwrap();
    ///     let putter = aioloop::create_task({
    ///         let q = q.clone();
    ///         async move { q.put(2).await.is_ok() } // waits: the queue is full
    ///     });
    ///     assert_eq!(q.get().await, Ok(1));        // frees the slot, wakes the putter
    ///     assert!(putter.await.unwrap());
    ///     assert_eq!(q.get_nowait(), Ok(2));
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn put(&self, item: T) -> Put<'_, T, O> {
        Put::new(self, item)
    }

    /// Waits until every item ever put has been marked done with
    /// [`task_done`](Self::task_done) (rule Q6): asyncio's `await q.join()`. Ready at once
    /// when the unfinished count is zero.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let rt = aioloop::Runtime::builder().workers(2).build()?;
    /// rt.block_on(async {
    ///     let q = Arc::new(aioloop::queue::Queue::new(0));
    ///     q.put_nowait("job").unwrap();
    ///     let worker = aioloop::create_task({
    ///         let q = q.clone();
    ///         async move {
    ///             let _job = q.get().await.unwrap();
    ///             q.task_done().unwrap();
    ///         }
    ///     });
    ///     q.join().await; // returns after the worker's task_done
    ///     worker.await.unwrap();
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn join(&self) -> Join<'_, T, O> {
        Join::new(self)
    }

    /// Marks one item taken from the queue as processed (rule Q6). When every item ever put
    /// has been marked, the tasks waiting in [`join`](Self::join) wake. Fails with
    /// [`TaskDoneError`] when called more times than items were put.
    ///
    /// ```
    /// let q = aioloop::queue::Queue::new(0);
    /// q.put_nowait(1).unwrap();
    /// q.get_nowait().unwrap();
    /// assert!(q.task_done().is_ok());
    /// assert!(q.task_done().is_err());
    /// ```
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        let mut st = self.state.lock();
        if st.unfinished == 0 {
            return Err(TaskDoneError);
        }
        st.unfinished -= 1;
        if st.unfinished == 0 {
            waiters::notify_many(st, || self.state.lock(), |st| &mut st.joiners, usize::MAX);
        }
        Ok(())
    }

    /// Shuts the queue down (rules Q7, Q8; asyncio 3.13). From then on `put` and
    /// `put_nowait` fail with [`QueueShutDown`], and the tasks waiting in `put` wake and fail
    /// with it. With `immediate == false` the items already queued can still be taken; `get`
    /// fails once the queue is empty, and the tasks waiting in `get` wake and fail. With
    /// `immediate == true` the queue is emptied too (the items are dropped), the unfinished
    /// count goes down by one per dropped item, and if it reaches zero the tasks waiting in
    /// `join` wake. Calling it again is allowed (a later `true` still drains).
    ///
    /// ```
    /// let q = aioloop::queue::Queue::new(0);
    /// q.put_nowait(1).unwrap();
    /// q.shutdown(false);
    /// assert_eq!(q.get_nowait(), Ok(1));             // still drains normally
    /// assert!(q.get_nowait().unwrap_err().is_shut_down());
    /// ```
    pub fn shutdown(&self, immediate: bool) {
        let mut dropped = Vec::new();
        let mut st = self.state.lock();
        st.shutdown = true;
        let mut joiners_done = false;
        if immediate {
            while let Some(item) = st.store.pop() {
                dropped.push(item);
                st.unfinished = st.unfinished.saturating_sub(1);
            }
            joiners_done = st.unfinished == 0;
        }
        // Getters re-check (and fail once the queue is empty), putters fail (Q7, Q8). A wait
        // that starts after the flag was set sees it, so later lock holds miss no one.
        let relock = || self.state.lock();
        waiters::notify_many(st, relock, |st| &mut st.getters, usize::MAX);
        waiters::notify_many(relock(), relock, |st| &mut st.putters, usize::MAX);
        if joiners_done {
            waiters::notify_many(relock(), relock, |st| &mut st.joiners, usize::MAX);
        }
        // User destructors run outside the lock (module docs).
        drop(dropped);
    }
}

/// asyncio's `repr` of a queue: `<Queue maxsize=0 _queue=[1, 2] _getters[1] tasks=2
/// shutdown>`, each part present only when non-empty (the items in storage order).
///
/// ```
/// let q = aioloop::queue::Queue::new(0);
/// assert_eq!(format!("{q:?}"), "<Queue maxsize=0>");
/// q.put_nowait(1).unwrap();
/// assert_eq!(format!("{q:?}"), "<Queue maxsize=0 _queue=[1] tasks=1>");
/// ```
impl<T: fmt::Debug, O: Order<T>> fmt::Debug for GenericQueue<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock();
        write!(f, "<{} maxsize={}", O::NAME, self.maxsize)?;
        let items = st.store.items();
        if !items.is_empty() {
            write!(f, " _queue={items:?}")?;
        }
        if !st.getters.is_empty() {
            write!(f, " _getters[{}]", st.getters.len())?;
        }
        if !st.putters.is_empty() {
            write!(f, " _putters[{}]", st.putters.len())?;
        }
        if st.unfinished > 0 {
            write!(f, " tasks={}", st.unfinished)?;
        }
        if st.shutdown {
            f.write_str(" shutdown")?;
        }
        f.write_str(">")
    }
}
