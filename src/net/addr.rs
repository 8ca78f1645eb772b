//! Addresses for `bind`/`connect`: [`ToSocketAddrs`], whose host names are resolved on the
//! running loop's blocking pool (the default executor), as asyncio's `getaddrinfo` runs in
//! `run_in_executor`; and `getaddrinfo` itself on `LocalLoop` and `Handle`.
//!
//! Literal addresses never leave the calling thread: only a string that does not parse as
//! an IP address needs the resolver, and only that is sent to the pool (as an owned
//! string). With no running loop (a future polled by a foreign executor) the resolver runs
//! on the calling thread, as `std` does.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::event_loop::context;
use crate::{Handle, LocalLoop};

/// What a [`ToSocketAddrs`] value needs to become addresses.
#[doc(hidden)]
#[derive(Debug)]
pub enum Lookup {
    /// Already addresses.
    Ready(Vec<SocketAddr>),
    /// A host name and a port: the resolver's work.
    Host(String, u16),
}

mod sealed {
    /// Implemented only by the address types of [`super::ToSocketAddrs`].
    pub trait Sealed {
        /// The addresses, or the host name to resolve.
        fn lookup(&self) -> std::io::Result<super::Lookup>;
    }
}

/// An address to `bind` or `connect` to: the types `std::net::ToSocketAddrs` takes
/// (`SocketAddr`, `(IpAddr, u16)`, `"host:port"`, `("host", port)`, `String`, a slice of
/// addresses, and references to them), but host names are resolved on the running loop's
/// blocking pool instead of blocking the loop.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let l = rt.block_on(aioloop::net::TcpListener::bind(("localhost", 0)))?;
/// assert!(l.local_addr()?.ip().is_loopback());
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait ToSocketAddrs: sealed::Sealed {}

impl<T: sealed::Sealed + ?Sized> ToSocketAddrs for T {}

macro_rules! ready_addr {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {
            fn lookup(&self) -> io::Result<Lookup> {
                Ok(Lookup::Ready(vec![SocketAddr::from(*self)]))
            }
        }
    )*};
}
ready_addr!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16),
    ([u8; 4], u16),
    ([u16; 8], u16)
);

impl sealed::Sealed for [SocketAddr] {
    fn lookup(&self) -> io::Result<Lookup> {
        Ok(Lookup::Ready(self.to_vec()))
    }
}

impl sealed::Sealed for Vec<SocketAddr> {
    fn lookup(&self) -> io::Result<Lookup> {
        Ok(Lookup::Ready(self.clone()))
    }
}

impl sealed::Sealed for str {
    fn lookup(&self) -> io::Result<Lookup> {
        if let Ok(a) = self.parse::<SocketAddr>() {
            return Ok(Lookup::Ready(vec![a]));
        }
        // "host:port", split as std does (the port after the last colon).
        let invalid = || io::Error::new(io::ErrorKind::InvalidInput, "invalid socket address");
        let (host, port) = self.rsplit_once(':').ok_or_else(invalid)?;
        let port: u16 = port.parse().map_err(|_| invalid())?;
        (host, port).lookup()
    }
}

impl sealed::Sealed for String {
    fn lookup(&self) -> io::Result<Lookup> {
        self.as_str().lookup()
    }
}

impl sealed::Sealed for (&str, u16) {
    fn lookup(&self) -> io::Result<Lookup> {
        let (host, port) = *self;
        match host.parse::<IpAddr>() {
            Ok(ip) => Ok(Lookup::Ready(vec![SocketAddr::new(ip, port)])),
            Err(_) => Ok(Lookup::Host(host.to_owned(), port)),
        }
    }
}

impl sealed::Sealed for (String, u16) {
    fn lookup(&self) -> io::Result<Lookup> {
        (self.0.as_str(), self.1).lookup()
    }
}

impl<T: sealed::Sealed + ?Sized> sealed::Sealed for &T {
    fn lookup(&self) -> io::Result<Lookup> {
        (**self).lookup()
    }
}

/// The system resolver, blocking (what the pool runs).
fn system_lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok(std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?.collect())
}

/// Resolves `host` on the running loop's blocking pool; on the calling thread if no loop
/// runs here.
async fn lookup_host(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
    let job = context::with_current_owner(|owner| match owner {
        Some(l) => Ok(crate::executor::submit(l.blocking_pool(), move || {
            system_lookup(&host, port)
        })),
        None => Err(host),
    });
    match job {
        Ok(job) => job.await?,
        Err(host) => system_lookup(&host, port),
    }
}

/// The addresses of `addr`, host names resolved off the loop; an error if there are none.
pub(crate) async fn resolve(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    let addrs = match sealed::Sealed::lookup(&addr)? {
        Lookup::Ready(v) => v,
        Lookup::Host(host, port) => lookup_host(host, port).await?,
    };
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        ));
    }
    Ok(addrs)
}

/// Expands to `getaddrinfo` on a loop type with a `loop_ref()`.
macro_rules! getaddrinfo_api {
    ($setup:literal, $open:literal, $close:literal) => {
        /// asyncio's `loop.getaddrinfo(host, port)`, run on this loop's blocking pool: the
        /// socket addresses of `host` (a name or a literal IP address). asyncio returns
        /// `(family, type, proto, canonname, sockaddr)` tuples; this gives the `sockaddr`s,
        /// whose family is `SocketAddr::is_ipv4`/`is_ipv6`.
        ///
        /// # Errors
        /// The resolver's error (an unknown host is an `io::Error`, never a panic); an
        /// [`ExecutorError`](crate::ExecutorError) of the pool, as `io::ErrorKind::Other`.
        ///
        #[doc = concat!("```\n", $setup, "\nlet addrs = ", $open, "lp.getaddrinfo(\"localhost\", 80)", $close, "?;\nassert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));\n# Ok::<(), Box<dyn std::error::Error>>(())\n```")]
        pub async fn getaddrinfo(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
            if let Ok(ip) = host.parse::<IpAddr>() {
                return Ok(vec![SocketAddr::new(ip, port)]);
            }
            let host = host.to_owned();
            let job = crate::executor::submit(self.loop_ref().blocking_pool(), move || {
                system_lookup(&host, port)
            });
            job.await?
        }
    };
}

impl LocalLoop {
    getaddrinfo_api!(
        "let lp = aioloop::LocalLoop::new()?;",
        "lp.run_until_complete(",
        ")?"
    );
}

impl Handle {
    getaddrinfo_api!(
        "let rt = aioloop::Runtime::builder().workers(1).build()?;\nlet lp = rt.handle();",
        "rt.block_on(",
        ")"
    );
}
