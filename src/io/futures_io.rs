//! `futures-io`'s `AsyncRead` / `AsyncWrite` for [`Async`] (feature `futures-io`, on by
//! default), for every inner type whose shared reference reads and writes (sockets,
//! pipes, `File`), on the owned value and on a shared reference to it.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::Async;
use crate::event_loop::reactor::Direction;

/// The impls for `Async<T>` and `&Async<T>`: both only need `&Async<T>` (split halves
/// share one object), so one body serves both.
macro_rules! impl_futures_io {
    ($($ty:ty),*) => {$(
        impl<T: AsFd> futures_io::AsyncRead for $ty
        where
            for<'a> &'a T: Read,
        {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                let this: &Async<T> = &self;
                this.poll_io(Direction::Read, cx, || this.get_ref().read(buf))
            }
        }

        impl<T: AsFd> futures_io::AsyncWrite for $ty
        where
            for<'a> &'a T: Write,
        {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let this: &Async<T> = &self;
                this.poll_io(Direction::Write, cx, || this.get_ref().write(buf))
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let this: &Async<T> = &self;
                this.poll_io(Direction::Write, cx, || this.get_ref().flush())
            }

            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.poll_flush(cx)
            }
        }
    )*};
}

impl_futures_io!(Async<T>, &Async<T>);
