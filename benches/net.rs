//! TCP echo: an aioloop server against a tokio server, in one run (issue 11, item 11).
//!
//! | group | aioloop | tokio |
//! |---|---|---|
//! | `echo_50x64B` | 1-worker `Runtime`: accept loop + one task per connection, `read`/`write_all` | 1-worker multi-thread tokio runtime, the same server with `tokio::net` |
//! | `echo_50x1KiB` | the same with 1 KiB messages | the same with 1 KiB messages |
//!
//! The client is the same for both servers: a tokio current-thread runtime on the bench
//! thread with 50 connections (made once per server, before any timing), each running
//! `iters` round trips of one message (`write_all` then `read_exact`) concurrently. One
//! criterion element is one round trip, so the throughput column is round trips per
//! second. Both servers run in the same process for the whole run; criterion measures
//! aioloop, then tokio, per group, so run the bench several times for A/B alternation and
//! take the median ratio (`python3 benches/report.py`). Nothing is pinned to a core (the
//! machine is shared).
//!
//! Wall-clock throughput on a shared machine is noisy, so after the criterion groups the
//! bench also prints the **server thread's CPU time per round trip** (from
//! `/proc/self/task/<tid>/schedstat`, the thread found by name), over alternating rounds
//! of 100,000 round trips: a figure other processes' load barely moves.
//!
//! Run with `cargo bench -p aioloop-benches --bench net -- --warm-up-time 1
//! --measurement-time 3`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{criterion_config, tokio_current_thread};

/// Client connections per server.
const CONNECTIONS: usize = 50;

/// Starts the aioloop echo server on a 1-worker runtime; its address.
fn aioloop_server(rt: &aioloop::Runtime) -> SocketAddr {
    let listener = rt
        .block_on(aioloop::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    rt.spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            conn.set_nodelay(true).expect("nodelay");
            aioloop::create_task(async move {
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
}

/// Starts the tokio echo server on a 1-worker multi-thread runtime; its address.
fn tokio_server(rt: &tokio::runtime::Runtime) -> SocketAddr {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    rt.spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            conn.set_nodelay(true).expect("nodelay");
            tokio::spawn(async move {
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
}

/// The client side: `CONNECTIONS` connections to `addr`, driven by `client`.
struct Clients {
    conns: Vec<tokio::net::TcpStream>,
}

impl Clients {
    fn connect(client: &tokio::runtime::Runtime, addr: SocketAddr) -> Clients {
        let conns = client.block_on(async {
            let mut v = Vec::new();
            for _ in 0..CONNECTIONS {
                let c = tokio::net::TcpStream::connect(addr).await.expect("connect");
                c.set_nodelay(true).expect("nodelay");
                v.push(c);
            }
            v
        });
        Clients { conns }
    }

    /// Every connection does `iters` round trips of `size` bytes, all concurrently.
    fn run(&mut self, client: &tokio::runtime::Runtime, iters: u64, size: usize) -> Duration {
        let conns = std::mem::take(&mut self.conns);
        let (back, took) = client.block_on(async move {
            let start = Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for (i, mut c) in conns.into_iter().enumerate() {
                set.spawn(async move {
                    let msg = vec![i as u8; size];
                    let mut buf = vec![0u8; size];
                    for _ in 0..iters {
                        c.write_all(&msg).await.expect("write");
                        c.read_exact(&mut buf).await.expect("read");
                    }
                    c
                });
            }
            let mut back = Vec::new();
            while let Some(c) = set.join_next().await {
                back.push(c.expect("client task"));
            }
            (back, start.elapsed())
        });
        self.conns = back;
        took
    }
}

fn echo(c: &mut Criterion) {
    let aio = aioloop::Runtime::builder()
        .workers(1)
        .build()
        .expect("aioloop runtime");
    let tok = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = tokio_current_thread();
    let mut aio_clients = Clients::connect(&client, aioloop_server(&aio));
    let mut tok_clients = Clients::connect(&client, tokio_server(&tok));

    for (name, size) in [("echo_50x64B", 64), ("echo_50x1KiB", 1024)] {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(CONNECTIONS as u64));
        g.bench_function("aioloop", |b| {
            b.iter_custom(|iters| aio_clients.run(&client, iters, size))
        });
        g.bench_function("tokio", |b| {
            b.iter_custom(|iters| tok_clients.run(&client, iters, size))
        });
        g.finish();
    }
}

/// Nanoseconds the thread named `name` of this process has run (its schedstat).
fn thread_cpu_ns(name: &str) -> u64 {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let dir = task.expect("task entry").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            let stat = std::fs::read_to_string(dir.join("schedstat")).expect("schedstat");
            let ns = stat.split_whitespace().next().expect("runtime field");
            return ns.parse().expect("a number");
        }
        names.push(comm.trim_end().to_owned());
    }
    panic!("no thread named {name} among {names:?}")
}

/// The server thread's CPU time per round trip, aioloop and tokio alternating.
fn server_cpu_per_round_trip() {
    let aio = aioloop::Runtime::builder()
        .workers(1)
        .thread_name("aio-echo")
        .build()
        .expect("aioloop runtime");
    let tok = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name_fn(|| {
            // The worker is the runtime's first thread; blocking threads come later.
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            format!(
                "tok-echo-{}",
                N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            )
        })
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = tokio_current_thread();
    let mut a = Clients::connect(&client, aioloop_server(&aio));
    let mut t = Clients::connect(&client, tokio_server(&tok));
    let aio_thread = "aio-echo-0";
    const ITERS: u64 = 2000;
    let n = (ITERS * CONNECTIONS as u64) as f64;
    println!("server CPU per round trip (ns), alternating rounds of {n} round trips:");
    for size in [64, 1024] {
        let mut ratios = Vec::new();
        for round in 0..5 {
            let a0 = thread_cpu_ns(aio_thread);
            a.run(&client, ITERS, size);
            let a_ns = (thread_cpu_ns(aio_thread) - a0) as f64 / n;
            let t0 = thread_cpu_ns("tok-echo-0");
            t.run(&client, ITERS, size);
            let t_ns = (thread_cpu_ns("tok-echo-0") - t0) as f64 / n;
            ratios.push(t_ns / a_ns);
            println!("  {size:>5} B round {round}: aioloop {a_ns:.0}  tokio {t_ns:.0}");
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "  {size:>5} B: median tokio/aioloop CPU ratio {:.2} (>1: aioloop's server is cheaper)",
            ratios[ratios.len() / 2]
        );
    }
}

criterion_group! {
    name = benches;
    config = criterion_config(Duration::from_secs(1), Duration::from_secs(3));
    targets = echo
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // A measurement, not a smoke test: only under `cargo bench` (which passes `--bench`), not
    // in `cargo test --benches`' single unmeasured pass.
    if std::env::args().any(|a| a == "--bench") {
        server_cpu_per_round_trip();
    }
}
