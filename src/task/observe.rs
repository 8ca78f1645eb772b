//! What a task records so that it can be inspected: await edges (for the call graph) and,
//! on a loop that tracks tasks, its creation site, poll count and poll times (for the dump
//! and debug-mode slow-poll reports). Rules O4–O6.
//!
//! # Where the data lives, and what it costs
//!
//! Everything is in the task's *extra block* (task/cancel.rs), which a plain task never
//! allocates; nothing is added to the header or to the task allocation.
//!
//! - **`awaited_by`** — "task P waits for me": written once, at creation, for a task that
//!   is a task group's child, or a member of `gather`/`shield`/`wait` (the creator or
//!   the group's parent). Those tasks already have an extra block (their completion
//!   hook lives in it), so the edge costs one relaxed store.
//! - **`awaiting`** — "I am blocked on task T / on future F": written by the awaiting task
//!   itself, from its own poll, when it polls a `Task<T>` handle or a [`Future`] that is
//!   not done (the slow path of a join: the handle is about to park a waker anyway). The
//!   first such await allocates the awaiter's extra block, once per awaiting task (a
//!   spawner awaiting ten thousand handles allocates one). Cleared when that await
//!   completes. A join that finds the task done writes nothing.
//! - **`meta`** — creation site, creation time, polls, last poll time, last worker: only
//!   on a loop in debug mode or with task tracking on ([`Builder::track_tasks`]), as
//!   asyncio records a task's `_source_traceback` only in debug mode. Allocated at spawn
//!   with the extra block, updated by the loop once per poll.
//!
//! Nothing is read, and nothing is synchronised, until someone inspects: a reader walks
//! the registry and loads these fields with relaxed atomics. A snapshot may be stale by
//! one poll (an edge written as the reader passes); it is never unsafe: every field is an
//! atomic, and `meta` is freed only with the extra block, i.e. with the task.
//!
//! [`Future`]: crate::Future
//! [`Builder::track_tasks`]: crate::Builder::track_tasks

use std::panic::Location;
use std::ptr;
use std::time::{Duration, Instant};

use super::raw::RawTask;
use crate::shim::atomic::{AtomicPtr, AtomicU64, Ordering};

/// How a task came to wait for another (the kind of an `awaited_by` edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AwaitKind {
    /// `task.await` on a [`Task`](crate::Task) handle.
    Join,
    /// A [`TaskGroup`](crate::TaskGroup)'s parent waits for its children.
    TaskGroup,
    /// [`gather`](crate::gather) waits for its members.
    Gather,
    /// [`shield`](crate::shield) waits for its inner task.
    Shield,
    /// [`wait`](crate::wait) / [`as_completed`](crate::as_completed) wait for their tasks.
    Wait,
}

impl AwaitKind {
    fn code(self) -> u64 {
        match self {
            AwaitKind::Join => 0,
            AwaitKind::TaskGroup => 1,
            AwaitKind::Gather => 2,
            AwaitKind::Shield => 3,
            AwaitKind::Wait => 4,
        }
    }

    fn from_code(c: u64) -> AwaitKind {
        match c {
            1 => AwaitKind::TaskGroup,
            2 => AwaitKind::Gather,
            3 => AwaitKind::Shield,
            4 => AwaitKind::Wait,
            _ => AwaitKind::Join,
        }
    }

    /// The word asyncio's call graph would print for the edge.
    ///
    /// ```
    /// assert_eq!(aioloop::AwaitKind::TaskGroup.label(), "TaskGroup");
    /// ```
    pub fn label(self) -> &'static str {
        match self {
            AwaitKind::Join => "await",
            AwaitKind::TaskGroup => "TaskGroup",
            AwaitKind::Gather => "gather",
            AwaitKind::Shield => "shield",
            AwaitKind::Wait => "wait",
        }
    }
}

/// The parent id sits in the low 56 bits of `awaited_by`, the kind in the top byte.
const KIND_SHIFT: u32 = 56;
const ID_MASK: u64 = (1 << KIND_SHIFT) - 1;

/// The observability part of a task's extra block.
pub(crate) struct Observed {
    /// `parent id | kind << 56`; 0: none.
    awaited_by: AtomicU64,
    /// `task id << 1` (a join) or `future address | 1`; 0: not blocked on either.
    awaiting: AtomicU64,
    /// Tracked tasks only; owned, freed with the block.
    meta: AtomicPtr<Meta>,
}

/// A tracked task's record.
pub(crate) struct Meta {
    site: &'static Location<'static>,
    created: Instant,
    polls: AtomicU64,
    /// Nanoseconds from `created` to the start of the last poll, plus one (0: never).
    last_poll: AtomicU64,
    /// The worker that last polled it (`u64::MAX`: none yet).
    worker: AtomicU64,
    #[cfg(feature = "tracing")]
    pub(crate) span: tracing::Span,
}

impl Drop for Observed {
    fn drop(&mut self) {
        let p = self.meta.load(Ordering::Relaxed);
        if !p.is_null() {
            // SAFETY: `meta` came from `Box::into_raw` in `attach` and is freed only here,
            // with exclusive access to the block (`&mut self`, module rule: meta lives as
            // long as the block).
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

impl Default for Observed {
    fn default() -> Observed {
        Observed {
            awaited_by: AtomicU64::new(0),
            awaiting: AtomicU64::new(0),
            meta: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

impl Observed {
    fn meta(&self) -> Option<&Meta> {
        // SAFETY: a non-null pointer came from `Box::into_raw` (Release-published in
        // `attach`, Acquire here) and lives as long as the block, which outlives `&self`.
        unsafe { self.meta.load(Ordering::Acquire).as_ref() }
    }
}

/// A tracked task's creation site and start time (O4): called at spawn, before the first
/// step, on a loop that tracks tasks. Cold and out of line: the untracked spawn path only
/// tests a flag.
#[cold]
#[inline(never)]
pub(crate) fn attach(raw: RawTask, site: &'static Location<'static>) {
    let meta = Box::into_raw(Box::new(Meta {
        site,
        created: Instant::now(),
        polls: AtomicU64::new(0),
        last_poll: AtomicU64::new(0),
        worker: AtomicU64::new(u64::MAX),
        #[cfg(feature = "tracing")]
        span: tracing::trace_span!(
            target: "aioloop::task",
            "task",
            id = raw.id(),
            name = %super::TaskRef::name(&raw.task_ref()),
            site = %site,
        ),
    }));
    #[cfg(feature = "tracing")]
    {
        // SAFETY: `meta` is live: just allocated, and freed only with the task's extra
        // block, which the caller's reference keeps alive.
        let span = &unsafe { &*meta }.span;
        tracing::debug!(target: "aioloop::task", parent: span, task_id = raw.id(), site = %site, "spawned");
    }
    let obs = &raw.header().extra.get_or_init().obs;
    if obs
        .meta
        .compare_exchange(ptr::null_mut(), meta, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // SAFETY: never published; still ours.
        drop(unsafe { Box::from_raw(meta) });
    }
}

/// The loop is about to poll `raw` on `worker` (tracked tasks only: one pointer test
/// otherwise). Returns the task's creation site, if recorded.
#[inline]
pub(crate) fn on_poll(raw: RawTask, worker: u32) -> Option<&'static Location<'static>> {
    let meta = raw.header().extra.block()?.obs.meta()?;
    // Only the thread that is about to set RUNNING writes these (state.rs rule 2 makes
    // polls of one task sequential), so load+store suffices.
    meta.polls
        .store(meta.polls.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    let since = meta.created.elapsed().as_nanos() as u64;
    meta.last_poll
        .store(since.saturating_add(1), Ordering::Relaxed);
    meta.worker.store(u64::from(worker), Ordering::Relaxed);
    Some(meta.site)
}

/// `child` is waited for by task `parent` through `kind` (O5): written once at the child's
/// creation by the crate's combinators and task groups.
pub(crate) fn set_awaited_by(child: RawTask, parent: Option<u64>, kind: AwaitKind) {
    let Some(parent) = parent else { return };
    let word = (parent & ID_MASK) | (kind.code() << KIND_SHIFT);
    child
        .header()
        .extra
        .get_or_init()
        .obs
        .awaited_by
        .store(word, Ordering::Relaxed);
}

/// The id of the built-in task being polled on this thread, if any (an edge's parent).
pub(crate) fn current_id() -> Option<u64> {
    super::current::with_builtin(|cur| cur.map(RawTask::id))
}

/// `awaiter` (the task being polled on this thread) found `awaited`'s handle not done (O5).
#[inline]
pub(crate) fn awaiting_task(awaiter: RawTask, awaited: RawTask) {
    let word = awaited.id() << 1;
    let slot = &awaiter.header().extra.get_or_init().obs.awaiting;
    if slot.load(Ordering::Relaxed) != word {
        slot.store(word, Ordering::Relaxed);
    }
}

/// The task being polled on this thread (if a built-in one) is blocked on the
/// [`Future`](crate::Future) at `addr` (O5).
pub(crate) fn awaiting_future(addr: usize) {
    super::current::with_builtin(|cur| {
        if let Some(awaiter) = cur {
            let slot = &awaiter.header().extra.get_or_init().obs.awaiting;
            slot.store(future_word(addr), Ordering::Relaxed);
        }
    });
}

/// The current task's await of the future at `addr` is over.
pub(crate) fn done_awaiting_future(addr: usize) {
    super::current::with_builtin(|cur| {
        if let Some(awaiter) = cur {
            done_awaiting(awaiter, future_word(addr));
        }
    });
}

/// The await recorded by `awaiting_task`/`awaiting_future` for `awaited` (the same word)
/// is over: forget it, unless the task has moved on to another.
pub(crate) fn done_awaiting(awaiter: RawTask, word: u64) {
    if let Some(extra) = awaiter.header().extra.block() {
        let _ = extra
            .obs
            .awaiting
            .compare_exchange(word, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// The word `awaiting_task` writes for `awaited`.
pub(crate) fn join_word(awaited: RawTask) -> u64 {
    awaited.id() << 1
}

/// The word `awaiting_future` writes for `addr`.
pub(crate) fn future_word(addr: usize) -> u64 {
    addr as u64 | 1
}

/// What a task is blocked on, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Awaiting {
    Task(u64),
    Future(usize),
}

/// Everything recorded about one task, read with relaxed loads (a snapshot, module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct Record {
    pub(crate) awaited_by: Option<(u64, AwaitKind)>,
    pub(crate) awaiting: Option<Awaiting>,
    pub(crate) site: Option<&'static Location<'static>>,
    pub(crate) polls: Option<u64>,
    pub(crate) age: Option<Duration>,
    pub(crate) since_last_poll: Option<Duration>,
    pub(crate) worker: Option<u32>,
}

pub(crate) fn record_of(raw: RawTask) -> Record {
    let Some(extra) = raw.header().extra.block() else {
        return Record::default();
    };
    let obs = &extra.obs;
    let by = obs.awaited_by.load(Ordering::Relaxed);
    let awaiting = match obs.awaiting.load(Ordering::Relaxed) {
        0 => None,
        w if w & 1 == 1 => Some(Awaiting::Future((w & !1) as usize)),
        w => Some(Awaiting::Task(w >> 1)),
    };
    let mut rec = Record {
        awaited_by: (by != 0).then(|| (by & ID_MASK, AwaitKind::from_code(by >> KIND_SHIFT))),
        awaiting,
        ..Record::default()
    };
    if let Some(meta) = obs.meta() {
        let age = meta.created.elapsed();
        let last = meta.last_poll.load(Ordering::Relaxed);
        let worker = meta.worker.load(Ordering::Relaxed);
        rec.site = Some(meta.site);
        rec.polls = Some(meta.polls.load(Ordering::Relaxed));
        rec.age = Some(age);
        rec.since_last_poll =
            (last != 0).then(|| age.saturating_sub(Duration::from_nanos(last - 1)));
        rec.worker = (worker != u64::MAX).then_some(worker as u32);
    }
    rec
}

// --- feature `tracing` (rule O8): the events. Without the feature these are empty
// functions the compiler removes; the span lives in `Meta` (created by `attach`) and is
// entered by the loop around each poll (event_loop/observed.rs).

/// `raw` was asked to cancel (`Task::cancel`, `TaskRef::cancel`).
#[inline]
pub(crate) fn on_cancel_requested(raw: RawTask, msg: Option<&str>) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "aioloop::task", task_id = raw.id(), msg, "cancel requested");
    #[cfg(not(feature = "tracing"))]
    let _ = (raw, msg);
}

/// A catch scope of the task being polled on this thread took its cancellation.
#[inline]
pub(crate) fn on_cancel_delivered(raw: RawTask) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "aioloop::task", task_id = raw.id(), "cancel delivered");
    #[cfg(not(feature = "tracing"))]
    let _ = raw;
}

/// Task `id` completed (`cancelled`: it ended cancelled, including by a request no scope
/// caught, which is that request's delivery).
#[inline]
pub(crate) fn on_complete(id: u64, cancelled: bool) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "aioloop::task", task_id = id, cancelled, "completed");
    #[cfg(not(feature = "tracing"))]
    let _ = (id, cancelled);
}

/// The tracing span of a tracked task (feature `tracing`).
#[cfg(feature = "tracing")]
pub(crate) fn span_of(raw: RawTask) -> Option<tracing::Span> {
    Some(raw.header().extra.block()?.obs.meta()?.span.clone())
}
