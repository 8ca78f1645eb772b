//! loom's fake poller: a sticky token, a queue of injected events and a condvar, so the
//! models drive the real readiness word, slots, slab and dispatch.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// As the epoll backend: the models may inject `READ_CLOSED` (rule R12).
pub(super) const REPORTS_READ_CLOSED: bool = true;

#[derive(Default)]
struct State {
    notified: bool,
    events: Vec<(usize, usize)>,
}

pub(super) struct Sys {
    state: loom::sync::Mutex<State>,
    cv: loom::sync::Condvar,
}

#[derive(Default)]
pub(super) struct Events(Vec<(usize, usize)>);

impl Events {
    pub(super) fn drain(&mut self, mut f: impl FnMut(usize, usize)) {
        for (key, bits) in self.0.drain(..) {
            f(key, bits);
        }
    }
}

impl Sys {
    pub(super) fn new() -> io::Result<Sys> {
        Ok(Sys {
            state: loom::sync::Mutex::new(State::default()),
            cv: loom::sync::Condvar::new(),
        })
    }

    pub(super) fn wait(&self, events: &mut Events, timeout: Option<Duration>) {
        let mut s = self.state.lock().unwrap();
        // Positive timeouts are not modelled (loom has no clock); a zero timeout polls.
        if timeout != Some(Duration::ZERO) {
            while !s.notified && s.events.is_empty() {
                s = self.cv.wait(s).unwrap();
            }
        }
        s.notified = false;
        events.0.append(&mut s.events);
    }

    pub(super) fn notify(&self) {
        self.state.lock().unwrap().notified = true;
        self.cv.notify_one();
    }

    pub(super) fn inject(&self, key: usize, ready: usize) {
        self.state.lock().unwrap().events.push((key, ready));
        self.cv.notify_one();
    }

    /// # Safety
    /// None under loom; the signature matches the real poller's.
    pub(super) unsafe fn add(&self, _fd: RawFd, _key: usize) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn delete(&self, _fd: RawFd) {}
}
