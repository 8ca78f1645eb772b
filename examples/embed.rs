//! Embedding a [`LocalLoop`] in a host program that owns its thread and its own main loop —
//! a GUI toolkit, a game engine, a plugin host.
//!
//! ```text
//! cargo run --release --example embed
//! ```
//!
//! # The embedding story
//!
//! The host keeps its main loop; aioloop never blocks it. Each time round, the host calls
//! [`LocalLoop::run_once`]`(Some(Duration::ZERO))`: one asyncio iteration — work posted
//! from other threads is taken in, due timers fire, the callbacks and tasks that were ready
//! run once — and it returns without waiting. Between rounds the host needs to know two
//! things:
//!
//! - **When is the next timer due?** [`LocalLoop::next_timeout`]: zero if something is
//!   ready now, the time to the earliest `call_later` / `sleep` / `interval` deadline, or
//!   `None` if only another thread can bring work. The host sleeps no longer than that.
//! - **Did another thread post work?** [`LocalLoop::as_raw_fd`] (unix; also `AsFd`) is the
//!   loop's poller descriptor. It becomes readable when a [`LoopHandle`] posts a callback
//!   (`call_soon_threadsafe`), spawns a task (`spawn`) or calls `stop()`. A real host adds it
//!   to the set its own `poll`/`epoll`/`kqueue` (or its toolkit's main context) watches,
//!   with `next_timeout()` as the timeout, and calls `run_once` when it fires. This host
//!   is a 60 Hz frame loop whose "main context" is a `polling::Poller` watching that fd:
//!   between frames it waits on it, so posted work runs at once instead of at the next
//!   frame. Once the posted work has run the fd is quiet again, so the host sleeps.
//!   (A host with no other event source can instead let the loop do the waiting:
//!   `run_once(Some(time to next frame))` sleeps in the poller and returns early when work
//!   is posted or a timer is due.)
//!
//! ```text
//!   host thread (this one)                     network thread
//!   ──────────────────────                     ──────────────
//!   loop {                                     h.call_soon_threadsafe(msg) ──┐
//!       draw a frame if one is due             h.spawn(download) ────────────┤
//!       lp.run_once(Some(0))  ◄──── the loop's inbox ◄───────────────────────┘
//!       wait on lp.as_raw_fd(),  ◄──────────── ... which makes lp.as_raw_fd()
//!         timeout = min(next frame,            readable: the host wakes at once
//!                       lp.next_timeout())
//!   }
//! ```
//!
//! What runs inside the loop: a `!Send` task holding the UI state (`Rc<RefCell<Ui>>`),
//! woken by the callbacks the network thread posts; a `!Send` clock task on an
//! [`aioloop::interval`]; a `call_later` autosave timer; a splash screen that ends with an
//! [`aioloop::sleep`]; and a `Send` download task spawned from the network thread. When
//! the UI has everything, the host stops, lists `all_tasks()`, and `close()`s the loop,
//! which cancels the clock task (its future is dropped on this thread).
//!
//! It exits by itself in under a second.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use aioloop::{LocalLoop, LoopHandle, TaskRef};

/// The host's frame period (60 Hz).
const FRAME: Duration = Duration::from_micros(16_667);
/// The host gives up after this long, whatever happens (it never should).
const DEADLINE: Duration = Duration::from_secs(2);
/// Chat messages the network thread delivers: (sender, text).
const MESSAGES: [(&str, &str); 8] = [
    ("alice", "hi!"),
    ("bob", "anyone up for lunch?"),
    ("alice", "sure, 12:30?"),
    ("carol", "count me in"),
    ("bob", "the usual place"),
    ("carol", "booked a table"),
    ("alice", "see you there"),
    ("bob", "👍"),
];
/// After this many messages the network thread also starts a download (a `Send` task).
const DOWNLOAD_AFTER: usize = 3;

/// One chat message, as the network thread hands it over.
struct Message {
    from: &'static str,
    text: &'static str,
}

/// The UI state. It lives on the host thread only (`Rc<RefCell<…>>`, `!Send`).
#[derive(Default)]
struct Ui {
    /// Messages delivered by callbacks, not yet shown by the UI task.
    inbox: VecDeque<Message>,
    /// Messages the UI task has shown.
    shown: usize,
    /// The download's result (bytes), once the download task delivered it.
    download: Option<usize>,
    /// The status line the host draws each frame.
    status: String,
    /// Set when `status` changed; the host repaints and clears it.
    dirty: bool,
    /// The UI task's waker while it waits for something to show.
    waiting: Option<Waker>,
    /// `call_soon_threadsafe` callbacks run.
    callbacks: usize,
    /// Longest time between posting a callback and the loop running it.
    max_latency: Duration,
    /// Clock ticks, autosaves, and whether the splash sleep ended.
    ticks: u32,
    autosaves: u32,
    splash_done: bool,
}

impl Ui {
    fn set_status(&mut self, status: String) {
        self.status = status;
        self.dirty = true;
    }
}

thread_local! {
    /// The UI state of the host thread. A callback posted from another thread must be
    /// `Send`, so it cannot capture the `Rc`; it runs on this thread, though, and finds the
    /// state here — the usual way a GUI hands work to its main thread.
    static UI: Rc<RefCell<Ui>> = Rc::new(RefCell::new(Ui::default()));
    /// When the host started, for the timeline.
    static START: Cell<Option<Instant>> = const { Cell::new(None) };
}

fn ui() -> Rc<RefCell<Ui>> {
    UI.with(Rc::clone)
}

/// Updates the UI state, then wakes the UI task if it is waiting (outside the borrow).
fn deliver(update: impl FnOnce(&mut Ui)) {
    let waker = UI.with(|ui| {
        let mut ui = ui.borrow_mut();
        update(&mut ui);
        ui.waiting.take()
    });
    if let Some(w) = waker {
        w.wake();
    }
}

/// Prints one timeline line, stamped with the time since the host started.
fn log(source: &str, what: impl std::fmt::Display) {
    let t = START.with(|s| s.get().map_or(0.0, |s| s.elapsed().as_secs_f64() * 1e3));
    println!("  {t:>6.1} ms  {source:<11} {what}");
}

fn names(tasks: &[TaskRef]) -> String {
    let mut v: Vec<_> = tasks.iter().map(|t| (t.id(), t.name())).collect();
    v.sort();
    let v: Vec<_> = v.into_iter().map(|(_, n)| n).collect();
    format!("[{}]", v.join(", "))
}

/// The UI task (`!Send`: it holds the `Rc`). Shows a splash screen for a while, then shows
/// messages as the callbacks deliver them, and ends when it has shown every message and the
/// download.
async fn ui_task(ui: Rc<RefCell<Ui>>) -> usize {
    ui.borrow_mut().set_status("splash screen".into());
    log("[ui]", "splash screen up; sleep(120 ms)");
    aioloop::sleep(Duration::from_millis(120)).await;
    ui.borrow_mut().splash_done = true;
    log("[ui]", "splash screen gone");

    let mut download = None;
    while ui.borrow().shown < MESSAGES.len() || download.is_none() {
        // Wait until a callback delivered something.
        poll_fn(|cx| {
            let mut u = ui.borrow_mut();
            if !u.inbox.is_empty() || (download.is_none() && u.download.is_some()) {
                Poll::Ready(())
            } else {
                u.waiting = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        let mut u = ui.borrow_mut();
        let last = u
            .inbox
            .back()
            .map(|m| format!("; last: {}: {}", m.from, m.text));
        let arrived = u.inbox.drain(..).count();
        u.shown += arrived;
        if download.is_none() && u.download.is_some() {
            download = u.download;
            log("[ui]", "shows the finished download");
        }
        let status = format!("{} message(s){}", u.shown, last.unwrap_or_default());
        u.set_status(status);
    }
    log("[ui]", "has shown everything: task done");
    download.unwrap_or(0)
}

/// The clock task (`!Send`): refreshes the status bar's clock on an `interval`, forever —
/// `close()` cancels it.
async fn clock_task(ui: Rc<RefCell<Ui>>) {
    /// Reports when `close()` drops the task's future.
    struct OnDrop;
    impl Drop for OnDrop {
        fn drop(&mut self) {
            log("[clock]", "future dropped: cancelled by close()");
        }
    }
    let _guard = OnDrop;
    let mut every = aioloop::interval(Duration::from_millis(200));
    every.tick().await; // the first tick completes at once
    loop {
        let at = every.tick().await;
        let mut u = ui.borrow_mut();
        u.ticks += 1;
        u.dirty = true;
        let shown = u.shown;
        drop(u);
        log(
            "[interval]",
            format!("clock tick at loop.time() {at:.3}; {shown} message(s) shown"),
        );
    }
}

/// The network thread: posts each message as a callback at pseudo-random moments, and
/// after a few of them spawns a `Send` download task on the loop.
fn network(handle: LoopHandle) {
    let mut rng = 0x2545_f491_4f6c_dd1d_u64; // xorshift64, fixed seed
    for (i, &(from, text)) in MESSAGES.iter().enumerate() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        thread::sleep(Duration::from_millis(25 + rng % 80));
        let sent = Instant::now();
        let seq = i + 1;
        let posted = handle.call_soon_threadsafe(move || {
            // On the host thread, in a loop iteration.
            let latency = sent.elapsed();
            let splash = UI.with(|ui| !ui.borrow().splash_done);
            log(
                "[net→loop]",
                format!(
                    "#{seq} {from}: {text:?} (ran {:.1} ms after posting{})",
                    latency.as_secs_f64() * 1e3,
                    if splash { "; UI still on splash" } else { "" }
                ),
            );
            deliver(|ui| {
                ui.callbacks += 1;
                ui.max_latency = ui.max_latency.max(latency);
                ui.inbox.push_back(Message { from, text });
            });
        });
        posted.expect("loop closed before the network thread finished");

        if seq == DOWNLOAD_AFTER {
            // A `Send` future spawned from this thread; it runs on the loop's thread.
            let task = handle.spawn(async {
                let me = aioloop::current_task().expect("inside a task");
                log(
                    "[download]",
                    format!("{} started; sleep(250 ms)", me.name()),
                );
                aioloop::sleep(Duration::from_millis(250)).await;
                let bytes = 48 * 1024;
                log("[download]", format!("{} got {bytes} bytes", me.name()));
                // Spawned tasks of a LocalLoop run on its thread: the UI state is here.
                deliver(|ui| ui.download = Some(bytes));
                bytes
            });
            // Nobody awaits the handle; dropping it detaches the task, which still runs.
            drop(task.expect("loop closed"));
        }
    }
}

/// What the host's frame loop counted.
#[derive(Default)]
struct HostStats {
    frames: u32,
    repaints: u32,
    iterations: u32,
    early_wakes: u32,
    fd_wakes: u32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    START.with(|s| s.set(Some(start)));
    let lp = LocalLoop::new()?;
    println!("== embed: a 60 Hz host frame loop driving a LocalLoop with run_once()");
    println!(
        "   loop fd {} (readable when another thread posts work); next_timeout() = {:?}",
        lp.as_raw_fd(),
        lp.next_timeout()
    );

    // Inside the loop: two !Send tasks, a call_later timer.
    let ui_state = ui();
    let ui = lp.create_task_named("ui", ui_task(ui_state.clone()))?;
    let clock = lp.create_task_named("clock", clock_task(ui_state.clone()))?;
    let saver = ui_state.clone(); // a !Send callback is fine on a LocalLoop
    lp.call_later(0.4, move || {
        let mut u = saver.borrow_mut();
        u.autosaves += 1;
        let shown = u.shown;
        drop(u);
        log(
            "[call_later]",
            format!(
                "autosave of {shown} message(s); all_tasks() = {}",
                names(&aioloop::all_tasks())
            ),
        );
    })?;

    // The other thread, with a Send + Clone handle to the loop.
    let handle = lp.handle();
    let net = thread::spawn(move || network(handle));

    // The host's own main loop, and its "main context": a poller that watches the loop's fd.
    let host_poller = polling::Poller::new()?;
    let mut host_events = polling::Events::new();
    // SAFETY: the registration is deleted below, before `lp` (which owns the fd) is dropped.
    unsafe { host_poller.add(lp.as_raw_fd(), polling::Event::readable(0))? };
    let mut host = HostStats::default();
    let mut next_frame = start;
    while !ui.done() && start.elapsed() < DEADLINE {
        if Instant::now() >= next_frame {
            host.frames += 1;
            let mut u = ui_state.borrow_mut();
            if std::mem::take(&mut u.dirty) {
                host.repaints += 1; // a real host would draw `u.status` here
            }
            drop(u);
            next_frame += FRAME;
            if next_frame < Instant::now() {
                next_frame = Instant::now() + FRAME; // fell behind: skip frames
            }
        }
        lp.run_once(Some(Duration::ZERO))?;
        host.iterations += 1;
        // Wait for the next frame, or less if the loop has something due before it, or until
        // another thread posts work (the loop's fd becomes readable).
        let until_frame = next_frame.saturating_duration_since(Instant::now());
        let wait = match lp.next_timeout() {
            Some(t) if t < until_frame => {
                host.early_wakes += 1;
                t
            }
            _ => until_frame,
        };
        host_events.clear();
        host_poller.wait(&mut host_events, Some(wait))?;
        if !host_events.is_empty() {
            host.fd_wakes += 1;
            // polling registrations are one-shot: re-arm for the next post.
            host_poller.modify(lp.as_fd(), polling::Event::readable(0))?;
        }
    }
    host_poller.delete(lp.as_fd())?;
    let elapsed = start.elapsed();
    net.join().expect("network thread panicked");
    if !ui.done() {
        return Err("the UI task did not finish in time".into());
    }
    let bytes = lp.run_until_complete(ui)??; // done: returns its result at once

    println!("-- host stops; lp.all_tasks() = {}", names(&lp.all_tasks()));
    lp.close()?;
    let u = ui_state.borrow();
    println!(
        "-- after close(): clock task done={}, loop closed={}",
        clock.done(),
        lp.is_closed()
    );
    println!();
    println!("== summary");
    println!(
        "   host:    {} frames in {:.0} ms ({} repainted), {} run_once() calls;\n            \
         {} waits shortened because next_timeout() came before the next frame,\n            \
         {} waits ended early because the loop's fd became readable",
        host.frames,
        elapsed.as_secs_f64() * 1e3,
        host.repaints,
        host.iterations,
        host.early_wakes,
        host.fd_wakes
    );
    println!(
        "   network: {} call_soon_threadsafe callbacks, the slowest run {:.1} ms after \
         posting",
        u.callbacks,
        u.max_latency.as_secs_f64() * 1e3
    );
    println!(
        "            (the host watches the loop's fd, so posted work does not wait for a frame)"
    );
    println!("            1 Send task spawned through the LoopHandle: {bytes} bytes");
    println!(
        "   loop:    sleep 1x (splash), interval {}x (clock), call_later {}x (autosave);\n            \
         the UI showed {}/{} messages",
        u.ticks,
        u.autosaves,
        u.shown,
        MESSAGES.len()
    );
    Ok(())
}
