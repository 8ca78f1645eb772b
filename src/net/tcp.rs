//! TCP: [`TcpListener`] and [`TcpStream`].

use std::fmt;
use std::io;
use std::net::{self, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::stream::stream_api;
use super::{connect, each_addr, ToSocketAddrs, BACKLOG};
use crate::io::Async;

/// A TCP listening socket (asyncio's server socket; `start_server`'s accept side).
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let l = aioloop::net::TcpListener::bind("127.0.0.1:0").await?;
///     let c = aioloop::net::TcpStream::connect(l.local_addr()?).await?;
///     let (s, peer) = l.accept().await?;
///     assert_eq!(peer, c.local_addr()?);
///     assert_eq!(s.peer_addr()?, c.local_addr()?);
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpListener {
    io: Async<net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (`SO_REUSEADDR` set, as asyncio's `create_server` does on Unix) and
    /// listens. Host names are resolved on the loop's blocking pool (see
    /// [`net`](crate::net)).
    ///
    /// # Errors
    /// The OS error (`AddrInUse`, `AddrNotAvailable`, …) of the last address tried.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let l = rt.block_on(aioloop::net::TcpListener::bind("127.0.0.1:0"))?;
    /// assert_ne!(l.local_addr()?.port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(addr, |a| async move {
            let socket = Socket::new(Domain::for_address(a), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            socket.bind(&SockAddr::from(a))?;
            socket.listen(BACKLOG)?;
            TcpListener::from_std(socket.into())
        })
        .await
    }

    /// Wraps a listening socket from the standard library (made non-blocking).
    ///
    /// # Errors
    /// The OS error if its flags cannot be set.
    ///
    /// ```
    /// let std_l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let l = aioloop::net::TcpListener::from_std(std_l)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(listener: net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            io: Async::new(listener)?,
        })
    }

    /// Accepts a connection (asyncio's `sock_accept`): the syscall first, a wait for
    /// readability only if none is pending (rule N1).
    ///
    /// # Errors
    /// The OS error (`EMFILE` when out of descriptors: the listener keeps working once
    /// some are freed).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let l = aioloop::net::TcpListener::bind("127.0.0.1:0").await?;
    ///     let _c = std::net::TcpStream::connect(l.local_addr()?)?;
    ///     let (_s, _peer) = l.accept().await?;
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, addr) = self.io.read_with(|l| l.accept()).await?;
        Ok((TcpStream::from_std(s)?, addr))
    }

    /// [`accept`](Self::accept) as a server's accept loop does it (asyncio's): out of
    /// descriptors (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`), the error is reported to the
    /// loop's exception handler ("socket.accept() out of system resource") and the accept
    /// retried after [`ACCEPT_RETRY_DELAY`](crate::net::ACCEPT_RETRY_DELAY), so the
    /// server keeps serving once descriptors are freed; an aborted connection is skipped.
    ///
    /// # Errors
    /// Any other OS error; a resource error when no loop runs on this thread.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let l = aioloop::net::TcpListener::bind("127.0.0.1:0").await?;
    ///     let _c = std::net::TcpStream::connect(l.local_addr()?)?;
    ///     let (_s, _peer) = l.accept_retrying().await?;
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn accept_retrying(&self) -> io::Result<(TcpStream, SocketAddr)> {
        super::serve::accept_retrying(|| self.accept()).await
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let l = rt.block_on(aioloop::net::TcpListener::bind("127.0.0.1:0"))?;
    /// assert!(l.local_addr()?.ip().is_loopback());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Sets `IP_TTL` for accepted connections' packets.
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let l = rt.block_on(aioloop::net::TcpListener::bind("127.0.0.1:0"))?;
    /// l.set_ttl(42)?;
    /// assert_eq!(l.ttl()?, 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// `IP_TTL`.
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let l = rt.block_on(aioloop::net::TcpListener::bind("127.0.0.1:0"))?;
    /// assert!(l.ttl()? > 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }
}

impl std::os::fd::AsFd for TcpListener {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.as_fd()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("fd", &self.io.as_raw_fd())
            .field("local", &self.local_addr().ok())
            .finish()
    }
}

/// A TCP connection.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let l = aioloop::net::TcpListener::bind("127.0.0.1:0").await?;
///     let c = aioloop::net::TcpStream::connect(l.local_addr()?).await?;
///     c.set_nodelay(true)?;
///     let (s, _) = l.accept().await?;
///     c.write_all(b"ping").await?;
///     let mut buf = [0u8; 4];
///     s.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"ping");
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpStream {
    io: Async<net::TcpStream>,
}

stream_api!(
    TcpStream,
    "let l = aioloop::net::TcpListener::bind(\"127.0.0.1:0\").await?;\nlet a = aioloop::net::TcpStream::connect(l.local_addr()?).await?;\nlet (b, _) = l.accept().await?;"
);

impl TcpStream {
    /// Connects to `addr` without blocking the loop (asyncio's `sock_connect`): the
    /// connect starts at once and the task waits for the socket to turn writable. Each
    /// resolved address is tried in turn; host names are resolved on the loop's blocking
    /// pool (see [`net`](crate::net)).
    ///
    /// # Errors
    /// `ConnectionRefused` for a closed port (rule N6), or the last address's error.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let l = aioloop::net::TcpListener::bind("127.0.0.1:0").await?;
    ///     let c = aioloop::net::TcpStream::connect(l.local_addr()?).await?;
    ///     assert_eq!(c.peer_addr()?, l.local_addr()?);
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(addr, |a| async move {
            let socket = Socket::new(Domain::for_address(a), Type::STREAM, Some(Protocol::TCP))?;
            let socket = connect(socket, &SockAddr::from(a)).await?;
            TcpStream::from_std(socket.into())
        })
        .await
    }

    /// Wraps a connected stream from the standard library (made non-blocking).
    ///
    /// # Errors
    /// The OS error if its flags cannot be set.
    ///
    /// ```
    /// let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let s = std::net::TcpStream::connect(l.local_addr()?)?;
    /// let s = aioloop::net::TcpStream::from_std(s)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(stream: net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: Async::new(stream)?,
        })
    }

    /// The remote address.
    ///
    /// # Errors
    /// `NotConnected` once the connection is gone.
    ///
    /// ```
    /// let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let s = aioloop::net::TcpStream::from_std(std::net::TcpStream::connect(l.local_addr()?)?)?;
    /// assert_eq!(s.peer_addr()?, l.local_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let s = aioloop::net::TcpStream::from_std(std::net::TcpStream::connect(l.local_addr()?)?)?;
    /// assert!(s.local_addr()?.ip().is_loopback());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Sets `TCP_NODELAY` (Nagle's algorithm off when `true`).
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let s = aioloop::net::TcpStream::from_std(std::net::TcpStream::connect(l.local_addr()?)?)?;
    /// s.set_nodelay(true)?;
    /// assert!(s.nodelay()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(on)
    }

    /// `TCP_NODELAY`.
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let s = aioloop::net::TcpStream::from_std(std::net::TcpStream::connect(l.local_addr()?)?)?;
    /// assert!(!s.nodelay()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// Sets `IP_TTL`.
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let s = aioloop::net::TcpStream::from_std(std::net::TcpStream::connect(l.local_addr()?)?)?;
    /// s.set_ttl(9)?;
    /// assert_eq!(s.ttl()?, 9);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// `IP_TTL`.
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let s = aioloop::net::TcpStream::from_std(std::net::TcpStream::connect(l.local_addr()?)?)?;
    /// assert!(s.ttl()? > 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Sets `SO_LINGER` (`Some(0)`: closing resets the connection instead of a FIN).
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let s = aioloop::net::TcpStream::from_std(std::net::TcpStream::connect(l.local_addr()?)?)?;
    /// s.set_linger(Some(std::time::Duration::ZERO))?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_linger(&self, linger: Option<std::time::Duration>) -> io::Result<()> {
        socket2::SockRef::from(self.io.get_ref()).set_linger(linger)
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("fd", &self.io.as_raw_fd())
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}
