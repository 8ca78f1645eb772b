//! Tasks and asyncio's task lifetime protocol.
//!
//! asyncio keeps `all_tasks()` and `current_task()` working for *any* task type through five
//! functions, and so does aioloop ([rules L1–L8](../index.html)):
//!
//! | asyncio | aioloop | when a task type calls it |
//! |---|---|---|
//! | `_register_task(t)` | [`register_task`] | when the task is created |
//! | `_unregister_task(t)` | [`unregister_task`] | when the task is about to finish |
//! | `_enter_task(loop, t)` | [`enter_task`] | just before running a step of the task |
//! | `_leave_task(loop, t)` | [`leave_task`] | just after that step |
//! | `_swap_current_task(loop, t)` | [`swap_current_task`] | eager start |
//!
//! A task is seen through a [`TaskRef`]: either a built-in [`Task`] or a
//! third-party type implementing [`TaskLike`]. Built-in tasks go through the same registry
//! and the same current-task slot around every poll, so the two are indistinguishable in
//! [`all_tasks`] and [`current_task`].
//!
//! ```
//! use aioloop::task::{self, LoopId, TaskLike, TaskRef};
//! use std::sync::{atomic::{AtomicBool, Ordering}, Arc};
//!
//! // A hand-written task type that takes part in the protocol.
//! struct Job { id: u64, loop_id: LoopId, done: AtomicBool }
//! impl TaskLike for Job {
//!     fn id(&self) -> u64 { self.id }
//!     fn name(&self) -> String { format!("job-{}", self.id) }
//!     fn done(&self) -> bool { self.done.load(Ordering::Acquire) }
//!     fn loop_id(&self) -> LoopId { self.loop_id }
//! }
//!
//! let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
//! rt.block_on(async {
//!     let job = Arc::new(Job {
//!         id: task::next_task_id(),
//!         loop_id: task::current_loop_id().unwrap(),
//!         done: AtomicBool::new(false),
//!     });
//!     let r = TaskRef::new(job.clone());
//!     task::register_task(&r);
//!     assert!(aioloop::all_tasks().contains(&r));
//!
//!     // One "step" of the job, run on this thread in place of the main task.
//!     let main = task::swap_current_task(None);
//!     task::enter_task(&r).unwrap();
//!     assert_eq!(aioloop::current_task(), Some(r.clone()));
//!     task::leave_task(&r).unwrap();
//!     task::swap_current_task(main.as_ref());
//!
//!     job.done.store(true, Ordering::Release);
//!     task::unregister_task(&r);
//!     assert!(!aioloop::all_tasks().contains(&r));
//! });
//! ```

pub(crate) mod cancel;
mod core;
pub(crate) mod current;
pub(crate) mod done;
mod factory;
mod harness;
mod join;
pub(crate) mod observe;
mod raise;
pub(crate) mod raw;
pub(crate) mod registry;
pub(crate) mod spawn;
pub(crate) mod state;
mod waker;
pub(crate) use waker::yield_polled_task;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU64;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use factory::{eager_task_factory, TaskFactory};
pub use join::Task;
pub use raise::Raise;

use crate::error::{EnterError, LeaveError, NoRunningLoop};
use raw::RawTask;

/// Identifies one loop: a [`Runtime`](crate::Runtime) (all of its workers together) or a
/// third-party loop. Every task belongs to exactly one loop; `all_tasks()` lists the
/// unfinished tasks of the current one.
///
/// ```
/// let a = aioloop::task::LoopId::new();
/// let b = aioloop::task::LoopId::new();
/// assert_ne!(a, b);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct LoopId(NonZeroU64);

impl LoopId {
    /// A fresh id, never returned before in this process. Runtimes take theirs from here;
    /// a third-party loop may too.
    ///
    /// ```
    /// assert_ne!(aioloop::task::LoopId::new(), aioloop::task::LoopId::new());
    /// ```
    #[allow(clippy::new_without_default)]
    pub fn new() -> LoopId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        LoopId(NonZeroU64::new(n).expect("loop id counter overflowed"))
    }

    /// The id as an integer.
    ///
    /// ```
    /// assert!(aioloop::task::LoopId::new().as_u64() > 0);
    /// ```
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for LoopId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loop-{}", self.0)
    }
}

static NEXT_TASK_ID: AtomicU64 = AtomicU64::new(1);

/// The name of the built-in task `id`, for reports that hold only its id: the name it was
/// given, else asyncio's default `Task-<id>`.
pub(crate) fn name_of(id: u64) -> String {
    registry::name(id).map_or_else(|| default_name(id), |n| n.to_string())
}

fn default_name(id: u64) -> String {
    format!("Task-{id}")
}

/// The next task id from the process-wide counter that built-in tasks use (starting at 1).
/// Third-party task types take their ids from here so that ids stay unique (the registry is
/// keyed by id).
///
/// ```
/// let a = aioloop::task::next_task_id();
/// assert!(aioloop::task::next_task_id() > a);
/// ```
pub fn next_task_id() -> u64 {
    // Relaxed: only uniqueness matters, and a single RMW counter gives it.
    NEXT_TASK_ID.fetch_add(1, Ordering::Relaxed)
}

/// A task type that takes part in the task protocol (rule L8).
///
/// Implement it for a hand-written task, wrap it with [`TaskRef::new`], and call
/// [`register_task`] / [`enter_task`] / [`leave_task`] / [`unregister_task`] at the points
/// the module docs list: the task then shows up in `all_tasks()` and `current_task()` like a
/// built-in one.
///
/// The methods are called while the registry holds a shard lock (during `all_tasks`), so they
/// must only read the task's own state and must not call the protocol functions.
///
/// ```
/// use aioloop::task::{LoopId, TaskLike};
/// struct Fixed(u64, LoopId);
/// impl TaskLike for Fixed {
///     fn id(&self) -> u64 { self.0 }
///     fn name(&self) -> String { "fixed".into() }
///     fn done(&self) -> bool { false }
///     fn loop_id(&self) -> LoopId { self.1 }
/// }
/// ```
pub trait TaskLike: Send + Sync + 'static {
    /// Process-unique id (take it from [`next_task_id`]).
    fn id(&self) -> u64;
    /// Human-readable name.
    fn name(&self) -> String;
    /// `true` once the task has finished; `all_tasks()` leaves done tasks out.
    fn done(&self) -> bool;
    /// The loop the task belongs to.
    fn loop_id(&self) -> LoopId;
}

/// A counted, type-erased reference to a task: built-in or third-party.
///
/// Equality and hashing go by task id. `Display` gives asyncio's repr, e.g.
/// `<Task pending name='Task-7' id=7>`, which the protocol's error messages use.
///
/// ```
/// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
/// let t = rt.spawn(std::future::pending::<()>());
/// let r = t.task_ref();
/// assert_eq!(r.id(), t.id());
/// assert!(!r.done());
/// assert!(r.to_string().starts_with("<Task pending name='Task-"));
/// ```
pub struct TaskRef(NonNull<()>);

/// A `TaskRef` is one word (the registry stores it as its whole entry, 8 bytes: a table
/// slot per pending task is most of what the registry costs, `benches/memory.rs`). The
/// word is a tagged pointer:
/// - low bit 0: the header of a built-in task, for which the `TaskRef` owns one reference;
/// - low bit 1: `Arc::into_raw` of a [`Foreign`] (one strong count owned), the box around
///   a third-party task's fat `Arc<dyn TaskLike>`.
///
/// Both pointees are at least 8-aligned, so the low bit is free.
const FOREIGN_TAG: usize = 1;

/// A third-party task behind a thin pointer (see [`TaskRef`]'s layout).
struct Foreign(Arc<dyn TaskLike>);

/// What a `TaskRef` points to, borrowed from it.
enum Inner<'a> {
    Builtin(RawTask),
    Foreign(&'a Arc<dyn TaskLike>),
}

// SAFETY: a built-in task may be referenced from any thread: its shared state is atomic and
// the accessors a `TaskRef` offers only read it. Foreign tasks are `Send + Sync` by bound.
unsafe impl Send for TaskRef {}
// SAFETY: shared access to a built-in task goes through its atomic state word and
// mutex-guarded extra block; foreign tasks are `Sync` by bound.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// Wraps a third-party task.
    ///
    /// ```
    /// # use aioloop::task::{LoopId, TaskLike, TaskRef};
    /// # struct J(u64); impl TaskLike for J { fn id(&self)->u64{self.0} fn name(&self)->String{"j".into()}
    /// #   fn done(&self)->bool{false} fn loop_id(&self)->LoopId{LoopId::new()} }
    /// let r = TaskRef::new(std::sync::Arc::new(J(aioloop::task::next_task_id())));
    /// assert_eq!(r.name(), "j");
    /// ```
    pub fn new<T: TaskLike>(task: Arc<T>) -> TaskRef {
        let thin = Arc::into_raw(Arc::new(Foreign(task)))
            .cast_mut()
            .cast::<()>();
        let tagged = thin.map_addr(|a| a | FOREIGN_TAG);
        TaskRef(NonNull::new(tagged).expect("Arc::into_raw is never null"))
    }

    /// # Safety
    /// The caller transfers one reference to the live task `raw`.
    pub(crate) unsafe fn from_raw_builtin(raw: RawTask) -> TaskRef {
        TaskRef(raw.as_ptr().cast())
    }

    /// The pointee, by the tag (see the layout at [`FOREIGN_TAG`]).
    fn inner(&self) -> Inner<'_> {
        if self.0.addr().get() & FOREIGN_TAG == 0 {
            // SAFETY: an untagged word is a built-in task's header on which this `TaskRef`
            // owns a reference (`from_raw_builtin`), so the task is live while `self` is.
            Inner::Builtin(unsafe { RawTask::from_raw(self.0.cast()) })
        } else {
            let p = self
                .0
                .as_ptr()
                .map_addr(|a| a & !FOREIGN_TAG)
                .cast::<Foreign>();
            // SAFETY: a tagged word is `Arc::into_raw` of a `Foreign` whose strong count
            // this `TaskRef` owns (`new`, `clone`), so it is live while `self` is.
            Inner::Foreign(unsafe { &(*p).0 })
        }
    }

    /// The untagged `Foreign` pointer of a tagged word.
    fn foreign_ptr(&self) -> *const Foreign {
        self.0
            .as_ptr()
            .map_addr(|a| a & !FOREIGN_TAG)
            .cast::<Foreign>()
    }

    /// The task's id.
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// let t = rt.spawn(async {});
    /// assert_eq!(t.task_ref().id(), t.id());
    /// ```
    pub fn id(&self) -> u64 {
        match self.inner() {
            Inner::Builtin(raw) => raw.id(),
            Inner::Foreign(t) => t.id(),
        }
    }

    /// The task's name (`Task-<id>` unless one was given).
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// let t = rt.spawn(async {});
    /// assert_eq!(t.task_ref().name(), format!("Task-{}", t.id()));
    /// ```
    pub fn name(&self) -> String {
        match self.inner() {
            Inner::Builtin(raw) if raw.header().state.load().is_named() => name_of(raw.id()),
            Inner::Builtin(raw) => default_name(raw.id()),
            Inner::Foreign(t) => t.name(),
        }
    }

    /// `true` once the task has finished.
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// let t = rt.spawn(async {});
    /// let r = t.task_ref();
    /// rt.block_on(t).unwrap();
    /// assert!(r.done());
    /// ```
    pub fn done(&self) -> bool {
        match self.inner() {
            Inner::Builtin(raw) => raw.header().state.load().is_complete(),
            Inner::Foreign(t) => t.done(),
        }
    }

    /// The loop that owns the task.
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// assert_eq!(rt.spawn(async {}).task_ref().loop_id(), rt.handle().id());
    /// ```
    pub fn loop_id(&self) -> LoopId {
        match self.inner() {
            Inner::Builtin(raw) => raw.loop_id(),
            Inner::Foreign(t) => t.loop_id(),
        }
    }

    /// asyncio's `cancel(msg)` (see [`Task::cancel`]). A third-party task cannot be
    /// cancelled through its `TaskRef`: `false`.
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// let t = rt.spawn(std::future::pending::<()>());
    /// assert!(t.task_ref().cancel(None));
    /// assert!(rt.block_on(t).unwrap_err().is_cancelled());
    /// ```
    pub fn cancel(&self, msg: Option<&str>) -> bool {
        self.raw().is_some_and(|r| r.cancel(msg.map(Into::into)))
    }

    /// asyncio's `cancelling()` (see [`Task::cancelling`]); 0 for a third-party task.
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// assert_eq!(rt.spawn(async {}).task_ref().cancelling(), 0);
    /// ```
    pub fn cancelling(&self) -> u32 {
        self.raw().map_or(0, RawTask::cancelling)
    }

    /// asyncio's `uncancel()` (see [`Task::uncancel`]); 0 for a third-party task.
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// assert_eq!(rt.spawn(async {}).task_ref().uncancel(), 0);
    /// ```
    pub fn uncancel(&self) -> u32 {
        self.raw().map_or(0, RawTask::uncancel)
    }

    /// asyncio's `cancelled()`: done and ended cancelled; `false` for a third-party task.
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// assert!(!rt.spawn(async {}).task_ref().cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.raw().is_some_and(RawTask::cancelled)
    }

    /// asyncio's `set_name` (rule T1). `false` (nothing changes) for a third-party task,
    /// which names itself.
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// let r = rt.spawn(std::future::pending::<()>()).task_ref();
    /// assert!(r.set_name("renamed"));
    /// assert_eq!(r.name(), "renamed");
    /// ```
    pub fn set_name(&self, name: impl Into<Arc<str>>) -> bool {
        match self.raw() {
            Some(raw) => {
                raw.set_name(name.into());
                true
            }
            None => false,
        }
    }

    /// asyncio's `add_done_callback` (see [`Task::add_done_callback`]). `false` for a
    /// third-party task, which has no callback list of ours.
    ///
    /// ```
    /// use std::sync::{mpsc, Arc, Mutex};
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let (tx, rx) = mpsc::channel();
    /// let tx = Mutex::new(tx);
    /// let r = rt.spawn(async {}).task_ref();
    /// assert!(r.add_done_callback(Arc::new(move |t: &aioloop::TaskRef| {
    ///     tx.lock().unwrap().send(t.id()).unwrap();
    /// })));
    /// assert_eq!(rx.recv().unwrap(), r.id());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn add_done_callback<F>(&self, f: Arc<F>) -> bool
    where
        F: Fn(&TaskRef) + Send + Sync + 'static,
    {
        match self.raw() {
            Some(raw) => {
                raw.add_user_callback(f);
                true
            }
            None => false,
        }
    }

    /// asyncio's `remove_done_callback` (see [`Task::remove_done_callback`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// let r = rt.spawn(std::future::pending::<()>()).task_ref();
    /// let cb = Arc::new(|_: &aioloop::TaskRef| {});
    /// r.add_done_callback(cb.clone());
    /// assert_eq!(r.remove_done_callback(&cb), 1);
    /// assert_eq!(r.remove_done_callback(&cb), 0);
    /// ```
    pub fn remove_done_callback<F>(&self, f: &Arc<F>) -> usize
    where
        F: Fn(&TaskRef) + Send + Sync + 'static,
    {
        self.raw()
            .map_or(0, |raw| raw.remove_done(Arc::as_ptr(f) as *const ()))
    }

    /// `true` for a task created by aioloop itself (as opposed to a [`TaskLike`]).
    ///
    /// ```
    /// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// assert!(rt.spawn(async {}).task_ref().is_builtin());
    /// ```
    pub fn is_builtin(&self) -> bool {
        matches!(self.inner(), Inner::Builtin(_))
    }

    pub(crate) fn raw(&self) -> Option<RawTask> {
        match self.inner() {
            Inner::Builtin(raw) => Some(raw),
            Inner::Foreign(_) => None,
        }
    }

    /// Runs `f` in this task's context (T12): how the loop calls a custom exception handler
    /// about the task, so that it reads the task's context variables (asyncio 3.12+,
    /// gh-96704). Being polled on this thread, the task's context is already the current
    /// one; otherwise `f` runs in a copy of the context the task's last poll left (its
    /// values at its end, for a finished task), or in an empty one if it has none — as for a
    /// task being polled on another thread, whose context is out of reach. A third-party
    /// task has no context of ours: `f` runs in the current one.
    pub(crate) fn run_in_context<R>(&self, f: impl FnOnce() -> R) -> R {
        let Some(raw) = self.raw() else {
            return f();
        };
        if current::with_builtin(|cur| cur == Some(raw)) {
            return f();
        }
        let mut ctx = raw
            .header()
            .extra
            .get()
            .and_then(|c| c.context_snapshot())
            .unwrap_or_default();
        ctx.run(f)
    }

    /// asyncio's `task.get_context()` (rule T12): a copy of the context the task runs in.
    /// Called from the task itself, that is the current context; otherwise it is the
    /// context as the task's last step left it (its values at its end, for a finished
    /// task). A task being polled on another thread at this moment has its context in use
    /// there: the copy is the context as that step began (what the step sets is seen once
    /// it ends). A task that never had a value set, and a third-party task, give an empty
    /// context.
    ///
    /// ```
    /// use aioloop::contextvars::ContextVar;
    /// static REQ: ContextVar<u32> = ContextVar::new("req");
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let seen = rt.block_on(rt.spawn(async {
    ///     REQ.set(7);
    ///     aioloop::current_task().unwrap().get_context().run(|| REQ.get())
    /// }));
    /// assert_eq!(seen.unwrap(), Some(7));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn get_context(&self) -> crate::contextvars::Context {
        let Some(raw) = self.raw() else {
            return crate::contextvars::Context::new();
        };
        if current::with_builtin(|cur| cur == Some(raw)) {
            return crate::contextvars::copy_context();
        }
        raw.header()
            .extra
            .get()
            .and_then(|c| c.context_snapshot())
            .unwrap_or_default()
    }

    /// Whether `all_tasks()` should list it: not done and not hidden by `unregister_task`.
    fn is_listed(&self) -> bool {
        match self.inner() {
            Inner::Builtin(raw) => {
                let s = raw.header().state.load();
                !s.is_complete() && !s.is_unlisted()
            }
            Inner::Foreign(t) => !t.done(),
        }
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> TaskRef {
        match self.inner() {
            Inner::Builtin(raw) => {
                raw.ref_inc();
            }
            // SAFETY: a tagged word is `Arc::into_raw` of a live `Foreign` (see `inner`);
            // the new `TaskRef` owns the count added here.
            Inner::Foreign(_) => unsafe { Arc::increment_strong_count(self.foreign_ptr()) },
        }
        TaskRef(self.0)
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        match self.inner() {
            // SAFETY: a builtin `TaskRef` owns one reference, released exactly once here.
            Inner::Builtin(raw) => unsafe { raw.ref_dec() },
            // SAFETY: a foreign `TaskRef` owns one strong count of its `Foreign` (see
            // `inner`), released exactly once here.
            Inner::Foreign(_) => unsafe { drop(Arc::from_raw(self.foreign_ptr())) },
        }
    }
}

impl PartialEq for TaskRef {
    fn eq(&self, other: &TaskRef) -> bool {
        self.id() == other.id()
    }
}

impl Eq for TaskRef {}

impl Hash for TaskRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state)
    }
}

impl fmt::Display for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.done() { "finished" } else { "pending" };
        write!(f, "<Task {state} name='{}' id={}>", self.name(), self.id())
    }
}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Rule L1: adds `task` to the registry so `all_tasks()` lists it while it is not done.
/// Registering twice is harmless. The registry never keeps a finished built-in task alive
/// (it drops its reference when the task completes); a third-party task must call
/// [`unregister_task`] when it finishes.
///
/// ```
/// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
/// let r = rt.spawn(std::future::pending::<()>()).task_ref();
/// aioloop::task::register_task(&r); // already registered: no effect
/// assert_eq!(rt.all_tasks().iter().filter(|t| **t == r).count(), 1);
/// ```
pub fn register_task(task: &TaskRef) {
    match task.inner() {
        Inner::Builtin(raw) => {
            // A built-in task stays in the registry until it completes; registering only
            // makes it visible again after `unregister_task`.
            raw.header().state.set_unlisted(false);
        }
        Inner::Foreign(_) => {
            registry::insert(task.clone()); // `false` if it is present: no effect
        }
    }
}

/// Rule L2: removes `task` from `all_tasks()`. Unregistering an unknown task does nothing.
///
/// For a built-in task this only hides it: the runtime still owns it and still drops it at
/// shutdown, so hiding a task can never make it leak.
///
/// ```
/// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
/// let r = rt.spawn(std::future::pending::<()>()).task_ref();
/// aioloop::task::unregister_task(&r);
/// aioloop::task::unregister_task(&r); // unknown now: no-op
/// assert!(!rt.all_tasks().contains(&r));
/// ```
pub fn unregister_task(task: &TaskRef) {
    match task.inner() {
        Inner::Builtin(raw) => raw.header().state.set_unlisted(true),
        Inner::Foreign(t) => {
            registry::remove(t.id());
        }
    }
}

/// Rule L3: makes `task` the current task of this thread's loop. Fails, changing nothing,
/// if another task is current.
///
/// ```
/// # use aioloop::task::*;
/// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
/// let r = rt.spawn(async {}).task_ref();
/// enter_task(&r).unwrap();
/// assert!(enter_task(&r).is_err());
/// leave_task(&r).unwrap();
/// ```
pub fn enter_task(task: &TaskRef) -> Result<(), EnterError> {
    current::enter(task)
}

/// Rule L4: clears the current task, which must be `task`. Fails, changing nothing,
/// otherwise (also when no task is current).
///
/// ```
/// # use aioloop::task::*;
/// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
/// let r = rt.spawn(async {}).task_ref();
/// assert!(leave_task(&r).is_err());
/// ```
pub fn leave_task(task: &TaskRef) -> Result<(), LeaveError> {
    current::leave(task)
}

/// Rule L5: sets the current task (or none) and returns the previous one. Never fails.
///
/// ```
/// # use aioloop::task::*;
/// # let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
/// let r = rt.spawn(async {}).task_ref();
/// assert_eq!(swap_current_task(Some(&r)), None);
/// assert_eq!(swap_current_task(None), Some(r));
/// ```
pub fn swap_current_task(task: Option<&TaskRef>) -> Option<TaskRef> {
    current::swap(task)
}

/// The loop running on this thread, if any (a runtime worker, or a thread inside
/// [`Runtime::block_on`](crate::Runtime::block_on)).
///
/// ```
/// assert_eq!(aioloop::task::current_loop_id(), None);
/// let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
/// assert_eq!(rt.block_on(async { aioloop::task::current_loop_id() }), Some(rt.handle().id()));
/// ```
pub fn current_loop_id() -> Option<LoopId> {
    current::running_loop()
}

/// Rule L6: the task running on this thread, or `None` in a running loop outside any task.
///
/// # Panics
/// With no running loop on this thread ("no running event loop", as asyncio raises). Use
/// [`try_current_task`] to get an error instead.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
/// let id = rt.block_on(async {
///     aioloop::create_task(async { aioloop::current_task().unwrap().id() }).await.unwrap()
/// });
/// assert!(id > 0);
/// ```
pub fn current_task() -> Option<TaskRef> {
    match try_current_task() {
        Ok(t) => t,
        Err(e) => panic!("{e}: aioloop::current_task() was called outside a runtime"),
    }
}

/// Rule L6, fallible: `Err(NoRunningLoop)` when no loop runs on this thread.
///
/// ```
/// assert!(aioloop::try_current_task().is_err());
/// ```
pub fn try_current_task() -> Result<Option<TaskRef>, NoRunningLoop> {
    if current::running_loop().is_none() {
        return Err(NoRunningLoop);
    }
    Ok(current::get())
}

/// Rule L6 with an explicit loop (asyncio's `current_task(loop)`): the task of loop `id`
/// executing on this thread, or `None` — also when no loop, or another loop, runs here.
/// Never fails. A runtime's loop is a pool of workers, each executing its own task: the
/// answer is the one this thread executes (from a task of that runtime: itself).
///
/// ```
/// use aioloop::task::current_task_of;
/// let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
/// let id = rt.handle().id();
/// assert!(current_task_of(id).is_none()); // no loop runs here: None, not an error
/// let (mine, other) = rt.block_on(async move {
///     let lp = aioloop::LocalLoop::new().unwrap();
///     (current_task_of(id), current_task_of(lp.id()))
/// });
/// assert!(mine.is_some()); // block_on's main task
/// assert!(other.is_none()); // a loop that is not the one running here
/// ```
pub fn current_task_of(id: LoopId) -> Option<TaskRef> {
    if current::running_loop() != Some(id) {
        return None;
    }
    current::get()
}

/// Rule L7: the unfinished, registered tasks of the loop running on this thread.
///
/// Safe while other threads create and finish tasks: every task alive for the whole call is
/// listed exactly once; tasks created or finished during the call may or may not be.
///
/// # Panics
/// With no running loop on this thread; see [`try_all_tasks`].
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
/// let n = rt.block_on(async {
///     let _t = aioloop::create_task(std::future::pending::<()>());
///     aioloop::all_tasks().len()
/// });
/// assert_eq!(n, 2); // the block_on main task and the pending one
/// ```
pub fn all_tasks() -> Vec<TaskRef> {
    match try_all_tasks() {
        Ok(t) => t,
        Err(e) => panic!("{e}: aioloop::all_tasks() was called outside a runtime"),
    }
}

/// Rule L7, fallible: `Err(NoRunningLoop)` when no loop runs on this thread.
///
/// ```
/// assert!(aioloop::try_all_tasks().is_err());
/// ```
pub fn try_all_tasks() -> Result<Vec<TaskRef>, NoRunningLoop> {
    let id = current::running_loop().ok_or(NoRunningLoop)?;
    Ok(all_tasks_of(id))
}

pub(crate) fn all_tasks_of(id: LoopId) -> Vec<TaskRef> {
    registry::collect(|t| t.is_listed() && t.loop_id() == id)
}

/// Options for spawning one task: asyncio's `create_task(coro, name=...)`.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
/// let t = aioloop::task::Builder::new().name("worker-1").spawn_on(rt.handle(), async { 1 });
/// assert_eq!(t.name(), "worker-1");
/// assert_eq!(rt.block_on(t).unwrap(), 1);
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    name: Option<Arc<str>>,
    /// `None` until [`Builder::eager`] is called: the loop's task factory decides (T9).
    eager: Option<bool>,
    /// The context to run in (asyncio's `create_task(..., context=ctx)`); `None`: a copy
    /// of the creator's (T12).
    context: Option<crate::contextvars::Context>,
}

impl Builder {
    /// Default options: the task is named `Task-<id>`.
    ///
    /// ```
    /// let _b = aioloop::task::Builder::new();
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the task.
    ///
    /// ```
    /// let _b = aioloop::task::Builder::new().name("reader");
    /// ```
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Eager start (rule T9, asyncio's `eager_start=True`): the task's first step runs at
    /// once, inside the spawning call, with the spawning task swapped out of the
    /// current-task slot. A task that finishes there is never queued. Only applies when
    /// spawning from inside the task's own loop; elsewhere the task is queued as usual.
    ///
    /// Either value is explicit and wins over [`eager_task_factory`] (asyncio 3.14's
    /// `eager_start=False` overrides an eager factory); without a call, the factory
    /// decides, and with no factory the task is queued.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// rt.block_on(async {
    ///     let t = aioloop::task::Builder::new().eager(true).spawn(async { 5 });
    ///     assert!(t.done()); // it finished inside `spawn`
    ///     assert_eq!(t.await.unwrap(), 5);
    /// });
    /// ```
    pub fn eager(mut self, eager: bool) -> Builder {
        self.eager = Some(eager);
        self
    }

    /// Runs the task in `ctx` (asyncio's `create_task(coro, context=ctx)`, rule T12)
    /// instead of a copy of the spawner's current context. The task's own `set`s go to its
    /// context, which [`Task::get_context`] reads back.
    ///
    /// ```
    /// use aioloop::contextvars::{Context, ContextVar};
    /// static V: ContextVar<&str> = ContextVar::new("v");
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let mut ctx = Context::new();
    /// ctx.run(|| V.set("given"));
    /// let seen = rt.block_on(async {
    ///     V.set("creator's");
    ///     aioloop::task::Builder::new().context(ctx).spawn(async { V.get() }).await
    /// });
    /// assert_eq!(seen.unwrap(), Some("given"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn context(mut self, ctx: crate::contextvars::Context) -> Builder {
        self.context = Some(ctx);
        self
    }

    /// The name set so far, if any (for a task factory).
    ///
    /// ```
    /// assert_eq!(aioloop::task::Builder::new().name("a").get_name(), Some("a"));
    /// ```
    pub fn get_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether eager start is requested (for a task factory); an unset choice reads `false`.
    ///
    /// ```
    /// assert!(aioloop::task::Builder::new().eager(true).is_eager());
    /// assert!(!aioloop::task::Builder::new().is_eager());
    /// ```
    pub fn is_eager(&self) -> bool {
        self.eager == Some(true)
    }

    /// The eager-start choice as the spawner made it: `None` if [`Builder::eager`] was
    /// never called. A task factory that turns eager start on should do so only for
    /// `None`, as [`eager_task_factory`] does, so that an explicit `eager(false)` wins.
    ///
    /// ```
    /// use aioloop::task::Builder;
    /// assert_eq!(Builder::new().get_eager(), None);
    /// assert_eq!(Builder::new().eager(false).get_eager(), Some(false));
    /// ```
    pub fn get_eager(&self) -> Option<bool> {
        self.eager
    }

    /// The options as the loop takes them.
    pub(crate) fn opts(self) -> spawn::SpawnOpts {
        spawn::SpawnOpts {
            name: self.name,
            eager: self.eager,
            hook: None,
            context: self.context,
        }
    }
}
