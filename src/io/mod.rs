//! Low-level I/O on the loops' pollers: [`Async`], any non-blocking descriptor whose
//! readiness a task can wait for.
//!
//! The descriptor registers lazily, on the poller of the loop whose thread first waits on
//! it, and stays there (the reactor's rule R7, `event_loop/reactor/mod.rs`): whichever
//! worker runs the task does the system call itself, and the home poller's harvest wakes
//! the task. As asyncio's `sock_*` functions do, every operation tries the system call
//! first and waits only on `EWOULDBLOCK`.
//!
//! ```
//! use std::io::Read;
//! use aioloop::io::Async;
//!
//! let lp = aioloop::LocalLoop::new()?;
//! let (a, b) = std::os::unix::net::UnixStream::pair()?;
//! let a = Async::new(a)?;
//! drop(b); // the peer hangs up: `a` reads EOF
//! let n = lp.run_until_complete(a.read_with(|mut s| s.read(&mut [0u8; 8])))??;
//! assert_eq!(n, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::task::{Context, Poll};

use crate::event_loop::reactor::{Direction, Registration};

#[cfg(feature = "futures-io")]
mod futures_io;
mod loop_api;
pub(crate) mod sock;
pub(crate) mod watch;

/// A non-blocking file descriptor (socket, pipe, eventfd, tty…) that tasks can wait on:
/// smol's `Async`, on aioloop's per-loop pollers.
///
/// [`new`](Async::new) puts the descriptor in non-blocking mode. The descriptor is
/// registered on a poller the first time a task waits on it, which needs a running loop on
/// that thread (a runtime worker, a `block_on` thread, or a running
/// [`LocalLoop`](crate::LocalLoop)); waiting anywhere else is an `io::Error`.
///
/// One task may wait for readability and one for writability at a time: a second waiter in
/// the same direction replaces the first, which is then not woken (split a socket into
/// halves to read and write from two tasks).
///
/// The registration never moves (rule N3): an `Async` first waited on inside one loop
/// (a `LocalLoop`, or a runtime) is woken by that loop's poller from then on, so moving it
/// to another runtime or `LocalLoop` after its first wait leaves its wake-ups to the first
/// one, which must keep running. Within one runtime, tasks move freely between workers.
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use aioloop::io::Async;
///
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let (a, b) = UnixStream::pair()?;
/// let (a, b) = (Async::new(a)?, Async::new(b)?);
/// let got = rt.block_on(async move {
///     a.write_with(|mut s| s.write(b"hi")).await?;
///     let mut buf = [0u8; 2];
///     b.read_with(|mut s| s.read(&mut buf)).await?;
///     Ok::<_, std::io::Error>(buf)
/// })?;
/// assert_eq!(&got, b"hi");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Async<T: AsFd> {
    // Declared before `io`, and dropped first in `Drop`: the descriptor leaves the poller
    // before it is closed (reactor rule R9).
    reg: Registration,
    io: Option<T>,
}

/// Puts `fd` in non-blocking mode.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: `fcntl(F_GETFL)` on a descriptor the borrow keeps open; no memory is passed.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above, `F_SETFL` with an integer argument.
        if unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether `fd` is ready in `dir` right now (`poll(2)` with a zero timeout): the level the
/// edge-triggered registration does not tell.
fn probe(fd: RawFd, dir: Direction) -> io::Result<bool> {
    let events = match dir {
        Direction::Read => libc::POLLIN,
        Direction::Write => libc::POLLOUT,
    };
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: one valid `pollfd` that outlives the call, count 1, no wait.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        if n >= 0 {
            if pfd.revents & libc::POLLNVAL != 0 {
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            return Ok(n > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl<T: AsFd> Async<T> {
    /// Wraps `io`, setting its descriptor non-blocking. Registration with a poller waits
    /// for the first wait.
    ///
    /// # Errors
    /// The OS error if the descriptor's flags cannot be read or set (e.g. it is closed).
    ///
    /// ```
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let a = aioloop::io::Async::new(a)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(io: T) -> io::Result<Async<T>> {
        set_nonblocking(io.as_fd())?;
        let fd = io.as_fd().as_raw_fd();
        Ok(Async {
            // SAFETY: `io` owns (or borrows for longer than `self`) the descriptor, and
            // `Drop` / `into_inner` drop the registration before giving up `io` (R9).
            reg: unsafe { Registration::new(fd) },
            io: Some(io),
        })
    }

    /// Wraps `io` as it is (blocking mode untouched): for watchers that only wait for
    /// readiness and never do I/O through it (`add_reader`, the `sock_*` waits).
    pub(crate) fn without_mode_change(io: T) -> Async<T> {
        let fd = io.as_fd().as_raw_fd();
        Async {
            // SAFETY: as in `new`: `io` keeps the descriptor open for as long as `self`
            // lives, and the registration is dropped first (R9).
            reg: unsafe { Registration::new(fd) },
            io: Some(io),
        }
    }

    /// The wrapped I/O object.
    ///
    /// ```
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let a = aioloop::io::Async::new(a)?;
    /// assert!(a.get_ref().peer_addr().is_ok());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn get_ref(&self) -> &T {
        match &self.io {
            Some(io) => io,
            None => unreachable!("`io` is taken only by `into_inner`, which consumes self"),
        }
    }

    /// Unregisters the descriptor and gives the I/O object back (still non-blocking).
    ///
    /// ```
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let s = aioloop::io::Async::new(a)?.into_inner();
    /// s.set_nonblocking(false)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn into_inner(mut self) -> T {
        let io = self.io.take();
        // `self` drops here: the registration leaves the poller before `io` is returned.
        drop(self);
        match io {
            Some(io) => io,
            None => unreachable!("`io` is taken only here"),
        }
    }

    /// Waits until the descriptor is readable (a peer's data, EOF, an error or an incoming
    /// connection), checked with a zero-timeout `poll(2)` after each edge the poller reports.
    ///
    /// # Errors
    /// No running loop on this thread; the poller refused the descriptor; it was closed.
    ///
    /// ```
    /// use std::io::Write;
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    /// let a = aioloop::io::Async::new(a)?;
    /// b.write_all(b"x")?;
    /// rt.block_on(a.readable())?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_readable(cx)).await
    }

    /// Waits until the descriptor is writable (see [`readable`](Async::readable)).
    ///
    /// # Errors
    /// As [`readable`](Async::readable).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let a = aioloop::io::Async::new(a)?;
    /// rt.block_on(a.writable())?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_writable(cx)).await
    }

    /// The poll form of [`readable`](Async::readable).
    ///
    /// # Errors
    /// As [`readable`](Async::readable).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let a = aioloop::io::Async::new(a)?;
    /// drop(b); // EOF is readable
    /// rt.block_on(std::future::poll_fn(|cx| a.poll_readable(cx)))?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_level(Direction::Read, cx)
    }

    /// The poll form of [`writable`](Async::writable).
    ///
    /// # Errors
    /// As [`readable`](Async::readable).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let a = aioloop::io::Async::new(a)?;
    /// rt.block_on(std::future::poll_fn(|cx| a.poll_writable(cx)))?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_level(Direction::Write, cx)
    }

    fn poll_level(&self, dir: Direction, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let fd = self.get_ref().as_fd().as_raw_fd();
        self.poll_io(dir, cx, || {
            if probe(fd, dir)? {
                Ok(())
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            }
        })
    }

    /// Runs `op` until it does not fail with `WouldBlock`, waiting for `dir` in between:
    /// the word says whether to try (rule R3), a `WouldBlock` clears what the try saw (R2).
    pub(crate) fn poll_io<R>(
        &self,
        dir: Direction,
        cx: &mut Context<'_>,
        op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io_draining(dir, cx, op, |_| false)
    }

    /// [`poll_io`](Self::poll_io) for operations that can tell they drained the socket
    /// (`drained(&result)`: a stream read shorter than its buffer, a partial write): the
    /// readiness they saw is cleared at once (rule R12: the closed bits stay), saving the
    /// `EWOULDBLOCK` system call the next operation would otherwise make to learn it.
    #[inline]
    pub(crate) fn poll_io_draining<R>(
        &self,
        dir: Direction,
        cx: &mut Context<'_>,
        mut op: impl FnMut() -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        loop {
            let ev = match self.reg.poll_ready(dir, cx) {
                Poll::Ready(Ok(ev)) => ev,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.reg.clear_readiness(ev),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(r) => {
                    if drained(&r) {
                        self.reg.clear_drained(ev);
                    }
                    return Poll::Ready(Ok(r));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Calls `op` (a non-blocking read-side operation on the inner object) until it does
    /// not fail with `WouldBlock`, waiting for readability in between: asyncio's "syscall
    /// first, wait only on `EWOULDBLOCK`".
    ///
    /// # Errors
    /// What `op` returns, or [`readable`](Async::readable)'s errors.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    /// let a = aioloop::io::Async::new(a)?;
    /// b.write_all(b"ok")?;
    /// let mut buf = [0u8; 8];
    /// let n = rt.block_on(a.read_with(|mut s| s.read(&mut buf)))?;
    /// assert_eq!(&buf[..n], b"ok");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_io(Direction::Read, cx, || op(self.get_ref()))).await
    }

    /// [`read_with`](Async::read_with) for an operation that can tell it drained the
    /// descriptor (`drained(&result)`, e.g. a stream `recv` shorter than its buffer): the
    /// readability it saw is then cleared at once, so the next read waits for a new edge
    /// instead of spending an `EWOULDBLOCK` system call to learn it. The closed bits stay
    /// (reactor rule R12): a peer's shutdown harvested with the data keeps the read side
    /// ready, so the EOF that came with it is still read. Where the poller cannot report a
    /// shutdown (the `polling` fallback), nothing is cleared early and this is `read_with`.
    ///
    /// # Errors
    /// As [`read_with`](Async::read_with).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    /// let a = aioloop::io::Async::new(a)?;
    /// b.write_all(b"ok")?;
    /// drop(b); // the data and the EOF arrive together
    /// let (n, eof) = rt.block_on(async {
    ///     let mut buf = [0u8; 8];
    ///     let n = a.read_with_drained(|mut s| s.read(&mut buf), |&n| n < 8).await?;
    ///     let eof = a.read_with_drained(|mut s| s.read(&mut buf), |&n| n < 8).await?;
    ///     Ok::<_, std::io::Error>((n, eof))
    /// })?;
    /// assert_eq!((n, eof), (2, 0));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn read_with_drained<R>(
        &self,
        mut op: impl FnMut(&T) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        let drained = |r: &R| crate::event_loop::reactor::SHORT_READ_CLEARS && drained(r);
        poll_fn(|cx| self.poll_io_draining(Direction::Read, cx, || op(self.get_ref()), drained))
            .await
    }

    /// Calls `op` (a non-blocking write-side operation) until it does not fail with
    /// `WouldBlock`, waiting for writability in between.
    ///
    /// # Errors
    /// What `op` returns, or [`writable`](Async::writable)'s errors.
    ///
    /// ```
    /// use std::io::Write;
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let a = aioloop::io::Async::new(a)?;
    /// let n = rt.block_on(a.write_with(|mut s| s.write(b"abc")))?;
    /// assert_eq!(n, 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_io(Direction::Write, cx, || op(self.get_ref()))).await
    }
}

impl<T: AsFd> AsFd for Async<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<T: AsFd> AsRawFd for Async<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_fd().as_raw_fd()
    }
}

impl<T: AsFd + std::fmt::Debug> std::fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Async").field(&self.io).finish()
    }
}
