//! Feature `tracing` (rule O8): a span per task (id, name, creation site) entered around
//! each poll, and events for spawn, cancel request, cancel delivery and completion, seen
//! by a collecting subscriber. Run with `cargo test --features tracing --test tracing`.
#![cfg(feature = "tracing")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records spans (with their fields), enters and events, in order, as text lines.
#[derive(Clone, Default)]
struct Collector {
    log: Arc<Mutex<Vec<String>>>,
    next: Arc<AtomicU64>,
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl Subscriber for Collector {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut f = Fields(String::new());
        attrs.record(&mut f);
        self.log
            .lock()
            .unwrap()
            .push(format!("span#{id} {}{}", attrs.metadata().name(), f.0));
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut f = Fields(String::new());
        event.record(&mut f);
        self.log.lock().unwrap().push(format!("event{}", f.0));
    }
    fn enter(&self, id: &Id) {
        self.log
            .lock()
            .unwrap()
            .push(format!("enter#{}", id.into_u64()));
    }
    fn exit(&self, id: &Id) {
        self.log
            .lock()
            .unwrap()
            .push(format!("exit#{}", id.into_u64()));
    }
}

/// O8: spawn → span and event; each poll enters the span; cancel request, its delivery to
/// a catch scope, and completion are events.
#[test]
fn task_span_and_lifecycle_events() {
    let collector = Collector::default();
    let log = collector.log.clone();
    tracing::subscriber::with_default(collector, || {
        let lp = aioloop::LocalLoop::new().unwrap();
        lp.run_until_complete(async {
            let t = aioloop::task::Builder::new().name("traced").spawn(async {
                let r = aioloop::catch_cancel(std::future::pending::<()>()).await;
                assert!(r.is_err());
                aioloop::current_task().unwrap().uncancel();
            });
            aioloop::yield_now().await; // its first poll
            t.cancel(Some("stop"));
            t.await.unwrap();
        })
        .unwrap();
    });
    let log = log.lock().unwrap();
    let text = log.join("\n");
    let span = log
        .iter()
        .find(|l| l.starts_with("span#") && l.contains(" task id="))
        .unwrap_or_else(|| panic!("no task span:\n{text}"));
    assert!(span.contains("name=traced"), "{text}");
    assert!(span.contains(&format!("site={}:", file!())), "{text}");
    let span_id = span
        .split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches("span#");
    let pos = |needle: &str| {
        log.iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} missing:\n{text}"))
    };
    let spawned = pos("message=spawned");
    let first_enter = pos(&format!("enter#{span_id}"));
    let requested = pos("message=cancel requested");
    let delivered = pos("message=cancel delivered");
    let completed = pos("message=completed");
    assert!(spawned < first_enter && first_enter < requested, "{text}");
    assert!(requested < delivered && delivered < completed, "{text}");
    assert!(log[completed].contains("cancelled=false"), "{text}");
    let enters = log
        .iter()
        .filter(|l| **l == format!("enter#{span_id}"))
        .count();
    assert_eq!(enters, 2, "one per poll:\n{text}");
    // The delivery and the completion happen inside the task's span.
    let last_enter = log
        .iter()
        .rposition(|l| *l == format!("enter#{span_id}"))
        .unwrap();
    assert!(last_enter < delivered, "{text}");
}
