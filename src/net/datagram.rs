//! The methods [`UdpSocket`](super::UdpSocket) and
//! [`UnixDatagram`](super::unix::UnixDatagram) share, written once: receiving with the
//! sender's address, sending and receiving on a connected socket, and the addresses. Each
//! type is a struct with an `io: Async<std's socket>` field.

/// Expands to the shared datagram API for `$ty`, whose addresses are `$addr`. `$setup`
/// is doc-test code, run inside an `async` block on a runtime, that binds `a` and `b` to
/// two sockets connected to each other.
macro_rules! datagram_api {
    ($ty:ident, $addr:ty, $setup:literal) => {
        impl $ty {
            /// Receives one datagram and its sender's address (asyncio's
            /// `sock_recvfrom`); a datagram longer than `buf` is truncated.
            ///
            /// # Errors
            /// The OS error.
            ///
            #[doc = concat!("```\nlet rt = aioloop::Runtime::builder().workers(1).build()?;\nrt.block_on(async {\n", $setup, "\na.send(b\"rf\").await?;\nlet (n, _from) = b.recv_from(&mut [0u8; 4]).await?;\nassert_eq!(n, 2);\nOk::<_, std::io::Error>(())\n})?;\n# Ok::<(), std::io::Error>(())\n```")]
            pub async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, $addr)> {
                self.io.read_with(|s| s.recv_from(buf)).await
            }

            /// Sends one datagram to the connected peer.
            ///
            /// # Errors
            /// `NotConnected` on an unconnected socket; the OS error.
            ///
            #[doc = concat!("```\nlet rt = aioloop::Runtime::builder().workers(1).build()?;\nrt.block_on(async {\n", $setup, "\nassert_eq!(a.send(b\"abc\").await?, 3);\nOk::<_, std::io::Error>(())\n})?;\n# Ok::<(), std::io::Error>(())\n```")]
            pub async fn send(&self, buf: &[u8]) -> std::io::Result<usize> {
                self.io.write_with(|s| s.send(buf)).await
            }

            /// Receives one datagram from the connected peer.
            ///
            /// # Errors
            /// The OS error (`ConnectionRefused` after an ICMP port-unreachable, …).
            ///
            #[doc = concat!("```\nlet rt = aioloop::Runtime::builder().workers(1).build()?;\nrt.block_on(async {\n", $setup, "\nb.send(b\"r\").await?;\nassert_eq!(a.recv(&mut [0u8; 4]).await?, 1);\nOk::<_, std::io::Error>(())\n})?;\n# Ok::<(), std::io::Error>(())\n```")]
            pub async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.io.read_with(|s| s.recv(buf)).await
            }

            /// The local address.
            ///
            /// # Errors
            /// The OS error.
            ///
            #[doc = concat!("```\nlet rt = aioloop::Runtime::builder().workers(1).build()?;\nrt.block_on(async {\n", $setup, "\nlet _ = a.local_addr()?;\nOk::<_, std::io::Error>(())\n})?;\n# Ok::<(), std::io::Error>(())\n```")]
            pub fn local_addr(&self) -> std::io::Result<$addr> {
                self.io.get_ref().local_addr()
            }

            /// The connected peer's address.
            ///
            /// # Errors
            /// `NotConnected` on an unconnected socket.
            ///
            #[doc = concat!("```\nlet rt = aioloop::Runtime::builder().workers(1).build()?;\nrt.block_on(async {\n", $setup, "\nlet _ = a.peer_addr()?;\nOk::<_, std::io::Error>(())\n})?;\n# Ok::<(), std::io::Error>(())\n```")]
            pub fn peer_addr(&self) -> std::io::Result<$addr> {
                self.io.get_ref().peer_addr()
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.io.as_fd()
            }
        }
    };
}

pub(super) use datagram_api;
