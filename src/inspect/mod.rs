//! Looking into a running program: a snapshot of every live task ([`TaskInfo`]), the call
//! graph of one task ([`capture_call_graph`], asyncio 3.14's names), and the whole-loop
//! dump ([`dump`], like `python -m asyncio ps` and `pstree`). Rules O4–O7.
//!
//! Everything here reads what tasks recorded (task/observe.rs): await edges always, and on
//! a tracking loop (debug mode, or `track_tasks`) the creation site and poll statistics.
//! Reading walks the task registry in bounded slices (task/registry.rs), so inspecting never
//! stops the loops; what it returns is a snapshot that may be one poll stale.

mod dump;
mod graph;
// Built on the signal module, which needs the reactor (not under loom).
#[cfg(not(loom))]
mod signal;

use std::collections::HashMap;
use std::fmt;
use std::panic::Location;
use std::time::Duration;

use crate::task::observe::{self, AwaitKind, Awaiting};
use crate::task::{registry, LoopId, TaskRef};

pub use dump::dump;
pub use graph::{
    capture_call_graph, format_call_graph, print_call_graph, CallGraph, CallGraphEdge,
};

/// What a task is doing, as `asyncio ps` reports it.
///
/// ```
/// assert_eq!(aioloop::TaskState::Waiting.to_string(), "waiting");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskState {
    /// Being polled now.
    Running,
    /// Queued to run (woken, or not yet started).
    Scheduled,
    /// Suspended until something wakes it.
    Waiting,
    /// A third-party task (`TaskLike`, or a loop's main task): its state is its own.
    Foreign,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskState::Running => "running",
            TaskState::Scheduled => "scheduled",
            TaskState::Waiting => "waiting",
            TaskState::Foreign => "-",
        })
    }
}

/// What a task is blocked on, as recorded by its last await that did not complete at once.
///
/// ```
/// let t = aioloop::AwaitTarget::Task(7);
/// assert_eq!(t.to_string(), "Task 7");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AwaitTarget {
    /// Another task's handle, by id.
    Task(u64),
    /// An [`aioloop::Future`](crate::Future), by address (stable while it lives).
    Future(usize),
}

impl fmt::Display for AwaitTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AwaitTarget::Task(id) => write!(f, "Task {id}"),
            AwaitTarget::Future(addr) => write!(f, "Future {addr:#x}"),
        }
    }
}

/// One live task, as seen by an inspection (rule O7). The `Option` fields are recorded only
/// on a tracking loop (debug mode or `track_tasks`).
///
/// ```
/// let rt = aioloop::Runtime::builder().workers(1).track_tasks(true).build()?;
/// let t = aioloop::task::Builder::new().name("idle").spawn_on(rt.handle(), std::future::pending::<()>());
/// let info = aioloop::TaskInfo::of(&t.task_ref()).unwrap();
/// assert_eq!(info.name, "idle");
/// assert_eq!(info.site.unwrap().file(), file!());
/// drop(t);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task's id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// What it is doing.
    pub state: TaskState,
    /// The loop it belongs to.
    pub loop_id: LoopId,
    /// The worker that last polled it.
    pub worker: Option<u32>,
    /// How many times it was polled.
    pub polls: Option<u64>,
    /// Time since it was created.
    pub age: Option<Duration>,
    /// Time since its last poll began (`None` also if never polled).
    pub since_last_poll: Option<Duration>,
    /// Where it was created (`#[track_caller]` on the spawning functions, rule O4).
    pub site: Option<&'static Location<'static>>,
    /// The task waiting for it, and how (a task group's parent, `gather`'s creator, a
    /// `task.await`), if any.
    pub awaited_by: Option<(u64, AwaitKind)>,
    /// What it is blocked on, if recorded.
    pub awaiting: Option<AwaitTarget>,
    /// The task itself.
    pub task: TaskRef,
}

impl TaskInfo {
    /// The snapshot of one task; `None` if it has finished.
    ///
    /// ```
    /// let rt = aioloop::Runtime::builder().workers(1).build()?;
    /// let t = rt.spawn(std::future::pending::<()>());
    /// assert_eq!(aioloop::TaskInfo::of(&t.task_ref()).unwrap().id, t.id());
    /// drop(t);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn of(task: &TaskRef) -> Option<TaskInfo> {
        if task.done() {
            return None;
        }
        let Some(raw) = task.raw() else {
            return Some(TaskInfo {
                id: task.id(),
                name: task.name(),
                state: TaskState::Foreign,
                loop_id: task.loop_id(),
                worker: None,
                polls: None,
                age: None,
                since_last_poll: None,
                site: None,
                awaited_by: None,
                awaiting: None,
                task: task.clone(),
            });
        };
        let s = raw.header().state.load();
        let state = if s.is_running() {
            TaskState::Running
        } else if s.is_notified() {
            TaskState::Scheduled
        } else {
            TaskState::Waiting
        };
        let rec = observe::record_of(raw);
        Some(TaskInfo {
            id: task.id(),
            name: task.name(),
            state,
            loop_id: task.loop_id(),
            worker: rec.worker,
            polls: rec.polls,
            age: rec.age,
            since_last_poll: rec.since_last_poll,
            site: rec.site,
            awaited_by: rec.awaited_by,
            awaiting: rec.awaiting.map(|a| match a {
                Awaiting::Task(id) => AwaitTarget::Task(id),
                Awaiting::Future(addr) => AwaitTarget::Future(addr),
            }),
            task: task.clone(),
        })
    }

    /// `Task(name='worker', id=5, waiting, created at src/main.rs:10:5)`.
    fn label(&self) -> String {
        let mut s = format!("Task(name='{}', id={}, {}", self.name, self.id, self.state);
        if let Some(site) = self.site {
            s.push_str(&format!(", created at {site}"));
        }
        s.push(')');
        s
    }
}

/// Every live task of `loop_id` (all loops: `None`), with the edges between them: the
/// registry walked once.
pub(crate) struct Snapshot {
    pub(crate) tasks: Vec<TaskInfo>,
    by_id: HashMap<u64, usize>,
}

impl Snapshot {
    pub(crate) fn take(loop_id: Option<LoopId>) -> Snapshot {
        let refs = registry::collect(|t| loop_id.is_none_or(|id| t.loop_id() == id));
        let mut tasks: Vec<TaskInfo> = refs.iter().filter_map(TaskInfo::of).collect();
        tasks.sort_by_key(|t| t.id);
        let by_id = tasks.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
        Snapshot { tasks, by_id }
    }

    pub(crate) fn get(&self, id: u64) -> Option<&TaskInfo> {
        self.by_id.get(&id).map(|&i| &self.tasks[i])
    }

    /// The live tasks `id` waits for, each with how.
    pub(crate) fn awaits(&self, id: u64) -> Vec<(AwaitKind, &TaskInfo)> {
        let mut out: Vec<(AwaitKind, &TaskInfo)> = self
            .tasks
            .iter()
            .filter_map(|t| match t.awaited_by {
                Some((p, kind)) if p == id => Some((kind, t)),
                _ => None,
            })
            .collect();
        if let Some(AwaitTarget::Task(t)) = self.get(id).and_then(|t| t.awaiting) {
            if let Some(child) = self.get(t) {
                if !out.iter().any(|(_, c)| c.id == t) {
                    out.push((AwaitKind::Join, child));
                }
            }
        }
        out
    }

    /// The live tasks waiting for `id`, each with how.
    pub(crate) fn awaited_by(&self, id: u64) -> Vec<(AwaitKind, &TaskInfo)> {
        let mut out = Vec::new();
        if let Some((p, kind)) = self.get(id).and_then(|t| t.awaited_by) {
            if let Some(parent) = self.get(p) {
                out.push((kind, parent));
            }
        }
        for t in &self.tasks {
            if t.awaiting == Some(AwaitTarget::Task(id)) && !out.iter().any(|(_, p)| p.id == t.id) {
                out.push((AwaitKind::Join, t));
            }
        }
        out
    }
}

/// Formats a duration the way the dump prints it: `850ms`, `12.3s`, `4m05s`.
pub(crate) fn short(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}
