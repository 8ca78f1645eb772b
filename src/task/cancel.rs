//! asyncio's catchable cancellation (rules T3–T7), mapped onto Rust futures.
//!
//! Rust cannot throw into a suspended future, so a cancellation is a *pending request* on the
//! task that the task's own next poll delivers:
//!
//! 1. `cancel(msg)` records the request (`cancelling() += 1`, the message, "must cancel") and
//!    wakes the task. It returns `false` only on a finished task. The wake is a
//!    read-modify-write of the state word that always writes, so the next
//!    `transition_to_running` synchronises with the request (a wake that found `NOTIFIED`
//!    set and wrote nothing gave the poller no happens-before edge: loom's
//!    `cancel_races_completion` found the lost request).
//! 2. **Catch scopes.** [`catch_cancel(fut)`](crate::catch_cancel) polls `fut`; if `fut` is
//!    pending and the current task has an undelivered request, the scope takes it, drops
//!    `fut` (running its destructors — the awaited operation is cancelled), and returns
//!    `Err(CancelledError)`. Inner scopes return first, so the innermost one catches, like
//!    the innermost `try/except CancelledError`. Code in the handler may `.await` freely
//!    (async cleanup) and then propagate (`reraise()`) or suppress (return a value; calling
//!    `uncancel()` as asyncio asks).
//! 3. **Where it lands** (delivery before polling). asyncio throws into the coroutine at the
//!    await where it is suspended, so no code after that await runs even if the awaited
//!    thing completed meanwhile. A poll that ends `Pending` records how deep the innermost
//!    scope enclosing the suspension point is ([`Frame`], published as
//!    `Inner::suspended_depth`). A request already pending when the next poll begins goes
//!    to that depth: the first scope reached at (or below) it takes the request *before*
//!    polling its child, drops the child unpolled and returns `Err`; at depth 0 (no scope)
//!    the task's future is dropped unpolled and the task ends cancelled. Should the poll
//!    not reach such a scope (the future's shape changed), the old fallback applies: a
//!    request pending since the start of a poll that ends `Pending` still undelivered ends
//!    the task. A request that arrives *during* a poll is left for the next poll (it woke
//!    the task). Scopes take after a `Pending` child only a request that was there when
//!    the poll began or one the task made itself during the poll (a timeout expiring, a
//!    re-raise), which asyncio raises at once.
//! 4. **Before the first step** (rule T4): a request pending at the first poll cancels the
//!    task without running its body (depth 0 above).
//! 5. **At the end** (rule T5; mapping point 4): a future that completes while a request is
//!    still *undelivered* ends the task cancelled; its value is dropped. A request that a
//!    scope took, or that was passed on, has been delivered: the task ends with the value
//!    it returns, whatever `cancelling()` says.
//! 6. **Passing it on** (rule T3). A poll that ends `Pending` on an awaited `Task<T>` or
//!    `aioloop::Future` also records it as the task's *waiter*. `cancel()` on a suspended
//!    task (not running, not its own request) first cancels the waiter, as asyncio's
//!    `_fut_waiter.cancel(msg)`: if that is accepted the request counts as delivered
//!    (`forwarded`) and the task stays suspended until the waiter ends. A waiter that ends
//!    cancelled raises at the await: the handle re-arms the request on the awaiting task
//!    (uncounted) and stays pending, so the enclosing scope takes it. A waiter that
//!    suppressed the cancellation gives the awaiter its value. A request made by the task
//!    itself while running is passed on when it next awaits a task or future; one that
//!    another thread made while the task was being polled is passed on at the start of
//!    the next poll to what that poll left the task suspended on (asyncio passes it on at
//!    the end of the step), and lands at the suspension point (rule 3) only if that
//!    refuses it (it was done). A refusal is kept on the awaiter unless the awaiter already
//!    raised a passed-on request at the await (`raised_upto`); an awaited task that finished
//!    with a value while the request was reaching it counts as refusing it (`cancel()` on it
//!    returns `false`, or the awaiter, reading its outcome, finds the request undelivered on
//!    it and raises at the await).
//!
//! 7. **A bare request** (no block). The state lives in a lazily allocated [`Extra`] block
//!    hung off the task header, so a task that is never cancelled pays one pointer. The
//!    common `cancel()` — no message, from outside the task, on a task that has no block
//!    (so: suspended at depth 0 on nothing recorded, no callbacks, no context) — does not
//!    allocate one: it swings the header's pointer from null to the tag `PENDING_BARE`
//!    (one compare-exchange), which stands for exactly the block `request(None, false)` on
//!    a fresh block would leave. The next poll swings `PENDING_BARE` to `DELIVERED_BARE`
//!    (what rules 3/4 leave after dropping the future unpolled) and ends the task
//!    cancelled without allocating either. Anything else that needs the block while a tag
//!    is there *inflates* it: builds the block the tag stands for and swings the tag to it
//!    with a compare-exchange (on failure — the poller took the request, or another thread
//!    inflated first — it retries from what it found). So every other rule reads a real
//!    block, and each tag transition is one compare-exchange that exactly one thread wins
//!    (loom: `loom-tests/tests/cancel.rs`, the `bare_*` models).

use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::Arc;

use super::done::DoneList;
use crate::contextvars::Context;
use crate::shim::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use crate::shim::Mutex;

/// The header's pointer to a task's cancellation state (null until first needed).
pub(crate) struct ExtraSlot {
    ptr: AtomicPtr<Extra>,
}

/// One task's extra block: its cancellation state, its done callbacks (task/done.rs) and
/// its context (T12), allocated on first need.
pub(crate) struct Extra {
    inner: Mutex<Inner>,
    /// `Inner::requests`, readable without the lock: a task whose block exists only for a
    /// hook or a context (a task group's child) skips the lock at every poll while nobody
    /// ever cancelled it.
    requests: AtomicU64,
    /// A context was ever stored (`take_context` skips the lock otherwise).
    has_context: AtomicBool,
    /// Rule 3: the depth of the innermost catch scope that enclosed the suspension point
    /// when the last poll ended `Pending` (0: none). Written by the poller only; read by
    /// the next poller (the state word's transitions order them).
    suspended_depth: AtomicUsize,
    /// `Inner::waiter` is set (the poller skips the lock otherwise).
    has_waiter: AtomicBool,
    /// Await edges and, on a tracking loop, the task's record (task/observe.rs).
    pub(crate) obs: super::observe::Observed,
}

/// What a suspended task awaits, which a `cancel()` is passed on to (rule 6, T3).
pub(crate) enum Waiter {
    /// An awaited built-in task (the `TaskRef` keeps it alive).
    Task(super::TaskRef),
    /// Another awaitable that can be cancelled in place (an `aioloop::Future` handle, a
    /// `gather`), with its key.
    Future(usize, Box<dyn ForwardCancel>),
}

/// An awaitable a cancellation can be passed on to (implemented by `aioloop::Future`'s
/// shared state).
pub(crate) trait ForwardCancel: Send + Sync {
    /// asyncio's `fut.cancel(msg)`: `false` if it is already done.
    fn forward_cancel(&self, msg: Option<Arc<str>>) -> bool;
    /// Another handle to the same awaitable.
    fn boxed_clone(&self) -> Box<dyn ForwardCancel>;
}

impl Waiter {
    /// Identifies the awaitable (its allocation's address).
    fn key(&self) -> usize {
        match self {
            Waiter::Task(t) => t.raw().map_or(0, |r| r.header() as *const _ as usize),
            Waiter::Future(key, _) => *key,
        }
    }

    fn duplicate(&self) -> Waiter {
        match self {
            Waiter::Task(t) => Waiter::Task(t.clone()),
            Waiter::Future(key, f) => Waiter::Future(*key, f.boxed_clone()),
        }
    }

    pub(crate) fn cancel(&self, msg: Option<Arc<str>>) -> bool {
        match self {
            Waiter::Task(t) => t.raw().is_some_and(|r| r.cancel(msg)),
            Waiter::Future(_, f) => f.forward_cancel(msg),
        }
    }
}

/// The key of an awaited task, as [`Waiter::key`] computes it.
pub(crate) fn task_key(raw: super::raw::RawTask) -> usize {
    raw.header() as *const _ as usize
}

/// The key of an awaited future's shared state, as [`Waiter::key`] computes it.
pub(crate) fn future_key<T: ?Sized>(p: *const T) -> usize {
    p as *const () as usize
}

/// The catch-scope bookkeeping of the poll running on this thread (rule 3). The harness
/// installs a fresh frame around every poll of a built-in task (and restores the previous
/// one after: an eager first step runs inside another task's poll).
///
/// The frame lives in thread-locals: its counters in a `Cell` of a plain `Copy` value
/// (read and written by every poll, so it must cost next to nothing: no borrow flag, no
/// destructor registration, nothing to move but a few words), and the waiter in a
/// `RefCell` touched only when a poll saw an awaited task or future pending
/// (`HAS_WAITER` in `Scopes::flags` says whether it holds one). A frame displaced while it held a
/// waiter (the nested poll of an eager start) parks that waiter on `STASHED` until it is
/// restored.
#[derive(Clone, Copy)]
pub(crate) struct Frame {
    scopes: Scopes,
}

/// The counters of a [`Frame`].
///
/// Four `u32`s and nothing else: every poll copies a `Scopes` several times (in and out of
/// the thread-local, through the poll's stack frame). A value with `bool` fields is 14
/// bytes with a niche, and the compiler copies it (or the 13–15 bytes a `Result` around it
/// leaves beside the niche) as two overlapping 8-byte moves; reading back a word that two
/// such stores each wrote in part defeats store-to-load forwarding, a stall of a dozen
/// cycles or more per copy (sampled at 15–30% of `harness::poll`'s time in a yield loop).
/// Sixteen bytes with no niche move as one.
#[derive(Clone, Copy)]
struct Scopes {
    /// `ACTIVE` and `HAS_WAITER`.
    flags: u32,
    /// Scopes entered and not yet left.
    depth: u32,
    /// A request pending at the start of the poll is delivered at this depth (0: none).
    deliver_at: u32,
    /// The deepest scope whose child returned `Pending` in this poll.
    deepest: u32,
}

/// `Scopes::flags`: a task's poll is running with this frame.
const ACTIVE: u32 = 1;
/// `Scopes::flags`: `WAITER` holds this frame's waiter (or, for a displaced frame, the top
/// of `STASHED` does).
const HAS_WAITER: u32 = 2;

impl Scopes {
    const fn idle() -> Scopes {
        Scopes {
            flags: 0,
            depth: 0,
            deliver_at: 0,
            deepest: 0,
        }
    }

    fn active(&self) -> bool {
        self.flags & ACTIVE != 0
    }

    fn has_waiter(&self) -> bool {
        self.flags & HAS_WAITER != 0
    }

    fn set_has_waiter(&mut self, yes: bool) {
        self.flags = if yes {
            self.flags | HAS_WAITER
        } else {
            self.flags & !HAS_WAITER
        };
    }
}

crate::shim::thread_local! {
    static SCOPES: Cell<Scopes> = Cell::new(Scopes::idle());
}

crate::shim::thread_local! {
    /// The awaitable last seen pending in this poll, with the scope depth it was seen at.
    static WAITER: RefCell<Option<(u32, Waiter)>> = RefCell::new(None);
}

crate::shim::thread_local! {
    /// The waiters of displaced frames, innermost last.
    static STASHED: RefCell<Vec<(u32, Waiter)>> = RefCell::new(Vec::new());
}

/// Applies `f` to this thread's frame counters.
#[inline]
fn with_scopes<R>(f: impl FnOnce(&mut Scopes) -> R) -> R {
    SCOPES.with(|c| {
        let mut s = c.get();
        let r = f(&mut s);
        c.set(s);
        r
    })
}

/// Takes this thread's frame waiter out if `take` approves of it (never called while the
/// frame has none); the caller drops it outside the thread-local's borrow.
fn take_waiter_if(take: impl FnOnce(&Scopes, &(u32, Waiter)) -> bool) -> Option<(u32, Waiter)> {
    let scopes = SCOPES.with(Cell::get);
    if !scopes.has_waiter() {
        return None;
    }
    let old = WAITER.with(|w| {
        let mut w = w.borrow_mut();
        match &*w {
            Some(v) if take(&scopes, v) => w.take(),
            _ => None,
        }
    });
    if old.is_some() {
        with_scopes(|s| s.set_has_waiter(false));
    }
    old
}

/// Installs a fresh frame for one poll; returns the one it displaced.
#[inline]
pub(crate) fn frame_begin(deliver_at: u32) -> Frame {
    let prev = SCOPES.with(|c| {
        c.replace(Scopes {
            flags: ACTIVE,
            depth: 0,
            deliver_at,
            deepest: 0,
        })
    });
    if prev.has_waiter() {
        stash_waiter();
    }
    Frame { scopes: prev }
}

/// A frame with a waiter was displaced: its waiter waits on `STASHED`.
#[cold]
fn stash_waiter() {
    if let Some(w) = WAITER.with(|w| w.borrow_mut().take()) {
        STASHED.with(|s| s.borrow_mut().push(w));
    }
}

/// Ends the poll's frame, restoring `saved`; returns the suspension depth and waiter.
#[inline]
pub(crate) fn frame_end(saved: Frame) -> (u32, Option<Waiter>) {
    let mine = SCOPES.with(|c| c.replace(saved.scopes));
    if !mine.has_waiter() && !saved.scopes.has_waiter() {
        return (mine.deepest, None);
    }
    (
        mine.deepest,
        swap_waiters(mine.has_waiter(), saved.scopes.has_waiter()),
    )
}

/// `frame_end` with a waiter to hand back or to restore.
#[cold]
fn swap_waiters(mine: bool, restore: bool) -> Option<Waiter> {
    let back = if restore {
        STASHED.with(|s| s.borrow_mut().pop())
    } else {
        None
    };
    let taken = WAITER.with(|w| std::mem::replace(&mut *w.borrow_mut(), back));
    if mine {
        taken.map(|(_, w)| w)
    } else {
        None
    }
}

/// A `Task<T>` or `aioloop::Future` is returning `Pending` inside a built-in task's poll:
/// remember it as what the task is suspended on (rule 6).
pub(crate) fn note_waiter(make: impl FnOnce() -> Waiter) {
    let scopes = SCOPES.with(Cell::get);
    if !scopes.active() {
        return;
    }
    let old = WAITER.with(|w| w.borrow_mut().replace((scopes.depth, make())));
    with_scopes(|s| s.set_has_waiter(true));
    drop(old); // a `TaskRef`'s drop may free a task: outside the borrow
}

/// A scope being polled: its depth, decremented on drop (also on unwind).
struct ScopeGuard {
    depth: u32,
}

impl ScopeGuard {
    /// Enters a scope; `.1` is whether a request pending since the poll began is to be
    /// delivered here, before the child is polled.
    fn enter() -> (ScopeGuard, bool) {
        with_scopes(|f| {
            f.depth += 1;
            let deliver = f.active() && f.deliver_at != 0 && f.depth >= f.deliver_at;
            (ScopeGuard { depth: f.depth }, deliver)
        })
    }

    /// The request was delivered elsewhere (or withdrawn): no other scope looks for it.
    fn delivery_done() {
        with_scopes(|f| f.deliver_at = 0);
    }

    /// The child returned `Pending`: this scope encloses the suspension point.
    fn pending(&self) {
        with_scopes(|f| f.deepest = f.deepest.max(self.depth));
    }

    /// The child is being dropped: forget a waiter seen inside it.
    fn forget_waiter(&self) {
        drop(take_waiter_if(|_, (d, _)| *d >= self.depth));
    }
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        with_scopes(|f| f.depth = self.depth - 1);
    }
}

#[derive(Default)]
struct Inner {
    /// Every `cancel()` that returned `true`: a generation number for "the same request".
    requests: u64,
    /// asyncio's `_num_cancels_requested`: requests minus `uncancel()`s.
    cancelling: u32,
    /// An undelivered request is pending (asyncio's `_must_cancel`).
    must_cancel: bool,
    msg: Option<Arc<str>>,
    /// The generation last passed on to an awaited task (rule T3).
    propagated: u64,
    /// Rule 6: what the task is suspended on (published after a `Pending` poll).
    waiter: Option<Waiter>,
    /// Rule 6: the key of the awaitable a request was passed on to and not yet answered.
    forwarded: Option<usize>,
    /// Rule 6: `requests` when a passed-on request was last raised at the await
    /// (`raise_forwarded`): every request up to it has been delivered.
    raised_upto: u64,
    /// `requests` when the current (or last) poll began: catch scopes take only requests
    /// up to it, so one arriving mid-poll waits for the next poll, where the *innermost*
    /// scope gets it first.
    poll_gen: u64,
    /// Done callbacks and hooks (task/done.rs).
    done: DoneList,
    /// The task's context between polls (T12); `None` while empty or while being polled.
    context: Option<Context>,
    /// While a poll has `context` out: a copy of it as that poll began (an O(1) copy of a
    /// persistent map), for `get_context()` from another thread.
    in_poll: Option<Context>,
}

/// Rule 7: the slot's tag for one undelivered `cancel()` without a message and no block.
const PENDING_BARE: usize = 1;
/// Rule 7: the slot's tag for that request delivered (the task ended cancelled by it).
const DELIVERED_BARE: usize = 2;

/// A tag of rule 7 as a slot value (never a block's address: a block is 8-aligned).
fn tag(t: usize) -> *mut Extra {
    ptr::without_provenance_mut(t)
}

/// The slot value is a block's address (not null, not a tag of rule 7).
fn is_block(p: *mut Extra) -> bool {
    p.addr() > DELIVERED_BARE
}

/// The poll's view of the slot as it starts (rule 7).
pub(crate) enum AtPoll<'a> {
    /// The poll took a bare request: the task ends cancelled (no message).
    TookBare,
    /// No bare request; the block, if any.
    Block(Option<&'a Extra>),
}

impl Inner {
    /// Rule 7: the state a slot value that is not a block stands for: nothing (null), a
    /// fresh block after `request(None, false)` (`PENDING_BARE`), or that request delivered
    /// at the start of a poll as rules 3/4 deliver it (`DELIVERED_BARE`).
    fn standing_for(slot: usize) -> Inner {
        match slot {
            PENDING_BARE => Inner {
                requests: 1,
                cancelling: 1,
                must_cancel: true,
                ..Inner::default()
            },
            DELIVERED_BARE => Inner {
                requests: 1,
                cancelling: 1,
                poll_gen: 1,
                ..Inner::default()
            },
            _ => Inner::default(),
        }
    }
}

impl ExtraSlot {
    pub(crate) fn new() -> ExtraSlot {
        ExtraSlot {
            ptr: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The block, if any; a tag of rule 7 is inflated into one.
    #[inline]
    pub(crate) fn get(&self) -> Option<&Extra> {
        // Acquire: pairs with the Release of the publishing CAS in `inflate`, so the
        // block's initialisation is visible.
        let p = self.ptr.load(Ordering::Acquire);
        if p.is_null() {
            None
        } else if is_block(p) {
            // SAFETY: a block's address came from `Box::into_raw` in `inflate` and is freed
            // only when the slot is dropped, which needs `&mut self`.
            Some(unsafe { &*p })
        } else {
            Some(self.inflate(p))
        }
    }

    /// The block if one is allocated, without inflating a tag of rule 7: for readers of
    /// what a tagged task has at its defaults (no callbacks, context, waiter, await edges
    /// or record).
    #[inline]
    pub(crate) fn block(&self) -> Option<&Extra> {
        // Acquire: as in `get`.
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: as in `get`.
        is_block(p).then(|| unsafe { &*p })
    }

    pub(crate) fn get_or_init(&self) -> &Extra {
        // Acquire: as in `get`.
        let p = self.ptr.load(Ordering::Acquire);
        if is_block(p) {
            // SAFETY: as in `get`.
            return unsafe { &*p };
        }
        self.inflate(p)
    }

    /// Rule 7: replaces `cur` (null or a tag) by the block it stands for, unless another
    /// thread replaced it first; returns the block now in the slot.
    #[cold]
    fn inflate(&self, mut cur: *mut Extra) -> &Extra {
        loop {
            if is_block(cur) {
                // SAFETY: as in `get`.
                return unsafe { &*cur };
            }
            let inner = Inner::standing_for(cur.addr());
            let fresh = Box::into_raw(Box::new(Extra {
                requests: AtomicU64::new(inner.requests),
                inner: Mutex::new(inner),
                has_context: AtomicBool::new(false),
                suspended_depth: AtomicUsize::new(0),
                has_waiter: AtomicBool::new(false),
                obs: super::observe::Observed::default(),
            }));
            // AcqRel: Release publishes the block's initialisation to `get`'s Acquire;
            // Acquire on failure, for the block another thread published.
            match self
                .ptr
                .compare_exchange(cur, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // SAFETY: we just published `fresh`; it lives as long as the slot (see `get`).
                Ok(_) => return unsafe { &*fresh },
                Err(now) => {
                    // SAFETY: `fresh` was never shared: we still own it.
                    drop(unsafe { Box::from_raw(fresh) });
                    cur = now;
                }
            }
        }
    }

    /// Rule 7: records a bare `cancel()` (no message, not the task's own) if the task has
    /// no block and no bare request yet. `false`: the caller takes the block path.
    #[inline]
    pub(crate) fn request_bare(&self) -> bool {
        // AcqRel: the request is published to the poller by the wake that follows (an RMW
        // of the state word); Acquire on failure is for the caller's next `get`.
        self.ptr
            .compare_exchange(
                ptr::null_mut(),
                tag(PENDING_BARE),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Rule 7, at the start of a poll (the caller set RUNNING): takes a bare request, or
    /// reads the block.
    #[inline]
    pub(crate) fn at_poll(&self) -> AtPoll<'_> {
        // Acquire: as in `get`.
        let p = self.ptr.load(Ordering::Acquire);
        if p.addr() == PENDING_BARE
            && self
                .ptr
                .compare_exchange(p, tag(DELIVERED_BARE), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return AtPoll::TookBare;
        }
        // Lost the tag to an inflation (or there was none): the block path.
        AtPoll::Block(self.get())
    }
}

impl Drop for ExtraSlot {
    fn drop(&mut self) {
        // Exclusive access (`&mut self`), so a relaxed load suffices (`get_mut` is not in
        // loom's atomics).
        let p = self.ptr.load(Ordering::Relaxed);
        if is_block(p) {
            // SAFETY: the task is being freed (`&mut self`): nobody else can reach the block,
            // which came from `Box::into_raw`.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// What the poller saw before polling (rule 3 compares it with the state after).
#[derive(Clone, Copy)]
pub(crate) struct AtStart {
    generation: u64,
    pending: bool,
}

impl AtStart {
    pub(crate) fn pending(self) -> bool {
        self.pending
    }
}

impl Extra {
    /// `cancel(msg)`.
    ///
    /// `own_poll`: the request is made by the task itself, during its own poll (a timeout
    /// expiring, a task group cancelling its parent from the body): scopes may take it in
    /// this very poll, as asyncio raises at once. A request from anywhere else waits for
    /// the next poll (see `poll_gen`).
    pub(crate) fn request(&self, msg: Option<Arc<str>>, own_poll: bool) {
        self.arm(msg, own_poll, 1);
    }

    /// `cancel(msg)` on a task that is suspended (not running, rule 6): if it awaits a
    /// waiter, the request is counted but not stored, and the waiter is returned for the
    /// caller to cancel (outside the lock) and report with [`Extra::forward_result`].
    /// Otherwise it is stored as by [`Extra::request`] and `None` is returned.
    pub(crate) fn request_suspended(&self, msg: Option<Arc<str>>) -> Option<(u64, Waiter)> {
        let mut s = self.inner.lock();
        let waiter = match &s.waiter {
            Some(w) if !s.must_cancel => w.duplicate(),
            _ => {
                drop(s);
                self.request(msg, false);
                return None;
            }
        };
        s.requests += 1;
        self.requests.store(s.requests, Ordering::Release);
        s.cancelling = s.cancelling.saturating_add(1);
        // T3: requests before delivery arrive as one, with the first message: a request
        // already passed on keeps its own.
        if s.forwarded.is_none() {
            s.msg = msg;
        }
        // Marked passed on *before* the waiter is cancelled: it may end, and the task read
        // it, before the caller reports back (`forward_result`).
        s.forwarded = Some(waiter.key());
        Some((s.requests, waiter))
    }

    /// The outcome of passing request `generation` on to `waiter`: accepted, it is
    /// delivered (`forwarded`); refused (the waiter was already done), it is stored, as
    /// asyncio sets `_must_cancel` when `_fut_waiter.cancel()` returns false. Returns
    /// whether the task must be woken.
    ///
    /// Refused, the request is delivered already only if the task raised a passed-on
    /// request at the await meanwhile (the waiter had ended cancelled). A task that read
    /// the waiter's *value* meanwhile (another worker polled it between `request_suspended`
    /// and now) has gone on past the await: the request is stored for its next suspension
    /// point, as asyncio stores a cancel that reaches a running task. (Treating "forwarded
    /// cleared" as "delivered" lost such requests: a consumer in the 64-consumer pipeline
    /// of tests/cancel_race.rs never ran its clean-up.)
    pub(crate) fn forward_result(&self, generation: u64, waiter: &Waiter, accepted: bool) -> bool {
        let mut s = self.inner.lock();
        if accepted {
            s.propagated = s.propagated.max(generation);
            false
        } else if s.raised_upto >= generation {
            // The task already raised it at the await (`raise_forwarded`): delivered.
            false
        } else {
            if s.forwarded == Some(waiter.key()) {
                s.forwarded = None;
            }
            s.must_cancel = true;
            true
        }
    }

    /// Rule 6 at the start of a poll: a stored request and a waiter published by the last
    /// poll. The request arrived while the previous poll was running (or the waiter had
    /// already refused it); asyncio's step would have passed it on to the future the task
    /// then yielded (`_fut_waiter.cancel()` when `_must_cancel`). Tries that now; returns
    /// whether the waiter accepted it (then it is delivered and the task polls normally).
    pub(crate) fn forward_stored(&self) -> bool {
        let (generation, msg, waiter) = {
            let s = self.inner.lock();
            match &s.waiter {
                Some(w) if s.must_cancel => (s.requests, s.msg.clone(), w.duplicate()),
                _ => return false,
            }
        };
        let accepted = waiter.cancel(msg);
        if accepted {
            let mut s = self.inner.lock();
            s.propagated = s.propagated.max(generation);
            if s.must_cancel && s.requests == generation {
                s.must_cancel = false;
                s.forwarded = Some(waiter.key());
            }
        }
        drop(waiter); // may release the last reference to a task: no lock held
        accepted
    }

    /// Rule 6: the awaited thing `key` ended cancelled. If the task's request was passed on
    /// to it, it is answered: the message, for the caller to raise at the await.
    pub(crate) fn raise_forwarded(&self, key: usize) -> Option<Option<Arc<str>>> {
        if self.requests.load(Ordering::Acquire) == 0 {
            return None; // never cancelled: nothing was passed on
        }
        let mut s = self.inner.lock();
        if s.forwarded != Some(key) {
            return None;
        }
        s.forwarded = None;
        s.raised_upto = s.requests;
        Some(s.msg.clone())
    }

    /// Rule 6: the awaited thing `key` was read: a request passed on to it is answered.
    pub(crate) fn clear_forwarded(&self, key: usize) {
        if self.requests.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut s = self.inner.lock();
        if s.forwarded == Some(key) {
            s.forwarded = None;
        }
    }

    /// Rule 6, a request the running task made itself: passed on to `key` right now
    /// (asyncio: `_must_cancel` cleared when the next awaited future accepts it).
    pub(crate) fn mark_forwarded(&self, key: usize) {
        let mut s = self.inner.lock();
        s.must_cancel = false;
        s.forwarded = Some(key);
    }

    /// Rule 3: the suspension depth recorded by the last `Pending` poll.
    pub(crate) fn suspended_depth(&self) -> u32 {
        self.suspended_depth.load(Ordering::Relaxed) as u32
    }

    /// Rule 3 and 6: the poller publishes where the task is suspended.
    pub(crate) fn publish_suspension(&self, depth: u32, waiter: Option<Waiter>) {
        let depth = depth as usize;
        if self.suspended_depth.load(Ordering::Relaxed) != depth {
            self.suspended_depth.store(depth, Ordering::Relaxed);
        }
        if waiter.is_none() && !self.has_waiter.load(Ordering::Relaxed) {
            return;
        }
        let old = {
            let mut s = self.inner.lock();
            self.has_waiter.store(waiter.is_some(), Ordering::Relaxed);
            std::mem::replace(&mut s.waiter, waiter)
        };
        drop(old); // a `TaskRef`'s drop may free a task: not under the lock
    }

    /// A new undelivered request (one more generation), counted `counted` times in
    /// `cancelling()`: once for a `cancel()`, not at all for a re-raise.
    fn arm(&self, msg: Option<Arc<str>>, own_poll: bool, counted: u32) {
        let mut s = self.inner.lock();
        s.requests += 1;
        // Release, under the lock: `at_start` reading a non-zero count takes the lock.
        self.requests.store(s.requests, Ordering::Release);
        s.cancelling = s.cancelling.saturating_add(counted);
        s.must_cancel = true;
        s.msg = msg;
        if own_poll {
            s.poll_gen = s.requests;
        }
    }

    pub(crate) fn at_start(&self) -> AtStart {
        if self.requests.load(Ordering::Acquire) == 0 {
            // Never cancelled: nothing pending, and `poll_gen` is still 0. (A request
            // landing right after this load is one that arrived during the poll.)
            return AtStart {
                generation: 0,
                pending: false,
            };
        }
        let mut s = self.inner.lock();
        s.poll_gen = s.requests;
        AtStart {
            generation: s.requests,
            pending: s.must_cancel,
        }
    }

    /// Rule 3: the request pending at the start of the poll is still undelivered, and no
    /// newer one came: take it (the caller ends the task cancelled).
    pub(crate) fn take_undelivered(&self, at_start: AtStart) -> Option<Option<Arc<str>>> {
        if !at_start.pending {
            return None;
        }
        let mut s = self.inner.lock();
        if at_start.pending && s.must_cancel && s.requests == at_start.generation {
            s.must_cancel = false;
            Some(s.msg.clone())
        } else {
            None
        }
    }

    /// Rule 5: the future completed; an undelivered request (whenever it came) turns the
    /// task cancelled. A delivered one does not, whatever `cancelling()` says.
    pub(crate) fn take_at_completion(&self) -> Option<Option<Arc<str>>> {
        if self.requests.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut s = self.inner.lock();
        if s.must_cancel {
            s.must_cancel = false;
            Some(s.msg.clone())
        } else {
            None
        }
    }

    /// Rule 2: a catch scope takes the undelivered request — one that was already there
    /// when this poll began, or that the task made itself during it. A request another
    /// thread made during the poll woke the task; the next poll offers it to the
    /// innermost scope first (otherwise an outer scope could take it just after the inner
    /// one had looked, depending on thread timing).
    pub(crate) fn take(&self) -> Option<Option<Arc<str>>> {
        let mut s = self.inner.lock();
        if s.must_cancel && s.requests <= s.poll_gen {
            s.must_cancel = false;
            // A request passed on earlier and not yet answered merges into this delivery
            // (T3: requests before delivery arrive as one): the awaitable it went to, dropped
            // with the scope's child, must not raise it again (`abandoned`).
            s.forwarded = None;
            s.raised_upto = s.requests;
            Some(s.msg.clone())
        } else {
            None
        }
    }

    /// Whether [`take`](Self::take) would take a request now (rule 2), without taking it.
    pub(crate) fn deliverable(&self) -> bool {
        if self.requests.load(Ordering::Acquire) == 0 {
            return false;
        }
        let s = self.inner.lock();
        s.must_cancel && s.requests <= s.poll_gen
    }

    /// An undelivered request is stored (whether or not a scope could take it now). On a
    /// finished task, it is a `cancel()` that lost the race with the task's last poll: it
    /// found the task running, and was stored after that poll's completion check.
    pub(crate) fn undelivered(&self) -> bool {
        if self.requests.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.inner.lock().must_cancel
    }

    /// A `cancel()` that found the task finished after storing its request takes it back
    /// (uncounted), unless it was consumed meanwhile.
    pub(crate) fn withdraw_lost(&self) {
        let mut s = self.inner.lock();
        if s.must_cancel {
            s.must_cancel = false;
            s.cancelling = s.cancelling.saturating_sub(1);
        }
    }

    /// Rule 6: the request to pass on to an awaited task, once per request.
    pub(crate) fn to_propagate(&self) -> Option<Option<Arc<str>>> {
        let mut s = self.inner.lock();
        if s.must_cancel && s.propagated != s.requests {
            s.propagated = s.requests;
            Some(s.msg.clone())
        } else {
            None
        }
    }

    pub(crate) fn cancelling(&self) -> u32 {
        self.inner.lock().cancelling
    }

    /// Re-raise: a scope that caught a request and decided it is not its own (a timeout
    /// that did not expire, a task group cancelled from outside) puts it back as a new,
    /// undelivered request, without counting it again: the next enclosing scope — or the
    /// task itself (rule 3) — receives it at the next poll, exactly as a `raise` inside an
    /// `except CancelledError:` block hands the error to the next handler up the stack.
    /// `own_poll` as for [`Extra::request`]: a re-raise inside the task's poll reaches the
    /// enclosing scope in the same poll.
    pub(crate) fn rearm(&self, msg: Option<Arc<str>>, own_poll: bool) {
        self.arm(msg, own_poll, 0);
    }

    /// `uncancel()` (rule T7): one fewer request; at zero an undelivered one is withdrawn.
    pub(crate) fn uncancel(&self) -> u32 {
        let mut s = self.inner.lock();
        s.cancelling = s.cancelling.saturating_sub(1);
        if s.cancelling == 0 {
            s.must_cancel = false;
        }
        s.cancelling
    }

    pub(crate) fn message(&self) -> Option<Arc<str>> {
        self.inner.lock().msg.clone()
    }

    /// Runs `f` on the done list under the block's lock.
    pub(crate) fn with_done<R>(&self, f: impl FnOnce(&mut DoneList) -> R) -> R {
        f(&mut self.inner.lock().done)
    }

    /// The poller takes the task's context before a poll (T12).
    pub(crate) fn take_context(&self) -> Option<Context> {
        // Acquire: pairs with the Release in `put_context` (a task that never had a context
        // skips the lock).
        if !self.has_context.load(Ordering::Acquire) {
            return None;
        }
        let mut s = self.inner.lock();
        let ctx = s.context.take();
        s.in_poll = ctx.as_ref().map(Context::snapshot);
        ctx
    }

    /// A copy of the task's context, for running code "in the task's context" without
    /// taking it from a poller that may want it next: as the last step left it, or, while a
    /// poll on another thread has it, as that poll began (`None`: the task has none).
    pub(crate) fn context_snapshot(&self) -> Option<Context> {
        // Acquire: as in `take_context`.
        if !self.has_context.load(Ordering::Acquire) {
            return None;
        }
        let s = self.inner.lock();
        s.context
            .as_ref()
            .or(s.in_poll.as_ref())
            .map(Context::snapshot)
    }

    /// The poller (or `create_task`) stores the task's context.
    pub(crate) fn put_context(&self, ctx: Context) {
        let stale = {
            let mut s = self.inner.lock();
            s.context = Some(ctx);
            self.has_context.store(true, Ordering::Release);
            s.in_poll.take()
        };
        // Dropping the copy may drop the last reference to a value the poll replaced: user
        // code (a value's destructor) runs outside the lock.
        drop(stale);
    }
}

/// Runs `future` as a catch scope for cancellation: asyncio's
/// `try: await fut / except CancelledError:` (rules T3, T6).
///
/// If the current task is cancelled while `future` is pending, the scope drops `future`
/// (cancelling what it was waiting on) and returns `Err(CancelledError)` with the message
/// given to `cancel` — also when `future` became ready in the step that carries the cancel
/// (asyncio raises at the await). The caller may then `.await` cleanup and either
/// propagate the cancellation
/// ([`CancelledError::reraise`](crate::CancelledError::reraise)) or suppress it: returning a
/// value ends the task with that value (asyncio's rule; call
/// [`Task::uncancel`](crate::Task::uncancel) / [`TaskRef::uncancel`](crate::TaskRef::uncancel)
/// on the current task too, so enclosing timeouts and groups read the right count).
/// Outside a built-in task the scope simply awaits `future`.
///
/// ```
/// use aioloop::{catch_cancel, Runtime};
/// use std::future::pending;
///
/// let rt = Runtime::builder().workers(1).build()?;
/// let (started_tx, started) = std::sync::mpsc::channel();
/// let t = rt.spawn(async move {
///     started_tx.send(()).unwrap();
///     match catch_cancel(pending::<()>()).await {
///         Ok(()) => unreachable!(),
///         Err(e) => {
///             aioloop::yield_now().await; // async clean-up is allowed here
///             aioloop::current_task().unwrap().uncancel(); // suppress: finish normally
///             format!("cleaned up after {e}")
///         }
///     }
/// });
/// started.recv().unwrap(); // cancelled before its first step, it would never run (T4)
/// assert!(t.cancel(Some("shutdown")));
/// assert_eq!(rt.block_on(t).unwrap(), "cleaned up after CancelledError: shutdown");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn catch_cancel<F: std::future::Future>(future: F) -> CatchCancel<F> {
    CatchCancel {
        future: Some(future),
    }
}

/// The future returned by [`catch_cancel`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct CatchCancel<F> {
    future: Option<F>,
}

impl<F: std::future::Future> std::future::Future for CatchCancel<F> {
    type Output = Result<F::Output, crate::CancelledError>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        // SAFETY: structural pinning of `future`: it is never moved out, only polled in
        // place and dropped in place (`Pin::set`).
        let mut slot = unsafe { self.map_unchecked_mut(|s| &mut s.future) };
        let Some(fut) = slot.as_mut().as_pin_mut() else {
            panic!("`CatchCancel` polled after completion")
        };
        let (scope, deliver) = ScopeGuard::enter();
        if deliver {
            // Rule 3: a request that arrived while the task was suspended lands here, at the
            // suspension point: the child is dropped unpolled.
            match take_current() {
                Some(msg) => {
                    scope.forget_waiter();
                    slot.set(None);
                    return Poll::Ready(Err(crate::CancelledError::new(msg)));
                }
                None => ScopeGuard::delivery_done(),
            }
        }
        if let Poll::Ready(v) = fut.poll(cx) {
            slot.set(None);
            return Poll::Ready(Ok(v));
        }
        scope.pending();
        // Rule 2: the innermost pending scope takes an undelivered request.
        match take_current() {
            Some(msg) => {
                scope.forget_waiter();
                slot.set(None);
                Poll::Ready(Err(crate::CancelledError::new(msg)))
            }
            None => Poll::Pending,
        }
    }
}

/// Rule 2: the current built-in task's undelivered request, taken by a scope.
fn take_current() -> Option<Option<Arc<str>>> {
    super::current::with_builtin(|raw| {
        let raw = raw?;
        let taken = raw.header().extra.get().and_then(Extra::take);
        if taken.is_some() {
            super::observe::on_cancel_delivered(raw);
        }
        taken
    })
}

/// Puts a caught cancellation back on the current built-in task (see [`Extra::rearm`]) and
/// wakes it. The caller must then stay pending: the next poll hands the request to the
/// enclosing scope. Returns `false` (and does nothing) outside a built-in task.
pub(crate) fn reraise_current(msg: Option<Arc<str>>) -> bool {
    super::current::with_builtin(|raw| match raw {
        Some(raw) => {
            raw.rearm_cancel(msg);
            true
        }
        None => false,
    })
}

/// The future returned by [`CancelledError::reraise`](crate::CancelledError::reraise):
/// asyncio's bare `raise` inside `except CancelledError:`.
///
/// It puts the caught request back on the current task and never completes, so the next
/// enclosing [`catch_cancel`] scope receives it at the task's next poll — or, if there is
/// none, the task ends cancelled. Outside a built-in task there is nobody to re-raise to:
/// it resolves at once to the error, for the caller to return.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Reraise {
    msg: Option<Option<Arc<str>>>,
}

impl Reraise {
    fn new(err: crate::CancelledError) -> Reraise {
        Reraise {
            msg: Some(err.message().map(Into::into)),
        }
    }
}

impl std::future::Future for Reraise {
    type Output = crate::CancelledError;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<crate::CancelledError> {
        match self.msg.take() {
            Some(msg) => {
                if reraise_current(msg.clone()) {
                    std::task::Poll::Pending
                } else {
                    std::task::Poll::Ready(crate::CancelledError::new(msg))
                }
            }
            // Already re-raised: the enclosing scope drops us at its next poll.
            None => std::task::Poll::Pending,
        }
    }
}

impl crate::CancelledError {
    /// Re-raises this cancellation from inside the handler that caught it (asyncio's bare
    /// `raise` in `except CancelledError:`): the next enclosing [`catch_cancel`] scope gets
    /// it, or the task ends cancelled. Await the returned future; inside a task it never
    /// resolves (its scope is dropped instead).
    ///
    /// ```
    /// use aioloop::{catch_cancel, Runtime};
    ///
    /// let rt = Runtime::builder().workers(1).build()?;
    /// let (tx, started) = std::sync::mpsc::channel();
    /// let t = rt.spawn(async move {
    ///     let outer = catch_cancel(async move {
    ///         tx.send(()).unwrap();
    ///         if let Err(e) = catch_cancel(std::future::pending::<()>()).await {
    ///             aioloop::yield_now().await; // async clean-up
    ///             e.reraise().await;          // hand it to the outer scope
    ///         }
    ///     })
    ///     .await;
    ///     outer.unwrap_err().to_string()
    /// });
    /// started.recv().unwrap();
    /// t.cancel(Some("stop"));
    /// // The outer scope caught it too; the task then returned, so it ends with its value.
    /// assert_eq!(rt.block_on(t).unwrap(), "CancelledError: stop");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn reraise(self) -> Reraise {
        Reraise::new(self)
    }
}

/// Whether the current built-in task has a cancellation request that its next `Pending`
/// delivers: the innermost catch scope takes it (rule 2) or, with none, the task ends
/// cancelled (rule 3). asyncio would raise `CancelledError` at the await being polled rather
/// than resume it, so a waiter of `aioloop::sync` or `aioloop::queue` that was handed
/// something (the lock, a permit, a queue item, a free slot) checks this first and stays
/// pending instead of taking it; its drop passes what it was handed on (waiter-list rule 9 of
/// `sync/waiters.rs`, queue rule Q5).
/// `false` outside a built-in task.
pub(crate) fn cancel_pending_now() -> bool {
    super::current::with_builtin(|raw| {
        raw.and_then(|r| r.header().extra.get().map(Extra::deliverable))
            .unwrap_or(false)
    })
}

/// Rule 6 (T3): the request the current built-in task should pass on to what it awaits
/// (a `Task<T>`, an `aioloop::Future`), once per request; `None` if there is none.
pub(crate) fn request_to_propagate() -> Option<Option<Arc<str>>> {
    super::current::with_builtin(|raw| {
        raw.and_then(|r| r.header().extra.get().and_then(Extra::to_propagate))
    })
}

/// Rule 6: a `Task<T>` being awaited by a task with an undelivered cancellation request
/// receives that request (once per request).
pub(crate) fn propagate_to(awaited: super::raw::RawTask) {
    let found = super::current::with_builtin(|raw| {
        let raw = raw.filter(|r| *r != awaited)?;
        let extra = raw.header().extra.get()?;
        extra.to_propagate().map(|msg| (raw, msg))
    });
    if let Some((raw, msg)) = found {
        if awaited.cancel(msg) {
            // asyncio: `_must_cancel` is cleared once the awaited task accepts the request;
            // the awaiter waits for it (and gets its value if it suppresses it).
            if let Some(extra) = raw.header().extra.get() {
                extra.mark_forwarded(task_key(awaited));
            }
        }
    }
}

/// Rule 6: the awaited thing `key` ended cancelled; if the current task's request was
/// passed on to it, raise it at the await (re-armed for the enclosing scope). Returns
/// whether it did (the caller then stays pending).
pub(crate) fn raise_if_forwarded(key: usize) -> bool {
    super::current::with_builtin(|raw| {
        let Some(raw) = raw else { return false };
        match raw
            .header()
            .extra
            .get()
            .and_then(|e| e.raise_forwarded(key))
        {
            Some(msg) => {
                // Re-armed uncounted, as the task's own: the enclosing scope takes it in this
                // poll; with none, the wake makes the next poll end the task.
                raw.rearm_cancel(msg);
                true
            }
            None => false,
        }
    })
}

/// Rule 6: the awaiting handle of `key` is dropped by the current task without having read
/// it (a `select`-like combinator took another branch). A request passed on to `key` and not
/// answered would then never be raised: it is put back on the task, delivered at its next
/// suspension point (or, if it now returns, ending it cancelled: mapping point 4).
pub(crate) fn abandoned(key: usize) {
    // Nor is the task suspended on it any more: a waiter noted earlier in this poll is
    // forgotten (a later `cancel()` must not be passed on to a dropped awaitable).
    // (A `TaskRef`'s drop may free a task: dropped outside the thread-local's borrow.)
    drop(take_waiter_if(|s, (_, w)| s.active() && w.key() == key));
    let _ = raise_if_forwarded(key);
}

/// Rule 6: the awaited thing `key` was read: any request passed on to it is answered.
pub(crate) fn answered(key: usize) {
    super::current::with_builtin(|raw| {
        if let Some(raw) = raw {
            if let Some(extra) = raw.header().extra.get() {
                extra.clear_forwarded(key);
            }
        }
    })
}
