//! Measures how deep futures can nest on a runtime worker before its stack overflows, for
//! `Builder::thread_stack_size`'s table of per-level costs.
//!
//! A stack overflow aborts the process, so each probe runs in a child process (this same
//! program, given arguments) and the parent bisects on the child's exit status:
//!
//! ```text
//! cargo run --example stack_depth [--release]               # the table
//! cargo run --example stack_depth -- SHAPE STACK_KIB DEPTH   # one probe
//! ```
//!
//! Shapes, each `DEPTH` levels inside one task spawned on a one-worker runtime:
//! `taskgroup` (a `TaskGroup::run` in the body of the group above), `async` (boxed
//! `async` recursion), `eager` (an eager task awaiting the eager task it spawned), `spawn`
//! (a task awaiting the ordinary task it spawned).

use std::future::Future;
use std::pin::Pin;
use std::process::{Command, Stdio};

use aioloop::{Runtime, TaskGroup, TaskGroupError};

type Boxed = Pin<Box<dyn Future<Output = u32> + Send>>;

fn taskgroup(n: u32) -> Boxed {
    Box::pin(async move {
        if n == 0 {
            return 0;
        }
        let inner = TaskGroup::new()
            .run(|_| async move { Ok::<_, TaskGroupError>(taskgroup(n - 1).await) })
            .await;
        inner.expect("the nested group succeeds") + 1
    })
}

fn plain(n: u32) -> Boxed {
    Box::pin(async move {
        if n == 0 {
            0
        } else {
            plain(n - 1).await + 1
        }
    })
}

fn chain(n: u32, eager: bool) -> Boxed {
    Box::pin(async move {
        if n == 0 {
            return 0;
        }
        let child = aioloop::task::Builder::new()
            .eager(eager)
            .spawn(chain(n - 1, eager));
        child.await.expect("the child succeeds") + 1
    })
}

const SHAPES: [&str; 4] = ["taskgroup", "eager", "async", "spawn"];

fn probe(shape: &str, stack_kib: usize, depth: u32) {
    let rt = Runtime::builder()
        .workers(1)
        .thread_stack_size(stack_kib << 10)
        .build()
        .expect("runtime");
    let fut = match shape {
        "taskgroup" => taskgroup(depth),
        "async" => plain(depth),
        "eager" => chain(depth, true),
        "spawn" => chain(depth, false),
        other => panic!("unknown shape {other}"),
    };
    assert_eq!(rt.block_on(rt.spawn(fut)).expect("the probe task"), depth);
}

/// Whether `depth` levels of `shape` fit in `stack_kib`.
fn fits(shape: &str, stack_kib: usize, depth: u32) -> bool {
    Command::new(std::env::current_exe().expect("own path"))
        .args([shape, &stack_kib.to_string(), &depth.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("child runs")
        .success()
}

/// The deepest nesting that fits, up to `cap` (`cap` itself if even that fits).
fn max_depth(shape: &str, stack_kib: usize, cap: u32) -> u32 {
    let (mut lo, mut hi) = (0u32, 64u32);
    while fits(shape, stack_kib, hi) {
        lo = hi;
        if hi >= cap {
            return cap;
        }
        hi = (hi * 2).min(cap);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(shape, stack_kib, mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [shape, kib, depth] = &args[..] {
        probe(
            shape,
            kib.parse().expect("KiB"),
            depth.parse().expect("depth"),
        );
        return;
    }
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let sizes_kib = [1024usize, 2048, 4096, 8192, 16384];
    let cap = 200_000;
    println!("{build} build: deepest nesting that fits per worker stack size (cap {cap})");
    println!(
        "{:<10} {}",
        "shape",
        sizes_kib.map(|k| format!("{k:>8} KiB")).join("")
    );
    for shape in SHAPES {
        let depths = sizes_kib.map(|k| max_depth(shape, k, cap));
        let cells = depths.map(|d| format!("{d:>12}")).join("");
        let (first, last) = (depths[0], depths[sizes_kib.len() - 1]);
        let per_level = if last > first && last < cap {
            let bytes = (sizes_kib[sizes_kib.len() - 1] - sizes_kib[0]) << 10;
            format!("{:.0} bytes/level", bytes as f64 / f64::from(last - first))
        } else {
            "no growth measured".to_owned()
        };
        println!("{shape:<10} {cells}   {per_level}");
    }
}
