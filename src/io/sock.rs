//! asyncio's `sock_*` loop methods on raw sockets (`sock_recv`, `sock_recv_into`,
//! `sock_recvfrom`, `sock_sendall`, `sock_sendto`, `sock_accept`, `sock_connect`): the
//! system call first, a wait only on `EWOULDBLOCK` (rule N1). As in asyncio the socket
//! must be non-blocking; a blocking one is refused with asyncio's message instead of
//! stalling the loop. A wait registers a duplicate of the descriptor (`io::watch`), so the
//! socket may also be wrapped in an [`Async`](super::Async) elsewhere.

use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use socket2::{SockAddr, SockRef, Socket};

use super::watch::watch_copy;
use crate::event_loop::reactor::Direction;

/// asyncio: `ValueError("the socket must be non-blocking")`.
fn require_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `fcntl(F_GETFL)` on a descriptor the borrow keeps open; no memory passed.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the socket must be non-blocking",
        ));
    }
    Ok(())
}

/// `op` now; on `EWOULDBLOCK`, again each time `fd` turns ready in `dir`.
async fn retry<R>(
    fd: BorrowedFd<'_>,
    dir: Direction,
    mut op: impl FnMut() -> io::Result<R>,
) -> io::Result<R> {
    require_nonblocking(fd)?;
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
    let w = watch_copy(fd)?;
    poll_fn(|cx| w.poll_io(dir, cx, &mut op)).await
}

pub(crate) async fn recv_into(sock: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    let fd = sock.as_fd();
    let s = SockRef::from(&fd);
    retry(fd, Direction::Read, || (&*s).read(buf)).await
}

pub(crate) async fn recv(sock: impl AsFd, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let got = recv_into(sock, &mut buf).await?;
    buf.truncate(got);
    Ok(buf)
}

pub(crate) async fn recvfrom(sock: impl AsFd, n: usize) -> io::Result<(Vec<u8>, SockAddr)> {
    let fd = sock.as_fd();
    let s = SockRef::from(&fd);
    let mut buf = vec![0u8; n];
    let (got, addr) = retry(fd, Direction::Read, || {
        // SAFETY: `buf` is initialised bytes viewed as `MaybeUninit<u8>` (same layout);
        // `recv_from` only stores received, initialised bytes into it, so it stays
        // initialised.
        let uninit = unsafe { &mut *(buf.as_mut_slice() as *mut [u8] as *mut [MaybeUninit<u8>]) };
        s.recv_from(uninit)
    })
    .await?;
    buf.truncate(got);
    Ok((buf, addr))
}

pub(crate) async fn sendall(sock: impl AsFd, mut data: &[u8]) -> io::Result<()> {
    let fd = sock.as_fd();
    let s = SockRef::from(&fd);
    while !data.is_empty() {
        match retry(fd, Direction::Write, || (&*s).write(data)).await? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => data = &data[n..],
        }
    }
    Ok(())
}

pub(crate) async fn sendto(sock: impl AsFd, data: &[u8], addr: &SockAddr) -> io::Result<usize> {
    let fd = sock.as_fd();
    let s = SockRef::from(&fd);
    retry(fd, Direction::Write, || s.send_to(data, addr)).await
}

pub(crate) async fn accept(sock: impl AsFd) -> io::Result<(Socket, SockAddr)> {
    let fd = sock.as_fd();
    let s = SockRef::from(&fd);
    let (conn, addr) = retry(fd, Direction::Read, || s.accept()).await?;
    // asyncio's `sock_accept` hands back a non-blocking connection.
    conn.set_nonblocking(true)?;
    Ok((conn, addr))
}

pub(crate) async fn connect(sock: impl AsFd, addr: &SockAddr) -> io::Result<()> {
    let fd = sock.as_fd();
    require_nonblocking(fd)?;
    let s = SockRef::from(&fd);
    loop {
        match s.connect(addr) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let w = watch_copy(fd)?;
    w.writable().await?;
    match s.take_error()? {
        Some(e) => Err(e),
        None => s.peer_addr().map(drop),
    }
}
