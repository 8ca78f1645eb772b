//! Many concurrent loopback connections (rules N1, N2): up to 8,000 at once on 2 workers
//! (as many as the process's descriptor limit allows with both ends in one process: the
//! soft limit is raised to the hard one first; 8,000 on the project's machine, whose limit
//! is 20,000), each echoing messages written in two parts. Its own test binary, for the
//! descriptors; the tests take turns.

use aioloop::net::{TcpListener, TcpStream};

mod common;
use common::{guarded, runtime};

/// Serves `n` connections on one listener and runs `n` clients against it, all at once;
/// every byte comes back in order.
fn echo_connections(n: usize, rounds: u8) {
    let rt = runtime(2);
    rt.block_on(async move {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = aioloop::create_task(async move {
            let mut conns = Vec::new();
            for _ in 0..n {
                let (s, _) = l.accept().await.unwrap();
                conns.push(aioloop::create_task(async move {
                    let mut buf = [0u8; 64];
                    loop {
                        let k = s.read(&mut buf).await.unwrap();
                        if k == 0 {
                            break;
                        }
                        s.write_all(&buf[..k]).await.unwrap();
                    }
                }));
            }
            for c in conns {
                c.await.unwrap();
            }
        });
        let mut clients = Vec::new();
        for i in 0..n {
            clients.push(aioloop::create_task(async move {
                let c = TcpStream::connect(addr).await.unwrap();
                for round in 0..rounds {
                    let msg: Vec<u8> = (0..100u8).map(|b| b ^ round ^ (i as u8)).collect();
                    c.write_all(&msg[..40]).await.unwrap();
                    aioloop::yield_now().await;
                    c.write_all(&msg[40..]).await.unwrap();
                    let mut back = vec![0u8; 100];
                    c.read_exact(&mut back).await.unwrap();
                    assert_eq!(back, msg);
                }
            }));
        }
        for c in clients {
            c.await.unwrap();
        }
        server.await.unwrap();
    });
}

/// One test at a time: each may use most of the descriptors.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Raises the soft descriptor limit to the hard one; how many connections fit (two
/// descriptors each, plus a margin for the runtime and the test harness), at most `want`.
fn connections_that_fit(want: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out-pointer for getrlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: a valid rlimit (soft = hard) for setrlimit. It may fail (a hard limit
    // above the kernel's `nr_open`): the limit is read back either way.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let fds = lim.rlim_cur.min(1 << 20) as usize;
    want.min(fds.saturating_sub(256) / 2)
}

/// N1, N2: 1,000 connections (fewer if the descriptor limit is lower), 3 echoed messages
/// each.
#[test]
fn n2_a_thousand_concurrent_connections() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let n = connections_that_fit(1000);
    guarded("1,000 connections", move || echo_connections(n, 3));
}

/// N1, N2: 8,000 connections at once (fewer if the descriptor limit is lower), 2 echoed
/// messages each.
#[test]
fn n2_eight_thousand_concurrent_connections() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let n = connections_that_fit(8000);
    guarded("8,000 connections", move || echo_connections(n, 2));
}
