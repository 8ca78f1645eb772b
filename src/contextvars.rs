//! asyncio's `contextvars` (rule T12): values that follow a task.
//!
//! A [`Context`] maps [`ContextVar`]s to values. Each thread has a *current* context; a
//! task runs in its own copy of the context that was current when it was created, so a
//! value it sets is invisible to its creator (and to its siblings). Done callbacks run in
//! the context current when they were added.
//!
//! **Why a persistent map.** Every `create_task` copies the creator's context. A deep copy
//! would make spawning O(variables); the map here is a hash array mapped trie
//! ([`rpds::HashTrieMapSync`], the structure CPython's own `contextvars` uses), so a copy
//! is one reference-count increment and a `set` copies only the path to one leaf
//! (O(log n)). An empty context is no map at all: a program that never uses context
//! variables pays one relaxed load of a global flag per task poll and no allocation.
//!
//! **How a task carries its context.** The task keeps its context in its extra block
//! (`task/cancel.rs`); the poller swaps it into this thread's current slot before each poll
//! and takes it back after (`enter_task_context` / `leave_task_context`), so `set` inside
//! the task changes the task's context only.
//!
//! Must not: touch the scheduler. The variable-id counter is a plain std atomic, not the
//! loom shim's: no scheduler protocol depends on it.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

type Value = Arc<dyn Any + Send + Sync>;
type Map = rpds::HashTrieMapSync<u64, Value>;

/// Ids for variables and context instances: process-unique, never 0 (0 = "not assigned").
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Set by the first `ContextVar::set` in the process. Until then every context is empty
/// and the per-poll swap is skipped without touching the thread-local. A thread reads
/// its own `set`s in program order, so a thread that sees `false` has an empty current
/// context; a task that makes the first `set` during its poll flips it before the poll
/// ends, and the poller re-reads it then (see `leave_task_context`).
static IN_USE: AtomicBool = AtomicBool::new(false);

#[inline]
fn in_use() -> bool {
    // Relaxed: only this thread's own `set`s matter for this thread's slot (above).
    IN_USE.load(Ordering::Relaxed)
}

fn next_id() -> u64 {
    // Relaxed: only uniqueness matters, which the read-modify-write gives.
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// asyncio's `contextvars.Context`: a mapping from variables to values.
///
/// Obtained with [`copy_context`] (a snapshot of the current context, O(1)); entered with
/// [`Context::run`]. Changes made inside `run` stay in this context object.
///
/// ```
/// use aioloop::contextvars::{copy_context, ContextVar};
///
/// static USER: ContextVar<&str> = ContextVar::new("user");
/// let mut ctx = copy_context();
/// ctx.run(|| {
///     USER.set("alice");
/// });
/// assert_eq!(USER.get(), None); // the change stayed inside `ctx`
/// assert_eq!(ctx.run(|| USER.get()), Some("alice"));
/// ```
#[derive(Default)]
pub struct Context {
    /// 0 until something needs the identity (a `Token`).
    id: u64,
    map: Option<Map>,
}

thread_local! {
    // `const`: no lazy-initialisation check on the per-poll path.
    static CURRENT: RefCell<Context> = const { RefCell::new(Context::EMPTY) };
}

impl Context {
    const EMPTY: Context = Context { id: 0, map: None };

    fn is_anonymous_and_empty(&self) -> bool {
        self.id == 0 && self.map.is_none()
    }

    /// An empty context (asyncio's `contextvars.Context()`).
    ///
    /// ```
    /// let mut ctx = aioloop::contextvars::Context::new();
    /// assert!(ctx.is_empty());
    /// ```
    pub fn new() -> Context {
        Context::default()
    }

    /// `true` if no variable has a value in this context.
    ///
    /// ```
    /// assert!(aioloop::contextvars::Context::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.map.as_ref().is_none_or(|m| m.is_empty())
    }

    /// Runs `f` with this context as the current one, then restores the previous one.
    /// Values `f` sets are kept in `self` (asyncio's `Context.run`).
    ///
    /// ```
    /// use aioloop::contextvars::{Context, ContextVar};
    /// static N: ContextVar<u32> = ContextVar::new("n");
    /// let mut ctx = Context::new();
    /// ctx.run(|| N.set(1));
    /// assert_eq!(ctx.run(|| N.get()), Some(1));
    /// assert_eq!(N.get(), None);
    /// ```
    pub fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        /// Swaps back even if `f` panics.
        struct Restore<'a>(&'a mut Context);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                CURRENT.with(|c| std::mem::swap(&mut *c.borrow_mut(), self.0));
            }
        }
        CURRENT.with(|c| std::mem::swap(&mut *c.borrow_mut(), self));
        let _restore = Restore(self);
        f()
    }

    /// A copy (asyncio's `ctx.copy()`), in O(1): the same values, a separate context.
    pub(crate) fn snapshot(&self) -> Context {
        Context {
            id: 0,
            map: self.map.clone(),
        }
    }

    fn identity(&mut self) -> u64 {
        if self.id == 0 {
            self.id = next_id();
        }
        self.id
    }
}

/// asyncio's `ctx.copy()`: the same values, a separate context (O(1)). A [`Token`] made in
/// one is not valid in the other.
///
/// ```
/// use aioloop::contextvars::{Context, ContextVar};
/// static V: ContextVar<u8> = ContextVar::new("v");
/// let mut a = Context::new();
/// a.run(|| V.set(1));
/// let mut b = a.clone();
/// b.run(|| V.set(2));
/// assert_eq!(a.run(|| V.get()), Some(1));
/// ```
impl Clone for Context {
    fn clone(&self) -> Context {
        self.snapshot()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("len", &self.map.as_ref().map_or(0, |m| m.size()))
            .finish()
    }
}

/// asyncio's `contextvars.copy_context()`: a snapshot of this thread's current context, in
/// O(1).
///
/// ```
/// use aioloop::contextvars::{copy_context, ContextVar};
/// static V: ContextVar<u8> = ContextVar::new("v");
/// V.set(1);
/// let mut snap = copy_context();
/// V.set(2);
/// assert_eq!(snap.run(|| V.get()), Some(1));
/// ```
pub fn copy_context() -> Context {
    CURRENT.with(|c| Context {
        id: 0,
        map: c.borrow().map.clone(),
    })
}

/// The context a new task gets: a copy of the current one, or `None` when it is empty (no
/// allocation for programs that never use context variables).
#[inline]
pub(crate) fn copy_for_task() -> Option<Context> {
    if !in_use() {
        return None;
    }
    copy_current()
}

fn copy_current() -> Option<Context> {
    CURRENT.with(|c| {
        let c = c.borrow();
        c.map.as_ref().map(|m| Context {
            id: 0,
            map: Some(m.clone()),
        })
    })
}

/// What `enter_task_context` displaced, to give back to `leave_task_context`.
pub(crate) struct Saved(Option<Context>);

/// Before a task's poll: make the task's context current. Cheap when neither the task nor
/// the thread has one.
#[inline]
pub(crate) fn enter_task_context(task: Option<Context>) -> Saved {
    if task.is_none() && !in_use() {
        return Saved(None);
    }
    CURRENT.with(|c| {
        let mut cur = c.borrow_mut();
        match task {
            None if cur.is_anonymous_and_empty() => Saved(None),
            None => Saved(Some(std::mem::take(&mut *cur))),
            Some(t) => Saved(Some(std::mem::replace(&mut *cur, t))),
        }
    })
}

/// After a task's poll: take the task's (possibly changed) context back and restore the
/// thread's. `None` if the task's context is still empty and anonymous.
#[inline]
pub(crate) fn leave_task_context(saved: Saved) -> Option<Context> {
    if saved.0.is_none() && !in_use() {
        return None;
    }
    CURRENT.with(|c| {
        let mut cur = c.borrow_mut();
        match saved.0 {
            // The common case: no context anywhere, before or after.
            None if cur.is_anonymous_and_empty() => None,
            saved => {
                let task = std::mem::replace(&mut *cur, saved.unwrap_or_default());
                (!task.is_anonymous_and_empty()).then_some(task)
            }
        }
    })
}

/// asyncio's `contextvars.ContextVar`: a variable whose value depends on the current
/// context. Usually a `static`.
///
/// ```
/// use aioloop::contextvars::ContextVar;
/// use aioloop::Runtime;
///
/// static REQUEST: ContextVar<u64> = ContextVar::new("request");
///
/// let rt = Runtime::builder().workers(2).build()?;
/// rt.block_on(async {
///     REQUEST.set(1);
///     let child = aioloop::create_task(async {
///         let inherited = REQUEST.get();   // a copy of the creator's context
///         REQUEST.set(2);                  // changes the task's copy only
///         inherited
///     });
///     assert_eq!(child.await.unwrap(), Some(1));
///     assert_eq!(REQUEST.get(), Some(1));
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ContextVar<T> {
    name: &'static str,
    default: Option<T>,
    id: AtomicU64,
}

impl<T> ContextVar<T> {
    /// A variable with no default: [`get`](ContextVar::get) gives `None` until it is set.
    ///
    /// ```
    /// static V: aioloop::contextvars::ContextVar<i32> = aioloop::contextvars::ContextVar::new("v");
    /// assert_eq!(V.get(), None);
    /// ```
    pub const fn new(name: &'static str) -> ContextVar<T> {
        ContextVar {
            name,
            default: None,
            id: AtomicU64::new(0),
        }
    }

    /// A variable whose [`get`](ContextVar::get) gives `default` until it is set.
    ///
    /// ```
    /// use aioloop::contextvars::ContextVar;
    /// static LEVEL: ContextVar<u8> = ContextVar::with_default("level", 3);
    /// assert_eq!(LEVEL.get(), Some(3));
    /// ```
    pub const fn with_default(name: &'static str, default: T) -> ContextVar<T> {
        ContextVar {
            name,
            default: Some(default),
            id: AtomicU64::new(0),
        }
    }

    /// The variable's name.
    ///
    /// ```
    /// let v = aioloop::contextvars::ContextVar::<u8>::new("v");
    /// assert_eq!(v.name(), "v");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn key(&self) -> u64 {
        // Relaxed is enough: the id is only compared, never used to publish data.
        let id = self.id.load(Ordering::Relaxed);
        if id != 0 {
            return id;
        }
        let fresh = next_id();
        match self
            .id
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(won) => won,
        }
    }
}

impl<T: Clone + Send + Sync + 'static> ContextVar<T> {
    /// The value in the current context, else the default, else `None`.
    ///
    /// ```
    /// use aioloop::contextvars::ContextVar;
    /// let v = ContextVar::new("v");
    /// v.set(5);
    /// assert_eq!(v.get(), Some(5));
    /// ```
    pub fn get(&self) -> Option<T> {
        let key = self.key();
        CURRENT
            .with(|c| {
                c.borrow()
                    .map
                    .as_ref()
                    .and_then(|m| m.get(&key))
                    .and_then(|v| v.downcast_ref::<T>().cloned())
            })
            .or_else(|| self.default.clone())
    }

    /// Sets the value in the current context; the [`Token`] undoes it with
    /// [`reset`](ContextVar::reset).
    ///
    /// ```
    /// use aioloop::contextvars::ContextVar;
    /// let v = ContextVar::new("v");
    /// let t = v.set("a");
    /// v.set("b");
    /// v.reset(t).unwrap();
    /// assert_eq!(v.get(), None);
    /// ```
    pub fn set(&self, value: T) -> Token<T> {
        let key = self.key();
        if !in_use() {
            IN_USE.store(true, Ordering::Relaxed);
        }
        CURRENT.with(|c| {
            let mut cur = c.borrow_mut();
            let context = cur.identity();
            // (The old map is dropped at the end of this closure, under the borrow; that
            // drops no user value: the one it held for `key` lives on in the token.)
            let map = cur.map.take().unwrap_or_else(Map::new_sync);
            let old = map.get(&key).cloned();
            cur.map = Some(map.insert(key, Arc::new(value)));
            Token {
                var: key,
                context,
                old,
                _t: PhantomData,
            }
        })
    }

    /// Restores the value the variable had before the `set` that returned `token`.
    ///
    /// # Errors
    /// asyncio's: the token was made by another variable, or in another context. (Using a
    /// token twice, asyncio's third error, cannot happen: `reset` consumes it.)
    ///
    /// ```
    /// use aioloop::contextvars::{ContextVar, ContextVarError};
    /// let a = ContextVar::new("a");
    /// let b = ContextVar::<u8>::new("b");
    /// let t = a.set(1u8);
    /// assert!(matches!(b.reset(t), Err(ContextVarError::DifferentVar)));
    /// ```
    pub fn reset(&self, mut token: Token<T>) -> Result<(), ContextVarError> {
        if token.var != self.key() {
            return Err(ContextVarError::DifferentVar);
        }
        // The replaced map (and with it, perhaps, the last reference to the value being
        // reset) is dropped after the thread-local borrow ends: a value's `Drop` may read
        // context variables itself.
        let replaced = CURRENT.with(|c| {
            let mut cur = c.borrow_mut();
            if cur.id != token.context {
                return Err(ContextVarError::DifferentContext);
            }
            let map = cur.map.take().unwrap_or_else(Map::new_sync);
            let new = match token.old.take() {
                Some(old) => map.insert(token.var, old),
                None => map.remove(&token.var),
            };
            cur.map = Some(new);
            Ok(map)
        })?;
        drop(replaced);
        Ok(())
    }
}

impl<T> fmt::Debug for ContextVar<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<ContextVar name='{}'>", self.name)
    }
}

/// What [`ContextVar::set`] returns: undoes the change with [`ContextVar::reset`].
///
/// ```
/// use aioloop::contextvars::ContextVar;
/// let v = ContextVar::with_default("v", 0);
/// let token = v.set(1);
/// v.reset(token).unwrap();
/// assert_eq!(v.get(), Some(0));
/// ```
pub struct Token<T> {
    var: u64,
    context: u64,
    old: Option<Value>,
    _t: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Token<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Token var={}>", self.var)
    }
}

/// A misused [`Token`] (asyncio's `RuntimeError`/`ValueError` from `ContextVar.reset`).
///
/// ```
/// use aioloop::contextvars::ContextVarError;
/// assert_eq!(
///     ContextVarError::DifferentContext.to_string(),
///     "<Token> was created in a different Context"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContextVarError {
    /// The token was made by another variable.
    DifferentVar,
    /// The token was made in another context.
    DifferentContext,
}

impl fmt::Display for ContextVarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContextVarError::DifferentVar => "<Token> was created by a different ContextVar",
            ContextVarError::DifferentContext => "<Token> was created in a different Context",
        })
    }
}

impl std::error::Error for ContextVarError {}
