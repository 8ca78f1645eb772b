//! Read and write halves of a stream socket ([`TcpStream`](super::TcpStream),
//! [`UnixStream`](super::unix::UnixStream)): borrowed ([`ReadHalf`], [`WriteHalf`], from
//! `split`) or owned and `'static` ([`OwnedReadHalf`], [`OwnedWriteHalf`], from
//! `into_split`). Each direction has its own waker slot (reactor rule R4), so a reader task
//! and a writer task can use one socket at once, on any workers.

use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A stream socket that can be split: [`TcpStream`](super::TcpStream) and
/// [`UnixStream`](super::unix::UnixStream). Sealed.
///
/// ```
/// fn halves<S: aioloop::net::SplitSocket>(s: S) -> (aioloop::net::OwnedReadHalf<S>, aioloop::net::OwnedWriteHalf<S>) {
///     aioloop::net::OwnedReadHalf::pair(s)
/// }
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// let (_r, _w) = halves(aioloop::net::unix::UnixStream::from_std(a)?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait SplitSocket: sealed::Sealed + Send + Sync + 'static {}

pub(crate) mod sealed {
    use std::io;
    use std::task::{Context, Poll};

    /// What the halves need of their socket.
    pub trait Sealed {
        fn poll_read_io(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
        fn poll_write_io(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
        /// A read into memory that need not be initialised (hyper's and tokio's read
        /// buffers): no zeroing.
        fn poll_read_uninit(
            &self,
            cx: &mut Context<'_>,
            buf: &mut [std::mem::MaybeUninit<u8>],
        ) -> Poll<io::Result<usize>>;
        /// One `writev` of `bufs`.
        fn poll_write_vectored_io(
            &self,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>>;
        fn shutdown_io(&self, how: std::net::Shutdown) -> io::Result<()>;
    }
}

/// The read half of a borrowed stream socket (`split`).
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
///     let (mut r, _w) = a.split();
///     b.write_all(b"x").await?;
///     let mut buf = [0u8; 1];
///     assert_eq!(r.read(&mut buf).await?, 1);
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ReadHalf<'a, S>(pub(super) &'a S);

/// The write half of a borrowed stream socket (`split`).
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
///     let (_r, mut w) = a.split();
///     w.write_all(b"x").await?;
///     let mut buf = [0u8; 1];
///     assert_eq!(b.read(&mut buf).await?, 1);
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct WriteHalf<'a, S>(pub(super) &'a S);

/// The owned read half of a stream socket (`into_split`).
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(2).build()?;
/// rt.block_on(async {
///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
///     let (mut r, _w) = a.into_split();
///     let reader = aioloop::create_task(async move {
///         let mut buf = [0u8; 2];
///         r.read_exact(&mut buf).await.map(|_| buf)
///     });
///     b.write_all(b"hi").await?;
///     assert_eq!(&reader.await.unwrap()?, b"hi");
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct OwnedReadHalf<S>(Arc<S>);

/// The owned write half of a stream socket (`into_split`). Dropping it shuts the socket
/// down for writing (the peer reads EOF), as tokio's does.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
///     let (_r, w) = a.into_split();
///     drop(w);
///     let mut buf = [0u8; 1];
///     assert_eq!(b.read(&mut buf).await?, 0); // EOF
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct OwnedWriteHalf<S: SplitSocket>(Arc<S>);

impl<S: SplitSocket> OwnedReadHalf<S> {
    /// Splits `s` into owned halves (what each socket's `into_split` does).
    ///
    /// ```
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let s = aioloop::net::unix::UnixStream::from_std(a)?;
    /// let (_r, _w) = aioloop::net::OwnedReadHalf::pair(s);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pair(s: S) -> (OwnedReadHalf<S>, OwnedWriteHalf<S>) {
        let s = Arc::new(s);
        (OwnedReadHalf(s.clone()), OwnedWriteHalf(s))
    }
}

impl<S: SplitSocket> OwnedReadHalf<S> {
    /// The socket (the ecosystem-trait impls of `compat` read through it).
    #[allow(dead_code)]
    pub(crate) fn socket(&self) -> &S {
        &self.0
    }
}

impl<S: SplitSocket> OwnedWriteHalf<S> {
    /// The socket (the ecosystem-trait impls of `compat` write through it).
    #[allow(dead_code)]
    pub(crate) fn socket(&self) -> &S {
        &self.0
    }
}

impl<'a, S: SplitSocket> ReadHalf<'a, S> {
    /// The socket (the ecosystem-trait impls of `compat` read through it).
    #[allow(dead_code)]
    pub(crate) fn socket(&self) -> &'a S {
        self.0
    }
}

impl<'a, S: SplitSocket> WriteHalf<'a, S> {
    /// The socket (the ecosystem-trait impls of `compat` write through it).
    #[allow(dead_code)]
    pub(crate) fn socket(&self) -> &'a S {
        self.0
    }
}

impl<S: SplitSocket> Drop for OwnedWriteHalf<S> {
    fn drop(&mut self) {
        // The peer may be gone already (ENOTCONN): nothing left to tell it.
        let _ = self.0.shutdown_io(Shutdown::Write);
    }
}

/// Reads through `s` (the halves' shared body).
pub(crate) async fn read_via<S: SplitSocket>(s: &S, buf: &mut [u8]) -> io::Result<usize> {
    poll_fn(|cx| s.poll_read_io(cx, buf)).await
}

pub(crate) async fn read_exact_via<S: SplitSocket>(s: &S, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match read_via(s, buf).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => buf = &mut buf[n..],
        }
    }
    Ok(())
}

pub(crate) async fn write_via<S: SplitSocket>(s: &S, buf: &[u8]) -> io::Result<usize> {
    poll_fn(|cx| s.poll_write_io(cx, buf)).await
}

pub(crate) async fn write_all_via<S: SplitSocket>(s: &S, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match write_via(s, buf).await? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => buf = &buf[n..],
        }
    }
    Ok(())
}

/// `read`/`read_exact` (and futures-io's `AsyncRead`) on a read half type.
macro_rules! read_half {
    ($ty:ident $(, $lt:lifetime)?) => {
        impl<$($lt,)? S: SplitSocket> $ty<$($lt,)? S> {
            /// Reads what is available (at least one byte, waiting if none), up to
            /// `buf.len()`; 0 at end of stream (rule N5).
            ///
            /// # Errors
            /// The socket's error (`ConnectionReset`, …).
            ///
            /// ```
            /// let rt = aioloop::Runtime::builder().workers(1).build()?;
            /// rt.block_on(async {
            ///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
            ///     let (mut r, _w) = a.into_split();
            ///     drop(b);
            ///     assert_eq!(r.read(&mut [0u8; 4]).await?, 0);
            ///     Ok::<_, std::io::Error>(())
            /// })?;
            /// # Ok::<(), std::io::Error>(())
            /// ```
            pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                read_via(&*self.0, buf).await
            }

            /// Reads exactly `buf.len()` bytes.
            ///
            /// # Errors
            /// `UnexpectedEof` if the stream ends first; the socket's error.
            ///
            /// ```
            /// let rt = aioloop::Runtime::builder().workers(1).build()?;
            /// rt.block_on(async {
            ///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
            ///     let (mut r, _w) = a.into_split();
            ///     b.write_all(b"ab").await?;
            ///     drop(b);
            ///     let e = r.read_exact(&mut [0u8; 3]).await.unwrap_err();
            ///     assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
            ///     Ok::<_, std::io::Error>(())
            /// })?;
            /// # Ok::<(), std::io::Error>(())
            /// ```
            pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
                read_exact_via(&*self.0, buf).await
            }
        }

        #[cfg(feature = "futures-io")]
        impl<$($lt,)? S: SplitSocket> futures_io::AsyncRead for $ty<$($lt,)? S> {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.0.poll_read_io(cx, buf)
            }
        }
    };
}

/// `write`/`write_all`/`shutdown` (and futures-io's `AsyncWrite`) on a write half type.
macro_rules! write_half {
    ($ty:ident $(, $lt:lifetime)?) => {
        impl<$($lt,)? S: SplitSocket> $ty<$($lt,)? S> {
            /// Writes what the socket buffer takes now (waiting until it takes something);
            /// returns how much.
            ///
            /// # Errors
            /// The socket's error (`BrokenPipe` once the peer is gone, …).
            ///
            /// ```
            /// let rt = aioloop::Runtime::builder().workers(1).build()?;
            /// rt.block_on(async {
            ///     let (a, _b) = aioloop::net::unix::UnixStream::pair()?;
            ///     let (_r, mut w) = a.into_split();
            ///     assert_eq!(w.write(b"abc").await?, 3);
            ///     Ok::<_, std::io::Error>(())
            /// })?;
            /// # Ok::<(), std::io::Error>(())
            /// ```
            pub async fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                write_via(&*self.0, buf).await
            }

            /// Writes all of `buf`, waiting for buffer space as needed.
            ///
            /// # Errors
            /// The socket's error.
            ///
            /// ```
            /// let rt = aioloop::Runtime::builder().workers(1).build()?;
            /// rt.block_on(async {
            ///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
            ///     let (_r, mut w) = a.into_split();
            ///     w.write_all(b"abc").await?;
            ///     let mut buf = [0u8; 3];
            ///     b.read_exact(&mut buf).await?;
            ///     Ok::<_, std::io::Error>(())
            /// })?;
            /// # Ok::<(), std::io::Error>(())
            /// ```
            pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
                write_all_via(&*self.0, buf).await
            }

            /// Shuts the socket down for writing: the peer reads EOF, reading goes on
            /// (rule N5).
            ///
            /// # Errors
            /// The OS error (`ENOTCONN` once the connection is gone).
            ///
            /// ```
            /// let rt = aioloop::Runtime::builder().workers(1).build()?;
            /// rt.block_on(async {
            ///     let (a, b) = aioloop::net::unix::UnixStream::pair()?;
            ///     let (_r, w) = a.into_split();
            ///     w.shutdown()?;
            ///     assert_eq!(b.read(&mut [0u8; 1]).await?, 0);
            ///     Ok::<_, std::io::Error>(())
            /// })?;
            /// # Ok::<(), std::io::Error>(())
            /// ```
            pub fn shutdown(&self) -> io::Result<()> {
                self.0.shutdown_io(Shutdown::Write)
            }
        }

        #[cfg(feature = "futures-io")]
        impl<$($lt,)? S: SplitSocket> futures_io::AsyncWrite for $ty<$($lt,)? S> {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.0.poll_write_io(cx, buf)
            }

            fn poll_flush(self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.0.shutdown_io(Shutdown::Write))
            }
        }
    };
}

read_half!(ReadHalf, 'a);
read_half!(OwnedReadHalf);
write_half!(WriteHalf, 'a);
write_half!(OwnedWriteHalf);
