//! `#[aioloop::main]` / `#[aioloop::test]` (rules O1, O2): the body runs as the main task of
//! a fresh loop of the kind asked for; a test's timeout fails the test instead of hanging.
//! (Misuse is covered by macros/tests/compile_fail.rs; `#[aioloop::main]` by the doc test
//! on `aioloop::main`.)

use std::future::pending;
use std::rc::Rc;

/// O1: a runtime is running, with the body as its main task (asyncio.run's main task).
#[aioloop::test]
async fn body_runs_as_the_main_task_of_a_runtime() {
    assert!(aioloop::Handle::try_current().is_ok());
    assert!(aioloop::current_task().is_some());
    assert_eq!(aioloop::create_task(async { 2 }).await.unwrap(), 2);
}

/// O1: `workers = N` sizes the runtime.
#[aioloop::test(workers = 3)]
async fn workers_option_sizes_the_runtime() {
    assert_eq!(aioloop::Handle::current().metrics().workers.len(), 3);
}

/// O1: `local` runs on a LocalLoop, so `!Send` state and `spawn_local` work.
#[aioloop::test(local)]
async fn local_option_runs_on_a_local_loop() {
    assert!(aioloop::Handle::try_current().is_err());
    let shared = Rc::new(5);
    let inner = shared.clone();
    let t = aioloop::spawn_local(async move { *inner + 1 });
    assert_eq!(t.await.unwrap(), 6);
    assert_eq!(*shared, 5);
}

/// O1: `debug` turns on asyncio's debug mode.
#[aioloop::test(debug)]
async fn debug_option_sets_debug_mode() {
    assert!(aioloop::Handle::current().get_debug());
}

/// O1: the body's value is the function's: `?` and `Result`-returning tests work.
#[aioloop::test(workers = 2)]
async fn result_returning_test() -> Result<(), aioloop::TaskError> {
    let v = aioloop::create_task(async { 3 }).await?;
    assert_eq!(v, 3);
    Ok(())
}

/// O2: past the timeout the test fails (panics) rather than hanging.
#[aioloop::test(timeout = "20ms")]
#[should_panic(expected = "test timed out after 20ms")]
async fn timeout_fails_a_stuck_test() {
    pending::<()>().await;
}

/// O2: the same on a LocalLoop.
#[aioloop::test(local, timeout = "20ms")]
#[should_panic(expected = "test timed out")]
async fn timeout_fails_a_stuck_local_test() {
    pending::<()>().await;
}

/// O2: a body that finishes in time is unaffected by its timeout.
#[aioloop::test(timeout = "5s")]
async fn timeout_lets_a_finishing_test_pass() {
    aioloop::sleep(std::time::Duration::from_millis(1)).await;
}
