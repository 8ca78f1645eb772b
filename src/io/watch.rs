//! asyncio's `add_reader` / `add_writer` / `remove_reader` / `remove_writer` (rule N8):
//! a watcher task per (loop, descriptor, direction) that calls the callback once per loop
//! iteration for as long as the descriptor stays ready — level-triggered, as asyncio's
//! selector loop is, although the poller's registrations are edge-triggered: the watcher
//! checks the level with `poll(2)` before each call.
//!
//! Each watcher waits on its own duplicate of the descriptor (`dup`), so a reader and a
//! writer on one descriptor — or an `Async` the program already has on it — are separate
//! registrations of the same open file and never collide in the poller (`EEXIST`). The
//! descriptor's blocking mode is left alone.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, LazyLock};

use super::Async;
use crate::event_loop::reactor::Direction;
use crate::shim::atomic::{AtomicBool, Ordering};
use crate::shim::Mutex;
use crate::task::LoopId;
use crate::Task;

type Key = (LoopId, RawFd, bool);

/// A registered callback's watcher task and its "still registered" flag.
struct Watcher {
    task: Task<()>,
    /// Cleared on replacement or removal, before the task is cancelled: a cancelled task
    /// runs until its next suspension, and must not call the callback on the way.
    live: Arc<AtomicBool>,
}

impl Watcher {
    /// Unregisters: the callback is not called again. Whether it was still running.
    fn retire(self) -> bool {
        self.live.store(false, Ordering::SeqCst);
        let running = !self.task.done();
        self.task.cancel(None);
        running
    }
}

/// The watcher of each registered callback.
static WATCHERS: LazyLock<Mutex<HashMap<Key, Watcher>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn key(loop_id: LoopId, fd: RawFd, dir: Direction) -> Key {
    (loop_id, fd, dir == Direction::Write)
}

/// A duplicate of `fd` to wait on, without touching its blocking mode.
pub(crate) fn watch_copy(fd: impl AsFd) -> io::Result<Async<OwnedFd>> {
    let copy = fd.as_fd().try_clone_to_owned()?;
    Ok(Async::without_mode_change(copy))
}

/// The body of a watcher: wait for the level, call, let the iteration end (one call per
/// iteration), again.
pub(crate) async fn watch_loop(
    w: Async<OwnedFd>,
    dir: Direction,
    live: Arc<AtomicBool>,
    mut cb: impl FnMut(),
) {
    loop {
        let ready = match dir {
            Direction::Read => w.readable().await,
            Direction::Write => w.writable().await,
        };
        if ready.is_err() {
            // The descriptor was closed under the watcher (asyncio's contract is to remove
            // the reader first): stop rather than spin.
            return;
        }
        if !live.load(Ordering::SeqCst) {
            return;
        }
        cb();
        crate::yield_now().await;
    }
}

/// Registers the watcher `spawn` builds for `fd` (replacing and cancelling an earlier one
/// of the same loop and direction).
pub(crate) fn add(
    loop_id: LoopId,
    fd: impl AsFd,
    dir: Direction,
    spawn: impl FnOnce(Async<OwnedFd>, Arc<AtomicBool>) -> io::Result<Task<()>>,
) -> io::Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    let w = watch_copy(fd)?;
    let live = Arc::new(AtomicBool::new(true));
    let task = spawn(w, live.clone())?;
    let old = {
        let mut map = WATCHERS.lock();
        map.retain(|_, w| !w.task.done());
        map.insert(key(loop_id, raw, dir), Watcher { task, live })
    };
    if let Some(old) = old {
        old.retire();
    }
    Ok(())
}

/// Removes and cancels the watcher of `fd` in `dir`; whether there was one.
pub(crate) fn remove(loop_id: LoopId, fd: RawFd, dir: Direction) -> bool {
    let old = WATCHERS.lock().remove(&key(loop_id, fd, dir));
    old.is_some_and(Watcher::retire)
}
