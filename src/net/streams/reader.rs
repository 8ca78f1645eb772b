//! [`StreamReader`]: asyncio's buffered reader over a stream socket (or over data fed to
//! it with `feed_data`).
//!
//! The buffer lives in the reader, not in the future of a read: a read fills the buffer
//! from the socket (syscall first, rule N1) and only then takes what it returns out of it.
//! A read cancelled mid-way (its future dropped) therefore loses nothing — what arrived
//! stays buffered for the next read (rule N9). The reader reads from the socket only when a
//! read needs more than is buffered, so the buffer never grows past what one read asked
//! for (`readuntil` stops at the limit): asyncio's pause at twice the limit has nothing
//! to pause.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::error::{IncompleteReadError, LimitOverrunError, ReadError};
use super::{Connection, DEFAULT_LIMIT};
use crate::shim::Mutex;

/// The least free space a fill from the socket reads into.
const MIN_READ: usize = 16 * 1024;

/// asyncio's `StreamReader`. Every method takes `&self`: a reader can be shared between
/// tasks, but only one task may wait for data at a time (a second one gets asyncio's
/// `RuntimeError`, here an `io::Error` of kind `Other`).
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let r = aioloop::net::streams::StreamReader::new();
///     r.feed_data(b"line 1\nline 2\nrest");
///     r.feed_eof();
///     assert_eq!(r.readline().await?, b"line 1\n");
///     assert_eq!(r.readexactly(4).await?, b"line");
///     assert_eq!(r.read(-1).await?, b" 2\nrest");
///     assert!(r.at_eof());
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct StreamReader {
    state: Mutex<State>,
    source: Option<Arc<Connection>>,
    limit: usize,
}

struct State {
    /// Initialised storage; the data is `buf[head..tail]`.
    buf: Vec<u8>,
    head: usize,
    tail: usize,
    eof: bool,
    /// What every read raises once set (asyncio's `set_exception`; a socket error).
    exception: Option<Stored>,
    /// The read that waits for data: its token and its waker.
    waiter: Option<(u64, Waker)>,
    next_token: u64,
}

/// An `io::Error` kept to be raised again (io::Error is not `Clone`).
#[derive(Clone)]
struct Stored {
    kind: io::ErrorKind,
    os: Option<i32>,
    message: String,
}

impl Stored {
    fn of(e: &io::Error) -> Stored {
        Stored {
            kind: e.kind(),
            os: e.raw_os_error(),
            message: e.to_string(),
        }
    }

    fn raise(&self) -> io::Error {
        match self.os {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(self.kind, self.message.clone()),
        }
    }
}

impl State {
    fn data(&self) -> &[u8] {
        &self.buf[self.head..self.tail]
    }

    fn len(&self) -> usize {
        self.tail - self.head
    }

    /// Takes the first `n` buffered bytes out.
    fn take(&mut self, n: usize) -> Vec<u8> {
        let out = self.buf[self.head..self.head + n].to_vec();
        self.consume(n);
        out
    }

    fn consume(&mut self, n: usize) {
        self.head += n;
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        }
    }

    fn extend(&mut self, data: &[u8]) {
        self.make_room(data.len());
        self.buf[self.tail..self.tail + data.len()].copy_from_slice(data);
        self.tail += data.len();
    }

    /// Makes at least `want` bytes free after `tail`, moving the data to the front
    /// before growing.
    fn make_room(&mut self, want: usize) {
        if self.buf.len() - self.tail >= want {
            return;
        }
        if self.head > 0 {
            self.buf.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
        if self.buf.len() - self.tail < want {
            let new_len = (self.tail + want).max(self.buf.len() * 2);
            self.buf.resize(new_len, 0);
        }
    }
}

/// What one step of a read decided: done, or it needs more data (never at EOF).
type Step<T> = Option<Result<T, ReadError>>;

impl StreamReader {
    /// A reader with no socket, fed with [`feed_data`](Self::feed_data) and
    /// [`feed_eof`](Self::feed_eof) (asyncio's `StreamReader()`), with the default limit
    /// of 64 KiB.
    ///
    /// ```
    /// let r = aioloop::net::streams::StreamReader::new();
    /// assert!(!r.at_eof());
    /// ```
    pub fn new() -> StreamReader {
        StreamReader::with_limit(DEFAULT_LIMIT)
    }

    /// A fed reader with the given limit (asyncio's `StreamReader(limit=...)`): the
    /// longest line or `readuntil` chunk it returns. A limit of 0 is taken as 1.
    ///
    /// ```
    /// let r = aioloop::net::streams::StreamReader::with_limit(1024);
    /// assert_eq!(r.limit(), 1024);
    /// ```
    pub fn with_limit(limit: usize) -> StreamReader {
        StreamReader::build(None, limit)
    }

    pub(super) fn build(source: Option<Arc<Connection>>, limit: usize) -> StreamReader {
        StreamReader {
            state: Mutex::new(State {
                buf: Vec::new(),
                head: 0,
                tail: 0,
                eof: false,
                exception: None,
                waiter: None,
                next_token: 0,
            }),
            source,
            limit: limit.max(1),
        }
    }

    /// The limit: the longest line or `readuntil` chunk this reader returns.
    ///
    /// ```
    /// assert_eq!(aioloop::net::streams::StreamReader::new().limit(), 64 * 1024);
    /// ```
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Appends `data` to the buffer and wakes a waiting read (asyncio's `feed_data`).
    /// Data fed after [`feed_eof`](Self::feed_eof) is ignored (asyncio asserts).
    ///
    /// ```
    /// let r = aioloop::net::streams::StreamReader::new();
    /// r.feed_data(b"abc");
    /// assert_eq!(r.buffered(), 3);
    /// ```
    pub fn feed_data(&self, data: &[u8]) {
        let mut st = self.state.lock();
        if st.eof || data.is_empty() {
            return;
        }
        st.extend(data);
        wake(&mut st);
    }

    /// Marks the end of the stream and wakes a waiting read (asyncio's `feed_eof`).
    ///
    /// ```
    /// let r = aioloop::net::streams::StreamReader::new();
    /// r.feed_eof();
    /// assert!(r.at_eof());
    /// ```
    pub fn feed_eof(&self) {
        let mut st = self.state.lock();
        st.eof = true;
        wake(&mut st);
    }

    /// Whether the stream ended and the buffer is empty (asyncio's `at_eof`).
    ///
    /// ```
    /// let r = aioloop::net::streams::StreamReader::new();
    /// r.feed_data(b"x");
    /// r.feed_eof();
    /// assert!(!r.at_eof());
    /// ```
    pub fn at_eof(&self) -> bool {
        let st = self.state.lock();
        st.eof && st.len() == 0
    }

    /// How many bytes are buffered (asyncio's `len(reader._buffer)`).
    ///
    /// ```
    /// assert_eq!(aioloop::net::streams::StreamReader::new().buffered(), 0);
    /// ```
    pub fn buffered(&self) -> usize {
        self.state.lock().len()
    }

    /// The error every read raises from now on, if one was set (asyncio's `exception`).
    ///
    /// ```
    /// let r = aioloop::net::streams::StreamReader::new();
    /// assert!(r.exception().is_none());
    /// ```
    pub fn exception(&self) -> Option<io::Error> {
        self.state.lock().exception.as_ref().map(Stored::raise)
    }

    /// Makes every read raise `e` from now on, and wakes a waiting read with it (asyncio's
    /// `set_exception`).
    ///
    /// ```
    /// let r = aioloop::net::streams::StreamReader::new();
    /// r.set_exception(std::io::ErrorKind::ConnectionReset.into());
    /// assert_eq!(r.exception().unwrap().kind(), std::io::ErrorKind::ConnectionReset);
    /// ```
    pub fn set_exception(&self, e: io::Error) {
        let mut st = self.state.lock();
        st.exception = Some(Stored::of(&e));
        wake(&mut st);
    }

    /// Reads up to `n` bytes (asyncio's `read(n)`): waits until at least one byte is
    /// buffered or the stream ends, then returns what is buffered, at most `n` bytes;
    /// empty at EOF. `n == 0` returns at once; `n < 0` reads until EOF.
    ///
    /// # Errors
    /// The socket's error; `Other` if another task is waiting on this reader.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
    ///     let (r, _wa) = aioloop::net::streams::from_stream(a, 64 * 1024);
    ///     let (_rb, w) = aioloop::net::streams::from_stream(b, 64 * 1024);
    ///     w.write(b"hello");
    ///     w.write_eof()?;
    ///     assert_eq!(r.read(2).await?, b"he");
    ///     assert_eq!(r.read(-1).await?, b"llo");
    ///     assert_eq!(r.read(10).await?, b"");
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn read(&self, n: isize) -> io::Result<Vec<u8>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if n < 0 {
            let mut out = Vec::new();
            loop {
                let block = self.read_some(self.limit, "read").await?;
                if block.is_empty() {
                    return Ok(out);
                }
                out.extend_from_slice(&block);
            }
        }
        self.read_some(n as usize, "read").await
    }

    async fn read_some(&self, n: usize, name: &'static str) -> io::Result<Vec<u8>> {
        self.run(name, |st| {
            if st.len() > 0 || st.eof {
                let k = n.min(st.len());
                Some(Ok(st.take(k)))
            } else {
                None
            }
        })
        .await
        .map_err(io::Error::from)
    }

    /// Reads exactly `n` bytes (asyncio's `readexactly`).
    ///
    /// # Errors
    /// [`ReadError::IncompleteRead`] if the stream ends first (its `partial` holds what
    /// was buffered, which is taken out); the socket's error.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let r = aioloop::net::streams::StreamReader::new();
    ///     r.feed_data(b"abcde");
    ///     r.feed_eof();
    ///     assert_eq!(r.readexactly(2).await?, b"ab");
    ///     match r.readexactly(5).await {
    ///         Err(aioloop::net::streams::ReadError::IncompleteRead(e)) => {
    ///             assert_eq!(e.partial, b"cde");
    ///             assert_eq!(e.expected, Some(5));
    ///         }
    ///         other => panic!("{other:?}"),
    ///     }
    ///     Ok::<_, aioloop::net::streams::ReadError>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn readexactly(&self, n: usize) -> Result<Vec<u8>, ReadError> {
        self.run("readexactly", |st| {
            if st.len() >= n {
                Some(Ok(st.take(n)))
            } else if st.eof {
                let partial = st.take(st.len());
                Some(Err(ReadError::IncompleteRead(IncompleteReadError {
                    partial,
                    expected: Some(n),
                })))
            } else {
                None
            }
        })
        .await
    }

    /// Reads up to and including the first `separator` (asyncio's `readuntil`).
    ///
    /// # Errors
    /// [`ReadError::LimitOverrun`] if no separator is found within the limit, or the
    /// chunk before it is longer than the limit (nothing is taken out of the buffer);
    /// [`ReadError::IncompleteRead`] at EOF without a separator (the buffer is taken into
    /// `partial`); `InvalidInput` for an empty separator; the socket's error.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let r = aioloop::net::streams::StreamReader::new();
    ///     r.feed_data(b"key: value\r\n\r\nbody");
    ///     assert_eq!(r.readuntil(b"\r\n\r\n").await?, b"key: value\r\n\r\n");
    ///     Ok::<_, aioloop::net::streams::ReadError>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn readuntil(&self, separator: &[u8]) -> Result<Vec<u8>, ReadError> {
        if separator.is_empty() {
            return Err(ReadError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Separator should be at least one-byte string",
            )));
        }
        let seplen = separator.len();
        let limit = self.limit;
        // Where the next search starts: the bytes before it were searched already.
        let mut offset = 0;
        self.run("readuntil", move |st| {
            let data = st.data();
            if offset > data.len() {
                // Another read took data meanwhile: search again from the start.
                offset = 0;
            }
            if data.len() >= seplen {
                let found = data[offset..]
                    .windows(seplen)
                    .position(|w| w == separator)
                    .map(|i| i + offset);
                match found {
                    Some(isep) if isep > limit => {
                        return Some(Err(ReadError::LimitOverrun(LimitOverrunError {
                            message: "Separator is found, but chunk is longer than limit",
                            consumed: isep,
                        })));
                    }
                    Some(isep) => return Some(Ok(st.take(isep + seplen))),
                    None => {
                        offset = data.len() + 1 - seplen;
                        if offset > limit {
                            return Some(Err(ReadError::LimitOverrun(LimitOverrunError {
                                message: "Separator is not found, and chunk exceed the limit",
                                consumed: offset,
                            })));
                        }
                    }
                }
            }
            if st.eof {
                let partial = st.take(st.len());
                return Some(Err(ReadError::IncompleteRead(IncompleteReadError {
                    partial,
                    expected: None,
                })));
            }
            None
        })
        .await
    }

    /// Reads one line, up to and including `\n` (asyncio's `readline`). At EOF without a
    /// newline it returns what is left (empty at the end).
    ///
    /// # Errors
    /// `InvalidData` (asyncio's `ValueError`) if the line is longer than the limit: the
    /// line is dropped from the buffer (up to and including its newline if it was found,
    /// else the whole buffer); the socket's error.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let r = aioloop::net::streams::StreamReader::new();
    ///     r.feed_data(b"one\ntwo");
    ///     r.feed_eof();
    ///     assert_eq!(r.readline().await?, b"one\n");
    ///     assert_eq!(r.readline().await?, b"two");
    ///     assert_eq!(r.readline().await?, b"");
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn readline(&self) -> io::Result<Vec<u8>> {
        match self.readuntil(b"\n").await {
            Ok(line) => Ok(line),
            Err(ReadError::IncompleteRead(e)) => Ok(e.partial),
            Err(ReadError::LimitOverrun(e)) => {
                let mut st = self.state.lock();
                if st
                    .data()
                    .get(e.consumed..)
                    .is_some_and(|d| d.starts_with(b"\n"))
                {
                    st.consume(e.consumed + 1);
                } else {
                    let n = st.len();
                    st.consume(n);
                }
                Err(io::Error::new(io::ErrorKind::InvalidData, e.message))
            }
            Err(ReadError::Io(e)) => Err(e),
        }
    }

    /// Runs a read: `step` decides with the buffer locked; when it needs more data, the
    /// socket is read into the buffer (or, for a fed reader, the task waits for
    /// `feed_data`). A dropped future withdraws its waiter.
    async fn run<T>(
        &self,
        name: &'static str,
        mut step: impl FnMut(&mut State) -> Step<T>,
    ) -> Result<T, ReadError> {
        let token = {
            let mut st = self.state.lock();
            st.next_token += 1;
            st.next_token
        };
        let guard = Withdraw {
            reader: self,
            token,
        };
        let out = poll_fn(|cx| self.poll_step(token, name, cx, &mut step)).await;
        drop(guard);
        out
    }

    fn poll_step<T>(
        &self,
        token: u64,
        name: &'static str,
        cx: &mut Context<'_>,
        step: &mut impl FnMut(&mut State) -> Step<T>,
    ) -> Poll<Result<T, ReadError>> {
        let mut st = self.state.lock();
        loop {
            let done = match &st.exception {
                Some(e) => Some(Err(ReadError::Io(e.raise()))),
                None => step(&mut st),
            };
            if let Some(out) = done {
                if matches!(&st.waiter, Some((t, _)) if *t == token) {
                    st.waiter = None;
                }
                return Poll::Ready(out);
            }
            if let Some((t, _)) = &st.waiter {
                if *t != token {
                    return Poll::Ready(Err(ReadError::Io(io::Error::other(format!(
                        "{name}() called while another coroutine is already waiting for incoming data"
                    )))));
                }
            }
            let Some(src) = &self.source else {
                set_waiter(&mut st, token, cx);
                return Poll::Pending;
            };
            st.make_room(MIN_READ);
            let tail = st.tail;
            match src.sock.poll_read_io(cx, &mut st.buf[tail..]) {
                Poll::Ready(Ok(0)) => st.eof = true,
                Poll::Ready(Ok(n)) => st.tail += n,
                Poll::Ready(Err(e)) => st.exception = Some(Stored::of(&e)),
                Poll::Pending => {
                    set_waiter(&mut st, token, cx);
                    return Poll::Pending;
                }
            }
        }
    }

    /// The buffered data, filling it from the socket if it is empty (the body of
    /// `AsyncBufRead::poll_fill_buf`).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut step = |st: &mut State| (st.len() > 0 || st.eof).then_some(Ok(()));
        self.poll_step(0, "poll_fill_buf", cx, &mut step)
            .map_err(io::Error::from)
    }
}

fn set_waiter(st: &mut State, token: u64, cx: &Context<'_>) {
    match &mut st.waiter {
        Some((_, w)) if w.will_wake(cx.waker()) => {}
        slot => *slot = Some((token, cx.waker().clone())),
    }
}

fn wake(st: &mut State) {
    if let Some((_, w)) = st.waiter.take() {
        w.wake();
    }
}

/// Withdraws a read's waiter when the read ends or its future is dropped.
struct Withdraw<'a> {
    reader: &'a StreamReader,
    token: u64,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        let mut st = self.reader.state.lock();
        if matches!(&st.waiter, Some((t, _)) if *t == self.token) {
            st.waiter = None;
        }
    }
}

impl Default for StreamReader {
    fn default() -> StreamReader {
        StreamReader::new()
    }
}

impl std::fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.lock();
        f.debug_struct("StreamReader")
            .field("buffered", &st.len())
            .field("eof", &st.eof)
            .field("limit", &self.limit)
            .finish()
    }
}

/// Reads from the buffer first, then from the socket (futures-io).
#[cfg(feature = "futures-io")]
impl futures_io::AsyncRead for StreamReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        std::task::ready!(self.poll_fill(cx))?;
        let st = self.state.get_mut();
        let n = out.len().min(st.len());
        out[..n].copy_from_slice(&st.data()[..n]);
        st.consume(n);
        Poll::Ready(Ok(n))
    }
}

/// The reader's own buffer is the `BufRead` buffer (futures-io).
#[cfg(feature = "futures-io")]
impl futures_io::AsyncBufRead for StreamReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_fill(cx))?;
        Poll::Ready(Ok(this.state.get_mut().data()))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let st = self.get_mut().state.get_mut();
        let amt = amt.min(st.len());
        st.consume(amt);
    }
}
