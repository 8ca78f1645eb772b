//! A small service-like program, looked into while it runs: a supervisor task runs two
//! task groups of named workers; one worker is stuck on a `Future` nobody completes, one
//! poll blocks its worker for 150 ms. The program prints the stuck worker's call graph
//! (`aioloop::print_call_graph`), the runtime's task dump (`Handle::dump`, like
//! `python -m asyncio ps` + `pstree`) and its metrics; the slow poll is reported by debug
//! mode to the exception handler (stderr).
//!
//! ```text
//! cargo run --example inspect
//! ```
//! With `kill -USR1 <pid>` while it sleeps at the end, the dump is written to stderr again
//! (`Builder::dump_on_signal`).

use std::time::Duration;

use aioloop::{TaskGroup, TaskGroupError};

#[aioloop::main(workers = 2, debug)]
async fn main() {
    let handle = aioloop::Handle::current();
    let supervisor = aioloop::task::Builder::new()
        .name("supervisor")
        .spawn(supervise());
    // Let the workers start, block once, and settle.
    aioloop::sleep(Duration::from_millis(300)).await;

    let stuck = aioloop::all_tasks()
        .into_iter()
        .find(|t| t.name() == "fetch-config")
        .expect("the stuck worker is alive");
    println!("== call graph of the stuck worker ==");
    aioloop::print_call_graph(&stuck);
    println!();
    println!("== task dump ==");
    print!("{}", handle.dump());
    println!();
    let m = handle.metrics();
    println!("== metrics ==");
    println!(
        "spawned {}, completed {}, live {:?}, injector {}",
        m.spawned, m.completed, m.tasks, m.injector_depth
    );
    for w in &m.workers {
        println!(
            "worker {}: polled {}, stolen {}, parked {}, queue {}, timers fired {}",
            w.index, w.polled, w.stolen, w.parked, w.local_queue_depth, w.timers_fired
        );
    }
    supervisor.cancel(Some("demo over"));
    let _ = supervisor.await;
}

/// Two groups: "io" (one worker waits forever on a future) and "cpu" (one slow poll).
async fn supervise() -> Result<(), TaskGroupError> {
    TaskGroup::new()
        .run(|outer| async move {
            outer.create_task_named("io-group", async {
                TaskGroup::new()
                    .run(|tg| async move {
                        let config = aioloop::create_future::<String>();
                        tg.create_task_named("fetch-config", async move {
                            let _ = config.await; // nobody ever completes it
                        })?;
                        tg.create_task_named("heartbeat", async {
                            loop {
                                aioloop::sleep(Duration::from_millis(50)).await;
                            }
                        })?;
                        Ok::<_, TaskGroupError>(())
                    })
                    .await
            })?;
            outer.create_task_named("cpu-group", async {
                TaskGroup::new()
                    .run(|tg| async move {
                        tg.create_task_named("resize-image", async {
                            // Blocks its worker: debug mode reports the poll as slow.
                            std::thread::sleep(Duration::from_millis(150));
                            aioloop::sleep(Duration::from_secs(3600)).await;
                        })?;
                        Ok::<_, TaskGroupError>(())
                    })
                    .await
            })?;
            Ok::<_, TaskGroupError>(())
        })
        .await
}
