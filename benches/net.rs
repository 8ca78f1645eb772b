//! TCP echo: an aioloop server against a tokio server and a raw epoll loop, in one run
//! (issue 11, item 11).
//!
//! | group | aioloop | tokio | raw_epoll (the ceiling) |
//! |---|---|---|---|
//! | `echo_50x64B` | 1-worker `Runtime`: accept loop + one task per connection, `read`/`write_all` | 1-worker multi-thread tokio runtime, the same server with `tokio::net` | one thread, level-triggered `epoll_wait` → `read` → `write`, no runtime |
//! | `echo_50x1KiB` | the same with 1 KiB messages | the same with 1 KiB messages | the same |
//!
//! The client is the same for every server: a tokio current-thread runtime on the bench
//! thread with 50 connections (made once per server, before any timing), each running
//! `iters` round trips of one message (`write_all` then `read_exact`) concurrently. One
//! criterion element is one round trip, so the throughput column is round trips per
//! second. All servers run in the same process for the whole run; criterion measures
//! them one after the other per group. Nothing is pinned to a core in criterion's groups.
//!
//! Wall-clock throughput on a shared machine is noisy, so after the criterion groups the
//! bench runs **alternating rounds** (aioloop, tokio, raw, in a rotating order) of 100,000
//! round trips each — with every server thread pinned to CPU 0 and the client (the bench
//! thread) to CPU 1 when the machine has two CPUs or more, as `benches/hyper.sh` pins its
//! servers and `wrk` — and prints, per round and as medians: round trips per second, the
//! server thread's **CPU time per round trip** (from `/proc/self/task/<tid>/schedstat`, the
//! thread found by name: a figure other processes' load barely moves) and, when `perf` can
//! count the `raw_syscalls:sys_enter` tracepoint for one thread, the server thread's
//! **system calls per round trip**.
//!
//! Run with `cargo bench -p aioloop-benches --bench net -- --warm-up-time 1
//! --measurement-time 3`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{criterion_config, tokio_current_thread};
#[path = "common/echo.rs"]
mod echo;
use echo::{aioloop_server, tokio_server};

/// Client connections per server.
const CONNECTIONS: usize = 50;

/// Starts the ceiling: a single-threaded, level-triggered epoll echo loop with no runtime
/// (one `epoll_wait` per batch of ready connections, then one `read` and one `write` per
/// message) on a thread named `thread`; its address.
fn raw_epoll_server(thread: &str) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("address");
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || raw_echo_loop(listener))
        .expect("spawn the raw epoll server");
    addr
}

/// `epoll_ctl(ADD)` for readability, level-triggered, keyed by the descriptor.
fn epoll_add(ep: RawFd, fd: RawFd) {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: fd as u64,
    };
    // SAFETY: `ep` is an epoll descriptor and `fd` an open socket, both owned by the
    // calling loop; `ev` outlives the call.
    let r = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) };
    assert_eq!(r, 0, "epoll_ctl(ADD): {}", std::io::Error::last_os_error());
}

fn raw_echo_loop(listener: std::net::TcpListener) {
    use std::io::{ErrorKind, Read, Write};
    // SAFETY: epoll_create1 takes no pointers.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(
        ep >= 0,
        "epoll_create1: {}",
        std::io::Error::last_os_error()
    );
    let lfd = listener.as_raw_fd();
    epoll_add(ep, lfd);
    let mut conns: HashMap<RawFd, std::net::TcpStream> = HashMap::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: `events` holds `events.len()` writable entries for the kernel to fill.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        for ev in &events[..n.max(0) as usize] {
            let fd = ev.u64 as RawFd;
            if fd == lfd {
                while let Ok((s, _)) = listener.accept() {
                    s.set_nonblocking(true).expect("nonblocking");
                    s.set_nodelay(true).expect("nodelay");
                    epoll_add(ep, s.as_raw_fd());
                    conns.insert(s.as_raw_fd(), s);
                }
                continue;
            }
            let Some(mut s) = conns.get(&fd) else {
                continue;
            };
            let n = match s.read(&mut buf) {
                Ok(0) => 0,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(_) => 0,
            };
            // Small echoes on loopback never fill the socket buffer: a `WouldBlock` here
            // would only spin until it drains.
            let mut done = 0;
            while n > 0 && done < n {
                match s.write(&buf[done..n]) {
                    Ok(w) => done += w,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            if n == 0 || done < n {
                // The peer left (or failed): closing removes it from the epoll set.
                conns.remove(&fd);
            }
        }
    }
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
    let mut raw_clients = Clients::connect(&client, raw_epoll_server("raw-echo-bench"));

    for (name, size) in [("echo_50x64B", 64), ("echo_50x1KiB", 1024)] {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(CONNECTIONS as u64));
        g.bench_function("aioloop", |b| {
            b.iter_custom(|iters| aio_clients.run(&client, iters, size))
        });
        g.bench_function("tokio", |b| {
            b.iter_custom(|iters| tok_clients.run(&client, iters, size))
        });
        g.bench_function("raw_epoll", |b| {
            b.iter_custom(|iters| raw_clients.run(&client, iters, size))
        });
        g.finish();
    }
}

/// The id of this process's thread named `name`. A thread names itself once it runs, so a
/// runtime's worker may still carry the process's name just after the runtime was built:
/// look again for up to two seconds.
fn thread_id(name: &str) -> u32 {
    let mut names = Vec::new();
    for _ in 0..200 {
        names.clear();
        for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
            let dir = task.expect("task entry").path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim_end() == name {
                let tid = dir.file_name().expect("tid").to_string_lossy().into_owned();
                return tid.parse().expect("a thread id");
            }
            names.push(comm.trim_end().to_owned());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no thread named {name} among {names:?}")
}

/// Pins thread `tid` of this process (0: the calling thread) to CPU `cpu`; false if the
/// machine refuses (fewer CPUs, a restricted cpuset).
fn pin_thread(tid: u32, cpu: usize) -> bool {
    // SAFETY: a zeroed `cpu_set_t` is the empty set; CPU_SET writes inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked by the caller's `available_parallelism`).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; `tid` names one of our threads.
    unsafe { libc::sched_setaffinity(tid as libc::pid_t, std::mem::size_of_val(&set), &set) == 0 }
}

/// Nanoseconds thread `tid` of this process has run (its schedstat).
fn thread_cpu_ns(tid: u32) -> u64 {
    let stat =
        std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).expect("schedstat");
    let ns = stat.split_whitespace().next().expect("runtime field");
    ns.parse().expect("a number")
}

/// Counts the system calls thread `tid` makes while it lives: `perf stat` on the
/// `raw_syscalls:sys_enter` tracepoint, stopped with SIGINT. `None` if perf is missing
/// or may not trace.
struct SyscallCounter(std::process::Child);

impl SyscallCounter {
    fn start(tid: u32) -> Option<SyscallCounter> {
        let child = std::process::Command::new("perf")
            .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "-t"])
            .arg(tid.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        // perf attaches asynchronously; the server is idle meanwhile.
        std::thread::sleep(Duration::from_millis(300));
        Some(SyscallCounter(child))
    }

    fn stop(self) -> Option<u64> {
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let out = self.0.wait_with_output().ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        text.lines()
            .find(|l| l.contains("raw_syscalls:sys_enter"))
            .and_then(|l| l.split(',').next())
            .and_then(|n| n.trim().parse().ok())
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One server under test in the alternating rounds.
struct Server {
    name: &'static str,
    tid: u32,
    clients: Clients,
    rts: Vec<f64>,
    cpu: Vec<f64>,
}

/// Alternating rounds: round trips/s, the server thread's CPU time and system calls per
/// round trip, for aioloop, tokio and the raw epoll loop.
fn server_costs() {
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
    let mut servers = [
        ("aioloop", aioloop_server(&aio), "aio-echo-0"),
        ("tokio", tokio_server(&tok), "tok-echo-0"),
        ("raw_epoll", raw_epoll_server("raw-echo"), "raw-echo"),
    ]
    .map(|(name, addr, thread)| Server {
        name,
        tid: thread_id(thread),
        clients: Clients::connect(&client, addr),
        rts: Vec::new(),
        cpu: Vec::new(),
    });
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinned = cpus >= 2 && servers.iter().all(|s| pin_thread(s.tid, 0)) && pin_thread(0, 1);
    println!(
        "{}",
        if pinned {
            "server threads pinned to CPU 0, the client to CPU 1"
        } else {
            "not pinned (one CPU, or the affinity was refused)"
        }
    );
    const ITERS: u64 = 2000;
    const ROUNDS: usize = 5;
    let n = (ITERS * CONNECTIONS as u64) as f64;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "alternating rounds of {n} round trips (server thread: CPU ns and syscalls per round \
         trip); load average {}:",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for size in [64, 1024] {
        for s in servers.iter_mut() {
            s.rts.clear();
            s.cpu.clear();
        }
        for round in 0..ROUNDS {
            let mut line = format!("  {size:>5} B round {round}:");
            for k in 0..servers.len() {
                let s = &mut servers[(round + k) % 3];
                let c0 = thread_cpu_ns(s.tid);
                let took = s.clients.run(&client, ITERS, size);
                s.cpu.push((thread_cpu_ns(s.tid) - c0) as f64 / n);
                s.rts.push(n / took.as_secs_f64());
            }
            for s in &servers {
                line += &format!(
                    "  {} {:.0}/s {:.0} ns",
                    s.name,
                    s.rts.last().expect("a round"),
                    s.cpu.last().expect("a round")
                );
            }
            println!("{line}");
        }
        // The client's system calls too: a server that answers sooner or in bigger
        // batches changes how often the shared client finds a reply waiting (no
        // `EWOULDBLOCK` read, no `epoll_wait`), which is what moves round trips/s here.
        // SAFETY: gettid takes no arguments and cannot fail.
        let me = unsafe { libc::gettid() } as u32;
        let (mut sys, mut csys) = (Vec::new(), Vec::new());
        for s in servers.iter_mut() {
            let server = SyscallCounter::start(s.tid);
            let mine = SyscallCounter::start(me);
            s.clients.run(&client, ITERS, size);
            csys.push(mine.and_then(SyscallCounter::stop).map(|c| c as f64 / n));
            sys.push(server.and_then(SyscallCounter::stop).map(|c| c as f64 / n));
        }
        let [a, t, r] = &mut servers;
        let ratio = |x: &[f64], y: &[f64]| {
            let mut v: Vec<f64> = x.iter().zip(y).map(|(a, b)| a / b).collect();
            median(&mut v)
        };
        println!(
            "  {size:>5} B medians: round trips/s aioloop {:.0}, tokio {:.0}, raw {:.0}; \
             aioloop/tokio {:.3}, aioloop/raw {:.3}, tokio/raw {:.3} (median of round ratios)",
            median(&mut a.rts.clone()),
            median(&mut t.rts.clone()),
            median(&mut r.rts.clone()),
            ratio(&a.rts, &t.rts),
            ratio(&a.rts, &r.rts),
            ratio(&t.rts, &r.rts),
        );
        println!(
            "  {size:>5} B medians: server CPU ns/round trip aioloop {:.0}, tokio {:.0}, raw {:.0}; \
             tokio/aioloop {:.3} (>1: aioloop's server is cheaper)",
            median(&mut a.cpu.clone()),
            median(&mut t.cpu.clone()),
            median(&mut r.cpu.clone()),
            ratio(&t.cpu, &a.cpu),
        );
        let fmt = |x: &Option<f64>| x.map_or("n/a (no perf)".to_owned(), |v| format!("{v:.2}"));
        println!(
            "  {size:>5} B server syscalls/round trip: aioloop {}, tokio {}, raw {}",
            fmt(&sys[0]),
            fmt(&sys[1]),
            fmt(&sys[2]),
        );
        println!(
            "  {size:>5} B client syscalls/round trip against aioloop {}, tokio {}, raw {}",
            fmt(&csys[0]),
            fmt(&csys[1]),
            fmt(&csys[2]),
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
        server_costs();
    }
}
