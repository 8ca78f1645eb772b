//! Task ids come from one process-wide counter starting at 1 (rule T1). This file holds a
//! single test so that nothing else in its process creates a task first.

use aioloop::Runtime;

#[test]
fn first_task_id_is_one() {
    // rule T1: the first task of the process is Task-1, and ids count up from there.
    let rt = Runtime::builder().workers(1).build().unwrap();
    let first = rt.spawn(async { aioloop::current_task().unwrap().name() });
    assert_eq!(first.id(), 1);
    assert_eq!(first.name(), "Task-1");
    let second = rt.spawn(async {});
    assert_eq!(second.id(), 2);
    assert_eq!(rt.block_on(first).unwrap(), "Task-1");
    rt.block_on(second).unwrap();
}
