//! [`Signal`]: a stream of one signal's deliveries, waited on by the loop that polls it.

use std::future::poll_fn;
use std::io;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::pipe::{drain, Registration};
use super::SignalError;
use crate::event_loop::reactor::Direction;
use crate::io::Async;

/// A signal number, with names for the usual ones.
///
/// ```
/// use aioloop::signal::SignalKind;
/// assert_eq!(SignalKind::terminate().as_raw(), libc::SIGTERM);
/// assert_eq!(SignalKind::from_raw(libc::SIGWINCH), SignalKind::window_change());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalKind(i32);

impl SignalKind {
    /// Any signal number (checked when listened for).
    ///
    /// ```
    /// assert_eq!(aioloop::signal::SignalKind::from_raw(10).as_raw(), 10);
    /// ```
    pub const fn from_raw(signum: i32) -> SignalKind {
        SignalKind(signum)
    }

    /// The signal number.
    ///
    /// ```
    /// assert_eq!(aioloop::signal::SignalKind::interrupt().as_raw(), libc::SIGINT);
    /// ```
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// `SIGINT` (Ctrl-C).
    ///
    /// ```
    /// assert_eq!(aioloop::signal::SignalKind::interrupt().as_raw(), libc::SIGINT);
    /// ```
    pub const fn interrupt() -> SignalKind {
        SignalKind(libc::SIGINT)
    }

    /// `SIGTERM`.
    ///
    /// ```
    /// assert_eq!(aioloop::signal::SignalKind::terminate().as_raw(), libc::SIGTERM);
    /// ```
    pub const fn terminate() -> SignalKind {
        SignalKind(libc::SIGTERM)
    }

    /// `SIGHUP`.
    ///
    /// ```
    /// assert_eq!(aioloop::signal::SignalKind::hangup().as_raw(), libc::SIGHUP);
    /// ```
    pub const fn hangup() -> SignalKind {
        SignalKind(libc::SIGHUP)
    }

    /// `SIGQUIT`.
    ///
    /// ```
    /// assert_eq!(aioloop::signal::SignalKind::quit().as_raw(), libc::SIGQUIT);
    /// ```
    pub const fn quit() -> SignalKind {
        SignalKind(libc::SIGQUIT)
    }

    /// `SIGUSR1`.
    ///
    /// ```
    /// assert_eq!(aioloop::signal::SignalKind::user_defined1().as_raw(), libc::SIGUSR1);
    /// ```
    pub const fn user_defined1() -> SignalKind {
        SignalKind(libc::SIGUSR1)
    }

    /// `SIGUSR2`.
    ///
    /// ```
    /// assert_eq!(aioloop::signal::SignalKind::user_defined2().as_raw(), libc::SIGUSR2);
    /// ```
    pub const fn user_defined2() -> SignalKind {
        SignalKind(libc::SIGUSR2)
    }

    /// `SIGWINCH` (terminal resized).
    ///
    /// ```
    /// assert_eq!(aioloop::signal::SignalKind::window_change().as_raw(), libc::SIGWINCH);
    /// ```
    pub const fn window_change() -> SignalKind {
        SignalKind(libc::SIGWINCH)
    }

    /// `SIGCHLD`.
    ///
    /// ```
    /// assert_eq!(aioloop::signal::SignalKind::child().as_raw(), libc::SIGCHLD);
    /// ```
    pub const fn child() -> SignalKind {
        SignalKind(libc::SIGCHLD)
    }

    /// `SIGALRM`.
    ///
    /// ```
    /// assert_eq!(aioloop::signal::SignalKind::alarm().as_raw(), libc::SIGALRM);
    /// ```
    pub const fn alarm() -> SignalKind {
        SignalKind(libc::SIGALRM)
    }

    /// `SIGPIPE`.
    ///
    /// ```
    /// assert_eq!(aioloop::signal::SignalKind::pipe().as_raw(), libc::SIGPIPE);
    /// ```
    pub const fn pipe() -> SignalKind {
        SignalKind(libc::SIGPIPE)
    }
}

/// A listener for one signal, from [`signal`]: each [`recv`](Signal::recv) waits for the
/// next delivery (deliveries since the last `recv` coalesce into one). Listening starts
/// when it is created; dropping it stops listening. It waits on whichever loop polls it.
/// Also a `futures_core::Stream` of deliveries.
///
/// ```no_run
/// use aioloop::signal::{signal, SignalKind};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let mut hup = signal(SignalKind::hangup())?;
///     loop {
///         hup.recv().await?; // kill -HUP <pid>
///         println!("reloading the configuration");
///     }
/// })
/// # }
/// ```
pub struct Signal {
    // Dropped first: the source leaves the reactor before the registration goes.
    io: Async<UnixStream>,
    _reg: Registration,
    kind: SignalKind,
}

/// Starts listening for `kind` (tokio's `signal::unix::signal`).
///
/// # Errors
/// [`SignalError::OutOfRange`] for a number that is not a signal,
/// [`SignalError::CannotCatch`] for `SIGKILL`, `SIGSTOP` and the synchronous fault signals,
/// [`SignalError::Io`] if the OS refuses.
///
/// ```
/// use aioloop::signal::{signal, SignalKind};
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let got = rt.block_on(async {
///     let mut usr1 = signal(SignalKind::user_defined1())?;
///     // SAFETY: raising a signal this process handles (listening since the line above).
///     unsafe { libc::raise(libc::SIGUSR1) };
///     usr1.recv().await?;
///     Ok::<_, Box<dyn std::error::Error>>(usr1.kind())
/// });
/// assert_eq!(got.unwrap(), SignalKind::user_defined1());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn signal(kind: SignalKind) -> Result<Signal, SignalError> {
    let (reg, read_end) = Registration::new(kind.as_raw())?;
    let io = Async::new(read_end).map_err(SignalError::Io)?;
    Ok(Signal {
        io,
        _reg: reg,
        kind,
    })
}

impl Signal {
    /// Waits for the next delivery of the signal.
    ///
    /// # Errors
    /// Only if the reactor fails to watch the listener's socket.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let mut winch = aioloop::signal::signal(aioloop::signal::SignalKind::window_change())?;
    ///     // SAFETY: raising a signal this process handles.
    ///     unsafe { libc::raise(libc::SIGWINCH) };
    ///     winch.recv().await?;
    ///     Ok::<_, Box<dyn std::error::Error>>(())
    /// }).unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn recv(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The poll form of [`recv`](Signal::recv).
    ///
    /// # Errors
    /// As [`recv`](Signal::recv).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let mut s = aioloop::signal::signal(aioloop::signal::SignalKind::user_defined2())?;
    ///     // Nothing delivered yet: pending.
    ///     let first = std::future::poll_fn(|cx| std::task::Poll::Ready(s.poll_recv(cx).is_pending())).await;
    ///     assert!(first);
    ///     Ok::<_, Box<dyn std::error::Error>>(())
    /// }).unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let io = &self.io;
        io.poll_io(Direction::Read, cx, || drain(io.get_ref()).map(|_| ()))
    }

    /// Which signal this listens for.
    ///
    /// ```
    /// use aioloop::signal::{signal, SignalKind};
    /// assert_eq!(signal(SignalKind::hangup())?.kind(), SignalKind::hangup());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kind(&self) -> SignalKind {
        self.kind
    }
}

impl futures_core::Stream for Signal {
    type Item = io::Result<()>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<()>>> {
        self.get_mut().poll_recv(cx).map(Some)
    }
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signal").field("kind", &self.kind).finish()
    }
}

/// Waits for Ctrl-C (`SIGINT`), as tokio's `signal::ctrl_c`. Listening starts at the first
/// poll; once it has, `SIGINT` no longer ends the process (see the [module](crate::signal) docs).
///
/// # Errors
/// As [`signal`], converted (`InvalidInput` for a signal that cannot be handled).
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     aioloop::signal::ctrl_c().await?;
///     println!("shutting down");
///     Ok(())
/// })
/// # }
/// ```
pub async fn ctrl_c() -> io::Result<()> {
    signal(SignalKind::interrupt())?.recv().await
}
