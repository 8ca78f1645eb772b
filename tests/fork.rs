//! `fork()` from inside a running loop (rule S6): the child is not inside the parent's loop.
//!
//! Alone in its own test binary: a child forked while other test threads run may inherit a
//! lock one of them held at that instant (the task registry's, say) and wait on it forever.
//! Here no other thread runs aioloop code when the child is forked, and the child arms an
//! alarm, so a hang fails the test instead of stalling the suite.

#![cfg(unix)]

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use aioloop::LocalLoop;

/// Rule S6 after `fork()`: a child forked by a callback of a running loop (a
/// `ProcessPoolExecutor` worker forked from inside asyncio's loop) is not inside that loop —
/// the child's frame never returns to it — so a new loop runs there.
#[test]
fn child_forked_by_a_callback_can_run_a_new_loop() {
    let lp = LocalLoop::new().unwrap();
    let status = Rc::new(Cell::new(-1));
    let s = status.clone();
    lp.call_soon(move || {
        // SAFETY: the child only builds and runs a loop, then leaves with `_exit`, never
        // returning into the parent's frames.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: `alarm` only schedules SIGALRM for this process: a child stuck for
            // 10 s is killed by it and the parent sees a signal, not an exit code.
            unsafe { libc::alarm(10) };
            let code = match LocalLoop::new().map(|child| child.run_until_complete(async { 7 })) {
                Ok(Ok(7)) => 0,
                _ => 1,
            };
            // SAFETY: ends the child at once, running no destructors of the parent's state.
            unsafe { libc::_exit(code) };
        }
        let mut st = 0;
        // SAFETY: waits for the child just forked; `st` is a valid out-pointer.
        unsafe { libc::waitpid(pid, &mut st, 0) };
        s.set(if libc::WIFEXITED(st) {
            libc::WEXITSTATUS(st)
        } else {
            -2
        });
    })
    .unwrap();
    lp.run_once(Some(Duration::ZERO)).unwrap();
    assert_ne!(
        status.get(),
        -2,
        "the child hung (killed by its alarm) or crashed"
    );
    assert_eq!(status.get(), 0, "the child could not run a loop");
}
