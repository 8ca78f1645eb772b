//! The socket transport's reader task: asyncio's `_read_ready` (`_read_ready__data_received`,
//! `_read_ready__get_buffer`, `_read_ready__on_eof`) without a Python-level selector
//! callback. The task waits for readability on the loop's poller, `recv`s into a buffer
//! and hands the bytes to the protocol; it sleeps while reading is paused and ends on EOF
//! or when the transport closes (which also cancels it, should it be waiting).

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::task::Poll;

use aioloop::io::Async;
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::transport::{raw, SocketTransport, State};

/// asyncio's `_SelectorTransport.max_size`: the most one `recv` asks for.
const MAX_SIZE: usize = 256 * 1024;

thread_local! {
    /// One receive buffer per loop thread: the bytes are copied out into a `bytes` object
    /// at once, so no transport keeps it between reads.
    static RECV_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_SIZE]);
}

/// What one attempt to read produced.
enum Got {
    /// Reading is paused or stopped: nothing was read.
    Skip,
    Data(Py<PyBytes>, usize),
    /// `recv_into` the protocol's buffer read this many bytes; whether that was less than
    /// the buffer held (the socket is drained).
    Into(usize, bool),
    Eof,
    /// A protocol callback (`get_buffer`) or the socket failed: `_fatal_error(e, msg)`.
    Fail(PyErr, &'static str),
}

fn recv(fd: i32, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid writable region of `buf.len()` bytes for the duration of
    // the call; `fd` is the transport's duplicate, kept open by the `Async` the caller
    // borrows.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Turns a socket error into the attempt's outcome: `WouldBlock`/`Interrupted` go back to
/// `read_with` (wait / retry), anything else is fatal to the transport.
fn os_failure(e: io::Error) -> io::Result<Got> {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Err(e),
        _ => Ok(Got::Fail(e.into(), "Fatal read error on socket transport")),
    }
}

fn read_once(py: Python<'_>, st: &State, fd: i32) -> io::Result<Got> {
    if !st.reader_on.get() || st.paused.get() || st.conn_lost.get() > 0 {
        return Ok(Got::Skip);
    }
    if st.buffered.get() {
        // asyncio asks for the buffer only once the socket is readable. After a read that
        // drained the socket, the next attempt comes only with a new readiness edge
        // (`read_with_drained`), so it is readable; otherwise (the first attempt, which
        // comes before any readiness was seen, or after a read that filled the buffer)
        // peek first.
        if !st.read_follows_edge.get() {
            let mut probe = [0u8; 1];
            // SAFETY: a one-byte writable buffer on the stack; `fd` as in `recv`.
            let n = unsafe { libc::recv(fd, probe.as_mut_ptr().cast(), 1, libc::MSG_PEEK) };
            if n < 0 {
                return os_failure(io::Error::last_os_error());
            }
        }
        let buf = match st
            .call_protocol(py, intern!(py, "get_buffer"), (-1,))
            .and_then(|b| {
                let pb = PyBuffer::<u8>::get(&b)?;
                if pb.readonly() || !pb.is_c_contiguous() {
                    return Err(PyErr::new::<pyo3::exceptions::PyTypeError, _>(
                        "get_buffer() must return a writable contiguous buffer",
                    ));
                }
                if pb.len_bytes() == 0 {
                    return Err(PyRuntimeError::new_err(
                        "get_buffer() returned an empty buffer",
                    ));
                }
                Ok(pb)
            }) {
            Ok(b) => b,
            Err(e) => {
                return Ok(Got::Fail(
                    e,
                    "Fatal error: protocol.get_buffer() call failed.",
                ))
            }
        };
        // SAFETY: the buffer is writable and C-contiguous (checked above) and stays
        // exported (so not resized or freed) while `buf` lives, i.e. across this call.
        let slice =
            unsafe { std::slice::from_raw_parts_mut(buf.buf_ptr().cast::<u8>(), buf.len_bytes()) };
        let len = slice.len();
        let r = recv(fd, slice);
        buf.release(py);
        return match r {
            Ok(0) => Ok(Got::Eof),
            Ok(n) => Ok(Got::Into(n, n < len)),
            Err(e) => os_failure(e),
        };
    }
    RECV_BUF.with(|b| {
        let mut b = b.borrow_mut();
        match recv(fd, &mut b) {
            Ok(0) => Ok(Got::Eof),
            Ok(n) => Ok(Got::Data(crate::transport_bytes::take(py, &b[..n]), n)),
            Err(e) => os_failure(e),
        }
    })
}

/// Hands what was read to the protocol; whether the task goes on reading.
fn deliver(
    py: Python<'_>,
    tr: &Bound<'_, SocketTransport>,
    st: &State,
    got: io::Result<Got>,
) -> bool {
    match got {
        Err(e) => {
            st.fatal_error(py, tr, e.into(), "Fatal read error on socket transport");
            false
        }
        Ok(Got::Skip) => true,
        Ok(Got::Data(b, _)) => {
            if let Err(e) = st.data_received(py, b) {
                st.callback_error(
                    py,
                    tr,
                    e,
                    "Fatal error: protocol.data_received() call failed.",
                );
            }
            true
        }
        Ok(Got::Into(n, _)) => {
            if let Err(e) = st.call_protocol(py, intern!(py, "buffer_updated"), (n,)) {
                st.callback_error(
                    py,
                    tr,
                    e,
                    "Fatal error: protocol.buffer_updated() call failed.",
                );
            }
            true
        }
        Ok(Got::Eof) => {
            on_eof(py, tr, st);
            false
        }
        Ok(Got::Fail(e, msg)) => {
            st.callback_error(py, tr, e, msg);
            false
        }
    }
}

/// asyncio's `_read_ready__on_eof`: `eof_received()`; close unless it returns true
/// (then only reading stops).
fn on_eof(py: Python<'_>, tr: &Bound<'_, SocketTransport>, st: &State) {
    match st.call_protocol(py, intern!(py, "eof_received"), ()) {
        Err(e) => st.callback_error(
            py,
            tr,
            e,
            "Fatal error: protocol.eof_received() call failed.",
        ),
        Ok(keep) => match keep.is_truthy() {
            Ok(true) => st.stop_reading(),
            Ok(false) => {
                if let Err(e) = st.close(py, tr) {
                    e.print(py);
                }
            }
            Err(e) => st.callback_error(
                py,
                tr,
                e,
                "Fatal error: protocol.eof_received() call failed.",
            ),
        },
    }
}

/// One read attempt, delivered.
struct Step {
    /// The task goes on reading.
    again: bool,
    /// The read was shorter than the buffer: the socket is empty.
    drained: bool,
    /// The read filled the buffer: more may be waiting.
    full: bool,
}

/// The reader task (see the module docs).
pub(crate) async fn read_loop(tr: Py<SocketTransport>, st: Rc<State>, io: Rc<Async<OwnedFd>>) {
    let fd = raw(&io);
    loop {
        let go = poll_fn(|cx| {
            if !st.reader_on.get() || st.conn_lost.get() > 0 {
                return Poll::Ready(false);
            }
            if st.paused.get() {
                st.read_waker.set(Some(cx.waker().clone()));
                return Poll::Pending;
            }
            Poll::Ready(true)
        })
        .await;
        if !go {
            return;
        }
        // The protocol is called inside the read attempt, under the one GIL scope. A
        // read shorter than the buffer emptied the socket: the next waits for a new edge
        // instead of learning it from an EWOULDBLOCK recv (the reactor keeps a shut-down
        // peer's EOF readable, `Async::read_with_drained`).
        let step = io
            .read_with_drained(
                |_| {
                    Python::with_gil(|py| {
                        let got = read_once(py, &st, fd)?;
                        let drained = matches!(got, Got::Data(_, n) if n < MAX_SIZE)
                            || matches!(got, Got::Into(_, true));
                        st.read_follows_edge.set(drained);
                        let step = Step {
                            drained,
                            full: matches!(got, Got::Data(_, n) if n == MAX_SIZE),
                            again: true,
                        };
                        let again = deliver(py, tr.bind(py), &st, Ok(got));
                        Ok(Step { again, ..step })
                    })
                },
                |step| step.drained,
            )
            .await;
        let (again, full) = match step {
            Ok(step) => (step.again, step.full),
            // The wait itself failed (the poller refused the descriptor).
            Err(e) => (
                Python::with_gil(|py| deliver(py, tr.bind(py), &st, Err(e))),
                false,
            ),
        };
        if !again {
            return;
        }
        if full {
            // More may be waiting: let the rest of the iteration run first, as asyncio's
            // one read per readiness would.
            aioloop::yield_now().await;
        }
    }
}
