//! Creating a task on a loop, whichever kind it is: `create_task`, `task::Builder::spawn`,
//! task groups, `gather` and `shield` all come here, and this is the one place that tells a
//! runtime from a `LocalLoop` to do it (spawning is generic over the future, so it cannot
//! go through the `Loop` trait object).
//!
//! Owns: nothing. May import: the task core, the loop core, the runtime (it is above them).

use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::Location;

use crate::error::NoRunningLoop;
use crate::event_loop::context::{self, LoopRef};
use crate::event_loop::local::LocalShared;
use crate::runtime::Handle;
use crate::task::spawn::SpawnOpts;
use crate::task::{Builder, Task};

/// Spawns `future` on the loop running on this thread with crate-internal options (a
/// completion hook, task/done.rs): what `create_task` does, for task groups and `gather`.
#[track_caller]
pub(crate) fn spawn_current<F>(future: F, opts: SpawnOpts) -> Result<Task<F::Output>, NoRunningLoop>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_current_at(future, opts, Location::caller())
}

/// `spawn_current` for a task created at `site` (O4).
#[inline]
pub(crate) fn spawn_current_at<F>(
    future: F,
    opts: SpawnOpts,
    site: &'static Location<'static>,
) -> Result<Task<F::Output>, NoRunningLoop>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // The closure runs inside the thread-local access, a call of its own: capturing the
    // future by value would copy it into the closure and again out of it, so it captures
    // the place the future waits in instead. Not an `Option`: its tag would sit in the
    // middle of the pair (a niche of `SpawnOpts`), and the copy out of it, around the tag,
    // would read 16-byte words straddling the caller's 16-byte stores, which defeats
    // store-to-load forwarding (a stall on every spawn, ~10% of a spawn chain's samples).
    let mut args = ManuallyDrop::new((future, opts));
    let mut taken = false;
    let spawned = context::with_current_owner(|owner| {
        let owner = owner.ok_or(NoRunningLoop)?;
        taken = true;
        // SAFETY: `taken` was false, so `args` still holds the pair; it is set before the
        // take, so the pair is never taken or dropped again below, even if spawning unwinds.
        let (future, opts) = unsafe { ManuallyDrop::take(&mut args) };
        Ok(spawn_on_loop_at(owner, future, opts, site))
    });
    if !taken {
        // SAFETY: not taken (no loop runs here), so the pair is still there, dropped once.
        unsafe { ManuallyDrop::drop(&mut args) };
    }
    spawned
}

/// Spawns `future` on the loop `owner`, from any thread.
#[track_caller]
pub(crate) fn spawn_on_loop<F>(owner: &LoopRef, future: F, opts: SpawnOpts) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_on_loop_at(owner, future, opts, Location::caller())
}

#[inline]
fn spawn_on_loop_at<F>(
    owner: &LoopRef,
    future: F,
    opts: SpawnOpts,
    site: &'static Location<'static>,
) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // SAFETY: `Handle::from_shared` only moves the `Arc` into the handle, and a `&Handle`
    // offers no way to move it out.
    if let Some(handle) = unsafe { owner.borrow_as(Handle::from_shared) } {
        return handle.spawn_at(future, opts, site);
    }
    // SAFETY: the identity keeps the `Arc` as it is, and a `&Arc` cannot move it out.
    match unsafe { owner.borrow_as::<LocalShared, _>(|a| a) } {
        Some(local) => local.spawn_at(future, opts, site),
        None => unreachable!("a loop is a runtime or a LocalLoop"),
    }
}

/// Spawning with the options of a [`Builder`].
impl Builder {
    /// Spawns on the runtime running on this thread ([`create_task`](crate::create_task)).
    ///
    /// # Panics
    /// Outside a runtime; see [`Builder::try_spawn`].
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// rt.block_on(async {
    ///     let t = aioloop::task::Builder::new().name("child").spawn(async { 2 });
    ///     assert_eq!(t.await.unwrap(), 2);
    /// });
    /// ```
    #[track_caller]
    pub fn spawn<F>(self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.try_spawn(future) {
            Ok(t) => t,
            Err(e) => panic!("{e}: aioloop::create_task() must be called from inside a runtime (a task or block_on)"),
        }
    }

    /// Spawns on the runtime running on this thread, or `Err(NoRunningLoop)`.
    ///
    /// ```
    /// assert!(aioloop::task::Builder::new().try_spawn(async {}).is_err());
    /// ```
    #[track_caller]
    pub fn try_spawn<F>(self, future: F) -> Result<Task<F::Output>, NoRunningLoop>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        spawn_current(future, self.opts())
    }

    /// Spawns on the runtime behind `handle`, from any thread.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build().unwrap();
    /// let t = aioloop::task::Builder::new().spawn_on(rt.handle(), async { 3 });
    /// assert_eq!(rt.block_on(t).unwrap(), 3);
    /// ```
    #[track_caller]
    pub fn spawn_on<F>(self, handle: &crate::Handle, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        handle.spawn_with(future, self.opts())
    }
}
