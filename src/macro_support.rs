//! What `#[aioloop::main]` and `#[aioloop::test]` expand to (the `aioloop-macros` crate):
//! the macros only check the function and parse options; building the loop, running the
//! body and enforcing a test's timeout happen here, in ordinary code.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use crate::shim::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::event_loop::LocalLoop;
use crate::runtime::Builder;
use crate::task::TaskRef;

/// The options of `#[aioloop::main(...)]` / `#[aioloop::test(...)]`, as parsed.
///
/// ```
/// let opts = aioloop::__private::MacroOptions { workers: Some(1), local: false, debug: false, timeout: None };
/// assert_eq!(aioloop::__private::run(opts, async { 7 }), 7);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MacroOptions {
    /// `workers = N`: worker threads (default: one per core).
    pub workers: Option<usize>,
    /// `local`: run on a `LocalLoop` on this thread.
    pub local: bool,
    /// `debug`: asyncio's debug mode.
    pub debug: bool,
    /// `timeout = "5s"` (tests only): past it the body is dropped and the test fails.
    pub timeout: Option<Duration>,
}

/// Runs `body` to completion on a new loop built from `opts` (asyncio's `asyncio.run`).
///
/// # Panics
/// If the loop cannot be built (the OS refused a poller or a thread), or if `opts.timeout`
/// elapses first ("test timed out after …"): a test fails instead of hanging.
///
/// ```
/// let opts = aioloop::__private::MacroOptions { local: true, ..Default::default() };
/// assert_eq!(aioloop::__private::run(opts, async { "ok" }), "ok");
/// ```
pub fn run<F: Future<Output = T>, T>(opts: MacroOptions, body: F) -> T {
    let out = if opts.local {
        let lp = LocalLoop::new().expect("aioloop: cannot create the LocalLoop");
        lp.set_debug(opts.debug);
        let out = lp
            .run_until_complete(deadline(opts.timeout, then_cancel_remaining(body)))
            .expect("aioloop: a fresh LocalLoop refused to run");
        // Closing cancels what the body left running, on this thread.
        let _ = lp.close();
        out
    } else {
        let mut builder = Builder::default().debug(opts.debug);
        if let Some(n) = opts.workers {
            builder = builder.workers(n);
        }
        let rt = builder.build().expect("aioloop: cannot start the runtime");
        rt.block_on(deadline(opts.timeout, then_cancel_remaining(body)))
    };
    match out {
        Some(v) => v,
        None => panic!(
            "test timed out after {:?} (#[aioloop::test(timeout = ...)])",
            opts.timeout.unwrap_or_default()
        ),
    }
}

/// `body`, then asyncio.run's `_cancel_all_tasks` (rule T11): every other unfinished task of
/// the loop is cancelled — through the request protocol, so its `catch_cancel` clean-up
/// runs and may await — and the main task waits until all have finished, before the loop
/// is closed (which would drop them unfinished). Tasks started during that clean-up are
/// left to the close, as asyncio only cancels the tasks alive when the body returned. A
/// third-party task cannot be watched, and is only cancelled.
async fn then_cancel_remaining<F: Future>(body: F) -> F::Output {
    let out = body.await;
    let me = crate::task::current_task();
    let left: Vec<TaskRef> = crate::task::all_tasks()
        .into_iter()
        .filter(|t| Some(t) != me.as_ref())
        .collect();
    if left.is_empty() {
        return out;
    }
    let all_done = crate::future::create_future::<()>();
    // One count for the loop below, so that callbacks firing meanwhile cannot reach zero.
    let remaining = Arc::new(AtomicUsize::new(left.len() + 1));
    let count_down = {
        let (remaining, all_done) = (remaining.clone(), all_done.clone());
        move || {
            if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                let _ = all_done.set_result(());
            }
        }
    };
    for t in &left {
        t.cancel(None);
        let cb = count_down.clone();
        if !t.add_done_callback(Arc::new(move |_: &TaskRef| cb())) {
            count_down();
        }
    }
    count_down();
    let _ = all_done.await;
    out
}

/// `body`, or `None` once `limit` has passed (the body is then dropped, inside the loop).
async fn deadline<F: Future>(limit: Option<Duration>, body: F) -> Option<F::Output> {
    let Some(limit) = limit else {
        return Some(body.await);
    };
    let mut body = pin!(body);
    let mut timer = pin!(crate::event_loop::sleep(limit));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = body.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}
