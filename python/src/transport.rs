//! `SocketTransport`: asyncio's `_SelectorSocketTransport` written in Rust — the transport
//! `create_connection`, `create_server`, `connect_accepted_socket` and their Unix variants
//! make on this loop (through `_make_socket_transport`), and hence what asyncio's streams
//! run over.
//!
//! The socket's I/O never goes through a Python callback: a reader task on the
//! `LocalLoop` (`transport_read`) waits for readability on the loop's poller, `recv`s and
//! calls `protocol.data_received(bytes)` (or `get_buffer`/`buffer_updated`); `write`
//! sends at once and buffers the rest for a writer task (`transport_write`) with asyncio's
//! flow control. The semantics — the order of `connection_made`/`connection_lost`, which
//! errors go to the exception handler, `eof_received` closing unless it returns true — are
//! those of CPython's `selector_events._SelectorTransport`, whose methods the comments
//! name.
//!
//! Ownership: the Python object holds the state (`Rc<State>`, only on the loop's thread,
//! checked by `ThreadBound`); a running reader or writer task holds the object (as
//! asyncio's selector holds the transport through its handle) and the state, so nothing
//! holds the object back — no cycle. Each task waits on `io`, an `Async` over a duplicate
//! of the socket's descriptor, dropped before the socket is closed.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::task::Waker;

use aioloop::io::Async;
use aioloop::Task;
use pyo3::exceptions::{
    PyKeyboardInterrupt, PyOSError, PyRuntimeError, PySystemExit, PyTypeError, PyValueError,
};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyTuple};

use crate::asyncio::{self, copy_context};
use crate::handle::run_in_context;
use crate::loop_core::{report_error, Loop};
use crate::rawmeth;
use crate::thread_bound::ThreadBound;
use crate::transport_bytes;
use crate::transport_read::read_loop;
use crate::transport_write::{send_now, write_loop, WriteBuffer};

/// asyncio's `constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES`.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

/// A transport's state, shared by the Python object and its reader/writer tasks.
pub(crate) struct State {
    pub(crate) loop_: Py<Loop>,
    pub(crate) fd: i32,
    /// What the tasks wait on; dropped (closing the duplicate) before the socket closes.
    pub(crate) io: RefCell<Option<Rc<Async<OwnedFd>>>>,
    sock: RefCell<Option<PyObject>>,
    protocol: RefCell<Option<PyObject>>,
    /// Whether `protocol` is an `asyncio.BufferedProtocol` (read with `get_buffer`).
    pub(crate) buffered: Cell<bool>,
    /// The last read drained the socket, so the next one follows a readiness edge: a
    /// buffered read then skips its `MSG_PEEK` probe (transport_read.rs).
    pub(crate) read_follows_edge: Cell<bool>,
    /// `protocol.data_received`, looked up once per protocol (as uvloop does).
    data_received: RefCell<Option<PyObject>>,
    protocol_connected: Cell<bool>,
    extra: Py<PyDict>,
    server: RefCell<Option<PyObject>>,
    /// The context protocol callbacks run in (asyncio's reader handle's context).
    context: RefCell<Option<PyObject>>,
    pub(crate) closing: Cell<bool>,
    pub(crate) paused: Cell<bool>,
    /// `write_eof()` was called.
    eof: Cell<bool>,
    pub(crate) conn_lost: Cell<u32>,
    /// The reader task runs (started, not stopped by close or EOF).
    pub(crate) reader_on: Cell<bool>,
    read_task: RefCell<Option<Task<()>>>,
    /// The paused reader's waker, woken by `resume_reading`.
    pub(crate) read_waker: Cell<Option<Waker>>,
    pub(crate) writer_on: Cell<bool>,
    write_task: RefCell<Option<Task<()>>>,
    pub(crate) wbuf: WriteBuffer,
    high: Cell<usize>,
    low: Cell<usize>,
    protocol_paused: Cell<bool>,
}

/// asyncio's socket transport (see the module docs); `aioloop._SocketTransport`
/// subclasses it in Python for the scheduling done at creation.
#[pyclass(frozen, subclass, weakref, module = "aioloop._aioloop")]
pub struct SocketTransport {
    st: ThreadBound<Rc<State>>,
}

fn is_fatal_to_loop(py: Python<'_>, e: &PyErr) -> bool {
    e.is_instance_of::<PyKeyboardInterrupt>(py) || e.is_instance_of::<PySystemExit>(py)
}

impl State {
    pub(crate) fn protocol(&self, py: Python<'_>) -> Option<PyObject> {
        self.protocol.borrow().as_ref().map(|p| p.clone_ref(py))
    }

    pub(crate) fn write_buffer_size(&self) -> usize {
        self.wbuf.len()
    }

    /// Calls `protocol.<name>(*args)` in the transport's context.
    pub(crate) fn call_protocol<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'py, pyo3::types::PyString>,
        args: impl IntoPyObject<'py, Target = PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(proto) = self.protocol(py) else {
            return Ok(py.None().into_bound(py));
        };
        let proto = proto.into_bound(py);
        let ctx = self.context.borrow().as_ref().map(|c| c.clone_ref(py));
        match ctx {
            Some(ctx) => run_in_context(py, ctx.bind(py), || proto.call_method1(name, args)),
            None => proto.call_method1(name, args),
        }
    }

    /// `protocol.data_received(data)` in the transport's context; `data` then goes back
    /// to the pool of spares (transport_bytes.rs).
    pub(crate) fn data_received(&self, py: Python<'_>, data: Py<PyBytes>) -> PyResult<()> {
        // Borrowed for the call, not cloned: a protocol callback may replace the protocol
        // (`set_protocol`) or the context, so the cells are not borrowed across it.
        let cb = self.data_received.borrow().as_ref().map(|c| c.as_ptr());
        let ctx = self.context.borrow().as_ref().map(|c| c.as_ptr());
        let r = match cb {
            None => self
                .call_protocol(py, intern!(py, "data_received"), (data.clone_ref(py),))
                .map(drop),
            Some(cb) => {
                // SAFETY: the GIL is held; `cb`/`ctx` point to objects the cells own. The
                // callback can drop the cells' references (`set_protocol`, the transport
                // closing), so both are held by a new reference across the call.
                let (cb, ctx) = unsafe {
                    (
                        Bound::from_borrowed_ptr(py, cb),
                        ctx.map(|c| Bound::from_borrowed_ptr(py, c)),
                    )
                };
                let call = || call_one(py, &cb, &data);
                match ctx {
                    Some(ctx) => run_in_context(py, &ctx, call),
                    None => call(),
                }
            }
        };
        transport_bytes::give_back(py, data);
        r
    }

    /// asyncio's `loop.call_soon(callback, *args)`.
    fn call_soon(
        &self,
        py: Python<'_>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        let args = crate::handle::Args::Tuple(args.unbind());
        Loop::call_soon_impl(self.loop_.bind(py), callback.unbind(), args, None)?;
        Ok(())
    }

    /// Starts the reader task (asyncio's `_add_reader(fd, _read_ready)` at creation).
    fn start_reading(
        &self,
        py: Python<'_>,
        tr: &Bound<'_, SocketTransport>,
        st: &Rc<State>,
    ) -> PyResult<()> {
        if self.closing.get() || self.reader_on.get() {
            return Ok(());
        }
        *self.context.borrow_mut() = Some(copy_context(py)?);
        let Some(task) = self.spawn(py, |io| read_loop(tr.clone().unbind(), st.clone(), io))?
        else {
            return Ok(());
        };
        self.reader_on.set(true);
        *self.read_task.borrow_mut() = Some(task);
        Ok(())
    }

    /// Runs `task(io)` on the loop; `None` once the transport let go of its socket.
    fn spawn<F: std::future::Future<Output = ()> + 'static>(
        &self,
        py: Python<'_>,
        task: impl FnOnce(Rc<Async<OwnedFd>>) -> F,
    ) -> PyResult<Option<Task<()>>> {
        let Some(io) = self.io.borrow().clone() else {
            return Ok(None);
        };
        let lp = self.loop_.bind(py).get().local()?;
        lp.create_task(task(io))
            .map(Some)
            .map_err(crate::loop_core::loop_err)
    }

    /// asyncio's `_remove_reader`: the reader task stops (at once if it waits).
    pub(crate) fn stop_reading(&self) {
        self.reader_on.set(false);
        if let Some(t) = self.read_task.borrow_mut().take() {
            t.cancel(None);
        }
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
    }

    /// asyncio's `_add_writer(fd, _write_ready)`: starts the writer task unless it runs.
    pub(crate) fn start_writing(
        &self,
        py: Python<'_>,
        tr: &Bound<'_, SocketTransport>,
        st: &Rc<State>,
    ) -> PyResult<()> {
        if self.writer_on.get() {
            return Ok(());
        }
        if self.context.borrow().is_none() {
            *self.context.borrow_mut() = Some(copy_context(py)?);
        }
        let Some(task) = self.spawn(py, |io| write_loop(tr.clone().unbind(), st.clone(), io))?
        else {
            return Ok(());
        };
        self.writer_on.set(true);
        *self.write_task.borrow_mut() = Some(task);
        Ok(())
    }

    /// asyncio's `_remove_writer`.
    pub(crate) fn stop_writing(&self) {
        self.writer_on.set(false);
        if let Some(t) = self.write_task.borrow_mut().take() {
            t.cancel(None);
        }
    }

    /// An error raised by a protocol callback or the socket: `KeyboardInterrupt` and
    /// `SystemExit` go out of `run_forever` (asyncio re-raises them); anything else is
    /// `_fatal_error(exc, message)`.
    pub(crate) fn callback_error(
        &self,
        py: Python<'_>,
        tr: &Bound<'_, SocketTransport>,
        e: PyErr,
        message: &str,
    ) {
        if is_fatal_to_loop(py, &e) {
            report_error(
                py,
                self.loop_.bind(py).as_any(),
                e,
                message.to_owned(),
                "transport",
                tr.as_any(),
            );
            return;
        }
        self.fatal_error(py, tr, e, message);
    }

    /// asyncio's `_fatal_error`: an `OSError` is only logged in debug mode; anything else
    /// goes to the loop's exception handler; then `_force_close(exc)`.
    pub(crate) fn fatal_error(
        &self,
        py: Python<'_>,
        tr: &Bound<'_, SocketTransport>,
        e: PyErr,
        message: &str,
    ) {
        let exc = e.into_value(py).into_any();
        let lp = self.loop_.bind(py);
        let r = (|| -> PyResult<()> {
            if exc.bind(py).is_instance_of::<PyOSError>() {
                if lp.call_method0(intern!(py, "get_debug"))?.is_truthy()? {
                    let kw = PyDict::new(py);
                    kw.set_item("exc_info", exc.bind(py))?;
                    asyncio::logger(py)?.call_method(
                        "debug",
                        ("%r: %s", tr, message),
                        Some(&kw),
                    )?;
                }
            } else {
                let ctx = PyDict::new(py);
                ctx.set_item("message", message)?;
                ctx.set_item("exception", exc.bind(py))?;
                ctx.set_item("transport", tr)?;
                ctx.set_item("protocol", self.protocol(py))?;
                lp.call_method1(intern!(py, "call_exception_handler"), (ctx,))?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            e.print(py);
        }
        if let Err(e) = self.force_close(py, tr, Some(exc)) {
            e.print(py);
        }
    }

    /// asyncio's `_force_close(exc)`: drops the buffer, stops both directions, schedules
    /// `connection_lost(exc)` (once).
    pub(crate) fn force_close(
        &self,
        py: Python<'_>,
        tr: &Bound<'_, SocketTransport>,
        exc: Option<PyObject>,
    ) -> PyResult<()> {
        if self.conn_lost.get() > 0 {
            return Ok(());
        }
        if !self.wbuf.is_empty() {
            self.wbuf.clear();
            self.stop_writing();
        }
        if !self.closing.get() {
            self.closing.set(true);
            self.stop_reading();
        }
        self.conn_lost.set(self.conn_lost.get() + 1);
        let cb = tr.getattr(intern!(py, "_call_connection_lost"))?;
        self.call_soon(
            py,
            cb,
            PyTuple::new(py, [exc.unwrap_or_else(|| py.None())])?,
        )
    }

    /// asyncio's `close()`.
    pub(crate) fn close(&self, py: Python<'_>, tr: &Bound<'_, SocketTransport>) -> PyResult<()> {
        if self.closing.get() {
            return Ok(());
        }
        self.closing.set(true);
        self.stop_reading();
        if self.wbuf.is_empty() {
            self.conn_lost.set(self.conn_lost.get() + 1);
            self.stop_writing();
            let cb = tr.getattr(intern!(py, "_call_connection_lost"))?;
            self.call_soon(py, cb, PyTuple::new(py, [py.None()])?)?;
        }
        Ok(())
    }

    /// asyncio's `_call_connection_lost(exc)`: the protocol's `connection_lost`, then the
    /// socket is closed and the server told.
    pub(crate) fn call_connection_lost(&self, py: Python<'_>, exc: PyObject) -> PyResult<()> {
        let r = if self.protocol_connected.get() {
            self.call_protocol(py, intern!(py, "connection_lost"), (exc,))
                .map(drop)
        } else {
            Ok(())
        };
        self.stop_reading();
        self.stop_writing();
        drop(self.io.borrow_mut().take());
        let sock = self.sock.borrow_mut().take();
        let closed = match sock {
            Some(s) => s.bind(py).call_method0(intern!(py, "close")).map(drop),
            None => Ok(()),
        };
        *self.protocol.borrow_mut() = None;
        *self.data_received.borrow_mut() = None;
        let server = self.server.borrow_mut().take();
        let detached = match server {
            Some(s) => s.bind(py).call_method0(intern!(py, "_detach")).map(drop),
            None => Ok(()),
        };
        r.and(closed).and(detached)
    }

    /// asyncio's `_maybe_pause_protocol`: `pause_writing()` once the buffer passes the
    /// high-water mark.
    pub(crate) fn maybe_pause_protocol(
        &self,
        py: Python<'_>,
        tr: &Bound<'_, SocketTransport>,
    ) -> PyResult<()> {
        if self.write_buffer_size() <= self.high.get() || self.protocol_paused.get() {
            return Ok(());
        }
        self.protocol_paused.set(true);
        self.flow_call(py, tr, "pause_writing")
    }

    /// asyncio's `_maybe_resume_protocol`: `resume_writing()` once the buffer drains to the
    /// low-water mark.
    pub(crate) fn maybe_resume_protocol(
        &self,
        py: Python<'_>,
        tr: &Bound<'_, SocketTransport>,
    ) -> PyResult<()> {
        if !self.protocol_paused.get() || self.write_buffer_size() > self.low.get() {
            return Ok(());
        }
        self.protocol_paused.set(false);
        self.flow_call(py, tr, "resume_writing")
    }

    fn flow_call(
        &self,
        py: Python<'_>,
        tr: &Bound<'_, SocketTransport>,
        name: &str,
    ) -> PyResult<()> {
        let name_s = pyo3::types::PyString::new(py, name);
        match self.call_protocol(py, &name_s, ()) {
            Ok(_) => Ok(()),
            Err(e) if is_fatal_to_loop(py, &e) => Err(e),
            Err(e) => {
                let ctx = PyDict::new(py);
                ctx.set_item("message", format!("protocol.{name}() failed"))?;
                ctx.set_item("exception", e.into_value(py))?;
                ctx.set_item("transport", tr)?;
                ctx.set_item("protocol", self.protocol(py))?;
                self.loop_
                    .bind(py)
                    .call_method1(intern!(py, "call_exception_handler"), (ctx,))?;
                Ok(())
            }
        }
    }

    /// After the buffer drained: the deferred close or `write_eof`.
    pub(crate) fn drained(&self, py: Python<'_>) -> PyResult<()> {
        if self.closing.get() {
            self.call_connection_lost(py, py.None())
        } else if self.eof.get() {
            self.shutdown_write(py)
        } else {
            Ok(())
        }
    }

    fn shutdown_write(&self, py: Python<'_>) -> PyResult<()> {
        match self.sock.borrow().as_ref() {
            Some(s) => s
                .bind(py)
                .call_method1(intern!(py, "shutdown"), (libc::SHUT_WR,))
                .map(drop),
            None => Ok(()),
        }
    }

    fn set_limits(&self, high: Option<usize>, low: Option<usize>) -> PyResult<()> {
        // transports._FlowControlMixin._set_write_buffer_limits
        let high = match (high, low) {
            (Some(h), _) => h,
            (None, None) => 64 * 1024,
            (None, Some(l)) => 4 * l,
        };
        let low = low.unwrap_or(high / 4);
        if high < low {
            return Err(PyValueError::new_err(format!(
                "high ({high}) must be >= low ({low}) must be >= 0"
            )));
        }
        self.high.set(high);
        self.low.set(low);
        Ok(())
    }
}

/// A water mark argument: `None`, or an int that must not be negative.
fn water_mark(v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    match v {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => {
            let n: i64 = v.extract()?;
            usize::try_from(n)
                .map(Some)
                .map_err(|_| PyValueError::new_err(format!("high and low must be >= 0, got {n}")))
        }
    }
}

impl SocketTransport {
    fn state(&self) -> PyResult<&Rc<State>> {
        self.st.get()
    }

    /// asyncio's `transport.write(data)` (a C method: `RAW_METHODS`).
    fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let st = slf.get().state()?;
        if let Ok(b) = data.downcast::<PyBytes>() {
            return write_bytes(py, slf, st, b.as_bytes());
        }
        if data.is_instance_of::<PyByteArray>()
            || data.is_instance_of::<pyo3::types::PyMemoryView>()
        {
            let buf = pyo3::buffer::PyBuffer::<u8>::get(data).or_else(|_| {
                // a memoryview of another format: its bytes
                let b = data.call_method1("cast", ("B",))?;
                pyo3::buffer::PyBuffer::<u8>::get(&b)
            })?;
            let v = buf.to_vec(py)?;
            return write_bytes(py, slf, st, &v);
        }
        Err(PyTypeError::new_err(format!(
            "data argument must be a bytes-like object, not {:?}",
            data.get_type().name()?.to_string()
        )))
    }

    /// asyncio's `transport.is_closing()` (a C method: `RAW_METHODS`).
    fn is_closing(&self) -> PyResult<bool> {
        Ok(self.state()?.closing.get())
    }
}

// `write` and `is_closing`, called on every message of a stream, as C methods of the
// class (rawmeth.rs), installed at module initialisation.
rawmeth::raw_methods!(pub(crate) static RAW_METHODS on SocketTransport = [
    one_arg c"write" (c"write(data): send data, buffering what the socket does not take at once")
        |tr, data| {
            let data = data.ok_or_else(|| PyTypeError::new_err("write() needs data"))?;
            SocketTransport::write(tr, data)?;
            Ok(tr.py().None())
        };
    noargs c"is_closing" (c"is_closing(): whether the transport is closing or closed")
        |tr, _| {
            let closing = tr.get().is_closing()?;
            Ok(pyo3::types::PyBool::new(tr.py(), closing).to_owned().into_any().unbind())
        };
]);

#[pymethods]
impl SocketTransport {
    #[new]
    #[pyo3(signature = (loop_, sock, protocol, waiter = None, extra = None, server = None))]
    fn py_new(
        py: Python<'_>,
        loop_: &Bound<'_, PyAny>,
        sock: &Bound<'_, PyAny>,
        protocol: &Bound<'_, PyAny>,
        waiter: Option<&Bound<'_, PyAny>>,
        extra: Option<&Bound<'_, PyAny>>,
        server: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let _ = waiter; // the Python subclass schedules it
        let lp = loop_.downcast::<Loop>()?.clone().unbind();
        let d = PyDict::new(py);
        if let Some(e) = extra.filter(|e| !e.is_none()) {
            d.update(e.downcast()?)?;
        }
        let trsock = py.import("asyncio.trsock")?.getattr("TransportSocket")?;
        d.set_item("socket", trsock.call1((sock,))?)?;
        match sock.call_method0("getsockname") {
            Ok(n) => d.set_item("sockname", n)?,
            Err(e) if e.is_instance_of::<PyOSError>(py) => d.set_item("sockname", py.None())?,
            Err(e) => return Err(e),
        }
        if !d.contains("peername")? {
            match sock.call_method0("getpeername") {
                Ok(n) => d.set_item("peername", n)?,
                Err(e) if e.is_instance_of::<PyOSError>(py) => d.set_item("peername", py.None())?,
                Err(e) => return Err(e),
            }
        }
        let fd: i32 = sock.call_method0("fileno")?.extract()?;
        // SAFETY: `fd` is the socket object's descriptor, open for this call (the caller
        // holds `sock`); only duplicated here, the transport waits on its own copy.
        let dup = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?;
        let io = Async::new(dup)?;
        py.import("asyncio.base_events")?
            .getattr("_set_nodelay")?
            .call1((sock,))?;
        let st = State {
            loop_: lp,
            fd,
            io: RefCell::new(Some(Rc::new(io))),
            sock: RefCell::new(Some(sock.clone().unbind())),
            protocol: RefCell::new(None),
            buffered: Cell::new(false),
            read_follows_edge: Cell::new(false),
            data_received: RefCell::new(None),
            protocol_connected: Cell::new(false),
            extra: d.unbind(),
            server: RefCell::new(server.filter(|s| !s.is_none()).map(|s| s.clone().unbind())),
            context: RefCell::new(None),
            closing: Cell::new(false),
            paused: Cell::new(false),
            eof: Cell::new(false),
            conn_lost: Cell::new(0),
            reader_on: Cell::new(false),
            read_task: RefCell::new(None),
            read_waker: Cell::new(None),
            writer_on: Cell::new(false),
            write_task: RefCell::new(None),
            wbuf: WriteBuffer::default(),
            high: Cell::new(64 * 1024),
            low: Cell::new(16 * 1024),
            protocol_paused: Cell::new(false),
        };
        set_protocol_impl(py, &st, protocol)?;
        if let Some(s) = server.filter(|s| !s.is_none()) {
            s.call_method0("_attach")?;
        }
        Ok(SocketTransport {
            st: ThreadBound::new(Rc::new(st)),
        })
    }

    /// Starts reading (scheduled by the constructor after `connection_made`).
    fn _start_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let st = slf.get().state()?;
        st.start_reading(slf.py(), slf, st)
    }

    fn writelines(slf: &Bound<'_, Self>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        let joined = PyBytes::new(slf.py(), b"").call_method1("join", (list_of_data,))?;
        SocketTransport::write(slf, &joined)
    }

    fn write_eof(&self, py: Python<'_>) -> PyResult<()> {
        let st = self.state()?;
        if st.closing.get() || st.eof.get() {
            return Ok(());
        }
        st.eof.set(true);
        if st.wbuf.is_empty() {
            st.shutdown_write(py)?;
        }
        Ok(())
    }

    fn can_write_eof(&self) -> bool {
        true
    }

    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let st = slf.get().state()?;
        st.close(slf.py(), slf)
    }

    fn abort(slf: &Bound<'_, Self>) -> PyResult<()> {
        let st = slf.get().state()?;
        st.force_close(slf.py(), slf, None)
    }

    fn _force_close(slf: &Bound<'_, Self>, exc: PyObject) -> PyResult<()> {
        let st = slf.get().state()?;
        let exc = if exc.is_none(slf.py()) {
            None
        } else {
            Some(exc)
        };
        st.force_close(slf.py(), slf, exc)
    }

    #[pyo3(signature = (exc, message = "Fatal error on transport"))]
    fn _fatal_error(slf: &Bound<'_, Self>, exc: &Bound<'_, PyAny>, message: &str) -> PyResult<()> {
        let st = slf.get().state()?;
        st.fatal_error(slf.py(), slf, PyErr::from_value(exc.clone()), message);
        Ok(())
    }

    fn _call_connection_lost(&self, py: Python<'_>, exc: PyObject) -> PyResult<()> {
        self.state()?.call_connection_lost(py, exc)
    }

    fn is_reading(&self) -> PyResult<bool> {
        let st = self.state()?;
        Ok(!st.closing.get() && !st.paused.get())
    }

    fn pause_reading(&self) -> PyResult<()> {
        let st = self.state()?;
        if st.closing.get() || st.paused.get() {
            return Ok(());
        }
        st.paused.set(true);
        Ok(())
    }

    fn resume_reading(&self) -> PyResult<()> {
        let st = self.state()?;
        if st.closing.get() || !st.paused.get() {
            return Ok(());
        }
        st.paused.set(false);
        if let Some(w) = st.read_waker.take() {
            w.wake();
        }
        Ok(())
    }

    #[pyo3(signature = (high = None, low = None))]
    fn set_write_buffer_limits(
        slf: &Bound<'_, Self>,
        high: Option<&Bound<'_, PyAny>>,
        low: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let st = slf.get().state()?;
        st.set_limits(water_mark(high)?, water_mark(low)?)?;
        st.maybe_pause_protocol(slf.py(), slf)
    }

    fn get_write_buffer_limits(&self) -> PyResult<(usize, usize)> {
        let st = self.state()?;
        Ok((st.low.get(), st.high.get()))
    }

    fn get_write_buffer_size(&self) -> PyResult<usize> {
        Ok(self.state()?.write_buffer_size())
    }

    fn set_protocol(&self, py: Python<'_>, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        set_protocol_impl(py, self.state()?, protocol)
    }

    fn get_protocol(&self, py: Python<'_>) -> PyResult<PyObject> {
        Ok(self.state()?.protocol(py).unwrap_or_else(|| py.None()))
    }

    #[pyo3(signature = (name, default = None))]
    fn get_extra_info(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        default: Option<PyObject>,
    ) -> PyResult<PyObject> {
        let st = self.state()?;
        Ok(match st.extra.bind(py).get_item(name)? {
            Some(v) => v.unbind(),
            None => default.unwrap_or_else(|| py.None()),
        })
    }

    // -- attributes asyncio's own code reads (base_events' sendfile fallback, sslproto) --
    #[getter]
    fn _loop(&self, py: Python<'_>) -> PyResult<PyObject> {
        let st = self.state()?;
        Ok(if st.sock.borrow().is_some() {
            st.loop_.clone_ref(py).into_any()
        } else {
            py.None()
        })
    }

    #[getter]
    fn _sock(&self, py: Python<'_>) -> PyResult<PyObject> {
        Ok(self
            .state()?
            .sock
            .borrow()
            .as_ref()
            .map_or_else(|| py.None(), |s| s.clone_ref(py)))
    }

    #[getter]
    fn _sock_fd(&self) -> PyResult<i32> {
        Ok(self.state()?.fd)
    }

    #[getter]
    fn _protocol(&self, py: Python<'_>) -> PyResult<PyObject> {
        self.get_protocol(py)
    }

    #[getter]
    fn _protocol_paused(&self) -> PyResult<bool> {
        Ok(self.state()?.protocol_paused.get())
    }

    #[getter]
    fn _closing(&self) -> PyResult<bool> {
        self.is_closing()
    }

    #[getter]
    fn _conn_lost(&self) -> PyResult<u32> {
        Ok(self.state()?.conn_lost.get())
    }

    #[getter]
    fn _paused(&self) -> PyResult<bool> {
        Ok(self.state()?.paused.get())
    }

    #[getter]
    fn _eof(&self) -> PyResult<bool> {
        Ok(self.state()?.eof.get())
    }

    #[getter]
    fn _extra(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        Ok(self.state()?.extra.clone_ref(py))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let st = slf.get().state()?;
        let name = slf.get_type().name()?.to_string();
        let mut info = vec![name];
        if st.sock.borrow().is_none() {
            info.push("closed".into());
        } else if st.closing.get() {
            info.push("closing".into());
        }
        info.push(format!("fd={}", st.fd));
        let lp_closed = st.loop_.bind(slf.py()).get().is_closed_now();
        if st.sock.borrow().is_some() && !lp_closed {
            let reading = st.reader_on.get() && !st.paused.get();
            info.push(format!("read={}", if reading { "polling" } else { "idle" }));
            let w = if st.writer_on.get() {
                "polling"
            } else {
                "idle"
            };
            info.push(format!("write=<{w}, bufsize={}>", st.write_buffer_size()));
        }
        Ok(format!("<{}>", info.join(" ")))
    }
}

/// `callable(arg)` through vectorcall: no argument tuple is allocated (per message, that
/// tuple was also what set the cyclic GC's young generation off most often).
fn call_one(py: Python<'_>, callable: &Bound<'_, PyAny>, arg: &Py<PyBytes>) -> PyResult<()> {
    let args = [arg.as_ptr()];
    // SAFETY: the GIL is held (`py`); `callable` and the one argument are live objects
    // borrowed for the call; `args` holds exactly the one pointer the count says, and the
    // result is a new reference (or NULL with an exception set), owned below.
    let r = unsafe {
        pyo3::ffi::PyObject_Vectorcall(callable.as_ptr(), args.as_ptr(), 1, std::ptr::null_mut())
    };
    // SAFETY: `r` is the call's new reference or NULL with the error set (checked by
    // from_owned_ptr_or_err).
    unsafe { Bound::from_owned_ptr_or_err(py, r) }.map(drop)
}

fn set_protocol_impl(py: Python<'_>, st: &State, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
    let buffered = protocol.is_instance(asyncio::buffered_protocol_class(py)?)?;
    st.buffered.set(buffered);
    *st.data_received.borrow_mut() = if buffered {
        None
    } else {
        protocol
            .getattr(intern!(py, "data_received"))
            .ok()
            .map(Bound::unbind)
    };
    *st.protocol.borrow_mut() = Some(protocol.clone().unbind());
    st.protocol_connected.set(true);
    Ok(())
}

/// asyncio's `write(data)` for the bytes of `data`.
fn write_bytes(
    py: Python<'_>,
    tr: &Bound<'_, SocketTransport>,
    st: &Rc<State>,
    data: &[u8],
) -> PyResult<()> {
    if st.eof.get() {
        return Err(PyRuntimeError::new_err(
            "Cannot call write() after write_eof()",
        ));
    }
    if data.is_empty() {
        return Ok(());
    }
    if st.conn_lost.get() > 0 {
        if st.conn_lost.get() >= LOG_THRESHOLD_FOR_CONNLOST_WRITES {
            asyncio::logger(py)?.call_method1("warning", ("socket.send() raised exception.",))?;
        }
        st.conn_lost.set(st.conn_lost.get() + 1);
        return Ok(());
    }
    let mut rest = data;
    if st.wbuf.is_empty() {
        // asyncio's optimisation: try to send now.
        match send_now(st.fd, data) {
            Ok(n) if n == data.len() => return Ok(()),
            Ok(n) => rest = &data[n..],
            Err(e) => {
                st.fatal_error(py, tr, e.into(), "Fatal write error on socket transport");
                return Ok(());
            }
        }
        st.start_writing(py, tr, st)?;
    }
    st.wbuf.extend(rest);
    st.maybe_pause_protocol(py, tr)
}

/// The state's fd as a raw descriptor for the tasks' system calls.
pub(crate) fn raw(io: &Async<OwnedFd>) -> i32 {
    io.get_ref().as_raw_fd()
}
