//! Streams, asyncio's high-level network API: [`open_connection`], [`start_server`],
//! [`open_unix_connection`], [`start_unix_server`], and the [`StreamReader`] /
//! [`StreamWriter`] pair each connection comes as.
//!
//! A [`StreamReader`] buffers what it read: a read takes its result out of the buffer
//! only when it completes, so a read cancelled mid-way (its future dropped, a `timeout`
//! expiring) leaves what arrived for the next read (rule N9). A [`StreamWriter`]'s
//! `write` never waits; `drain` applies asyncio's flow control, 64 KiB high and 16 KiB
//! low water marks (rule N10).
//!
//! ```
//! use aioloop::net::streams::{open_connection, start_server, StreamReader, StreamWriter};
//!
//! async fn echo(r: StreamReader, w: StreamWriter) {
//!     while let Ok(line) = r.readline().await {
//!         if line.is_empty() || w.write(&line).is_err() || w.drain().await.is_err() {
//!             break;
//!         }
//!     }
//!     w.close();
//! }
//!
//! let rt = aioloop::Runtime::builder().workers(2).build()?;
//! rt.block_on(async {
//!     let server = start_server(echo, "127.0.0.1", 0).await?;
//!     let port = server.local_addrs()[0].as_socket().unwrap().port();
//!     let (r, w) = open_connection("127.0.0.1", port).await?;
//!     w.write(b"hello\n")?;
//!     assert_eq!(r.readline().await?, b"hello\n");
//!     w.close();
//!     w.wait_closed().await?;
//!     server.close();
//!     server.wait_closed().await;
//!     Ok::<_, std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;

use super::split::sealed::Sealed;
use super::unix::UnixStream;
use super::{SplitSocket, TcpStream};

mod error;
mod reader;
mod server;
mod writer;

pub use error::{IncompleteReadError, LimitOverrunError, ReadError};
pub use reader::StreamReader;
pub use server::{start_server, start_unix_server, Server};
pub use writer::StreamWriter;

/// asyncio's default `limit`: the longest line or `readuntil` chunk a reader returns.
pub const DEFAULT_LIMIT: usize = 64 * 1024;
/// Above this many buffered bytes a writer is paused: `drain` waits (asyncio's default
/// high-water mark).
pub const HIGH_WATER: usize = 64 * 1024;
/// A paused writer resumes when its buffer is back at this many bytes (asyncio's default
/// low-water mark, a quarter of the high one).
pub const LOW_WATER: usize = 16 * 1024;

/// What a stream needs of its socket.
pub(crate) trait Conn: Sealed + AsFd + Send + Sync + 'static {}

impl<T: SplitSocket + AsFd> Conn for T {}

/// One connection, shared by its reader, its writer and the writer's flush task; dropping
/// the last of them closes the socket and, for a server's connection, tells the server.
pub(crate) struct Connection {
    pub(crate) sock: Box<dyn Conn>,
    pub(crate) _active: Option<server::Active>,
}

fn pair(
    sock: Box<dyn Conn>,
    limit: usize,
    active: Option<server::Active>,
) -> (StreamReader, StreamWriter) {
    let conn = Arc::new(Connection {
        sock,
        _active: active,
    });
    (
        StreamReader::build(Some(conn.clone()), limit),
        StreamWriter::new(conn),
    )
}

/// Wraps a connected [`TcpStream`] or [`UnixStream`] in a
/// reader and a writer (what asyncio's `open_connection(sock=...)` does), `limit` being
/// the reader's limit.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
///     let (_ra, wa) = aioloop::net::streams::from_stream(a, 1024);
///     let (rb, _wb) = aioloop::net::streams::from_stream(b, 1024);
///     wa.write(b"ping\n")?;
///     assert_eq!(rb.readline().await?, b"ping\n");
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn from_stream<S: SplitSocket + AsFd>(stream: S, limit: usize) -> (StreamReader, StreamWriter) {
    pair(Box::new(stream), limit, None)
}

/// Connects to `host:port` over TCP and returns the connection's reader and writer
/// (asyncio's `open_connection`). Host names resolve through [`net`](crate::net)'s
/// resolver; each address is tried in turn. `TCP_NODELAY` is set, as asyncio does.
///
/// # Errors
/// The resolver's error, or the last address's connect error (`ConnectionRefused`, …).
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let l = std::net::TcpListener::bind("127.0.0.1:0")?;
///     let port = l.local_addr()?.port();
///     let (_r, w) = aioloop::net::streams::open_connection("localhost", port).await?;
///     w.close();
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn open_connection(host: &str, port: u16) -> io::Result<(StreamReader, StreamWriter)> {
    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    Ok(from_stream(stream, DEFAULT_LIMIT))
}

/// Connects to the Unix socket at `path` (asyncio's `open_unix_connection`).
///
/// # Errors
/// The connect error (`NotFound`, `ConnectionRefused`, …).
///
/// ```
/// let p = std::env::temp_dir().join(format!("aioloop-doc-{}-ouc", std::process::id()));
/// let _ = std::fs::remove_file(&p);
/// let _l = std::os::unix::net::UnixListener::bind(&p)?;
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let (_r, w) = aioloop::net::streams::open_unix_connection(&p).await?;
///     w.close();
///     Ok::<_, std::io::Error>(())
/// })?;
/// std::fs::remove_file(&p)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn open_unix_connection(
    path: impl AsRef<Path>,
) -> io::Result<(StreamReader, StreamWriter)> {
    let stream = UnixStream::connect(path).await?;
    Ok(from_stream(stream, DEFAULT_LIMIT))
}
