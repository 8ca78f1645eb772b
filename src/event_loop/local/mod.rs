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
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::Duration;

use crate::error::LoopError;
use crate::event_loop::callback::{Handle, Runnable, TimerHandle};
use crate::event_loop::clock;
use crate::event_loop::context::{self, LoopContext, LoopRef};
use crate::event_loop::core::{self, LoopCore};
use crate::event_loop::exception::HandlerSlot;
use crate::event_loop::main_task::MainTask;
use crate::event_loop::park::Parker;
use crate::event_loop::queue::{self, Injector};
use crate::event_loop::timers::TimerAction;
use crate::shim::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use crate::task::raw::RawTask;
use crate::task::spawn::SpawnOpts;
use crate::task::TaskFactory;
use crate::task::{self, LoopId, Task};

mod handle;
mod shared;

pub use handle::{spawn_local, LoopHandle};
pub(crate) use shared::LocalShared;
use shared::{LocalFlavor, LocalScheduler};

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
        if !self.woken.swap(true, Ordering::SeqCst) && !context::is_thread_of(&*self.shared) {
            self.shared.notify();
        }
    }
}

impl LocalLoop {
    super::loop_api::shared_loop_api!("let lp = aioloop::LocalLoop::new()?;");

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
        let parker = Parker::new()?;
        let io = parker.driver().clone();
        Ok(LocalLoop {
            shared: Arc::new(LocalShared {
                id: LoopId::new(),
                thread: crate::shim::thread::current().id(),
                inbox: Injector::new(),
                parker,
                stopping: AtomicBool::new(false),
                sleeping: AtomicBool::new(false),
                notified: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                drained: AtomicBool::new(false),
                running: AtomicBool::new(false),
                task_factory: crate::shim::Mutex::new(None),
                has_task_factory: AtomicBool::new(false),
                exceptions: exceptions.clone(),
                spawned_elsewhere: AtomicU64::new(0),
                blocking: crate::blocking::Pool::new(crate::blocking::Config::default()),
            }),
            core: LoopCore::new(queue::new_local(), exceptions, io, false),
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

    /// This loop's id (what its tasks' [`TaskRef::loop_id`](crate::TaskRef::loop_id) return).
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
        // SAFETY: the callback goes onto this loop's ready queue or inbox (the loop is open:
        // checked above, on its own thread, which alone closes it: `LocalLoop` is `!Send`).
        // Both are dequeued on this thread; another thread drains the inbox only after
        // `close()` has drained this loop's own work (invariant 8).
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

    /// asyncio's `call_later(delay, f)` = `call_at(time() + delay, f)` (rule S2), so the
    /// timer's `when()` is that sum. `delay` is in seconds and may be negative.
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
        self.call_at(clock::time() + delay, f)
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
        let nanos = clock::secs_to_nanos(when)?;
        self.check_open()?;
        // SAFETY: the callback goes into this thread's timer heap, fired only here.
        let handle = unsafe { Handle::new(f) };
        self.core
            .add_timer(nanos, TimerAction::Callback(handle.clone()));
        Ok(TimerHandle { handle, when })
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
    #[track_caller]
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
    #[track_caller]
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

    #[track_caller]
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
        unsafe {
            self.shared
                .bind(raw, SpawnOpts::named(name), std::panic::Location::caller())
        }
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
        let waker_state = Arc::new(MainWaker {
            shared: self.shared.clone(),
            woken: AtomicBool::new(true),
        });
        let mut main = MainTask::start(
            LocalScheduler(self.shared.clone()),
            Waker::from(waker_state.clone()),
            future,
        );
        let mut flavor = LocalFlavor {
            shared: &self.shared,
            main_woken: Some(&waker_state.woken),
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
                match main.step() {
                    Some(Ok(out)) => return Ok(out),
                    Some(Err(cancelled)) => crate::event_loop::main_task::main_cancelled(cancelled),
                    None => {}
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
            main_woken: None,
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
            main_woken: None,
        };
        self.core.run_once(&mut flavor, timeout);
        // A stop requested during a lone iteration ends nothing; do not let it leak into
        // the next run_forever.
        self.shared.stopping.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Like [`run_once`](LocalLoop::run_once), but runs everything that was ready when the
    /// iteration began, as asyncio's `BaseEventLoop._run_once` does, instead of at most 256
    /// items (the Python binding uses it so a pass has asyncio's boundaries).
    ///
    /// # Errors
    /// As [`run_forever`](LocalLoop::run_forever).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let n = std::rc::Rc::new(std::cell::Cell::new(0));
    /// for _ in 0..1000 {
    ///     let n = n.clone();
    ///     lp.call_soon(move || n.set(n.get() + 1))?;
    /// }
    /// lp.run_once_all(Some(std::time::Duration::ZERO))?;
    /// assert_eq!(n.get(), 1000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_once_all(&self, timeout: Option<Duration>) -> Result<(), LoopError> {
        let _running = self.enter()?;
        let mut flavor = LocalFlavor {
            shared: &self.shared,
            main_woken: None,
        };
        self.core.run_once_limited(&mut flavor, timeout, usize::MAX);
        self.shared.stopping.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Runs passes as [`run_once_all`](LocalLoop::run_once_all) does, without waiting,
    /// while work is ready (a callback, a task, a due timer) or the last pass ran
    /// something, and `keep_going()` — called after each pass — returns `true`. One entry
    /// into the loop for many passes: for a host that waits for work itself (the Python
    /// binding waits with the GIL released). Going on after a pass that ran something
    /// lets a busy connection's next message (its peer answering what that pass sent) be
    /// harvested by the next pass's zero-timeout poll without leaving and re-entering the
    /// loop; the passes end with the first that finds nothing to run.
    ///
    /// # Errors
    /// As [`run_forever`](LocalLoop::run_forever).
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let lp = Rc::new(aioloop::LocalLoop::new()?);
    /// let left = Rc::new(Cell::new(100));
    /// fn step(lp: Rc<aioloop::LocalLoop>, left: Rc<Cell<u32>>) {
    ///     left.set(left.get() - 1);
    ///     if left.get() > 0 {
    ///         let l2 = lp.clone();
    ///         lp.call_soon(move || step(l2, left)).unwrap();
    ///     }
    /// }
    /// let (l2, n2) = (lp.clone(), left.clone());
    /// lp.call_soon(move || step(l2, n2))?;
    /// let mut passes = 0;
    /// lp.run_ready_passes(|| { passes += 1; true })?;
    /// // one pass per callback, then one that found nothing to run
    /// assert_eq!((left.get(), passes), (0, 101));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_ready_passes(&self, mut keep_going: impl FnMut() -> bool) -> Result<(), LoopError> {
        let _running = self.enter()?;
        let mut flavor = LocalFlavor {
            shared: &self.shared,
            main_woken: None,
        };
        loop {
            let ran = self
                .core
                .run_once_limited(&mut flavor, Some(Duration::ZERO), usize::MAX);
            if !keep_going() || (ran == 0 && self.next_timeout() != Some(Duration::ZERO)) {
                break;
            }
        }
        self.shared.stopping.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// [`run_ready_passes`](LocalLoop::run_ready_passes) for a host with a ready queue of
    /// its own (the Python binding's `Handle`s): each pass first calls `host_pass`, which
    /// runs the host's callbacks that were queued when the pass began and returns how many
    /// it ran; then this loop's own pass (I/O, due timers,
    /// its ready queue), in the same entry into the loop. asyncio's order holds: what the
    /// host queued before the pass runs before the I/O callbacks and timers the pass adds.
    /// While more than `quiet_sources` sources are registered on this loop's poller, every
    /// pass harvests I/O, even when callbacks are queued, as asyncio's `_run_once` selects
    /// (with a zero timeout) on every iteration: a transport closing or a peer's data is
    /// seen one pass later, not after dozens of the host's callbacks. `quiet_sources` are
    /// the host's own wake-up sources (a signal self-pipe, whose only job is to end a
    /// wait: the host checks signals between passes anyway); with no more than those, the
    /// host's callbacks count toward the poller's next look as this loop's own do (every 61
    /// items, reactor rule R8), and this loop's pass is skipped while nothing is ready or
    /// due, except on the first pass (the host has just waited). Passes go on while the
    /// host (`host_has_work()`) or this loop has work, or the last pass ran something (as
    /// in `run_ready_passes`), and `keep_going()` — called after each pass — returns `true`.
    ///
    /// # Errors
    /// As [`run_forever`](LocalLoop::run_forever).
    ///
    /// ```
    /// use std::{cell::RefCell, collections::VecDeque, rc::Rc};
    /// let lp = aioloop::LocalLoop::new()?;
    /// let host: Rc<RefCell<VecDeque<u32>>> = Rc::new(RefCell::new((0..3).collect()));
    /// let order = Rc::new(RefCell::new(Vec::new()));
    /// let o = order.clone();
    /// lp.call_soon(move || o.borrow_mut().push(100))?;
    /// let o = order.clone();
    /// lp.run_host_passes(
    ///     || {
    ///         let n = host.borrow().len();
    ///         for _ in 0..n {
    ///             let x = host.borrow_mut().pop_front().unwrap();
    ///             o.borrow_mut().push(x);
    ///         }
    ///         n
    ///     },
    ///     || !host.borrow().is_empty(),
    ///     || true,
    ///     0,
    /// )?;
    /// assert_eq!(*order.borrow(), [0, 1, 2, 100]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_host_passes(
        &self,
        mut host_pass: impl FnMut() -> usize,
        host_has_work: impl Fn() -> bool,
        mut keep_going: impl FnMut() -> bool,
        quiet_sources: usize,
    ) -> Result<(), LoopError> {
        let _running = self.enter()?;
        let mut flavor = LocalFlavor {
            shared: &self.shared,
            main_woken: None,
        };
        let mut first = true;
        loop {
            let host_ran = host_pass();
            let io_due = self.core.host_ran(host_ran);
            let io = self.core.io_sources() > quiet_sources;
            // Whether this loop has work of its own: read once per pass unless its pass
            // runs (which changes the answer).
            let mut busy = self.next_timeout() == Some(Duration::ZERO);
            let mut ran = host_ran;
            if first || io || io_due || busy {
                if io {
                    // asyncio's zero-timeout select on every pass (reactor rule R8).
                    self.core.harvest_on_next_pass();
                }
                ran += self
                    .core
                    .run_once_limited(&mut flavor, Some(Duration::ZERO), usize::MAX);
                first = false;
                busy = self.next_timeout() == Some(Duration::ZERO);
            }
            // As `run_ready_passes`: a pass that ran something is followed by another, whose
            // harvest may find a busy connection's next message without leaving the loop.
            if !keep_going() || (!host_has_work() && !busy && ran == 0) {
                break;
            }
        }
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
        // asyncio's `close()` shuts the default executor down without waiting: queued jobs
        // are dropped (their awaiters see `ExecutorError::Shutdown`), running ones finish
        // on their detached threads.
        self.shared.blocking.shutdown(true);
        let drain_inbox = || core::drain(|| self.shared.inbox.steal(), &self.shared.exceptions);
        core::shut_down(self.shared.id, &[&self.core], drain_inbox, || {
            self.shared.inbox.is_empty()
        });
        // Everything this thread queued is gone. Posts from other threads that raced the
        // drain above either land before this fence (drained here) or see `drained` and
        // drop their own work (`LocalShared::schedule`).
        self.shared.drained.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        drain_inbox();
        Ok(())
    }

    /// This loop's counters (rule O3), as [`Handle::metrics`](crate::Handle::metrics) with
    /// one "worker" (this thread; it never steals) and the cross-thread inbox as injector.
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// lp.run_until_complete(async {
    ///     aioloop::create_task(async {}).await.unwrap();
    /// })?;
    /// let m = lp.metrics();
    /// assert_eq!((m.spawned, m.completed), (1, 1));
    /// assert_eq!(m.workers.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn metrics(&self) -> crate::Metrics {
        let stats: &crate::event_loop::stats::LoopStats = &self.core.stats;
        let worker = stats.snapshot(0, self.core.ready.len());
        let mut m = crate::Metrics::assemble(
            self.shared.id,
            &[stats],
            &self.shared.spawned_elsewhere,
            vec![worker],
            self.shared.inbox.len(),
        );
        m.blocking = self.shared.blocking.metrics();
        m
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
        let ctx = LoopContext {
            owner: self.loop_ref(),
            core: Some(&self.core),
        };
        let guard = context::enter(ctx).map_err(|_| LoopError::AnotherLoopRunning)?;
        self.shared.running.store(true, Ordering::SeqCst);
        Ok(EnteredLoop {
            guard: Some(guard),
            shared: &self.shared,
        })
    }
}

/// While a `LocalLoop` runs: its context is installed on this thread. Leaving clears the
/// context before announcing that the loop stopped running.
struct EnteredLoop<'a> {
    guard: Option<context::ContextGuard<'a>>,
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

impl LocalLoop {
    /// This loop as a loop of either kind.
    pub(crate) fn loop_ref(&self) -> LoopRef {
        LoopRef::new(self.shared.clone())
    }
}
