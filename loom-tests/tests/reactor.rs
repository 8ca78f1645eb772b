//! Issue 11, item 10: the reactor (`event_loop/reactor/mod.rs`, rules R1–R6) over its loom
//! fake poller (a sticky token, a queue of injected events, a condvar).
//!
//! The "kernel" is a flag under a mutex (data available) plus an event injected into the fake
//! poller; the task's system call takes that flag. A lost wake-up leaves the
//! task's `block_on` waiting forever: loom reports a deadlock.

use std::future::poll_fn;
use std::task::Poll;

use aioloop::loom_internals::IoModel;
use loom::sync::{Arc, Mutex};

/// Rules R1–R3 against a harvesting thread: a task tries its "syscall", clears the
/// readiness it saw on `EWOULDBLOCK` (R2, tick-conditional) and waits (R3), while the
/// owning loop's thread harvests an edge that arrives at any point (R1). The task always
/// gets its data.
#[test]
fn readiness_word_and_waker_vs_harvest() {
    loom::model(|| {
        let io = Arc::new(IoModel::new());
        let data = Arc::new(Mutex::new(false));

        let (io2, data2) = (io.clone(), data.clone());
        let harvester = loom::thread::spawn(move || {
            *data2.lock().unwrap() = true;
            io2.inject_readable();
            io2.harvest(false);
        });

        loom::future::block_on(poll_fn(|cx| loop {
            let ev = match io.poll_readable(cx) {
                Poll::Ready(ev) => ev,
                Poll::Pending => return Poll::Pending,
            };
            if std::mem::take(&mut *data.lock().unwrap()) {
                return Poll::Ready(());
            }
            io.clear(ev);
        }));
        harvester.join().unwrap();
    });
}

/// Rules R5, R6: a source released while its event is being harvested. The event finds
/// either the live source or a newer generation; a source registered after the release —
/// which may reuse the slot only after a later harvest — never sees the stale event.
#[test]
fn slot_release_races_event_dispatch() {
    loom::model(|| {
        let old = Arc::new(IoModel::new());
        old.inject_readable();

        let old2 = old.clone();
        let releaser = loom::thread::spawn(move || old2.release());
        old.harvest(false);
        releaser.join().unwrap();

        // Another harvest frees the slot for reuse; the stale event is injected again.
        old.harvest(false);
        let new = old.register_another();
        assert!(new.reuses_slot_of(&old), "the freed slot is reused");
        // Start the new source not readable, then deliver the old key's event.
        let noop = futures_noop_waker();
        let mut cx = std::task::Context::from_waker(&noop);
        if let Poll::Ready(ev) = new.poll_readable(&mut cx) {
            new.clear(ev);
        }
        assert!(!new.is_readable());
        old.inject_readable();
        old.harvest(false);
        assert!(
            !new.is_readable(),
            "a stale event reached the slot's new source"
        );
    });
}

/// An event arriving while the owning loop parks with no timeout wakes it (the fake
/// poller's wait returns on an event as the real one does), and the park dispatches it.
#[test]
fn event_arrives_while_owner_parks() {
    loom::model(|| {
        let io = Arc::new(IoModel::new());
        let noop = futures_noop_waker();
        let mut cx = std::task::Context::from_waker(&noop);
        if let Poll::Ready(ev) = io.poll_readable(&mut cx) {
            io.clear(ev);
        }
        let io2 = io.clone();
        let kernel = loom::thread::spawn(move || io2.inject_readable());
        let mut dispatched = 0;
        while dispatched == 0 {
            dispatched = io.harvest(true);
        }
        kernel.join().unwrap();
        assert!(io.is_readable());
        // Writability was never cleared: the write slot is independent of the read one.
        assert!(io.poll_writable(&mut cx).is_ready());
    });
}

fn futures_noop_waker() -> std::task::Waker {
    std::task::Waker::noop().clone()
}

/// Rule R11 (`reactor/quiet.rs` rules 1–3): a worker with no source sleeps in its condvar;
/// a wake-up from another thread at any point — before, during or after the announcement
/// — ends the park, never lost (a lost one leaves the owner asleep: loom's deadlock).
#[test]
fn worker_condvar_park_never_loses_a_wake_up() {
    loom::model(|| {
        let park = Arc::new(aioloop::loom_internals::WorkerParkModel::new());
        let waker = {
            let park = park.clone();
            loom::thread::spawn(move || park.unpark())
        };
        park.park();
        waker.join().unwrap();
    });
}

/// Rule R11 (`reactor/quiet.rs` rule 4): a source registered on a worker asleep in its
/// condvar, and its event, reach the worker: the registrant moves it to its poller, or the
/// worker saw the source before sleeping. The worker parks until a harvest dispatches it.
#[test]
fn source_registered_while_the_worker_sleeps_in_its_condvar() {
    loom::model(|| {
        let park = Arc::new(aioloop::loom_internals::WorkerParkModel::new());
        let registrant = {
            let park = park.clone();
            loom::thread::spawn(move || {
                let io = park.register();
                io.inject_readable();
                io
            })
        };
        // Spurious returns (the move to the poller) just park again.
        while park.park() == 0 {}
        drop(registrant.join().unwrap());
    });
}

/// Rule R12: a read that emptied the socket clears `READABLE` but keeps `READ_CLOSED`, so
/// a half-close whose edge was harvested before (or while) the short read cleared still
/// ends the stream: the task's next read returns EOF instead of waiting for an edge that
/// never comes. The peer sends data, then its FIN, each with its own edge, while the
/// owning loop harvests; the task reads (a short read when data was there) until EOF.
#[test]
fn half_close_survives_a_short_read_clear() {
    #[derive(Default)]
    struct Kernel {
        data: bool,
        eof: bool,
    }
    enum Read {
        Short,
        Eof,
        WouldBlock,
    }
    loom::model(|| {
        let io = Arc::new(IoModel::new());
        let kernel = Arc::new(Mutex::new(Kernel::default()));

        let (io2, kernel2) = (io.clone(), kernel.clone());
        let peer = loom::thread::spawn(move || {
            kernel2.lock().unwrap().data = true;
            io2.inject_readable();
            kernel2.lock().unwrap().eof = true;
            io2.inject_read_closed();
            io2.harvest(false);
        });

        let mut got_data = false;
        loom::future::block_on(poll_fn(|cx| loop {
            let ev = match io.poll_readable(cx) {
                Poll::Ready(ev) => ev,
                Poll::Pending => return Poll::Pending,
            };
            let read = {
                let mut k = kernel.lock().unwrap();
                if std::mem::take(&mut k.data) {
                    Read::Short
                } else if k.eof {
                    Read::Eof
                } else {
                    Read::WouldBlock
                }
            };
            match read {
                Read::Short => {
                    got_data = true;
                    io.clear_drained(ev);
                }
                Read::Eof => return Poll::Ready(()),
                Read::WouldBlock => io.clear(ev),
            }
        }));
        assert!(got_data, "the data comes before EOF");
        peer.join().unwrap();
    });
}
