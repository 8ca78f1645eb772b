//! The socket transport's write side: the buffer of unsent bytes and the writer task
//! (asyncio's `_write_ready`), which runs only while the buffer is not empty.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use aioloop::io::Async;
use pyo3::prelude::*;

use crate::transport::{raw, SocketTransport, State};

/// Unsent bytes: a vector consumed from `start`, compacted when half of it is sent.
#[derive(Default)]
pub(crate) struct WriteBuffer {
    bytes: RefCell<Vec<u8>>,
    start: Cell<usize>,
}

impl WriteBuffer {
    pub(crate) fn len(&self) -> usize {
        self.bytes.borrow().len() - self.start.get()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn clear(&self) {
        self.bytes.borrow_mut().clear();
        self.start.set(0);
    }

    pub(crate) fn extend(&self, data: &[u8]) {
        let mut b = self.bytes.borrow_mut();
        let start = self.start.get();
        if start > 0 && start >= b.len() / 2 {
            b.drain(..start);
            self.start.set(0);
        }
        b.extend_from_slice(data);
    }

    fn consume(&self, n: usize) {
        let start = self.start.get() + n;
        if start >= self.bytes.borrow().len() {
            self.clear();
        } else {
            self.start.set(start);
        }
    }

    /// Sends what it can of the buffer.
    fn send(&self, fd: i32) -> io::Result<usize> {
        let b = self.bytes.borrow();
        send_raw(fd, &b[self.start.get()..])
    }
}

fn send_raw(fd: i32, data: &[u8]) -> io::Result<usize> {
    // SAFETY: `data` is a valid readable region of `data.len()` bytes for the call; `fd` is
    // a socket descriptor the caller keeps open (the Python socket or the transport's
    // duplicate). MSG_NOSIGNAL: a vanished peer is EPIPE, not SIGPIPE.
    let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `write()`'s first try: how much was sent (0 when the socket would block).
pub(crate) fn send_now(fd: i32, data: &[u8]) -> io::Result<usize> {
    match send_raw(fd, data) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(0)
        }
        r => r,
    }
}

/// asyncio's `_write_ready` after a send: whether the task keeps writing.
fn write_ready(
    py: Python<'_>,
    tr: &Bound<'_, SocketTransport>,
    st: &State,
    sent: io::Result<Option<usize>>,
) -> bool {
    match sent {
        // Closed, or this task was superseded: the flags are someone else's now.
        Ok(None) => false,
        Err(e) => {
            st.writer_on.set(false);
            st.wbuf.clear();
            st.fatal_error(py, tr, e.into(), "Fatal write error on socket transport");
            false
        }
        Ok(Some(n)) => {
            st.wbuf.consume(n);
            if let Err(e) = st.maybe_resume_protocol(py, tr) {
                // KeyboardInterrupt/SystemExit from resume_writing(): out of run_forever.
                crate::loop_core::report_error(
                    py,
                    st.loop_.bind(py).as_any(),
                    e,
                    "Exception in resume_writing()".into(),
                    "transport",
                    tr.as_any(),
                );
            }
            if !st.wbuf.is_empty() {
                return true;
            }
            st.writer_on.set(false);
            if let Err(e) = st.drained(py) {
                st.callback_error(py, tr, e, "Fatal write error on socket transport");
            }
            false
        }
    }
}

/// The writer task: sends the buffer as the socket takes it.
pub(crate) async fn write_loop(tr: Py<SocketTransport>, st: Rc<State>, io: Rc<Async<OwnedFd>>) {
    let fd = raw(&io);
    loop {
        let sent = io
            .write_with(|_| {
                if st.conn_lost.get() > 0 || !st.writer_on.get() {
                    return Ok(None);
                }
                st.wbuf.send(fd).map(Some)
            })
            .await;
        let again = Python::with_gil(|py| write_ready(py, tr.bind(py), &st, sent));
        if !again {
            return;
        }
    }
}
