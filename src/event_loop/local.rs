//! `LocalLoop`: one event loop on a thread the embedder owns (a GUI, a game engine, a plugin
//! host), built from the same loop core as each runtime worker.
//!
//! ```text
//!   host thread                                   other threads
//!   ───────────                                   ─────────────
//!   host's own poll/epoll/GUI loop                LoopHandle (Send + Clone)
//!     │ watches lp.as_fd() ◄──── Poller::notify ──── call_soon_threadsafe / spawn / stop
//!     │ readable, or lp.next_timeout() elapsed        │
//!     ▼                                               ▼
//!   lp.run_once(Some(0))  ──►  LoopCore::run_once ◄── inbox (crossbeam Injector)
//!                              ready queue · timers · !Send tasks
//! ```
//!
//! The loop's ready queue and timers are the shared [`LoopCore`]; what is particular here is
//! the [`Flavor`]: remote work comes from a thread-safe inbox (drained whole each iteration),
//! there is nobody to steal from, and sleeping is a plain wait on the loop's own
//! `polling::Poller`, whose file descriptor the host can watch.
//!
//! Lifecycle (rules S5–S7): `run_forever` runs iterations until `stop()` (which lets the
//! current iteration finish); `run_until_complete` drives a future as the loop's main task;
//! `close()` — also run by `Drop` — cancels the loop's unfinished tasks and drops its queued
//! callbacks and timers, on this thread.

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use super::callback::{Handle, Runnable, TimerHandle};
use super::clock;
use super::core::{self, Flavor, LoopCore};
use super::timers::TimerAction;
use crate::error::LoopError;
use crate::exception::{ExceptionHandler, HandlerSlot};
use crate::runtime::block_on::MainGuard;
use crate::runtime::context::{self, LoopContext, Owner};
use crate::runtime::park::{Park, Parker};
use crate::runtime::queue::{self, Injector};
use crate::sync::atomic::{fence, AtomicBool, Ordering};
use crate::task::raw::{Notified, RawTask, Schedule};
use crate::task::spawn::SpawnOpts;
use crate::task::TaskFactory;
use crate::task::{self, LoopId, Task, TaskRef};

/// The part of a `LocalLoop` other threads may touch.
pub(crate) struct LocalShared {
    pub(crate) id: LoopId,
    /// The thread that created the loop (and alone may run it: `LocalLoop` is `!Send`).
    owner: crate::sync::thread::ThreadId,
    inbox: Injector<Runnable>,
    parker: Parker,
    stopping: AtomicBool,
    /// The loop thread is in (or about to enter) `Parker::park`.
    sleeping: AtomicBool,
    /// A notify may have left a token in the poller (see `LocalShared::notify`).
    notified: AtomicBool,
    closed: AtomicBool,
    running: AtomicBool,
    exceptions: Arc<HandlerSlot>,
    /// The loop's task factory (T10); read at each task creation.
    task_factory: crate::sync::Mutex<Option<TaskFactory>>,
    /// `task_factory` is `Some` (a lock-free check on the spawn path).
    has_task_factory: AtomicBool,
}

impl LocalShared {
    /// Queues `item` on this loop: straight onto the ready queue on the loop's own thread
    /// while it runs, else into the inbox, waking the loop.
    ///
    /// While the loop is not running, everything — `call_soon`, `create_task`,
    /// `call_soon_threadsafe`, from this thread or another — goes through the inbox, which
    /// the next iteration drains first: one FIFO order for all of it (rules S1, T2).
    fn schedule(&self, item: Runnable) {
        if let Err(item) = context::try_push_local(self, item) {
            self.inbox.push(item);
            // Pairs with `close`: it sets `closed`, fences, drains the inbox. Either it sees
            // our item or we see `closed` and drain it ourselves.
            fence(Ordering::SeqCst);
            if self.closed.load(Ordering::SeqCst) {
                core::drain(|| self.inbox.steal());
            } else if crate::sync::thread::current().id() != self.owner {
                // The loop's own thread is not parked in it, so only others need to wake it.
                self.wake();
            }
        }
    }

    /// Spawns a `Send` future as a task of this loop (from any thread: `LoopHandle::spawn`,
    /// or `create_task` inside the running loop).
    pub(crate) fn spawn_with<F>(self: &Arc<Self>, future: F, opts: SpawnOpts) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let raw = RawTask::new(future, LocalScheduler(self.clone()), task::next_task_id());
        // SAFETY: a fresh task whose output is `F::Output`.
        unsafe { self.bind(raw, opts) }
    }

    /// # Safety
    /// As `task::spawn::bind`; and a task whose future is not `Send` is bound only on the
    /// loop's own thread.
    pub(crate) unsafe fn bind<T>(&self, raw: RawTask, opts: SpawnOpts) -> Task<T> {
        let opts = self.apply_factory(opts);
        let eager = opts.eager;
        // SAFETY: forwarded.
        let (join, notified) = unsafe { task::spawn::bind(raw, opts) };
        if self.closed.load(Ordering::SeqCst) {
            task::spawn::reject(notified, raw);
        } else if eager && context::is_thread_of(self) {
            // T9: only while this loop runs on this thread; elsewhere it is queued.
            task::spawn::run_eagerly(notified);
        } else {
            // FIFO with `call_soon` (rule T2), whether or not the loop is running now.
            self.schedule(Runnable::Task(notified));
        }
        join
    }

    fn apply_factory(&self, opts: SpawnOpts) -> SpawnOpts {
        // The common case, no factory, skips the lock.
        if !self.has_task_factory.load(Ordering::Acquire) {
            return opts;
        }
        let factory = self.task_factory.lock().clone();
        match factory {
            Some(f) => f.apply(opts),
            None => opts,
        }
    }

    /// `call_soon_threadsafe`, for `LoopHandle` and crate-internal callers (done callbacks,
    /// futures): `None` if the loop is closed and `f` was dropped.
    pub(crate) fn call_soon_send(&self, f: impl FnOnce() + Send + 'static) -> Option<Handle> {
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        // SAFETY: `f` is `Send`, so it may cross threads.
        let h = unsafe { Handle::new(f) };
        self.schedule(Runnable::Callback(h.clone()));
        Some(h)
    }

    /// The loop's exception-handler slot.
    pub(crate) fn exceptions(&self) -> &HandlerSlot {
        &self.exceptions
    }

    fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Wakes the loop unless it is iterating right now. The caller has made its work
    /// visible (inbox push, `stopping`) before. Two Dekker pairs, each a `SeqCst` fence on
    /// both sides: with `LocalFlavor::park` (it announces `sleeping`, then re-checks), and
    /// with the end of a run (`EnteredLoop::drop` clears `running`, then re-checks and
    /// notifies itself, so that a host watching the fd learns of work that arrived during
    /// the run). When the loop is not running at all, the notify is what makes its fd
    /// readable for the host. Skipping it while the loop is busy iterating saves an eventfd
    /// write here and five system calls in the loop's next `Poller::wait`.
    fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) || !self.running.load(Ordering::SeqCst) {
            self.notify();
        }
    }

    /// Wakes the loop's poller (its fd becomes readable), recording that a token may be
    /// pending so that the next iteration consumes it: otherwise the fd would stay readable
    /// after the work is done and a host watching it would spin.
    fn notify(&self) {
        self.notified.store(true, Ordering::SeqCst);
        self.parker.unpark();
    }

    /// Work from another thread, or a stop, is waiting.
    fn has_remote_work(&self) -> bool {
        !self.inbox.is_empty() || self.stopping.load(Ordering::SeqCst)
    }
}

/// A local task's scheduler: its loop.
struct LocalScheduler(Arc<LocalShared>);

impl Schedule for LocalScheduler {
    fn schedule(&self, task: Notified) {
        self.0.schedule(Runnable::Task(task))
    }

    fn loop_id(&self) -> LoopId {
        self.0.id
    }

    fn owner(&self) -> Option<Owner> {
        Some(Owner::Local(self.0.clone()))
    }
}

/// A single-threaded event loop that runs on a thread you own, for embedding.
///
/// It is asyncio's loop API — `run_until_complete`, `run_forever`, `stop`, `close`,
/// `run_once`, `call_soon`, `call_later`, `call_at`, `create_task`, `time` — on one thread,
/// with `!Send` tasks and callbacks. Other threads reach it through a [`LoopHandle`]. A host
/// event loop can drive it without blocking: watch [`as_raw_fd`](LocalLoop::as_raw_fd) (it
/// becomes readable when work arrives from another thread) and call
/// [`run_once`](LocalLoop::run_once) when it does or when
/// [`next_timeout`](LocalLoop::next_timeout) has passed.
///
/// It needs no stack size setting, unlike a runtime's worker threads
/// ([`thread_stack_size`]): its tasks are polled on the thread that runs it, so how deep
/// futures may nest is bounded by that thread's stack — usually 8 MiB for `main` on Linux,
/// 2 MiB for a thread from `std::thread::spawn` unless its `Builder::stack_size` says
/// otherwise. The per-level costs listed at [`thread_stack_size`] apply here too.
///
/// [`thread_stack_size`]: crate::Builder::thread_stack_size
///
/// ```
/// use std::rc::Rc;
/// use std::cell::Cell;
///
/// let lp = aioloop::LocalLoop::new()?;
/// let hits = Rc::new(Cell::new(0)); // !Send state is fine here
/// let h = hits.clone();
/// let v = lp.run_until_complete(async move {
///     let t = aioloop::spawn_local(async move { h.set(h.get() + 1); 41 });
///     aioloop::sleep(std::time::Duration::from_millis(1)).await;
///     t.await.unwrap() + 1
/// })?;
/// assert_eq!((v, hits.get()), (42, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LocalLoop {
    shared: Arc<LocalShared>,
    core: LoopCore,
    _not_send: PhantomData<*const ()>,
}

/// A `Send + Clone` handle to a [`LocalLoop`], for other threads: `call_soon_threadsafe`,
/// `spawn` (of `Send` futures), `stop`.
///
/// ```
/// let lp = aioloop::LocalLoop::new()?;
/// let h = lp.handle();
/// let t = std::thread::spawn(move || h.call_soon_threadsafe(|| println!("hi")));
/// t.join().unwrap()?;
/// lp.run_once(Some(std::time::Duration::from_secs(1)))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct LoopHandle {
    shared: Arc<LocalShared>,
}

struct LocalFlavor<'a> {
    shared: &'a LocalShared,
}

impl Flavor for LocalFlavor<'_> {
    fn pull_remote(&mut self, core: &LoopCore) {
        if self.shared.notified.swap(false, Ordering::SeqCst) {
            // Consume the token first (a zero-timeout wait), then drain: a post that lands
            // after the drain re-arms the fd (or is seen by the end-of-run re-check).
            self.shared.parker.park(Some(Duration::ZERO));
        }
        while let Some(item) = queue::retry(|| self.shared.inbox.steal()) {
            core.ready.push(item);
        }
    }

    fn find_work(&mut self, _core: &LoopCore) -> bool {
        false
    }

    fn park(&mut self, _core: &LoopCore, timeout: Option<Duration>) {
        let shared = self.shared;
        shared.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // asyncio: a stopping loop finishes its iteration without waiting. The re-check
        // after announcing `sleeping` pairs with `LocalShared::wake`.
        if !shared.has_remote_work() {
            // The wait consumes any token; one that arrives after this store sets the flag
            // again and is consumed by the next iteration.
            shared.notified.store(false, Ordering::SeqCst);
            shared.parker.park(timeout);
        }
        shared.sleeping.store(false, Ordering::SeqCst);
    }
}

/// Wakes a `run_until_complete` main future: sets a flag the loop checks between
/// iterations, and wakes the loop's poller when called from another thread.
struct MainWaker {
    shared: Arc<LocalShared>,
    woken: AtomicBool,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::SeqCst) && !context::is_thread_of(&self.shared) {
            self.shared.notify();
        }
    }
}

impl LocalLoop {
    /// A new loop, not running, owned by this thread.
    ///
    /// # Errors
    /// The OS error if its poller cannot be created.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// assert!(!lp.is_running() && !lp.is_closed());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> io::Result<LocalLoop> {
        let exceptions = Arc::new(HandlerSlot::default());
        Ok(LocalLoop {
            shared: Arc::new(LocalShared {
                id: LoopId::new(),
                owner: crate::sync::thread::current().id(),
                inbox: Injector::new(),
                parker: Parker::new()?,
                stopping: AtomicBool::new(false),
                sleeping: AtomicBool::new(false),
                notified: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                running: AtomicBool::new(false),
                task_factory: crate::sync::Mutex::new(None),
                has_task_factory: AtomicBool::new(false),
                exceptions: exceptions.clone(),
            }),
            core: LoopCore::new(queue::new_local(), exceptions),
            _not_send: PhantomData,
        })
    }

    /// A handle for other threads.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// assert_eq!(lp.handle().id(), lp.id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn handle(&self) -> LoopHandle {
        LoopHandle {
            shared: self.shared.clone(),
        }
    }

    /// This loop's id (what its tasks' [`TaskRef::loop_id`] return).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let t = lp.create_task(async {})?;
    /// assert_eq!(t.loop_id(), lp.id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn id(&self) -> LoopId {
        self.shared.id
    }

    /// The loop clock in seconds (asyncio's `loop.time()`; shared by all loops).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// assert!(lp.time() >= 0.0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn time(&self) -> f64 {
        clock::time()
    }

    /// Whether a `run_*` call is in progress.
    ///
    /// ```
    /// let lp = std::rc::Rc::new(aioloop::LocalLoop::new()?);
    /// let l2 = lp.clone();
    /// assert!(lp.run_until_complete(async move { l2.is_running() })?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::SeqCst)
    }

    /// Whether [`close`](LocalLoop::close) was called.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// lp.close()?;
    /// assert!(lp.is_closed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    fn check_open(&self) -> Result<(), LoopError> {
        if self.is_closed() {
            Err(LoopError::Closed)
        } else {
            Ok(())
        }
    }

    /// asyncio's `call_soon(f)`: runs `f` once, in FIFO order with everything else ready on
    /// this loop (rule S1). `f` need not be `Send`.
    ///
    /// # Errors
    /// [`LoopError::Closed`] on a closed loop.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let log = std::rc::Rc::new(std::cell::RefCell::new(vec![]));
    /// for i in 0..3 {
    ///     let log = log.clone();
    ///     lp.call_soon(move || log.borrow_mut().push(i))?;
    /// }
    /// lp.run_once(Some(std::time::Duration::ZERO))?;
    /// assert_eq!(*log.borrow(), vec![0, 1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_soon<F: FnOnce() + 'static>(&self, f: F) -> Result<Handle, LoopError> {
        self.check_open()?;
        // SAFETY: the callback goes onto this loop's ready queue or inbox, which only this
        // loop dequeues, on this thread (`LocalLoop` is `!Send`).
        let h = unsafe { Handle::new(f) };
        self.shared.schedule(Runnable::Callback(h.clone()));
        Ok(h)
    }

    /// asyncio's `call_soon_threadsafe(f)` (see [`LoopHandle::call_soon_threadsafe`]).
    ///
    /// # Errors
    /// [`LoopError::Closed`] on a closed loop.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// lp.call_soon_threadsafe(|| {})?;
    /// lp.run_once(Some(std::time::Duration::ZERO))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_soon_threadsafe<F: FnOnce() + Send + 'static>(
        &self,
        f: F,
    ) -> Result<Handle, LoopError> {
        self.handle().call_soon_threadsafe(f)
    }

    /// asyncio's `call_later(delay, f)` = `call_at(time() + delay, f)` (rule S2). `delay` is
    /// in seconds and may be negative.
    ///
    /// # Errors
    /// [`LoopError::Closed`]; [`LoopError::InvalidDelay`] for NaN or `-inf`.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let fired = std::rc::Rc::new(std::cell::Cell::new(false));
    /// let f = fired.clone();
    /// lp.call_later(0.001, move || f.set(true))?;
    /// while !fired.get() {
    ///     lp.run_once(None)?;
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_later<F: FnOnce() + 'static>(
        &self,
        delay: f64,
        f: F,
    ) -> Result<TimerHandle, LoopError> {
        let when = clock::deadline_after_secs(delay)?;
        self.call_at_nanos(when, f)
    }

    /// asyncio's `call_at(when, f)`, `when` on the loop clock ([`LocalLoop::time`]).
    ///
    /// # Errors
    /// [`LoopError::Closed`]; [`LoopError::InvalidDelay`] for NaN or `-inf`.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let t = lp.call_at(lp.time() - 1.0, || {})?; // in the past: due at once
    /// lp.run_once(Some(std::time::Duration::ZERO))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_at<F: FnOnce() + 'static>(
        &self,
        when: f64,
        f: F,
    ) -> Result<TimerHandle, LoopError> {
        let when = clock::secs_to_nanos(when)?;
        self.call_at_nanos(when, f)
    }

    fn call_at_nanos<F: FnOnce() + 'static>(
        &self,
        when: i64,
        f: F,
    ) -> Result<TimerHandle, LoopError> {
        self.check_open()?;
        // SAFETY: the callback goes into this thread's timer heap, fired only here.
        let handle = unsafe { Handle::new(f) };
        self.core
            .add_timer(when, TimerAction::Callback(handle.clone()));
        Ok(TimerHandle { handle, when })
    }

    /// asyncio's `loop.create_future()`: a [`Future`](crate::Future) bound to this loop
    /// (its done callbacks run on this thread, in the loop's iterations).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let fut = lp.create_future::<&str>();
    /// let setter = fut.clone();
    /// lp.call_soon(move || setter.set_result("set").unwrap())?;
    /// assert_eq!(lp.run_until_complete(fut)?.unwrap(), "set");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_future<T: Send + 'static>(&self) -> crate::Future<T> {
        crate::Future::bound_to(Owner::Local(self.shared.clone()))
    }

    /// asyncio's `create_task`: a task of this loop; the future need not be `Send`.
    ///
    /// # Errors
    /// [`LoopError::Closed`] on a closed loop (the future is dropped, not run).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let rc = std::rc::Rc::new(5);
    /// let t = lp.create_task(async move { *rc * 2 })?;
    /// assert_eq!(lp.run_until_complete(t)?.unwrap(), 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_task<F>(&self, future: F) -> Result<Task<F::Output>, LoopError>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.check_open()?;
        Ok(self.spawn_local_named(future, None))
    }

    /// [`create_task`](LocalLoop::create_task) with a name.
    ///
    /// # Errors
    /// [`LoopError::Closed`] on a closed loop.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let t = lp.create_task_named("ui", async {})?;
    /// assert_eq!(t.name(), "ui");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_task_named<F>(
        &self,
        name: impl Into<Arc<str>>,
        future: F,
    ) -> Result<Task<F::Output>, LoopError>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.check_open()?;
        Ok(self.spawn_local_named(future, Some(name.into())))
    }

    fn spawn_local_named<F>(&self, future: F, name: Option<Arc<str>>) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        // SAFETY: the scheduler is this loop, which runs its tasks only on this thread (it
        // is `!Send`) and cancels them on this thread in `close`/`Drop`.
        let raw = unsafe {
            RawTask::new_local(
                future,
                LocalScheduler(self.shared.clone()),
                task::next_task_id(),
            )
        };
        // SAFETY: a fresh task whose output is `F::Output`, bound on the loop's thread
        // (`LocalLoop` is `!Send`).
        unsafe { self.shared.bind(raw, SpawnOpts::named(name)) }
    }

    /// Runs `future` to completion as the loop's main task, running the loop meanwhile
    /// (asyncio's `run_until_complete`). The future need not be `Send` or `'static`.
    ///
    /// # Errors
    /// [`LoopError::Closed`], [`LoopError::AlreadyRunning`],
    /// [`LoopError::AnotherLoopRunning`] (rule S6); [`LoopError::StoppedBeforeComplete`] if
    /// `stop()` is called first.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// assert_eq!(lp.run_until_complete(async { 7 })?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_until_complete<F: Future>(&self, future: F) -> Result<F::Output, LoopError> {
        let _running = self.enter()?;
        let main = MainGuard::start(self.shared.id);
        let waker_state = Arc::new(MainWaker {
            shared: self.shared.clone(),
            woken: AtomicBool::new(true),
        });
        let waker = Waker::from(waker_state.clone());
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        let mut flavor = LocalFlavor {
            shared: &self.shared,
        };
        // The main future is a task scheduled after everything already queued (asyncio wraps
        // it in a Task whose first step is `call_soon`ed): each turn runs one iteration of
        // the loop, then steps the main future if it was woken.
        loop {
            // Do not sleep while the main future has a wake-up pending.
            let max_wait = if waker_state.woken.load(Ordering::SeqCst) {
                Some(Duration::ZERO)
            } else {
                None
            };
            self.core.run_once(&mut flavor, max_wait);
            if waker_state.woken.swap(false, Ordering::SeqCst) {
                if let Poll::Ready(out) = main.step(future.as_mut(), &mut cx) {
                    return Ok(out);
                }
            }
            if self.shared.stopping.swap(false, Ordering::SeqCst) {
                return Err(LoopError::StoppedBeforeComplete);
            }
        }
    }

    /// Runs iterations until [`stop`](LocalLoop::stop) (asyncio's `run_forever`). A `stop()`
    /// made before the call means exactly one iteration (rule S5).
    ///
    /// # Errors
    /// As [`run_until_complete`](LocalLoop::run_until_complete), except the last.
    ///
    /// ```
    /// let lp = std::rc::Rc::new(aioloop::LocalLoop::new()?);
    /// let l2 = lp.clone();
    /// lp.call_later(0.001, move || l2.stop())?;
    /// lp.run_forever()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_forever(&self) -> Result<(), LoopError> {
        let _running = self.enter()?;
        let mut flavor = LocalFlavor {
            shared: &self.shared,
        };
        loop {
            self.core.run_once(&mut flavor, None);
            if self.shared.stopping.swap(false, Ordering::SeqCst) {
                return Ok(());
            }
        }
    }

    /// Runs one iteration (rule S3), waiting at most `timeout` for work if none is ready
    /// (`None`: until something arrives or a timer is due). For a host loop that drives
    /// this one.
    ///
    /// # Errors
    /// As [`run_forever`](LocalLoop::run_forever).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// lp.run_once(Some(std::time::Duration::ZERO))?; // nothing to do: returns at once
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_once(&self, timeout: Option<Duration>) -> Result<(), LoopError> {
        let _running = self.enter()?;
        let mut flavor = LocalFlavor {
            shared: &self.shared,
        };
        self.core.run_once(&mut flavor, timeout);
        // A stop requested during a lone iteration ends nothing; do not let it leak into
        // the next run_forever.
        self.shared.stopping.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// asyncio's `stop()`: the current iteration finishes, then `run_forever` returns.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// lp.stop();
    /// lp.run_forever()?; // pre-stopped: one iteration, then returns
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(&self) {
        self.shared.stop()
    }

    /// asyncio's `close()`: cancels the loop's unfinished tasks (their futures are dropped
    /// here), drops queued callbacks and timers, and refuses new work. Closing twice is fine.
    ///
    /// # Errors
    /// [`LoopError::CloseRunning`] while the loop runs (rule S7).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let t = lp.create_task(std::future::pending::<()>())?;
    /// lp.close()?;
    /// lp.close()?;
    /// assert!(t.done());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) -> Result<(), LoopError> {
        if self.is_running() {
            return Err(LoopError::CloseRunning);
        }
        self.shared.closed.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        loop {
            task::spawn::cancel_all_of(self.shared.id);
            core::drain(|| self.shared.inbox.steal());
            self.core.clear();
            if self.shared.inbox.is_empty() && self.core.ready.is_empty() {
                break;
            }
        }
        Ok(())
    }

    /// How long a host may wait before calling [`run_once`](LocalLoop::run_once) again:
    /// zero if something is ready, the time to the earliest timer, or `None` if only a
    /// wake-up through [`as_raw_fd`](LocalLoop::as_raw_fd) can bring work.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// assert_eq!(lp.next_timeout(), None);
    /// lp.call_later(5.0, || {})?;
    /// assert!(lp.next_timeout().unwrap() > std::time::Duration::from_secs(4));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_timeout(&self) -> Option<Duration> {
        if !self.core.ready.is_empty() || !self.shared.inbox.is_empty() {
            return Some(Duration::ZERO);
        }
        self.core.next_deadline().and_then(clock::until)
    }

    /// The unfinished tasks of this loop (rule L7), including a running main task.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let t = lp.create_task(std::future::pending::<()>())?;
    /// assert_eq!(lp.all_tasks(), vec![t.task_ref()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn all_tasks(&self) -> Vec<TaskRef> {
        task::all_tasks_of(self.shared.id)
    }

    /// asyncio's `set_exception_handler` (`None`: the default, which writes to stderr).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// lp.set_exception_handler(Some(std::sync::Arc::new(|_ctx: &aioloop::ExceptionContext| {})));
    /// assert!(lp.exception_handler().is_some());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_exception_handler(&self, handler: Option<ExceptionHandler>) {
        self.shared.exceptions.set(handler)
    }

    /// The custom exception handler, if one is set.
    ///
    /// ```
    /// assert!(aioloop::LocalLoop::new()?.exception_handler().is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn exception_handler(&self) -> Option<ExceptionHandler> {
        self.shared.exceptions.get()
    }

    /// asyncio's `loop.set_task_factory` (rule T10): every task created on this loop from
    /// now on goes through `factory`; `None` restores the default.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// lp.set_task_factory(Some(aioloop::task::eager_task_factory()));
    /// let t = lp.run_until_complete(async {
    ///     let t = aioloop::spawn_local(async { 3 });
    ///     assert!(t.done()); // eager: finished inside spawn_local
    ///     t.await
    /// })?;
    /// assert_eq!(t.unwrap(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_task_factory(&self, factory: Option<TaskFactory>) {
        let mut slot = self.shared.task_factory.lock();
        // Release: a spawner that sees the flag sees the factory (it locks anyway).
        self.shared
            .has_task_factory
            .store(factory.is_some(), Ordering::Release);
        *slot = factory;
    }

    /// The task factory, if one is set (asyncio's `loop.get_task_factory`).
    ///
    /// ```
    /// assert!(aioloop::LocalLoop::new()?.get_task_factory().is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn get_task_factory(&self) -> Option<TaskFactory> {
        self.shared.task_factory.lock().clone()
    }

    /// asyncio's `loop.set_debug`: in debug mode, tasks destroyed while pending (closed
    /// with the loop unfinished) are reported to the exception handler (rule T11).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// lp.set_debug(true);
    /// assert!(lp.get_debug());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_debug(&self, on: bool) {
        self.shared.exceptions.set_debug(on)
    }

    /// asyncio's `loop.get_debug`.
    ///
    /// ```
    /// assert!(!aioloop::LocalLoop::new()?.get_debug());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn get_debug(&self) -> bool {
        self.shared.exceptions.debug()
    }

    /// The poller's file descriptor, for a host event loop to watch: it becomes readable
    /// when another thread posts work ([`LoopHandle`]) or calls `stop()`. Timers do not make
    /// it readable: use [`next_timeout`](LocalLoop::next_timeout) as the host's timeout.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// assert!(lp.as_raw_fd() >= 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(all(unix, not(loom)))]
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }

    /// Rule S6: refuses a closed loop, a loop already running, and a thread running another.
    fn enter(&self) -> Result<EnteredLoop<'_>, LoopError> {
        self.check_open()?;
        if self.is_running() {
            return Err(LoopError::AlreadyRunning);
        }
        let ctx = Box::new(LoopContext {
            owner: Owner::Local(self.shared.clone()),
            core: Some(&self.core),
        });
        let guard = context::enter(&ctx).map_err(|_| LoopError::AnotherLoopRunning)?;
        self.shared.running.store(true, Ordering::SeqCst);
        Ok(EnteredLoop {
            guard: Some(guard),
            _ctx: ctx,
            shared: &self.shared,
        })
    }
}

/// While a `LocalLoop` runs: its context is installed on this thread (the boxed context
/// outlives the guard that points to it: the guard is dropped first, in `Drop`).
struct EnteredLoop<'a> {
    guard: Option<context::ContextGuard>,
    _ctx: Box<LoopContext<'a>>,
    shared: &'a LocalShared,
}

impl Drop for EnteredLoop<'_> {
    fn drop(&mut self) {
        self.guard.take();
        self.shared.running.store(false, Ordering::SeqCst);
        // Pairs with `LocalShared::wake`: work posted while we were busy (no notify) must
        // still make the fd readable for a host that now waits on it.
        fence(Ordering::SeqCst);
        if self.shared.has_remote_work() {
            self.shared.notify();
        }
    }
}

impl Drop for LocalLoop {
    fn drop(&mut self) {
        // Cannot be running: every `run_*` borrows `self`.
        let _ = self.close();
    }
}

#[cfg(all(unix, not(loom)))]
impl std::os::fd::AsFd for LocalLoop {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.shared.parker.as_fd()
    }
}

#[cfg(all(unix, not(loom)))]
impl std::os::fd::AsRawFd for LocalLoop {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.as_fd().as_raw_fd()
    }
}

impl fmt::Debug for LocalLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalLoop")
            .field("id", &self.shared.id)
            .field("running", &self.is_running())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl LoopHandle {
    /// The loop's id.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// assert_eq!(lp.handle().id(), lp.id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn id(&self) -> LoopId {
        self.shared.id
    }

    /// asyncio's `call_soon_threadsafe(f)`: queues `f` from any thread and wakes the loop
    /// (its poller's fd becomes readable).
    ///
    /// # Errors
    /// [`LoopError::Closed`] on a closed loop.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let h = lp.handle();
    /// std::thread::spawn(move || h.call_soon_threadsafe(move || tx.send(3).unwrap()).unwrap());
    /// while rx.try_recv().is_err() {
    ///     lp.run_once(Some(std::time::Duration::from_millis(10)))?;
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_soon_threadsafe<F: FnOnce() + Send + 'static>(
        &self,
        f: F,
    ) -> Result<Handle, LoopError> {
        self.shared.call_soon_send(f).ok_or(LoopError::Closed)
    }

    /// asyncio's `loop.create_future()`, from any thread: a [`Future`](crate::Future)
    /// bound to this loop (its done callbacks run on the loop's thread).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let h = lp.handle();
    /// let fut = std::thread::spawn(move || h.create_future::<u8>()).join().unwrap();
    /// assert_eq!(fut.loop_id(), lp.id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create_future<T: Send + 'static>(&self) -> crate::Future<T> {
        crate::Future::bound_to(Owner::Local(self.shared.clone()))
    }

    /// Spawns a `Send` future as a task of the loop, from any thread.
    ///
    /// # Errors
    /// [`LoopError::Closed`] on a closed loop.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let h = lp.handle();
    /// let t = std::thread::spawn(move || h.spawn(async { 4 })).join().unwrap()?;
    /// assert_eq!(lp.run_until_complete(t)?.unwrap(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn<F>(&self, future: F) -> Result<Task<F::Output>, LoopError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(LoopError::Closed);
        }
        Ok(self.shared.spawn_with(future, SpawnOpts::default()))
    }

    /// asyncio's `stop()`, from any thread.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let h = lp.handle();
    /// std::thread::spawn(move || h.stop());
    /// lp.run_forever()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(&self) {
        self.shared.stop()
    }

    /// Whether the loop was closed.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let h = lp.handle();
    /// drop(lp);
    /// assert!(h.is_closed());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopHandle")
            .field("id", &self.shared.id)
            .finish()
    }
}

/// Spawns a future that need not be `Send` on the [`LocalLoop`] running on this thread.
///
/// # Panics
/// If no `LocalLoop` is running on this thread (a runtime's workers cannot run `!Send`
/// tasks: use [`create_task`](crate::create_task) there).
///
/// ```
/// let lp = aioloop::LocalLoop::new()?;
/// let v = lp.run_until_complete(async {
///     let rc = std::rc::Rc::new(1);
///     aioloop::spawn_local(async move { *rc + 1 }).await.unwrap()
/// })?;
/// assert_eq!(v, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn spawn_local<F>(future: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match context::current_owner() {
        Some(Owner::Local(shared)) if context::is_thread_of(&shared) => {
            // SAFETY: this thread runs that loop right now (checked above), and a
            // `LocalLoop` runs its tasks only on its own thread and cancels them there.
            let raw = unsafe {
                RawTask::new_local(future, LocalScheduler(shared.clone()), task::next_task_id())
            };
            // SAFETY: a fresh task whose output is `F::Output`.
            unsafe { shared.bind(raw, SpawnOpts::default()) }
        }
        _ => panic!(
            "no running event loop: aioloop::spawn_local() must be called inside a running LocalLoop"
        ),
    }
}
