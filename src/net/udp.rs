//! UDP: [`UdpSocket`].

use std::fmt;
use std::io;
use std::net::{self, SocketAddr};
use std::os::fd::AsRawFd;

use super::datagram::datagram_api;
use super::{each_addr, ToSocketAddrs};
use crate::io::Async;

/// A UDP socket (asyncio's `sock_sendto`, `sock_recvfrom` on a datagram socket).
///
/// ```
/// use aioloop::net::UdpSocket;
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let a = UdpSocket::bind("127.0.0.1:0").await?;
///     let b = UdpSocket::bind("127.0.0.1:0").await?;
///     a.send_to(b"dgram", b.local_addr()?).await?;
///     let mut buf = [0u8; 16];
///     let (n, from) = b.recv_from(&mut buf).await?;
///     assert_eq!((&buf[..n], from), (&b"dgram"[..], a.local_addr()?));
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UdpSocket {
    io: Async<net::UdpSocket>,
}

datagram_api!(
    UdpSocket,
    SocketAddr,
    "let a = aioloop::net::UdpSocket::bind(\"127.0.0.1:0\").await?;\nlet b = aioloop::net::UdpSocket::bind(\"127.0.0.1:0\").await?;\na.connect(b.local_addr()?).await?;\nb.connect(a.local_addr()?).await?;"
);

impl UdpSocket {
    /// Binds to `addr`; host names are resolved on the loop's blocking pool (see
    /// [`net`](crate::net)).
    ///
    /// # Errors
    /// The OS error of the last address tried.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let s = rt.block_on(aioloop::net::UdpSocket::bind("127.0.0.1:0"))?;
    /// assert_ne!(s.local_addr()?.port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        each_addr(addr, |a| async move {
            UdpSocket::from_std(net::UdpSocket::bind(a)?)
        })
        .await
    }

    /// Wraps a socket from the standard library (made non-blocking).
    ///
    /// # Errors
    /// The OS error if its flags cannot be set.
    ///
    /// ```
    /// let s = aioloop::net::UdpSocket::from_std(std::net::UdpSocket::bind("127.0.0.1:0")?)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn from_std(socket: net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            io: Async::new(socket)?,
        })
    }

    /// Sets the default peer (`send`/`recv` then use it; datagrams from others are
    /// dropped by the kernel). Never waits.
    ///
    /// # Errors
    /// The OS error of the last address tried.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let a = aioloop::net::UdpSocket::bind("127.0.0.1:0").await?;
    ///     let b = aioloop::net::UdpSocket::bind("127.0.0.1:0").await?;
    ///     a.connect(b.local_addr()?).await?;
    ///     assert_eq!(a.peer_addr()?, b.local_addr()?);
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        each_addr(addr, |a| async move { self.io.get_ref().connect(a) }).await
    }

    /// Sends one datagram to `target` (asyncio's `sock_sendto`).
    ///
    /// # Errors
    /// The OS error (`EMSGSIZE` for an oversized datagram, …).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let a = aioloop::net::UdpSocket::bind("127.0.0.1:0").await?;
    ///     assert_eq!(a.send_to(b"x", a.local_addr()?).await?, 1);
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.io.write_with(|s| s.send_to(buf, target)).await
    }

    /// Sets `IP_TTL`.
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let s = aioloop::net::UdpSocket::from_std(std::net::UdpSocket::bind("127.0.0.1:0")?)?;
    /// s.set_ttl(3)?;
    /// assert_eq!(s.ttl()?, 3);
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
    /// let s = aioloop::net::UdpSocket::from_std(std::net::UdpSocket::bind("127.0.0.1:0")?)?;
    /// assert!(s.ttl()? > 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Sets `SO_BROADCAST`.
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let s = aioloop::net::UdpSocket::from_std(std::net::UdpSocket::bind("127.0.0.1:0")?)?;
    /// s.set_broadcast(true)?;
    /// assert!(s.broadcast()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_broadcast(on)
    }

    /// `SO_BROADCAST`.
    ///
    /// # Errors
    /// The OS error.
    ///
    /// ```
    /// let s = aioloop::net::UdpSocket::from_std(std::net::UdpSocket::bind("127.0.0.1:0")?)?;
    /// assert!(!s.broadcast()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn broadcast(&self) -> io::Result<bool> {
        self.io.get_ref().broadcast()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("fd", &self.io.as_raw_fd())
            .field("local", &self.local_addr().ok())
            .finish()
    }
}
