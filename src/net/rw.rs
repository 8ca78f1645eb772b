//! The stream sockets' data system calls: the per-message path of every read and write of
//! a `TcpStream` or `UnixStream` (and their halves, streams and hyper adapters).
//!
//! On Linux they go straight to the kernel through rustix, with the socket calls rather
//! than the file ones: `recv` (the `recvfrom` system call, as tokio's reads), `send` and
//! `sendmsg` with `MSG_NOSIGNAL` (a closed peer is an `EPIPE` error, never a `SIGPIPE`:
//! `writev` would raise one). A socket call skips the file layer `read(2)`/`writev(2)`
//! go through (the file-position lookup, the permission hook, the access
//! notification). The libc wrappers the standard library calls are cancellation points that switch the
//! thread's asynchronous cancellation on and off around every call; skipping them and the
//! standard library's layers saves about a tenth of the user-space instructions of an echo
//! round trip (callgrind, README's TCP echo section). Elsewhere the standard library's
//! calls are used.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;

#[cfg(target_os = "linux")]
pub(crate) use linux::{read, read_uninit, write, write_vectored};
#[cfg(not(target_os = "linux"))]
pub(crate) use portable::{read, read_uninit, write, write_vectored};

#[cfg(target_os = "linux")]
mod linux {
    use super::*;

    /// Reads into `buf`: `recv(2)` with no flags (as `TcpStream::read`).
    pub(crate) fn read(s: &impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
        let (n, _) = rustix::net::recv(s.as_fd(), buf, rustix::net::RecvFlags::empty())?;
        Ok(n)
    }

    /// Reads into uninitialised memory; how many bytes at the front of `buf` `recv(2)`
    /// initialised.
    pub(crate) fn read_uninit(s: &impl AsFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        let ((filled, _), _) = rustix::net::recv(s.as_fd(), buf, rustix::net::RecvFlags::empty())?;
        Ok(filled.len())
    }

    /// Writes `buf` with `send(2)` and `MSG_NOSIGNAL` (as `TcpStream::write`).
    pub(crate) fn write(s: &impl AsFd, buf: &[u8]) -> io::Result<usize> {
        let flags = rustix::net::SendFlags::NOSIGNAL;
        Ok(rustix::net::send(s.as_fd(), buf, flags)?)
    }

    /// Writes `bufs` with one `sendmsg(2)` and `MSG_NOSIGNAL` (`TcpStream::write_vectored`
    /// calls `writev(2)`, which raises `SIGPIPE` on a closed peer).
    pub(crate) fn write_vectored(s: &impl AsFd, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let flags = rustix::net::SendFlags::NOSIGNAL;
        let mut control = rustix::net::SendAncillaryBuffer::default();
        Ok(rustix::net::sendmsg(s.as_fd(), bufs, &mut control, flags)?)
    }
}

#[cfg(not(target_os = "linux"))]
mod portable {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    pub(crate) fn read<S: AsFd>(s: &S, buf: &mut [u8]) -> io::Result<usize>
    where
        for<'a> &'a S: Read,
    {
        (&mut &*s).read(buf)
    }

    pub(crate) fn read_uninit(s: &impl AsFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        let fd = s.as_fd().as_raw_fd();
        // SAFETY: `buf` is `buf.len()` bytes of writable memory borrowed for this call;
        // read(2) writes at most that many into it and never reads them, so no
        // uninitialised byte is read. `fd` is `s`'s, open while `s` is borrowed.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    pub(crate) fn write<S: AsFd>(s: &S, buf: &[u8]) -> io::Result<usize>
    where
        for<'a> &'a S: Write,
    {
        (&mut &*s).write(buf)
    }

    pub(crate) fn write_vectored<S: AsFd>(s: &S, bufs: &[io::IoSlice<'_>]) -> io::Result<usize>
    where
        for<'a> &'a S: Write,
    {
        (&mut &*s).write_vectored(bufs)
    }
}
