//! The Rust ecosystem's I/O and runtime traits on aioloop's types, each behind a cargo
//! feature: [`hyper`] (feature `hyper`: `hyper::rt::{Read, Write}` on the stream sockets,
//! an `Executor` that creates aioloop tasks and a `Timer` on aioloop's sleep) and
//! [`tokio_io`] (feature `tokio-io`: tokio's `AsyncRead`/`AsyncWrite`, no tokio runtime).
//! futures-io's traits are implemented next to the types themselves (feature
//! `futures-io`, on by default).
//!
//! Reads go into the caller's buffer without zeroing it first: the socket's `recv(2)`
//! writes into the uninitialised part and the buffer advances by what it wrote.
//!
//! ```
//! // With no feature on, this module is empty; see `compat::hyper` and
//! // `compat::tokio_io` under their features.
//! let _ = aioloop::Runtime::builder().workers(1).build()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// `$trait` (hyper's `rt::Write` or tokio's `AsyncWrite`, which have the same methods)
/// for a stream type or write half, writing through the socket `$sock` (vectored).
#[allow(unused_macros)]
macro_rules! write_trait {
    ($trait:path, $ty:ty, [$($gen:tt)*], $this:ident => $sock:expr) => {
        impl<$($gen)*> $trait for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $sock.poll_write_io(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $sock.poll_write_vectored_io(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let $this = &*self;
                // ENOTCONN: the peer is gone already, there is nothing left to shut.
                match $sock.shutdown_io(std::net::Shutdown::Write) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotConnected => {
                        std::task::Poll::Ready(Ok(()))
                    }
                    r => std::task::Poll::Ready(r),
                }
            }
        }
    };
}

#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(feature = "tokio-io")]
pub mod tokio_io;
