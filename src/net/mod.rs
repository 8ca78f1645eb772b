//! Sockets on the loops' pollers: [`TcpListener`], [`TcpStream`], [`UdpSocket`], and
//! [`unix`]'s `UnixListener`, `UnixStream`, `UnixDatagram`.
//!
//! Each is an [`Async`] over the standard library's socket (created with
//! `socket2` where options must be set before `bind` or `connect`). Every operation tries
//! the system call first and waits for readiness only on `EWOULDBLOCK` (rule N1); the
//! socket registers on the poller of the loop that first waits on it and stays there (N3).
//!
//! Host names given to `bind`/`connect` ([`ToSocketAddrs`]) are resolved with the system
//! resolver on the running loop's blocking pool (its default executor), so a slow DNS
//! server never stalls a loop; literal addresses are used as they are.
//!
//! ```
//! use aioloop::net::{TcpListener, TcpStream};
//!
//! let rt = aioloop::Runtime::builder().workers(2).build()?;
//! rt.block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     let server = aioloop::create_task(async move {
//!         let (conn, _) = listener.accept().await?;
//!         let mut buf = [0u8; 5];
//!         let n = conn.read(&mut buf).await?;
//!         conn.write_all(&buf[..n]).await?;
//!         Ok::<_, std::io::Error>(())
//!     });
//!     let client = TcpStream::connect(addr).await?;
//!     client.write_all(b"hello").await?;
//!     let mut buf = [0u8; 5];
//!     client.read_exact(&mut buf).await?;
//!     assert_eq!(&buf, b"hello");
//!     server.await.unwrap()
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::net::SocketAddr;

use crate::io::Async;

mod addr;
mod datagram;
mod rw;
mod serve;
mod split;
mod stream;
pub mod streams;
mod tcp;
mod udp;
pub mod unix;

pub use addr::ToSocketAddrs;
pub use serve::ACCEPT_RETRY_DELAY;
/// Socket addresses and raw sockets of any family, for the `sock_*` loop methods
/// (re-exported from `socket2`).
pub use socket2::{Domain, SockAddr, Socket, Type};
/// What a stream socket offers the ecosystem-trait impls of `compat` (sealed).
#[allow(unused_imports)]
pub(crate) use split::sealed::Sealed as StreamIo;
pub use split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, SplitSocket, WriteHalf};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;

/// How many connections a listener's backlog holds (the kernel caps it at `somaxconn`).
const BACKLOG: i32 = 1024;

/// Runs `f` on each address until one succeeds; the last error otherwise.
async fn each_addr<T, F, Fut>(addr: impl ToSocketAddrs, mut f: F) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last = None;
    for a in addr::resolve(addr).await? {
        match f(a).await {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no address to try")))
}

/// A non-blocking `connect`: started at once, finished when the socket turns writable
/// (then `SO_ERROR` says how it went). A Unix socket whose listener's backlog is full says
/// `EAGAIN`: the connect is retried once the socket is writable.
async fn connect(socket: Socket, addr: &SockAddr) -> io::Result<Socket> {
    socket.set_nonblocking(true)?;
    let socket = Async::new(socket)?;
    loop {
        match socket.get_ref().connect(addr) {
            Ok(()) => break,
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                socket.writable().await?;
                if let Some(e) = socket.get_ref().take_error()? {
                    return Err(e);
                }
                // A refused connection may show only as a missing peer.
                socket.get_ref().peer_addr()?;
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                socket.writable().await?;
                crate::yield_now().await;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(socket.into_inner())
}
