//! Deep nesting (issue 8, item 4): futures nested inside one task stack their poll frames
//! on the worker's stack; the default worker stack holds 1,000 nested task groups in a
//! debug build, also under AddressSanitizer (see `Builder::thread_stack_size` for the
//! per-level costs).

use std::future::Future;
use std::pin::Pin;

use aioloop::{Runtime, TaskGroup, TaskGroupError};

use crate::common::guarded;

type Boxed = Pin<Box<dyn Future<Output = u32> + Send>>;

/// `n` task groups, each entered inside the body of the one above, in one task.
fn nested_groups(n: u32) -> Boxed {
    Box::pin(async move {
        if n == 0 {
            return 0;
        }
        let inner = TaskGroup::new()
            .run(|g| async move {
                // A child per level too, so every group has something to wait for.
                let child = g.create_task(async move { n })?;
                let depth = nested_groups(n - 1).await;
                Ok::<_, TaskGroupError>((depth, child))
            })
            .await;
        let (depth, child) = inner.expect("the nested group succeeds");
        assert_eq!(child.await.unwrap(), n);
        depth + 1
    })
}

/// Issue 8 item 4: 1,000 nested `TaskGroup`s complete on a runtime built with the default
/// settings (its default worker stack size), also in a debug build, where std's 2 MiB
/// thread stack overflowed at about 350 levels.
#[test]
fn thousand_nested_task_groups_on_default_runtime() {
    let depth = guarded("1,000 nested task groups", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.block_on(rt.spawn(nested_groups(1000))).unwrap()
    });
    assert_eq!(depth, 1000);
}
