//! [`StreamWriter`]: asyncio's writer over a stream socket, with its transport's write
//! buffer and flow control.
//!
//! `write` is synchronous, as in asyncio: it tries the system call at once (rule N1) and
//! keeps what the socket did not take in the writer's buffer. A flush task (one per
//! writer at a time, created on the current loop when the buffer turns non-empty) writes
//! the buffer out as the socket turns writable, as asyncio's transport does from its
//! writer callback — so data written without `drain` still goes out. Flow control is
//! asyncio's: above the high-water mark (64 KiB buffered) the writer is paused and `drain`
//! waits until the buffer is back at the low-water mark (16 KiB) (rule N10).

use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::{Connection, HIGH_WATER, LOW_WATER};
use crate::event_loop::context;
use crate::net::SockAddr;
use crate::shim::Mutex;

/// asyncio's `StreamWriter`. Every method takes `&self`, so a writer can be shared
/// (`Arc`) between tasks.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
///     let (_ra, w) = aioloop::net::streams::from_stream(a, 64 * 1024);
///     let (r, _wb) = aioloop::net::streams::from_stream(b, 64 * 1024);
///     w.write(b"hello ")?;
///     w.writelines([&b"wor"[..], b"ld\n"])?;
///     w.drain().await?;
///     assert_eq!(r.readline().await?, b"hello world\n");
///     w.close();
///     w.wait_closed().await?;
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct StreamWriter {
    shared: Arc<Shared>,
}

struct Shared {
    conn: Arc<Connection>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// What the socket has not taken yet: `buf[head..]`.
    buf: Vec<u8>,
    head: usize,
    /// `write_eof` was called: shut down for writing once the buffer is out.
    eof: bool,
    /// `close` was called: shut down both ways once the buffer is out.
    closing: bool,
    /// The socket is shut down both ways (or failed): the connection is lost.
    lost: bool,
    /// The write error the connection was lost with.
    error: Option<(io::ErrorKind, String)>,
    /// Above the high-water mark, until back at the low-water mark.
    paused: bool,
    /// A flush task is running.
    flushing: bool,
    drain_waiters: Vec<Waker>,
    closed_waiters: Vec<Waker>,
}

impl State {
    fn pending(&self) -> usize {
        self.buf.len() - self.head
    }

    fn raise(&self) -> Option<io::Error> {
        self.error
            .as_ref()
            .map(|(kind, msg)| io::Error::new(*kind, msg.clone()))
    }
}

fn push_waker(list: &mut Vec<Waker>, cx: &Context<'_>) {
    if !list.iter().any(|w| w.will_wake(cx.waker())) {
        list.push(cx.waker().clone());
    }
}

fn wake_all(list: &mut Vec<Waker>) {
    for w in list.drain(..) {
        w.wake();
    }
}

impl StreamWriter {
    pub(super) fn new(conn: Arc<Connection>) -> StreamWriter {
        StreamWriter {
            shared: Arc::new(Shared {
                conn,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Writes `data`: what the socket takes now is sent at once, the rest is buffered and
    /// sent by the writer's flush task (asyncio's `write`). Call [`drain`](Self::drain)
    /// to wait when the buffer is above the high-water mark. Data written after
    /// [`close`](Self::close) or after the connection was lost is dropped, as asyncio's
    /// transport drops it (`drain` then fails with the reason).
    ///
    /// # Errors
    /// asyncio's `RuntimeError` (kind `Other`) after [`write_eof`](Self::write_eof).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
    ///     let (_ra, w) = aioloop::net::streams::from_stream(a, 64 * 1024);
    ///     w.write(b"x")?;
    ///     w.write_eof()?;
    ///     assert!(w.write(b"y").is_err());
    ///     let mut buf = [0u8; 2];
    ///     assert_eq!(b.read(&mut buf).await?, 1);
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write(&self, data: &[u8]) -> io::Result<()> {
        let mut st = self.shared.state.lock();
        if st.eof {
            return Err(io::Error::other("Cannot call write() after write_eof()"));
        }
        if st.closing || st.lost || data.is_empty() {
            return Ok(());
        }
        let mut data = data;
        // Syscall first (on a loop's thread: elsewhere the socket could not register its
        // wait, and the flush task or `drain` sends the data instead); a would-block
        // leaves the readiness word as it must be.
        if st.pending() == 0 && context::current_owner().is_some() {
            let mut cx = Context::from_waker(Waker::noop());
            match self.shared.conn.sock.poll_write_io(&mut cx, data) {
                Poll::Ready(Ok(n)) => data = &data[n..],
                Poll::Ready(Err(e)) => {
                    self.shared.lose(&mut st, Some(e));
                    return Ok(());
                }
                Poll::Pending => {}
            }
            if data.is_empty() {
                return Ok(());
            }
            st.buf.clear();
            st.head = 0;
        }
        st.buf.extend_from_slice(data);
        if st.pending() > HIGH_WATER {
            st.paused = true;
        }
        self.shared.start_flush(&mut st);
        Ok(())
    }

    /// Writes each buffer in turn (asyncio's `writelines`).
    ///
    /// # Errors
    /// As [`write`](Self::write).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
    ///     let (_ra, w) = aioloop::net::streams::from_stream(a, 64 * 1024);
    ///     w.writelines([b"a".as_slice(), b"b".as_slice()])?;
    ///     let mut buf = [0u8; 2];
    ///     b.read_exact(&mut buf).await?;
    ///     assert_eq!(&buf, b"ab");
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn writelines<'a>(&self, lines: impl IntoIterator<Item = &'a [u8]>) -> io::Result<()> {
        for line in lines {
            self.write(line)?;
        }
        Ok(())
    }

    /// Waits until the write buffer is back at the low-water mark if it went above the
    /// high-water mark; at once otherwise (asyncio's `drain`).
    ///
    /// # Errors
    /// The write error the connection was lost with; `ConnectionReset` ("Connection
    /// lost") once it is closed.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(2).build()?;
    /// rt.block_on(async {
    ///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
    ///     let (_ra, w) = aioloop::net::streams::from_stream(a, 64 * 1024);
    ///     let (r, _wb) = aioloop::net::streams::from_stream(b, 64 * 1024);
    ///     let reader = aioloop::create_task(async move { r.read(-1).await.map(|v| v.len()) });
    ///     w.write(&vec![7u8; 1 << 20])?; // far above the high-water mark
    ///     w.drain().await?; // waits for the reader
    ///     w.close();
    ///     w.wait_closed().await?;
    ///     assert_eq!(reader.await.unwrap()?, 1 << 20);
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn drain(&self) -> io::Result<()> {
        poll_fn(|cx| {
            let mut st = self.shared.state.lock();
            if let Some(e) = st.raise() {
                return Poll::Ready(Err(e));
            }
            if st.lost {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "Connection lost",
                )));
            }
            if !st.paused {
                return Poll::Ready(Ok(()));
            }
            if !st.flushing {
                // No loop could take a flush task: flush from here.
                return self.shared.poll_flush(&mut st, cx).map(|()| Ok(()));
            }
            push_waker(&mut st.drain_waiters, cx);
            Poll::Pending
        })
        .await
    }

    /// Shuts the socket down for writing once the buffer is out: the peer reads EOF,
    /// reading goes on (asyncio's `write_eof`). A second call does nothing.
    ///
    /// # Errors
    /// The OS error of the shutdown, if it happens at once.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
    ///     let (_ra, w) = aioloop::net::streams::from_stream(a, 64 * 1024);
    ///     let (r, _wb) = aioloop::net::streams::from_stream(b, 64 * 1024);
    ///     assert!(w.can_write_eof());
    ///     w.write(b"last")?;
    ///     w.write_eof()?;
    ///     assert_eq!(r.read(-1).await?, b"last");
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_eof(&self) -> io::Result<()> {
        let mut st = self.shared.state.lock();
        if st.eof || st.closing || st.lost {
            return Ok(());
        }
        st.eof = true;
        if st.pending() == 0 {
            return self.shared.conn.sock.shutdown_io(Shutdown::Write);
        }
        Ok(())
    }

    /// Whether [`write_eof`](Self::write_eof) is supported: always, for stream sockets.
    ///
    /// ```
    /// let (a, _b) = aioloop::net::unix::UnixStream::pair()?;
    /// let (_r, w) = aioloop::net::streams::from_stream(a, 1024);
    /// assert!(w.can_write_eof());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn can_write_eof(&self) -> bool {
        true
    }

    /// Closes the connection once the buffer is out (asyncio's `close`): the socket is
    /// shut down both ways, so the peer reads EOF and this side's reader does too. Await
    /// [`wait_closed`](Self::wait_closed) for the end. The descriptor itself closes when
    /// the reader and the writer are both dropped.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
    ///     let (_ra, w) = aioloop::net::streams::from_stream(a, 64 * 1024);
    ///     w.close();
    ///     assert!(w.is_closing());
    ///     w.wait_closed().await?;
    ///     assert_eq!(b.read(&mut [0u8; 1]).await?, 0);
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(&self) {
        let mut st = self.shared.state.lock();
        if st.closing {
            return;
        }
        st.closing = true;
        if st.pending() == 0 {
            self.shared.lose(&mut st, None);
        } else {
            self.shared.start_flush(&mut st);
        }
    }

    /// Whether [`close`](Self::close) was called or the connection was lost (asyncio's
    /// `is_closing`).
    ///
    /// ```
    /// let (a, _b) = aioloop::net::unix::UnixStream::pair()?;
    /// let (_r, w) = aioloop::net::streams::from_stream(a, 1024);
    /// assert!(!w.is_closing());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_closing(&self) -> bool {
        let st = self.shared.state.lock();
        st.closing || st.lost
    }

    /// Waits until the connection is closed: the buffer written out and the socket shut
    /// down, or the connection lost (asyncio's `wait_closed`).
    ///
    /// # Errors
    /// The write error the connection was lost with.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let (a, _b) = aioloop::net::unix::UnixStream::pair()?;
    ///     let (_r, w) = aioloop::net::streams::from_stream(a, 1024);
    ///     w.write(b"bye")?;
    ///     w.close();
    ///     w.wait_closed().await
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn wait_closed(&self) -> io::Result<()> {
        poll_fn(|cx| {
            let mut st = self.shared.state.lock();
            if st.lost {
                return Poll::Ready(st.raise().map_or(Ok(()), Err));
            }
            if st.closing && !st.flushing {
                return self.shared.poll_flush(&mut st, cx).map(|()| Ok(()));
            }
            push_waker(&mut st.closed_waiters, cx);
            Poll::Pending
        })
        .await
    }

    /// How many bytes wait in the write buffer (asyncio's
    /// `transport.get_write_buffer_size()`).
    ///
    /// ```
    /// let (a, _b) = aioloop::net::unix::UnixStream::pair()?;
    /// let (_r, w) = aioloop::net::streams::from_stream(a, 1024);
    /// assert_eq!(w.write_buffer_size(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_buffer_size(&self) -> usize {
        self.shared.state.lock().pending()
    }

    /// The peer's address (asyncio's `get_extra_info('peername')`).
    ///
    /// # Errors
    /// The OS error (`NotConnected` once the peer is gone).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let l = aioloop::net::TcpListener::bind("127.0.0.1:0").await?;
    ///     let port = l.local_addr()?.port();
    ///     let (_r, w) = aioloop::net::streams::open_connection("127.0.0.1", port).await?;
    ///     assert_eq!(w.peername()?.as_socket().unwrap().port(), port);
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peername(&self) -> io::Result<SockAddr> {
        socket2::SockRef::from(&self.shared.conn.sock).peer_addr()
    }

    /// The local address (asyncio's `get_extra_info('sockname')`).
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let (a, _b) = aioloop::net::unix::UnixStream::pair()?;
    /// let (_r, w) = aioloop::net::streams::from_stream(a, 1024);
    /// assert!(w.sockname()?.is_unix());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn sockname(&self) -> io::Result<SockAddr> {
        socket2::SockRef::from(&self.shared.conn.sock).local_addr()
    }
}

impl Shared {
    /// The connection is lost: with `error` (a failed write), or closed (`None`).
    fn lose(&self, st: &mut State, error: Option<io::Error>) {
        if let Some(e) = &error {
            st.error = Some((e.kind(), e.to_string()));
        }
        st.lost = true;
        st.paused = false;
        st.buf = Vec::new();
        st.head = 0;
        // ENOTCONN once the peer is gone: nothing left to tell it.
        let _ = self.conn.sock.shutdown_io(Shutdown::Both);
        wake_all(&mut st.drain_waiters);
        wake_all(&mut st.closed_waiters);
    }

    /// Starts the flush task if none runs. Without a loop on this thread, `drain` and
    /// `wait_closed` flush instead.
    fn start_flush(self: &Arc<Self>, st: &mut State) {
        if st.flushing {
            return;
        }
        let shared = self.clone();
        let flush = async move {
            poll_fn(|cx| {
                let mut st = shared.state.lock();
                let done = shared.poll_flush(&mut st, cx);
                if done.is_ready() {
                    st.flushing = false;
                }
                done
            })
            .await
        };
        st.flushing = crate::task::Builder::new()
            .name("aioloop-stream-flush")
            .try_spawn(flush)
            .is_ok();
    }

    /// Writes the buffer out as the socket takes it; then carries out a pending
    /// `write_eof` or `close`. Ready when the buffer is empty or the connection lost.
    fn poll_flush(&self, st: &mut State, cx: &mut Context<'_>) -> Poll<()> {
        while st.pending() > 0 && !st.lost {
            let head = st.head;
            match self.conn.sock.poll_write_io(cx, &st.buf[head..]) {
                Poll::Ready(Ok(0)) => {
                    self.lose(st, Some(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    st.head += n;
                    if st.paused && st.pending() <= LOW_WATER {
                        st.paused = false;
                        wake_all(&mut st.drain_waiters);
                    }
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => self.lose(st, Some(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        st.buf.clear();
        st.head = 0;
        if st.paused {
            st.paused = false;
            wake_all(&mut st.drain_waiters);
        }
        if st.lost {
            return Poll::Ready(());
        }
        if st.closing {
            self.lose(st, None);
        } else if st.eof {
            if let Err(e) = self.conn.sock.shutdown_io(Shutdown::Write) {
                self.lose(st, Some(e));
            }
        }
        Poll::Ready(())
    }
}

impl std::fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared.state.lock();
        f.debug_struct("StreamWriter")
            .field("buffered", &st.pending())
            .field("closing", &st.closing)
            .field("lost", &st.lost)
            .finish()
    }
}
