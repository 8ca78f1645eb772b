//! asyncio 3.14's call-graph introspection (`capture_call_graph`, `format_call_graph`,
//! `print_call_graph`), over tasks: what a task awaits (tasks, a task group's children,
//! `gather`/`shield`/`wait` members, a `Future`) and who awaits it, as a tree (rule O5).
//!
//! asyncio walks coroutine frames; a Rust future has no frames to walk, so the nodes are
//! tasks and the edges are the ones tasks record (task/observe.rs): nothing is collected
//! until this module asks.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::{AwaitTarget, Snapshot, TaskInfo};
use crate::task::observe::AwaitKind;
use crate::task::TaskRef;

/// A task's call graph: the task, the tasks (and future) it awaits, recursively, and the
/// tasks awaiting it, recursively (asyncio's `FutureCallGraph`, whose `awaited_by` it
/// mirrors; `awaits` is what asyncio reads from the coroutine's frames).
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).build()?;
/// let g = rt.block_on(rt.spawn(async {
///     let child = aioloop::task::Builder::new().name("child").spawn(std::future::pending::<()>());
///     let me = aioloop::current_task().unwrap();
///     aioloop::sleep(std::time::Duration::from_millis(1)).await; // let the child start
///     let waiter = aioloop::create_task(async move { let _ = child.await; });
///     aioloop::sleep(std::time::Duration::from_millis(5)).await; // let the waiter block
///     let g = aioloop::capture_call_graph(&waiter.task_ref()).unwrap();
///     waiter.cancel(None);
///     drop(me);
///     g
/// }))
/// .unwrap();
/// assert_eq!(g.awaits[0].graph.task.name, "child");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallGraph {
    /// The task at this node.
    pub task: TaskInfo,
    /// What it awaits (empty in the nodes of an `awaited_by` chain).
    pub awaits: Vec<CallGraphEdge>,
    /// The future it is blocked on, if that is what it awaits.
    pub future: Option<usize>,
    /// Who awaits it (empty in the nodes of an `awaits` tree).
    pub awaited_by: Vec<CallGraphEdge>,
}

/// One edge of a [`CallGraph`]: how the tasks are related, and the node at the other end.
///
/// ```
/// # let e: Option<aioloop::CallGraphEdge> = None;
/// if let Some(edge) = e { println!("{} {}", edge.kind.label(), edge.graph.task.name); }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallGraphEdge {
    /// `task.await`, a task group, `gather`, `shield` or `wait`.
    pub kind: AwaitKind,
    /// The other task.
    pub graph: CallGraph,
}

/// asyncio's `capture_call_graph(task)`: the call graph of a live task, or `None` if it
/// has finished.
///
/// ```
/// let lp = aioloop::LocalLoop::new()?;
/// let g = lp.run_until_complete(async {
///     let t = aioloop::create_task(std::future::pending::<()>());
///     aioloop::yield_now().await;
///     aioloop::capture_call_graph(&t.task_ref())
/// })?;
/// assert!(g.unwrap().awaited_by.is_empty()); // nobody awaits it
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn capture_call_graph(task: &TaskRef) -> Option<CallGraph> {
    let snap = Snapshot::take(None);
    let info = snap.get(task.id())?;
    let mut seen = HashSet::new();
    let mut root = down(&snap, info, &mut seen);
    let mut seen = HashSet::from([info.id]);
    root.awaited_by = up(&snap, info.id, &mut seen);
    Some(root)
}

fn down(snap: &Snapshot, info: &TaskInfo, seen: &mut HashSet<u64>) -> CallGraph {
    seen.insert(info.id);
    let awaits = snap
        .awaits(info.id)
        .into_iter()
        .filter(|(_, c)| !seen.contains(&c.id))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|(kind, child)| CallGraphEdge {
            kind,
            graph: down(snap, child, seen),
        })
        .collect();
    CallGraph {
        task: info.clone(),
        awaits,
        future: match info.awaiting {
            Some(AwaitTarget::Future(addr)) => Some(addr),
            _ => None,
        },
        awaited_by: Vec::new(),
    }
}

fn up(snap: &Snapshot, id: u64, seen: &mut HashSet<u64>) -> Vec<CallGraphEdge> {
    let parents = snap.awaited_by(id);
    let mut out = Vec::new();
    for (kind, p) in parents {
        if !seen.insert(p.id) {
            continue;
        }
        let awaited_by = up(snap, p.id, seen);
        out.push(CallGraphEdge {
            kind,
            graph: CallGraph {
                task: p.clone(),
                awaits: Vec::new(),
                future: None,
                awaited_by,
            },
        });
    }
    out
}

/// asyncio's `format_call_graph(task)`: the call graph as text, `None` if the task has
/// finished.
///
/// ```text
/// * Task(name='supervisor', id=3, waiting, created at examples/inspect.rs:40:9)
/// + awaits:
/// |   * [TaskGroup] Task(name='worker-1', id=5, waiting, created at ...)
/// |   |   + awaits: Future 0x5581c9a3e010
/// + awaited by:
///     * [await] Task(name='main', id=1, waiting, created at ...)
/// ```
///
/// ```
/// let lp = aioloop::LocalLoop::new()?;
/// let text = lp.run_until_complete(async {
///     let t = aioloop::task::Builder::new().name("t").spawn(std::future::pending::<()>());
///     aioloop::yield_now().await;
///     aioloop::format_call_graph(&t.task_ref()).unwrap()
/// })?;
/// assert!(text.starts_with("* Task(name='t'"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn format_call_graph(task: &TaskRef) -> Option<String> {
    capture_call_graph(task).map(|g| g.to_string())
}

/// asyncio's `print_call_graph(task)`: [`format_call_graph`] written to stdout (nothing if
/// the task has finished).
///
/// ```
/// let lp = aioloop::LocalLoop::new()?;
/// lp.run_until_complete(async {
///     let t = aioloop::create_task(async {});
///     aioloop::print_call_graph(&t.task_ref());
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn print_call_graph(task: &TaskRef) {
    if let Some(text) = format_call_graph(task) {
        print!("{text}");
    }
}

impl std::fmt::Display for CallGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        write_node(&mut out, self, None, "", true);
        f.write_str(&out)
    }
}

/// Writes `node` at `indent`; `kind` labels the edge that led here.
fn write_node(
    out: &mut String,
    node: &CallGraph,
    kind: Option<AwaitKind>,
    indent: &str,
    root: bool,
) {
    let tag = kind.map_or_else(String::new, |k| format!("[{}] ", k.label()));
    let _ = writeln!(out, "{indent}* {tag}{}", node.task.label());
    let has_up = root && !node.awaited_by.is_empty();
    let child_indent = format!("{indent}{}", if root { "" } else { "    " });
    if !node.awaits.is_empty() || node.future.is_some() {
        let bar = if has_up { "|" } else { " " };
        if node.awaits.is_empty() {
            if let Some(addr) = node.future {
                let _ = writeln!(out, "{child_indent}+ awaits: Future {addr:#x}");
            }
        } else {
            let _ = writeln!(out, "{child_indent}+ awaits:");
            for e in &node.awaits {
                write_node(
                    out,
                    &e.graph,
                    Some(e.kind),
                    &format!("{child_indent}{bar}   "),
                    false,
                );
            }
            if let Some(addr) = node.future {
                let _ = writeln!(out, "{child_indent}{bar}   * Future {addr:#x}");
            }
        }
    }
    if !node.awaited_by.is_empty() {
        let _ = writeln!(out, "{child_indent}+ awaited by:");
        for e in &node.awaited_by {
            write_node(
                out,
                &e.graph,
                Some(e.kind),
                &format!("{child_indent}    "),
                false,
            );
        }
    }
}
