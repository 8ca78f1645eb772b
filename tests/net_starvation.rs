//! A task that never yields does not stall the sockets of its worker while another worker
//! is idle (rules N2, N3; reactor rule R10: the idle worker harvests the stuck worker's
//! poller once it has gone unharvested for 1 ms). Without that, this test hangs and its
//! watchdog fails it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Waker};

use aioloop::io::Async;

mod common;
use common::{guarded, runtime};

/// N2, N3: the socket is registered on the poller of the worker that then spins; a task
/// on the other worker waiting on that socket still gets its data.
#[test]
fn n2_cpu_bound_task_does_not_stall_its_workers_sockets() {
    guarded("CPU-bound worker", || {
        let rt = runtime(2);
        let (a, mut b) = UnixStream::pair().unwrap();
        let a = Arc::new(Async::new(a).unwrap());
        let done = Arc::new(AtomicBool::new(false));
        let (spinning_tx, spinning) = mpsc::channel();

        let (a2, done2) = (a.clone(), done.clone());
        let spinner = rt.spawn(async move {
            // Bind the socket to this worker's poller (its first wait happens here).
            let mut cx = Context::from_waker(Waker::noop());
            assert!(a2.poll_readable(&mut cx).is_pending());
            spinning_tx.send(()).unwrap();
            // Compute without yielding until the reader got its data.
            let mut spins = 0u64;
            while !done2.load(Ordering::SeqCst) {
                spins = spins.wrapping_add(1);
                std::hint::spin_loop();
            }
            spins
        });
        spinning.recv().unwrap();

        let (a3, done3) = (a.clone(), done.clone());
        let reader = rt.spawn(async move {
            let mut buf = [0u8; 5];
            let n = a3.read_with(|mut s| s.read(&mut buf)).await.unwrap();
            done3.store(true, Ordering::SeqCst);
            buf[..n].to_vec()
        });
        b.write_all(b"hello").unwrap();
        assert_eq!(rt.block_on(reader).unwrap(), b"hello");
        rt.block_on(spinner).unwrap();
    });
}
