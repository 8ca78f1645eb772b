//! Unix signals (issue 11 item 6): the `Signal` stream, `ctrl_c`, and asyncio's
//! `add_signal_handler`/`remove_signal_handler` on `LocalLoop` and the runtime `Handle`
//! (CPython's `test_unix_events.SelectorEventLoopSignalTests` semantics: replacement,
//! removal, `ValueError`/`RuntimeError` for bad signals).
//!
//! Signals are process-wide: every test takes `SERIAL` first, and each uses a signal
//! that nothing else in this binary listens for at the time (SIGUSR1, SIGUSR2, SIGWINCH,
//! SIGHUP, SIGINT — the last only while a listener is registered, so it never ends the
//! process).

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, Instant};

use aioloop::signal::{signal, SignalError, SignalKind};
use aioloop::{LocalLoop, Runtime};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn raise(sig: i32) {
    // SAFETY: every caller listens for `sig` at this point, so the default action (which
    // could end the process) never runs.
    assert_eq!(unsafe { libc::raise(sig) }, 0);
}

/// Polls `cond` until it holds; fails after a generous minute (a lost delivery).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn rt() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

/// A `Signal` receives a delivery raised after it was created; deliveries made while
/// nobody waited coalesce into one `recv`.
#[test]
fn signal_stream_receives_and_coalesces() {
    let _s = serial();
    let rt = rt();
    rt.block_on(async {
        let mut usr1 = signal(SignalKind::user_defined1()).unwrap();
        raise(libc::SIGUSR1);
        raise(libc::SIGUSR1);
        usr1.recv().await.unwrap();
        // Both were coalesced: nothing more is pending now.
        let pending = poll_fn(|cx| Poll::Ready(usr1.poll_recv(cx).is_pending())).await;
        assert!(pending);
        raise(libc::SIGUSR1);
        usr1.recv().await.unwrap();
    });
}

/// Two listeners of one signal each receive it (the actions chain).
#[test]
fn every_listener_receives_the_signal() {
    let _s = serial();
    let rt = rt();
    rt.block_on(async {
        let mut a = signal(SignalKind::window_change()).unwrap();
        let mut b = signal(SignalKind::window_change()).unwrap();
        raise(libc::SIGWINCH);
        a.recv().await.unwrap();
        b.recv().await.unwrap();
    });
}

/// `Signal` is a `futures_core::Stream` of deliveries, and works on a `LocalLoop` too.
#[test]
fn signal_is_a_stream_on_a_local_loop() {
    use futures_core::Stream;
    let _s = serial();
    let lp = LocalLoop::new().unwrap();
    lp.run_until_complete(async {
        let mut hup = signal(SignalKind::hangup()).unwrap();
        raise(libc::SIGHUP);
        let item = poll_fn(|cx| std::pin::Pin::new(&mut hup).poll_next(cx)).await;
        assert!(matches!(item, Some(Ok(()))));
    })
    .unwrap();
}

/// A task waiting in `recv` is woken by a delivery from another thread.
#[test]
fn a_waiting_task_is_woken() {
    let _s = serial();
    let rt = rt();
    let mut usr2 = signal(SignalKind::user_defined2()).unwrap();
    let got = Arc::new(AtomicUsize::new(0));
    let g = got.clone();
    let waiter = rt.spawn(async move {
        usr2.recv().await.unwrap();
        g.fetch_add(1, Ordering::SeqCst);
    });
    std::thread::sleep(Duration::from_millis(10)); // let it park (not required)
    raise(libc::SIGUSR2);
    rt.block_on(waiter).unwrap();
    assert_eq!(got.load(Ordering::SeqCst), 1);
}

/// `ctrl_c()` completes on SIGINT. A `Signal` for SIGINT is held throughout, so a SIGINT
/// raised before `ctrl_c` starts listening is caught rather than ending the process; the
/// raise is repeated until `ctrl_c` has seen one.
#[test]
fn ctrl_c_completes_on_sigint() {
    let _s = serial();
    let rt = rt();
    let _keep = signal(SignalKind::interrupt()).unwrap();
    let task = rt.spawn(aioloop::signal::ctrl_c());
    eventually("ctrl_c sees a SIGINT", || {
        raise(libc::SIGINT);
        task.done()
    });
    rt.block_on(task).unwrap().unwrap();
}

/// asyncio's `add_signal_handler` on a `LocalLoop`: the callback runs on the loop's thread;
/// a second handler replaces the first (only the new one runs); `remove_signal_handler`
/// says whether there was one.
#[test]
fn add_signal_handler_replace_and_remove_on_a_local_loop() {
    let _s = serial();
    let lp = LocalLoop::new().unwrap();
    let first = Rc::new(Cell::new(0));
    let second = Rc::new(Cell::new(0));
    let f = first.clone();
    lp.add_signal_handler(libc::SIGUSR1, move || f.set(f.get() + 1))
        .unwrap();
    raise(libc::SIGUSR1);
    while first.get() == 0 {
        lp.run_once(Some(Duration::from_millis(10))).unwrap();
    }
    let s = second.clone();
    lp.add_signal_handler(libc::SIGUSR1, move || s.set(s.get() + 1))
        .unwrap();
    raise(libc::SIGUSR1);
    while second.get() == 0 {
        lp.run_once(Some(Duration::from_millis(10))).unwrap();
    }
    // A few more iterations: the replaced handler stays silent.
    for _ in 0..3 {
        lp.run_once(Some(Duration::from_millis(1))).unwrap();
    }
    assert_eq!((first.get(), second.get()), (1, 1));
    assert!(lp.remove_signal_handler(libc::SIGUSR1));
    assert!(!lp.remove_signal_handler(libc::SIGUSR1));
}

/// The same on the runtime's `Handle` (a `Send` callback, run on a worker).
#[test]
fn add_signal_handler_on_a_runtime() {
    let _s = serial();
    let rt = rt();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    rt.handle()
        .add_signal_handler(libc::SIGUSR2, move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    raise(libc::SIGUSR2);
    eventually("the handler runs", || calls.load(Ordering::SeqCst) == 1);
    assert!(rt.handle().remove_signal_handler(libc::SIGUSR2));
    assert!(!rt.handle().remove_signal_handler(libc::SIGUSR2));
}

/// asyncio's errors: `ValueError("sig N out of range(1, NSIG)")` for a number that is not a
/// signal, `RuntimeError("sig N cannot be caught")` for SIGKILL and SIGSTOP.
#[test]
fn bad_signals_are_typed_errors() {
    let _s = serial();
    let lp = LocalLoop::new().unwrap();
    let nsig = libc::SIGRTMAX() + 1;
    for bad in [0, -1, nsig, 1000] {
        let e = lp.add_signal_handler(bad, || {}).unwrap_err();
        assert!(matches!(e, SignalError::OutOfRange(n) if n == bad));
        assert_eq!(e.to_string(), format!("sig {bad} out of range(1, {nsig})"));
        assert!(signal(SignalKind::from_raw(bad)).is_err());
    }
    for uncatchable in [libc::SIGKILL, libc::SIGSTOP] {
        let e = lp.add_signal_handler(uncatchable, || {}).unwrap_err();
        assert!(matches!(e, SignalError::CannotCatch(_)));
        assert_eq!(e.to_string(), format!("sig {uncatchable} cannot be caught"));
        let e = signal(SignalKind::from_raw(uncatchable)).unwrap_err();
        assert!(matches!(e, SignalError::CannotCatch(_)));
    }
    assert!(!lp.remove_signal_handler(0));
    // The io::Error form (what `ctrl_c` and `dump_on_signal` return) is InvalidInput.
    let io: std::io::Error = SignalError::CannotCatch(9).into();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
}
