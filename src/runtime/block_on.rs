//! `block_on`: run a future to completion on the calling thread, as asyncio's
//! `run_until_complete` / `asyncio.run` run their main coroutine — as the loop's main task
//! (event_loop/main_task.rs), while the workers run everything else.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::thread::{self, Thread};

use super::Handle;
use crate::event_loop::context::{self, LoopContext};
use crate::event_loop::main_task::{self, MainTask};

/// Wakes the blocked thread. The flag makes `unpark` before `park` count, and filters the
/// spurious returns `thread::park` is allowed.
struct ThreadWaker {
    thread: Thread,
    notified: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.notified.swap(true, Ordering::Release) {
            self.thread.unpark();
        }
    }
}

pub(crate) fn block_on<F: Future>(handle: &Handle, future: F) -> F::Output {
    let ctx = LoopContext {
        owner: handle.loop_ref(),
        core: None,
    };
    let _guard = match context::enter(ctx) {
        Ok(g) => g,
        Err(_) => panic!(
            "Cannot run the event loop while another loop is running \
             (block_on was called from inside a running loop)"
        ),
    };

    let thread_waker = Arc::new(ThreadWaker {
        thread: thread::current(),
        notified: AtomicBool::new(false),
    });
    let mut main = MainTask::start(handle.clone(), Waker::from(thread_waker.clone()), future);
    loop {
        match main.step() {
            Some(Ok(out)) => return out,
            Some(Err(cancelled)) => main_task::main_cancelled(cancelled),
            None => {}
        }
        while !thread_waker.notified.swap(false, Ordering::Acquire) {
            thread::park();
        }
    }
}
