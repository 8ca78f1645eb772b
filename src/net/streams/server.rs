//! [`Server`]: what [`start_server`] and [`start_unix_server`] return — the listening
//! sockets, one accept-loop task per socket, and the count of live connections that
//! `wait_closed` waits for.

use std::future::Future;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{pair, StreamReader, StreamWriter, DEFAULT_LIMIT};
use crate::event_loop::context;
use crate::net::unix::UnixListener;
use crate::net::{SockAddr, TcpListener};
use crate::shim::atomic::{AtomicUsize, Ordering};
use crate::shim::Mutex;
use crate::sync::Event;
use crate::task::Task;
use crate::ExceptionContext;

use crate::net::ACCEPT_RETRY_DELAY;

/// A running server (asyncio's `Server`): its accept loops run as tasks on the loop that
/// started it, and each accepted connection runs the callback in a task of its own.
/// Dropping the server closes it (stops accepting; connections go on).
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let server = aioloop::net::streams::start_server(
///         |_r, w| async move { let _ = w.write(b"hi"); w.close(); },
///         "127.0.0.1",
///         0,
///     )
///     .await?;
///     assert!(server.is_serving());
///     let port = server.local_addrs()[0].as_socket().unwrap().port();
///     let (r, _w) = aioloop::net::streams::open_connection("127.0.0.1", port).await?;
///     assert_eq!(r.read(-1).await?, b"hi");
///     server.close();
///     server.wait_closed().await;
///     assert!(!server.is_serving());
///     Ok::<_, std::io::Error>(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Accept loops and connections still alive.
    active: AtomicUsize,
    /// Set by `close`.
    closed: Event,
    /// Set once closed and nothing is active.
    done: Event,
}

struct State {
    accepting: Vec<Task<()>>,
    addrs: Vec<SockAddr>,
    /// A Unix server's socket path and its inode: removed on close if still ours.
    unix_path: Option<(PathBuf, u64)>,
    is_closed: bool,
}

/// Counts one accept loop or connection as active while it lives.
pub(crate) struct Active(Arc<Shared>);

impl Active {
    fn new(shared: &Arc<Shared>) -> Active {
        shared.active.fetch_add(1, Ordering::AcqRel);
        Active(shared.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 && self.0.closed.is_set() {
            self.0.done.set();
        }
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    async fn accept(&self) -> io::Result<Box<dyn super::Conn>> {
        Ok(match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                // asyncio sets TCP_NODELAY on every TCP transport.
                s.set_nodelay(true)?;
                Box::new(s)
            }
            Listener::Unix(l) => Box::new(l.accept().await?.0),
        })
    }

    fn local_addr(&self) -> io::Result<SockAddr> {
        match self {
            Listener::Tcp(l) => socket2::SockRef::from(l).local_addr(),
            Listener::Unix(l) => socket2::SockRef::from(l).local_addr(),
        }
    }
}

/// Starts a TCP server on `host:port` (asyncio's `start_server`): every address `host`
/// resolves to is bound (port 0: each gets a free port), and `client_connected` runs in a
/// new task for each connection, with its reader and writer.
///
/// # Errors
/// The resolver's error; the bind error when no address could be bound; `Other` (no
/// running loop) outside a loop.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let server = aioloop::net::streams::start_server(
///         |r, w| async move {
///             if let Ok(data) = r.read(100).await {
///                 let _ = w.write(&data);
///             }
///         },
///         "127.0.0.1",
///         0,
///     )
///     .await?;
///     let port = server.local_addrs()[0].as_socket().unwrap().port();
///     let (r, w) = aioloop::net::streams::open_connection("127.0.0.1", port).await?;
///     w.write(b"echo")?;
///     assert_eq!(r.readexactly(4).await?, b"echo");
///     Ok::<_, Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn start_server<F, Fut>(client_connected: F, host: &str, port: u16) -> io::Result<Server>
where
    F: Fn(StreamReader, StreamWriter) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut listeners = Vec::new();
    let mut last_err = None;
    let mut addrs = crate::net::addr::resolve((host, port)).await?;
    addrs.dedup();
    for a in addrs {
        match TcpListener::bind(a).await {
            Ok(l) => listeners.push(Listener::Tcp(l)),
            Err(e) => last_err = Some(e),
        }
    }
    if listeners.is_empty() {
        return Err(last_err.unwrap_or_else(|| io::Error::other("no address to bind")));
    }
    serve(listeners, None, client_connected)
}

/// Starts a server on the Unix socket `path` (asyncio's `start_unix_server`). The
/// socket file is removed when the server closes, if it is still the one bound.
///
/// # Errors
/// The bind error (`AddrInUse` if `path` exists, …); `Other` outside a loop.
///
/// ```
/// let p = std::env::temp_dir().join(format!("aioloop-doc-{}-sus", std::process::id()));
/// let _ = std::fs::remove_file(&p);
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// rt.block_on(async {
///     let server = aioloop::net::streams::start_unix_server(
///         |r, w| async move {
///             if let Ok(line) = r.readline().await {
///                 let _ = w.write(&line);
///             }
///         },
///         &p,
///     )?;
///     let (r, w) = aioloop::net::streams::open_unix_connection(&p).await?;
///     w.write(b"hi\n")?;
///     assert_eq!(r.readline().await?, b"hi\n");
///     server.close();
///     Ok::<_, std::io::Error>(())
/// })?;
/// assert!(!p.exists());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn start_unix_server<F, Fut>(client_connected: F, path: impl AsRef<Path>) -> io::Result<Server>
where
    F: Fn(StreamReader, StreamWriter) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let path = path.as_ref();
    let listener = UnixListener::bind(path)?;
    let ino = std::fs::metadata(path)?.ino();
    serve(
        vec![Listener::Unix(listener)],
        Some((path.to_path_buf(), ino)),
        client_connected,
    )
}

fn serve<F, Fut>(
    listeners: Vec<Listener>,
    unix_path: Option<(PathBuf, u64)>,
    client_connected: F,
) -> io::Result<Server>
where
    F: Fn(StreamReader, StreamWriter) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            accepting: Vec::new(),
            addrs: listeners
                .iter()
                .filter_map(|l| l.local_addr().ok())
                .collect(),
            unix_path,
            is_closed: false,
        }),
        active: AtomicUsize::new(0),
        closed: Event::new(),
        done: Event::new(),
    });
    let server = Server {
        shared: shared.clone(),
    };
    let cb = Arc::new(client_connected);
    for l in listeners {
        let active = Active::new(&shared);
        let task = crate::task::Builder::new()
            .name("aioloop-server-accept")
            .try_spawn(accept_loop(l, cb.clone(), active))
            .map_err(|e| io::Error::other(e.to_string()))?;
        shared.state.lock().accepting.push(task);
    }
    Ok(server)
}

/// A listening socket and its count in the server: the socket closes before the count
/// drops (fields drop in order), so `wait_closed` returns only once nothing listens.
struct Accepting {
    listener: Listener,
    active: Active,
}

async fn accept_loop<F, Fut>(listener: Listener, cb: Arc<F>, active: Active)
where
    F: Fn(StreamReader, StreamWriter) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let acc = Accepting { listener, active };
    loop {
        // Out-of-resources errors are reported and waited out inside (net/serve.rs).
        match crate::net::serve::accept_retrying(|| acc.listener.accept()).await {
            Ok(sock) => {
                let (r, w) = pair(sock, DEFAULT_LIMIT, Some(Active::new(&acc.active.0)));
                // Inside a task there is always a loop to spawn on.
                let _ = crate::task::Builder::new().try_spawn(cb(r, w));
            }
            Err(e) if is_transient(&e) => {}
            Err(e) => {
                let mut ctx = ExceptionContext::new("Error on accepting a connection");
                ctx.error = Some(Arc::new(e));
                if let Some(owner) = context::current_owner() {
                    owner.call_exception_handler(ctx);
                }
                crate::sleep(ACCEPT_RETRY_DELAY).await;
            }
        }
    }
}

/// What the accept loop retries at once. (A connection aborted before it was accepted is
/// skipped inside `accept_retrying` already.)
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    )
}

impl Server {
    /// Stops accepting: the accept loops are cancelled, which closes the listening
    /// sockets, and a Unix server's socket file is removed (asyncio's `close`).
    /// Connections already accepted go on. A second call does nothing.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let server = aioloop::net::streams::start_server(|_r, _w| async {}, "127.0.0.1", 0).await?;
    ///     server.close();
    ///     server.close();
    ///     assert!(!server.is_serving());
    ///     server.wait_closed().await;
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(&self) {
        let mut st = self.shared.state.lock();
        if st.is_closed {
            return;
        }
        st.is_closed = true;
        for t in st.accepting.drain(..) {
            t.cancel(None);
        }
        if let Some((path, ino)) = st.unix_path.take() {
            if std::fs::metadata(&path).is_ok_and(|m| m.ino() == ino) {
                let _ = std::fs::remove_file(&path);
            }
        }
        drop(st);
        self.shared.closed.set();
        if self.shared.active.load(Ordering::Acquire) == 0 {
            self.shared.done.set();
        }
    }

    /// Whether the server accepts connections (asyncio's `is_serving`).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let server = aioloop::net::streams::start_server(|_r, _w| async {}, "127.0.0.1", 0).await?;
    ///     assert!(server.is_serving());
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_serving(&self) -> bool {
        !self.shared.state.lock().is_closed
    }

    /// The addresses the server listens on (asyncio's `[s.getsockname() for s in
    /// server.sockets]`).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let server = aioloop::net::streams::start_server(|_r, _w| async {}, "127.0.0.1", 0).await?;
    ///     assert_ne!(server.local_addrs()[0].as_socket().unwrap().port(), 0);
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addrs(&self) -> Vec<SockAddr> {
        self.shared.state.lock().addrs.clone()
    }

    /// Waits until the server is closed and every connection it accepted is gone (its
    /// reader and writer dropped) (asyncio's `wait_closed`, Python 3.12+).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let server = aioloop::net::streams::start_server(|_r, _w| async {}, "127.0.0.1", 0).await?;
    ///     server.close();
    ///     server.wait_closed().await;
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn wait_closed(&self) {
        self.shared.done.wait().await;
    }

    /// Serves until the server is closed (asyncio's `serve_forever`). If this future is
    /// dropped (its task cancelled), the server closes.
    ///
    /// # Errors
    /// `Other` ("Server is closed") if it was closed already.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let server = std::sync::Arc::new(
    ///         aioloop::net::streams::start_server(|_r, _w| async {}, "127.0.0.1", 0).await?,
    ///     );
    ///     let s2 = server.clone();
    ///     let forever = aioloop::create_task(async move { s2.serve_forever().await });
    ///     aioloop::sleep(std::time::Duration::from_millis(10)).await;
    ///     forever.cancel(None);
    ///     let _ = forever.await;
    ///     assert!(!server.is_serving());
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn serve_forever(&self) -> io::Result<()> {
        if !self.is_serving() {
            return Err(io::Error::other("Server is closed"));
        }
        struct CloseOnDrop<'a>(&'a Server);
        impl Drop for CloseOnDrop<'_> {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let _guard = CloseOnDrop(self);
        self.shared.closed.wait().await;
        Ok(())
    }

    /// Runs `body`, then closes the server and waits until it is closed: asyncio's
    /// `async with server: ...`.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// rt.block_on(async {
    ///     let server = aioloop::net::streams::start_server(|_r, _w| async {}, "127.0.0.1", 0).await?;
    ///     let port = server.local_addrs()[0].as_socket().unwrap().port();
    ///     server.scope(async {
    ///         let (_r, w) = aioloop::net::streams::open_connection("127.0.0.1", port).await?;
    ///         w.close();
    ///         Ok::<_, std::io::Error>(())
    ///     }).await?;
    ///     assert!(!server.is_serving());
    ///     Ok::<_, std::io::Error>(())
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn scope<T>(&self, body: impl Future<Output = T>) -> T {
        let out = body.await;
        self.close();
        self.wait_closed().await;
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared.state.lock();
        f.debug_struct("Server")
            .field("addrs", &st.addrs)
            .field("closed", &st.is_closed)
            .field("active", &self.shared.active.load(Ordering::Relaxed))
            .finish()
    }
}
