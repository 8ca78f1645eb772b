//! asyncio's loop I/O methods on [`LocalLoop`](crate::LocalLoop) and the runtime's
//! [`Handle`](crate::Handle): `add_reader`/`add_writer`/`remove_reader`/`remove_writer`
//! (`io::watch`, rule N8) and the `sock_*` functions (`io::sock`, rule N1). The shared
//! methods are written once in [`io_loop_api!`]; `add_reader`/`add_writer` differ in
//! whether the callback must be `Send` (a runtime's watcher may run on any worker).

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use socket2::{SockAddr, Socket};

use super::sock;
use super::watch::{self, watch_loop};
use crate::event_loop::reactor::Direction;
use crate::{Handle, LocalLoop};

/// Expands to the loop I/O methods every loop kind answers the same way. `$setup` binds
/// `lp` (and whatever runs it); `$open`/`$close` wrap an `async` block so that it runs on
/// that loop.
macro_rules! io_loop_api {
    ($setup:literal, $open:literal, $close:literal) => {
        /// asyncio's `remove_reader(fd)`: stops watching `fd` for reading; whether a
        /// reader was registered (rule N8).
        ///
        #[doc = concat!("```\n", $setup, "\nlet (a, _b) = std::os::unix::net::UnixStream::pair()?;\nassert!(!lp.remove_reader(&a));\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub fn remove_reader(&self, fd: impl AsFd) -> bool {
            watch::remove(self.id(), fd.as_fd().as_raw_fd(), Direction::Read)
        }

        /// asyncio's `remove_writer(fd)`: stops watching `fd` for writing; whether a
        /// writer was registered.
        ///
        #[doc = concat!("```\n", $setup, "\nlet (a, _b) = std::os::unix::net::UnixStream::pair()?;\nassert!(!lp.remove_writer(&a));\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub fn remove_writer(&self, fd: impl AsFd) -> bool {
            watch::remove(self.id(), fd.as_fd().as_raw_fd(), Direction::Write)
        }

        /// asyncio's `sock_recv(sock, n)`: up to `n` bytes (empty at EOF). The socket must
        /// be non-blocking.
        ///
        /// # Errors
        /// `InvalidInput` ("the socket must be non-blocking"); the OS error.
        ///
        #[doc = concat!("```\nuse std::io::Write;\n", $setup, "\nlet (a, mut b) = std::os::unix::net::UnixStream::pair()?;\na.set_nonblocking(true)?;\nb.write_all(b\"hi\")?;\nlet got = ", $open, "async { lp.sock_recv(&a, 16).await }", $close, "?;\nassert_eq!(got, b\"hi\");\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub async fn sock_recv(&self, sock: impl AsFd, n: usize) -> io::Result<Vec<u8>> {
            sock::recv(sock, n).await
        }

        /// asyncio's `sock_recv_into(sock, buf)`: how many bytes were read into `buf`.
        ///
        /// # Errors
        /// As [`sock_recv`](Self::sock_recv).
        ///
        #[doc = concat!("```\nuse std::io::Write;\n", $setup, "\nlet (a, mut b) = std::os::unix::net::UnixStream::pair()?;\na.set_nonblocking(true)?;\nb.write_all(b\"hi\")?;\nlet mut buf = [0u8; 4];\nlet n = ", $open, "async { lp.sock_recv_into(&a, &mut buf).await }", $close, "?;\nassert_eq!(&buf[..n], b\"hi\");\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub async fn sock_recv_into(&self, sock: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
            sock::recv_into(sock, buf).await
        }

        /// asyncio's `sock_recvfrom(sock, n)`: a datagram (up to `n` bytes) and its
        /// sender.
        ///
        /// # Errors
        /// As [`sock_recv`](Self::sock_recv).
        ///
        #[doc = concat!("```\n", $setup, "\nlet a = std::net::UdpSocket::bind(\"127.0.0.1:0\")?;\na.set_nonblocking(true)?;\na.send_to(b\"d\", a.local_addr()?)?;\nlet (data, from) = ", $open, "async { lp.sock_recvfrom(&a, 8).await }", $close, "?;\nassert_eq!((data.as_slice(), from.as_socket()), (&b\"d\"[..], Some(a.local_addr()?)));\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub async fn sock_recvfrom(&self, sock: impl AsFd, n: usize) -> io::Result<(Vec<u8>, SockAddr)> {
            sock::recvfrom(sock, n).await
        }

        /// asyncio's `sock_sendall(sock, data)`: sends all of `data`, waiting for buffer
        /// space as needed.
        ///
        /// # Errors
        /// As [`sock_recv`](Self::sock_recv); `BrokenPipe` once the peer is gone.
        ///
        #[doc = concat!("```\nuse std::io::Read;\n", $setup, "\nlet (a, mut b) = std::os::unix::net::UnixStream::pair()?;\na.set_nonblocking(true)?;\n", $open, "async { lp.sock_sendall(&a, b\"all\").await }", $close, "?;\nlet mut buf = [0u8; 3];\nb.read_exact(&mut buf)?;\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub async fn sock_sendall(&self, sock: impl AsFd, data: &[u8]) -> io::Result<()> {
            sock::sendall(sock, data).await
        }

        /// asyncio's `sock_sendto(sock, data, address)`: one datagram; how many bytes
        /// were sent.
        ///
        /// # Errors
        /// As [`sock_recv`](Self::sock_recv).
        ///
        #[doc = concat!("```\n", $setup, "\nlet a = std::net::UdpSocket::bind(\"127.0.0.1:0\")?;\na.set_nonblocking(true)?;\nlet to = aioloop::net::SockAddr::from(a.local_addr()?);\nlet n = ", $open, "async { lp.sock_sendto(&a, b\"x\", &to).await }", $close, "?;\nassert_eq!(n, 1);\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub async fn sock_sendto(&self, sock: impl AsFd, data: &[u8], address: &SockAddr) -> io::Result<usize> {
            sock::sendto(sock, data, address).await
        }

        /// asyncio's `sock_accept(sock)`: a connection (non-blocking) and its address.
        ///
        /// # Errors
        /// As [`sock_recv`](Self::sock_recv); `EMFILE` when out of descriptors.
        ///
        #[doc = concat!("```\n", $setup, "\nlet l = std::net::TcpListener::bind(\"127.0.0.1:0\")?;\nl.set_nonblocking(true)?;\nlet c = std::net::TcpStream::connect(l.local_addr()?)?;\nlet (conn, addr) = ", $open, "async { lp.sock_accept(&l).await }", $close, "?;\nassert_eq!(addr.as_socket(), Some(c.local_addr()?));\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub async fn sock_accept(&self, sock: impl AsFd) -> io::Result<(Socket, SockAddr)> {
            sock::accept(sock).await
        }

        /// asyncio's `sock_connect(sock, address)`: starts the connect and waits for it
        /// to finish.
        ///
        /// # Errors
        /// As [`sock_recv`](Self::sock_recv); `ConnectionRefused` for a closed port.
        ///
        #[doc = concat!("```\n", $setup, "\nlet l = std::net::TcpListener::bind(\"127.0.0.1:0\")?;\nlet s = aioloop::net::Socket::new(aioloop::net::Domain::IPV4, aioloop::net::Type::STREAM, None)?;\ns.set_nonblocking(true)?;\nlet to = aioloop::net::SockAddr::from(l.local_addr()?);\n", $open, "async { lp.sock_connect(&s, &to).await }", $close, "?;\nassert_eq!(s.peer_addr()?.as_socket(), Some(l.local_addr()?));\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub async fn sock_connect(&self, sock: impl AsFd, address: &SockAddr) -> io::Result<()> {
            sock::connect(sock, address).await
        }
    };
}

impl LocalLoop {
    io_loop_api!(
        "let lp = aioloop::LocalLoop::new()?;",
        "lp.run_until_complete(",
        ")?"
    );

    /// asyncio's `add_reader(fd, callback)`: calls `cb` once per loop iteration for as
    /// long as `fd` is readable — level-triggered — until
    /// [`remove_reader`](LocalLoop::remove_reader); a second call for the same `fd`
    /// replaces the callback (rule N8). `fd`'s blocking mode is left alone. `fd` should be
    /// removed before it is closed (asyncio's contract); a watcher whose descriptor turns
    /// invalid stops.
    ///
    /// # Errors
    /// The OS error if `fd` is not open (`EBADF`) or cannot be watched (a regular file:
    /// `EPERM`); [`LoopError`](crate::LoopError)'s message as an `io::Error` on a closed
    /// loop.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    ///
    /// let lp = aioloop::LocalLoop::new()?;
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    /// let calls = Rc::new(Cell::new(0));
    /// let c = calls.clone();
    /// let reader = a.try_clone()?;
    /// lp.add_reader(&a, move || {
    ///     let mut buf = [0u8; 1];
    ///     (&reader).read_exact(&mut buf).unwrap();
    ///     c.set(c.get() + 1);
    /// })?;
    /// b.write_all(b"xy")?;
    /// while calls.get() < 2 {
    ///     lp.run_once(Some(std::time::Duration::from_secs(5)))?;
    /// }
    /// assert!(lp.remove_reader(&a));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_reader(&self, fd: impl AsFd, cb: impl FnMut() + 'static) -> io::Result<()> {
        self.add_watcher(fd, Direction::Read, cb)
    }

    /// asyncio's `add_writer(fd, callback)`: as [`add_reader`](LocalLoop::add_reader),
    /// for writability.
    ///
    /// # Errors
    /// As [`add_reader`](LocalLoop::add_reader).
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    ///
    /// let lp = aioloop::LocalLoop::new()?;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let calls = Rc::new(Cell::new(0));
    /// let c = calls.clone();
    /// lp.add_writer(&a, move || c.set(c.get() + 1))?;
    /// while calls.get() < 3 {
    ///     lp.run_once(Some(std::time::Duration::from_secs(5)))?; // writable every time
    /// }
    /// assert!(lp.remove_writer(&a));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_writer(&self, fd: impl AsFd, cb: impl FnMut() + 'static) -> io::Result<()> {
        self.add_watcher(fd, Direction::Write, cb)
    }

    fn add_watcher(
        &self,
        fd: impl AsFd,
        dir: Direction,
        cb: impl FnMut() + 'static,
    ) -> io::Result<()> {
        watch::add(self.id(), fd, dir, |w, live| {
            self.create_task(watch_loop(w, dir, live, cb))
                .map_err(|e| io::Error::other(e.to_string()))
        })
    }
}

impl Handle {
    io_loop_api!(
        "let rt = aioloop::Runtime::builder().workers(1).build()?;\nlet lp = rt.handle();",
        "rt.block_on(",
        ")"
    );

    /// asyncio's `add_reader(fd, callback)` on the runtime: calls `cb` (on some worker)
    /// once per iteration of that worker's loop for as long as `fd` is readable, until
    /// [`remove_reader`](Handle::remove_reader); a second call for the same `fd` replaces
    /// the callback (rule N8). `fd`'s blocking mode is left alone.
    ///
    /// # Errors
    /// The OS error if `fd` is not open (`EBADF`) or cannot be watched.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let reader = a.try_clone()?;
    /// rt.handle().add_reader(&a, move || {
    ///     let mut buf = [0u8; 1];
    ///     (&reader).read_exact(&mut buf).unwrap();
    ///     tx.send(buf[0]).unwrap();
    /// })?;
    /// b.write_all(b"r")?;
    /// assert_eq!(rx.recv()?, b'r');
    /// assert!(rt.handle().remove_reader(&a));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_reader(&self, fd: impl AsFd, cb: impl FnMut() + Send + 'static) -> io::Result<()> {
        self.add_watcher(fd, Direction::Read, cb)
    }

    /// asyncio's `add_writer(fd, callback)` on the runtime: as
    /// [`add_reader`](Handle::add_reader), for writability.
    ///
    /// # Errors
    /// As [`add_reader`](Handle::add_reader).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// rt.handle().add_writer(&a, move || { let _ = tx.send(()); })?;
    /// rx.recv()?;
    /// assert!(rt.handle().remove_writer(&a));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_writer(&self, fd: impl AsFd, cb: impl FnMut() + Send + 'static) -> io::Result<()> {
        self.add_watcher(fd, Direction::Write, cb)
    }

    fn add_watcher(
        &self,
        fd: impl AsFd,
        dir: Direction,
        cb: impl FnMut() + Send + 'static,
    ) -> io::Result<()> {
        watch::add(self.id(), fd, dir, |w, live| {
            Ok(self.spawn(watch_loop(w, dir, live, cb)))
        })
    }
}
