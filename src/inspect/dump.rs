//! The task dump: every live task as a table (`python -m asyncio ps`) and as an await
//! forest (`python -m asyncio pstree`). Rule O7.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::{short, AwaitTarget, Snapshot, TaskInfo};
use crate::task::LoopId;

/// Every live task of every loop in the process, as a table and an await tree (rule O7):
/// id, state (running / scheduled / waiting), worker, polls, age, time since the last
/// poll, name, creation site, what it awaits. The columns that need task tracking show
/// `-` for tasks created without it (see `Builder::track_tasks`). Callable from any thread.
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).track_tasks(true).build()?;
/// let t = aioloop::task::Builder::new().name("stuck").spawn_on(rt.handle(), std::future::pending::<()>());
/// let text = aioloop::dump();
/// assert!(text.contains("stuck"));
/// drop(t);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn dump() -> String {
    render(&Snapshot::take(None), None)
}

/// [`dump`] for one loop.
pub(crate) fn dump_loop(id: LoopId) -> String {
    render(&Snapshot::take(Some(id)), Some(id))
}

impl crate::Handle {
    /// [`aioloop::dump`](crate::dump) for this runtime's tasks only (rule O7).
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = aioloop::task::Builder::new().name("idle").spawn_on(rt.handle(), std::future::pending::<()>());
    /// assert!(rt.handle().dump().contains("idle"));
    /// drop(t);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn dump(&self) -> String {
        dump_loop(self.id())
    }
}

impl crate::LocalLoop {
    /// [`aioloop::dump`](crate::dump) for this loop's tasks only (rule O7).
    ///
    /// ```
    /// let lp = aioloop::LocalLoop::new()?;
    /// let _t = lp.create_task_named("ui", std::future::pending::<()>())?;
    /// assert!(lp.dump().contains("ui"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dump(&self) -> String {
        dump_loop(self.id())
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn render(snap: &Snapshot, id: Option<LoopId>) -> String {
    let mut out = String::new();
    let scope = id.map_or_else(
        || "all loops".to_owned(),
        |id| format!("loop {}", id.as_u64()),
    );
    let _ = writeln!(
        out,
        "aioloop task dump: {} live task(s), {scope}",
        snap.tasks.len()
    );
    let _ = writeln!(
        out,
        "{:>6}  {:<9}  {:>6}  {:>6}  {:>7}  {:>7}  {:<16}  {:<28}  awaiting",
        "id", "state", "worker", "polls", "age", "idle", "name", "created at"
    );
    for t in &snap.tasks {
        let _ = writeln!(
            out,
            "{:>6}  {:<9}  {:>6}  {:>6}  {:>7}  {:>7}  {:<16}  {:<28}  {}",
            t.id,
            t.state.to_string(),
            opt(t.worker),
            opt(t.polls),
            opt(t.age.map(short)),
            opt(t.since_last_poll.map(short)),
            t.name,
            opt(t.site),
            opt(t.awaiting),
        );
    }
    let _ = writeln!(out, "await tree:");
    let mut seen = HashSet::new();
    let roots: Vec<&TaskInfo> = snap
        .tasks
        .iter()
        .filter(|t| snap.awaited_by(t.id).is_empty())
        .collect();
    for (i, root) in roots.iter().enumerate() {
        tree(
            &mut out,
            snap,
            root,
            None,
            "",
            i + 1 == roots.len(),
            &mut seen,
        );
    }
    // Tasks only reachable through a cycle of edges (stale ones): listed, not lost.
    for t in &snap.tasks {
        if !seen.contains(&t.id) {
            tree(&mut out, snap, t, None, "", true, &mut seen);
        }
    }
    out
}

fn tree(
    out: &mut String,
    snap: &Snapshot,
    t: &TaskInfo,
    kind: Option<crate::task::observe::AwaitKind>,
    prefix: &str,
    last: bool,
    seen: &mut HashSet<u64>,
) {
    seen.insert(t.id);
    let branch = if last { "└── " } else { "├── " };
    let tag = kind.map_or_else(String::new, |k| format!("[{}] ", k.label()));
    let _ = writeln!(out, "{prefix}{branch}{tag}{}", t.label());
    let next = format!("{prefix}{}", if last { "    " } else { "│   " });
    let children: Vec<_> = snap
        .awaits(t.id)
        .into_iter()
        .filter(|(_, c)| !seen.contains(&c.id))
        .collect();
    let future = match t.awaiting {
        Some(AwaitTarget::Future(addr)) => Some(addr),
        _ => None,
    };
    for (i, (k, c)) in children.iter().enumerate() {
        let last = i + 1 == children.len() && future.is_none();
        tree(out, snap, c, Some(*k), &next, last, seen);
    }
    if let Some(addr) = future {
        let _ = writeln!(out, "{next}└── Future {addr:#x}");
    }
}
