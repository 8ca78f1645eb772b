//! Stress: 64 socket pairs exchanging 1-byte messages, with random yields between the
//! steps, on a 2-worker runtime and on a `LocalLoop` (rules N1, N2, N3). A lost wake-up
//! stalls an exchange forever; the watchdog (`common::guarded`) fails the test then.

use std::rc::Rc;

use aioloop::net::unix::UnixStream;
use aioloop::net::{TcpListener, TcpStream};

mod common;
use common::{guarded, new_loop, runtime};

const PAIRS: usize = 64;
const MESSAGES: usize = 200;

/// Maybe yields (a third of the time), so that the two sides interleave differently.
async fn maybe_yield(rng: &mut fastrand::Rng) {
    if rng.u8(..3) == 0 {
        aioloop::yield_now().await;
    }
}

/// One side of an exchange: sends `MESSAGES` single bytes, each answered by its successor.
async fn ping(s: impl Stream, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    for i in 0..MESSAGES {
        let b = i as u8;
        s.send(b).await;
        maybe_yield(&mut rng).await;
        assert_eq!(s.recv().await, Some(b.wrapping_add(1)));
        maybe_yield(&mut rng).await;
    }
}

/// The other side: answers each byte with its successor until EOF.
async fn pong(s: impl Stream, seed: u64) -> usize {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut n = 0;
    while let Some(b) = s.recv().await {
        maybe_yield(&mut rng).await;
        s.send(b.wrapping_add(1)).await;
        n += 1;
    }
    n
}

/// A connected byte stream of either kind.
trait Stream {
    async fn send(&self, b: u8);
    async fn recv(&self) -> Option<u8>;
}

impl Stream for UnixStream {
    async fn send(&self, b: u8) {
        self.write_all(&[b]).await.unwrap();
    }
    async fn recv(&self) -> Option<u8> {
        let mut buf = [0u8; 1];
        (self.read(&mut buf).await.unwrap() == 1).then_some(buf[0])
    }
}

impl Stream for TcpStream {
    async fn send(&self, b: u8) {
        self.write_all(&[b]).await.unwrap();
    }
    async fn recv(&self) -> Option<u8> {
        let mut buf = [0u8; 1];
        (self.read(&mut buf).await.unwrap() == 1).then_some(buf[0])
    }
}

/// N1–N3 on 2 workers: 64 Unix pairs and 64 TCP connections at once.
#[test]
fn stress_64_pairs_on_two_workers() {
    stress_on_workers(2);
}

/// N1–N3 with more workers than cores (more stealing, more parking).
#[test]
fn stress_64_pairs_on_four_workers() {
    stress_on_workers(4);
}

fn stress_on_workers(workers: usize) {
    guarded("64 pairs on a runtime", move || {
        let rt = runtime(workers);
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let mut tasks = Vec::new();
            let mut pongs = Vec::new();
            for i in 0..PAIRS {
                let (a, b) = UnixStream::pair().unwrap();
                tasks.push(aioloop::create_task(ping(a, i as u64)));
                pongs.push(aioloop::create_task(pong(b, 1000 + i as u64)));
                let c = TcpStream::connect(addr).await.unwrap();
                c.set_nodelay(true).unwrap();
                let (s, _) = l.accept().await.unwrap();
                s.set_nodelay(true).unwrap();
                tasks.push(aioloop::create_task(ping(c, 2000 + i as u64)));
                pongs.push(aioloop::create_task(pong(s, 3000 + i as u64)));
            }
            for t in tasks {
                t.await.unwrap();
            }
            for p in pongs {
                assert_eq!(p.await.unwrap(), MESSAGES);
            }
        });
    });
}

/// N1, N2 on a `LocalLoop`: 64 Unix pairs, all on one thread.
#[test]
fn stress_64_pairs_on_a_local_loop() {
    guarded("64 pairs on a LocalLoop", || {
        let lp = Rc::new(new_loop());
        let total = lp
            .run_until_complete(async {
                let mut tasks = Vec::new();
                let mut pongs = Vec::new();
                for i in 0..PAIRS {
                    let (a, b) = UnixStream::pair().unwrap();
                    tasks.push(aioloop::spawn_local(ping(a, i as u64)));
                    pongs.push(aioloop::spawn_local(pong(b, 500 + i as u64)));
                }
                for t in tasks {
                    t.await.unwrap();
                }
                let mut total = 0;
                for p in pongs {
                    total += p.await.unwrap();
                }
                total
            })
            .unwrap();
        assert_eq!(total, PAIRS * MESSAGES);
    });
}
