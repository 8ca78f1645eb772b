//! The methods [`TcpStream`](super::TcpStream) and
//! [`UnixStream`](super::unix::UnixStream) share, written once: reading, writing,
//! shutting down, splitting, and the futures-io traits. Each type is a struct with an `io:
//! Async<std's stream>` field.

/// Expands to the shared stream API for `$ty`. `$setup` is doc-test code, run inside an
/// `async` block on a runtime, that binds `a` and `b` to two connected streams.
macro_rules! stream_api {
    ($ty:ident, $setup:literal) => {
        impl $ty {
            /// Reads what is available (at least one byte, waiting if none), up to
            /// `buf.len()`; 0 at end of stream (rule N5). Syscall first (N1).
            ///
            /// # Errors
            /// The socket's error (`ConnectionReset`, …).
            ///
            #[doc = concat!("```\nlet rt = aioloop::Runtime::builder().workers(1).build()?;\nrt.block_on(async {\n", $setup, "\nb.write_all(b\"hey\").await?;\nlet mut buf = [0u8; 8];\nassert_eq!(a.read(&mut buf).await?, 3);\nOk::<_, std::io::Error>(())\n})?;\n# Ok::<(), std::io::Error>(())\n```")]
            pub async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                $crate::net::split::read_via(self, buf).await
            }

            /// Reads exactly `buf.len()` bytes.
            ///
            /// # Errors
            /// `UnexpectedEof` if the stream ends first; the socket's error.
            ///
            #[doc = concat!("```\nlet rt = aioloop::Runtime::builder().workers(1).build()?;\nrt.block_on(async {\n", $setup, "\nb.write_all(b\"hey\").await?;\nlet mut buf = [0u8; 3];\na.read_exact(&mut buf).await?;\nassert_eq!(&buf, b\"hey\");\nOk::<_, std::io::Error>(())\n})?;\n# Ok::<(), std::io::Error>(())\n```")]
            pub async fn read_exact(&self, buf: &mut [u8]) -> std::io::Result<()> {
                $crate::net::split::read_exact_via(self, buf).await
            }

            /// Writes what the socket buffer takes now (waiting until it takes something);
            /// returns how much (a partial write is not an error: rule N1).
            ///
            /// # Errors
            /// The socket's error (`BrokenPipe`/`ConnectionReset` once the peer is gone).
            ///
            #[doc = concat!("```\nlet rt = aioloop::Runtime::builder().workers(1).build()?;\nrt.block_on(async {\n", $setup, "\nassert_eq!(a.write(b\"abc\").await?, 3);\nOk::<_, std::io::Error>(())\n})?;\n# Ok::<(), std::io::Error>(())\n```")]
            pub async fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
                $crate::net::split::write_via(self, buf).await
            }

            /// Writes all of `buf`, waiting for buffer space as needed (asyncio's
            /// `sock_sendall`).
            ///
            /// # Errors
            /// The socket's error.
            ///
            #[doc = concat!("```\nlet rt = aioloop::Runtime::builder().workers(1).build()?;\nrt.block_on(async {\n", $setup, "\na.write_all(b\"abc\").await?;\nlet mut buf = [0u8; 3];\nb.read_exact(&mut buf).await?;\nOk::<_, std::io::Error>(())\n})?;\n# Ok::<(), std::io::Error>(())\n```")]
            pub async fn write_all(&self, buf: &[u8]) -> std::io::Result<()> {
                $crate::net::split::write_all_via(self, buf).await
            }

            /// Shuts down one or both directions; `Shutdown::Write` sends EOF while
            /// reading goes on (rule N5).
            ///
            /// # Errors
            /// The OS error (`ENOTCONN` once the connection is gone).
            ///
            #[doc = concat!("```\nlet rt = aioloop::Runtime::builder().workers(1).build()?;\nrt.block_on(async {\n", $setup, "\na.shutdown(std::net::Shutdown::Write)?;\nassert_eq!(b.read(&mut [0u8; 1]).await?, 0);\nb.write_all(b\"still\").await?;\nlet mut buf = [0u8; 5];\na.read_exact(&mut buf).await?;\nOk::<_, std::io::Error>(())\n})?;\n# Ok::<(), std::io::Error>(())\n```")]
            pub fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()> {
                self.io.get_ref().shutdown(how)
            }

            /// Borrowed read and write halves, usable from two tasks at once (one waiter
            /// per direction, reactor rule R4).
            ///
            #[doc = concat!("```\nlet rt = aioloop::Runtime::builder().workers(1).build()?;\nrt.block_on(async {\n", $setup, "\nlet (mut r, mut w) = a.split();\nw.write_all(b\"x\").await?;\nb.write_all(b\"y\").await?;\nlet mut buf = [0u8; 1];\nr.read_exact(&mut buf).await?;\nOk::<_, std::io::Error>(())\n})?;\n# Ok::<(), std::io::Error>(())\n```")]
            pub fn split(&self) -> ($crate::net::ReadHalf<'_, $ty>, $crate::net::WriteHalf<'_, $ty>) {
                ($crate::net::ReadHalf(self), $crate::net::WriteHalf(self))
            }

            /// Owned (`'static`) read and write halves, to move into two tasks. Dropping
            /// the write half shuts the socket down for writing.
            ///
            #[doc = concat!("```\nlet rt = aioloop::Runtime::builder().workers(1).build()?;\nrt.block_on(async {\n", $setup, "\nlet (mut r, w) = a.into_split();\ndrop(w);\nassert_eq!(b.read(&mut [0u8; 1]).await?, 0);\nb.write_all(b\"z\").await?;\nr.read_exact(&mut [0u8; 1]).await?;\nOk::<_, std::io::Error>(())\n})?;\n# Ok::<(), std::io::Error>(())\n```")]
            pub fn into_split(self) -> ($crate::net::OwnedReadHalf<$ty>, $crate::net::OwnedWriteHalf<$ty>) {
                $crate::net::OwnedReadHalf::pair(self)
            }
        }

        impl $crate::net::split::sealed::Sealed for $ty {
            fn poll_read_io(
                &self,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let len = buf.len();
                // A stream read shorter than its buffer emptied the socket: read readiness
                // is cleared (saving the next read's EWOULDBLOCK), keeping the closed bit
                // that says a half-close already arrived (rule R12; only where the poller
                // reports it: without it the next read would wait forever for an edge
                // that never comes). 0 (EOF) clears nothing.
                self.io.poll_io_draining(
                    $crate::event_loop::reactor::Direction::Read,
                    cx,
                    || $crate::net::rw::read(self.io.get_ref(), buf),
                    |&n| $crate::event_loop::reactor::SHORT_READ_CLEARS && n > 0 && n < len,
                )
            }

            fn poll_write_io(
                &self,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let len = buf.len();
                // A partial write filled the socket buffer.
                self.io.poll_io_draining(
                    $crate::event_loop::reactor::Direction::Write,
                    cx,
                    || $crate::net::rw::write(self.io.get_ref(), buf),
                    |&n| n < len,
                )
            }

            fn poll_read_uninit(
                &self,
                cx: &mut std::task::Context<'_>,
                buf: &mut [std::mem::MaybeUninit<u8>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let len = buf.len();
                self.io.poll_io_draining(
                    $crate::event_loop::reactor::Direction::Read,
                    cx,
                    || $crate::net::rw::read_uninit(self.io.get_ref(), buf),
                    // As `poll_read_io` (rule R12).
                    |&n| $crate::event_loop::reactor::SHORT_READ_CLEARS && n > 0 && n < len,
                )
            }

            fn poll_write_vectored_io(
                &self,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let len: usize = bufs.iter().map(|b| b.len()).sum();
                self.io.poll_io_draining(
                    $crate::event_loop::reactor::Direction::Write,
                    cx,
                    || $crate::net::rw::write_vectored(self.io.get_ref(), bufs),
                    |&n| n < len,
                )
            }

            fn shutdown_io(&self, how: std::net::Shutdown) -> std::io::Result<()> {
                self.io.get_ref().shutdown(how)
            }
        }

        impl $crate::net::SplitSocket for $ty {}

        #[cfg(feature = "futures-io")]
        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $crate::net::split::sealed::Sealed::poll_read_io(&*self, cx, buf)
            }
        }

        #[cfg(feature = "futures-io")]
        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                $crate::net::split::sealed::Sealed::poll_write_io(&*self, cx, buf)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.shutdown(std::net::Shutdown::Write))
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.io.as_fd()
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.io.as_raw_fd()
            }
        }
    };
}

pub(super) use stream_api;
