//! The echo servers of `benches/net.rs` and `benches/echo_instr.rs`: one task per
//! connection that writes back what it reads, on aioloop and on tokio — the same source
//! for both (one macro), so the runtimes run the same program.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The accept loop and the per-connection echo task, for a runtime's listener type,
/// `spawn` function and runtime handle.
macro_rules! echo_server {
    ($rt:expr, $listener:ty, $spawn:path) => {{
        let listener = $rt
            .block_on(<$listener>::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        $rt.spawn(async move {
            loop {
                // aioloop's streams read and write through `&self`, tokio's need `&mut`.
                #[allow(unused_mut)]
                let Ok((mut conn, _)) = listener.accept().await
                else {
                    return;
                };
                conn.set_nodelay(true).expect("nodelay");
                $spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if conn.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }};
}

/// Starts the aioloop echo server on a 1-worker runtime; its address.
pub fn aioloop_server(rt: &aioloop::Runtime) -> SocketAddr {
    echo_server!(rt, aioloop::net::TcpListener, aioloop::create_task)
}

/// Starts the tokio echo server on a 1-worker multi-thread runtime; its address.
pub fn tokio_server(rt: &tokio::runtime::Runtime) -> SocketAddr {
    echo_server!(rt, tokio::net::TcpListener, tokio::spawn)
}
