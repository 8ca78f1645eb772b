//! Unix-domain sockets: [`UnixListener`], [`UnixStream`], [`UnixDatagram`].

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::{self, SocketAddr};
use std::path::Path;

use socket2::{Domain, SockAddr, Socket, Type};

use super::datagram::datagram_api;
use super::stream::stream_api;
use super::{connect, BACKLOG};
use crate::io::Async;

/// A Unix-domain listening socket (asyncio's `start_unix_server`'s accept side).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("aioloop-doc-{}-l", std::process::id()));
/// let _ = std::fs::remove_file(&dir);
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let l = aioloop::net::unix::UnixListener::bind(&dir)?;
///     let c = aioloop::net::unix::UnixStream::connect(&dir).await?;
///     let (s, _) = l.accept().await?;
///     c.write_all(b"u").await?;
///     s.read_exact(&mut [0u8; 1]).await?;
///     Ok::<_, std::io::Error>(())
/// })?;
/// std::fs::remove_file(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixListener {
    io: Async<net::UnixListener>,
}

impl UnixListener {
    /// Binds to the filesystem path `path` and listens (never waits).
    ///
    /// # Errors
    /// The OS error (`AddrInUse` if the path exists, …).
    ///
    /// ```
    /// let p = std::env::temp_dir().join(format!("aioloop-doc-{}-b", std::process::id()));
    /// let _ = std::fs::remove_file(&p);
    /// let l = aioloop::net::unix::UnixListener::bind(&p)?;
    /// assert_eq!(l.local_addr()?.as_pathname(), Some(p.as_path()));
    /// std::fs::remove_file(&p)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.bind(&SockAddr::unix(path)?)?;
        socket.listen(BACKLOG)?;
        UnixListener::from_std(socket.into())
    }

    /// Wraps a listener from the standard library (made non-blocking).
    ///
    /// # Errors
    /// The OS error if its flags cannot be set.
    ///
    /// ```
    /// let p = std::env::temp_dir().join(format!("aioloop-doc-{}-f", std::process::id()));
    /// let _ = std::fs::remove_file(&p);
    /// let l = aioloop::net::unix::UnixListener::from_std(std::os::unix::net::UnixListener::bind(&p)?)?;
    /// std::fs::remove_file(&p)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(listener: net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
            io: Async::new(listener)?,
        })
    }

    /// Accepts a connection: syscall first, then a wait for readability (rule N1).
    ///
    /// # Errors
    /// The OS error (`EMFILE`, …).
    ///
    /// ```
    /// let p = std::env::temp_dir().join(format!("aioloop-doc-{}-a", std::process::id()));
    /// let _ = std::fs::remove_file(&p);
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let l = aioloop::net::unix::UnixListener::bind(&p)?;
    ///     let _c = std::os::unix::net::UnixStream::connect(&p)?;
    ///     let (_s, _addr) = l.accept().await?;
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// std::fs::remove_file(&p)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, addr) = self.io.read_with(|l| l.accept()).await?;
        Ok((UnixStream::from_std(s)?, addr))
    }

    /// [`accept`](Self::accept) as a server's accept loop does it: resource errors are
    /// reported to the loop's exception handler and retried (see
    /// [`TcpListener::accept_retrying`](crate::net::TcpListener::accept_retrying)).
    ///
    /// # Errors
    /// As [`TcpListener::accept_retrying`](crate::net::TcpListener::accept_retrying).
    ///
    /// ```
    /// let p = std::env::temp_dir().join(format!("aioloop-doc-{}-ar", std::process::id()));
    /// let _ = std::fs::remove_file(&p);
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let l = aioloop::net::unix::UnixListener::bind(&p)?;
    ///     let _c = std::os::unix::net::UnixStream::connect(&p)?;
    ///     let (_s, _addr) = l.accept_retrying().await?;
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// std::fs::remove_file(&p)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn accept_retrying(&self) -> io::Result<(UnixStream, SocketAddr)> {
        super::serve::accept_retrying(|| self.accept()).await
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let p = std::env::temp_dir().join(format!("aioloop-doc-{}-la", std::process::id()));
    /// let _ = std::fs::remove_file(&p);
    /// let l = aioloop::net::unix::UnixListener::bind(&p)?;
    /// assert!(l.local_addr()?.as_pathname().is_some());
    /// std::fs::remove_file(&p)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }
}

impl std::os::fd::AsFd for UnixListener {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.as_fd()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.io.as_raw_fd())
            .finish()
    }
}

/// A Unix-domain stream connection.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
///     a.write_all(b"hi").await?;
///     let mut buf = [0u8; 2];
///     b.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hi");
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixStream {
    io: Async<net::UnixStream>,
}

stream_api!(
    UnixStream,
    "let (a, b) = aioloop::net::unix::UnixStream::pair()?;"
);

impl UnixStream {
    /// Connects to the socket at `path` without blocking the loop.
    ///
    /// # Errors
    /// `NotFound` for a missing path, `ConnectionRefused` when nobody listens (rule N6).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let e = rt.block_on(aioloop::net::unix::UnixStream::connect("/nonexistent/aioloop.sock")).unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = SockAddr::unix(path)?;
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        let socket = connect(socket, &addr).await?;
        UnixStream::from_std(socket.into())
    }

    /// Two connected sockets (`socketpair`).
    ///
    /// # Errors
    /// The OS error (out of descriptors, …).
    ///
    /// ```
    /// let (a, b) = aioloop::net::unix::UnixStream::pair()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// Wraps a connected stream from the standard library (made non-blocking).
    ///
    /// # Errors
    /// The OS error if its flags cannot be set.
    ///
    /// ```
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let a = aioloop::net::unix::UnixStream::from_std(a)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(stream: net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            io: Async::new(stream)?,
        })
    }

    /// The peer's address.
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let (a, _b) = aioloop::net::unix::UnixStream::pair()?;
    /// assert!(a.peer_addr()?.is_unnamed());
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
    /// let (a, _b) = aioloop::net::unix::UnixStream::pair()?;
    /// assert!(a.local_addr()?.is_unnamed());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("fd", &self.io.as_raw_fd())
            .finish()
    }
}

/// A Unix-domain datagram socket.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let (a, b) = aioloop::net::unix::UnixDatagram::pair()?;
///     a.send(b"d").await?;
///     let mut buf = [0u8; 4];
///     assert_eq!(b.recv(&mut buf).await?, 1);
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixDatagram {
    io: Async<net::UnixDatagram>,
}

datagram_api!(
    UnixDatagram,
    SocketAddr,
    "let (a, b) = aioloop::net::unix::UnixDatagram::pair()?;"
);

impl UnixDatagram {
    /// Binds to the filesystem path `path`.
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let p = std::env::temp_dir().join(format!("aioloop-doc-{}-d", std::process::id()));
    /// let _ = std::fs::remove_file(&p);
    /// let d = aioloop::net::unix::UnixDatagram::bind(&p)?;
    /// std::fs::remove_file(&p)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(net::UnixDatagram::bind(path)?)
    }

    /// A socket bound to no address (it can send, and receive replies once connected).
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let d = aioloop::net::unix::UnixDatagram::unbound()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(net::UnixDatagram::unbound()?)
    }

    /// Two connected sockets.
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let (a, b) = aioloop::net::unix::UnixDatagram::pair()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Wraps a socket from the standard library (made non-blocking).
    ///
    /// # Errors
    /// The OS error if its flags cannot be set.
    ///
    /// ```
    /// let d = aioloop::net::unix::UnixDatagram::from_std(std::os::unix::net::UnixDatagram::unbound()?)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(socket: net::UnixDatagram) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            io: Async::new(socket)?,
        })
    }

    /// Sets the default peer (never waits).
    ///
    /// # Errors
    /// The OS error (`NotFound`, `ConnectionRefused`).
    ///
    /// ```
    /// let p = std::env::temp_dir().join(format!("aioloop-doc-{}-c", std::process::id()));
    /// let _ = std::fs::remove_file(&p);
    /// let server = aioloop::net::unix::UnixDatagram::bind(&p)?;
    /// let client = aioloop::net::unix::UnixDatagram::unbound()?;
    /// client.connect(&p)?;
    /// std::fs::remove_file(&p)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.io.get_ref().connect(path)
    }

    /// Sends one datagram to `path`.
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let p = std::env::temp_dir().join(format!("aioloop-doc-{}-s", std::process::id()));
    /// let _ = std::fs::remove_file(&p);
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let server = aioloop::net::unix::UnixDatagram::bind(&p)?;
    ///     let client = aioloop::net::unix::UnixDatagram::unbound()?;
    ///     client.send_to(b"to", &p).await?;
    ///     let mut buf = [0u8; 2];
    ///     let (n, _from) = server.recv_from(&mut buf).await?;
    ///     assert_eq!(n, 2);
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// std::fs::remove_file(&p)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let path = path.as_ref();
        self.io.write_with(|s| s.send_to(buf, path)).await
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("fd", &self.io.as_raw_fd())
            .finish()
    }
}
