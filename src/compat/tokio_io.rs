//! tokio's `AsyncRead` and `AsyncWrite` on [`TcpStream`], [`UnixStream`] and their halves
//! (borrowed and owned) (feature `tokio-io`; tokio with no runtime, traits only), so tokio-based
//! libraries (codecs, protocol crates) run on aioloop. Reads fill the `ReadBuf`'s
//! uninitialised part directly.
//!
//! ```
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let rt = aioloop::Runtime::builder().workers(1).build()?;
//! rt.block_on(async {
//!     let (mut a, mut b) = aioloop::net::unix::UnixStream::pair()?;
//!     // Fully qualified: aioloop's inherent `write_all`/`shutdown` would win otherwise.
//!     AsyncWriteExt::write_all(&mut a, b"tokio traits").await?;
//!     AsyncWriteExt::shutdown(&mut a).await?;
//!     let mut got = String::new();
//!     b.read_to_string(&mut got).await?;
//!     assert_eq!(got, "tokio traits");
//!     Ok::<_, std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::ReadBuf;

use crate::net::unix::UnixStream;
use crate::net::{
    OwnedReadHalf, OwnedWriteHalf, ReadHalf, SplitSocket, StreamIo, TcpStream, WriteHalf,
};

/// Reads into the unfilled part of `buf` without zeroing it.
fn read_buf<S: StreamIo + ?Sized>(
    s: &S,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    // SAFETY: the slice is only written to (by recv(2) in `poll_read_uninit`), never
    // de-initialised: `unfilled_mut`'s contract.
    let n = ready!(s.poll_read_uninit(cx, unsafe { buf.unfilled_mut() }))?;
    // SAFETY: recv(2) initialised the first `n` bytes of the unfilled part
    // (`assume_init`'s contract); `advance` then marks them filled.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Poll::Ready(Ok(()))
}

/// tokio's `AsyncRead` for a stream type or read half, through the socket `$sock`.
macro_rules! tokio_read {
    ($ty:ty, [$($gen:tt)*], $this:ident => $sock:expr) => {
        impl<$($gen)*> tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let $this = &*self;
                read_buf($sock, cx, buf)
            }
        }
    };
}

tokio_read!(TcpStream, [], s => s);
write_trait!(tokio::io::AsyncWrite, TcpStream, [], s => s);
tokio_read!(UnixStream, [], s => s);
write_trait!(tokio::io::AsyncWrite, UnixStream, [], s => s);
tokio_read!(OwnedReadHalf<S>, [S: SplitSocket], h => h.socket());
write_trait!(tokio::io::AsyncWrite, OwnedWriteHalf<S>, [S: SplitSocket], h => h.socket());
tokio_read!(ReadHalf<'_, S>, [S: SplitSocket], h => h.socket());
write_trait!(tokio::io::AsyncWrite, WriteHalf<'_, S>, [S: SplitSocket], h => h.socket());
