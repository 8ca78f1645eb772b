//! The task's atomic state word and every transition of it.
//!
//! # The protocol
//!
//! One `AtomicUsize` per task holds eleven flags and a reference count:
//!
//! | bit | name | meaning |
//! |---|---|---|
//! | 0 | `RUNNING` | one thread owns the future (polling it, or dropping it on cancel) |
//! | 1 | `COMPLETE` | the future is gone; the stage holds the output (or it was handed on) |
//! | 2 | `NOTIFIED` | the task has been woken; exactly one `Notified` reference exists for it, or the running thread will re-submit it when its poll ends |
//! | 3 | `JOIN_INTEREST` | the `Task<T>` handle is alive and will read the output |
//! | 4 | `JOIN_WAKER` | the handle has stored a waker in the trailer (see below) |
//! | 5 | `CANCELLED` | runtime shutdown asked for the future to be dropped instead of polled |
//! | 6 | `UNLISTED` | `unregister_task` hid the task from `all_tasks` (the registry still owns it) |
//! | 7 | `NAMED` | the task has a name in the side table (`registry::names`); else it is `Task-<id>` |
//! | 8 | `STARTED` | the future has been polled at least once (rule T4) |
//! | 9 | `OUT_CANCELLED` | set with `COMPLETE` when the task ended cancelled (`cancelled()`) |
//! | 10 | `WATCHED` | done callbacks or hooks are registered (task/done.rs): the completing thread must fire them |
//! | 11.. | refcount | one per `Notified`, `Waker`, `Task<T>`, `TaskRef` (the registry holds one) |
//!
//! **The rules** (cited by number as "state.rs rule N" in the task core's `SAFETY` comments):
//!
//! 1. **References.** A new task starts with three: the `Task<T>` handle, the `Notified`
//!    pushed on a run queue, and the registry's `TaskRef`. Wakers own one each. A live
//!    reference keeps the allocation alive; whoever drops the last one frees it, on whatever
//!    thread. The registry's reference is dropped when the task completes, so the registry
//!    never keeps a finished task alive (rule L1).
//! 2. **The future.** Only the thread that set `RUNNING` touches it. It is polled where it
//!    lies and dropped where it lies (Pin's drop guarantee): never moved after its first
//!    poll.
//! 3. **The output.** The completing thread writes it, under `RUNNING`, before setting
//!    `COMPLETE`. After that, if `JOIN_INTEREST` was set at that moment, only the handle
//!    reads or drops it; otherwise the completing thread drops it at once.
//! 4. **The join waker field.** While `JOIN_WAKER` is clear (and `COMPLETE` is clear), only
//!    the handle writes it. While `JOIN_WAKER` is set, nobody writes it; once `COMPLETE` is
//!    set the completing thread may read it. After completion the completing thread clears
//!    `JOIN_WAKER`; if the handle is gone by then, it drops the waker, otherwise the handle
//!    does.
//! 5. **`NOTIFIED`.** While it is set and the task is neither running nor complete, exactly
//!    one `Notified` reference exists. The thread that pops it and wins
//!    [`State::transition_to_running`] keeps that reference for the poll ("the poller's
//!    reference"); when the poll ends it either re-submits it (woken meanwhile) or drops it.
//! 6. **Immutable after creation:** the vtable, the id and the scheduler, readable through
//!    any reference.
//! 7. **A yield is a wake without the atomic.** A task that yields during its own poll
//!    (`yield_now` with the poll's own waker, task/waker.rs) sets no bit: the poller learns
//!    it from a thread-local its poll owns, and `transition_to_idle(true)` clears `RUNNING`
//!    and sets `NOTIFIED` in the one compare-exchange that ends the poll, keeping the
//!    poller's reference for it — what a `wake_by_ref` during the poll followed by
//!    `transition_to_idle(false)` achieves with one read-modify-write more.
//!
//! **Memory orderings.** Every transition is a compare-exchange or RMW with `AcqRel` (success)
//! and `Acquire` (failure/loads): the `Release` half publishes what the transitioning thread
//! wrote (the output, the waker field, the future's new state) and the `Acquire` half makes
//! the next owner see it. Reference increments are `Relaxed` (the incrementer already holds a
//! reference, so nothing can be freed under it); decrements are `AcqRel` so that the thread
//! that frees sees every other holder's last writes.

use crate::shim::atomic::{AtomicUsize, Ordering::*};

const RUNNING: usize = 1 << 0;
const COMPLETE: usize = 1 << 1;
const NOTIFIED: usize = 1 << 2;
const JOIN_INTEREST: usize = 1 << 3;
const JOIN_WAKER: usize = 1 << 4;
const CANCELLED: usize = 1 << 5;
const UNLISTED: usize = 1 << 6;
const NAMED: usize = 1 << 7;
const STARTED: usize = 1 << 8;
const OUT_CANCELLED: usize = 1 << 9;
const WATCHED: usize = 1 << 10;
const LIFECYCLE: usize = RUNNING | COMPLETE;
const REF_SHIFT: usize = 11;
const REF_ONE: usize = 1 << REF_SHIFT;

/// The task's state word.
pub(crate) struct State {
    val: AtomicUsize,
}

/// A copy of the state word at one instant.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(usize);

/// Result of [`State::transition_to_running`].
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum TransitionToRunning {
    /// The caller now owns the future: poll it. `first`: it has never been polled.
    Success { first: bool },
    /// The caller owns the future, and shutdown asked for it to be dropped, not polled.
    Cancelled,
    /// The task is already running or complete; the caller's reference was released.
    Failed,
    /// As `Failed`, and that was the last reference: the caller must free the task.
    Dealloc,
}

/// Result of [`State::transition_to_idle`].
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum TransitionToIdle {
    /// Not woken during the poll; the poller's reference was released.
    Ok,
    /// Woken during the poll: the poller's reference becomes a `Notified`; submit it.
    OkNotified,
    /// Not woken, and the poller's reference was the last one: free the task.
    OkDealloc,
    /// Shutdown asked for cancellation during the poll; the caller still owns the future
    /// (`RUNNING` stays set) and must cancel and complete the task.
    Cancelled,
}

/// Result of the `transition_to_notified_*` family.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum TransitionToNotified {
    /// Nothing to schedule (already notified, running, or complete).
    DoNothing,
    /// The caller now holds a `Notified` reference: submit it to the scheduler.
    Submit,
    /// (by value only) Nothing to schedule, and the waker's reference was the last: free.
    Dealloc,
}

/// Result of [`State::transition_to_join_handle_dropped`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct JoinDropped {
    /// The task is complete and the output is the handle's to drop.
    pub(crate) drop_output: bool,
    /// The join waker field is the handle's to drop.
    pub(crate) drop_waker: bool,
}

impl Snapshot {
    pub(crate) fn is_running(self) -> bool {
        self.0 & RUNNING != 0
    }
    pub(crate) fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }
    pub(crate) fn is_idle(self) -> bool {
        self.0 & LIFECYCLE == 0
    }
    pub(crate) fn is_notified(self) -> bool {
        self.0 & NOTIFIED != 0
    }
    pub(crate) fn is_join_interested(self) -> bool {
        self.0 & JOIN_INTEREST != 0
    }
    pub(crate) fn is_join_waker_set(self) -> bool {
        self.0 & JOIN_WAKER != 0
    }
    pub(crate) fn is_cancelled(self) -> bool {
        self.0 & CANCELLED != 0
    }
    pub(crate) fn is_unlisted(self) -> bool {
        self.0 & UNLISTED != 0
    }
    pub(crate) fn is_named(self) -> bool {
        self.0 & NAMED != 0
    }
    pub(crate) fn is_watched(self) -> bool {
        self.0 & WATCHED != 0
    }
    /// Complete, and the outcome is a cancellation.
    pub(crate) fn is_cancelled_outcome(self) -> bool {
        self.0 & OUT_CANCELLED != 0
    }
    pub(crate) fn ref_count(self) -> usize {
        self.0 >> REF_SHIFT
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every flag of the table at the top, by name, then the count.
        let mut d = f.debug_struct("Snapshot");
        for (bit, name) in FLAG_NAMES {
            d.field(name, &(self.0 & bit != 0));
        }
        d.field("refs", &self.ref_count()).finish()
    }
}

/// The flags in the order of the table at the top of this file.
const FLAG_NAMES: [(usize, &str); 11] = [
    (RUNNING, "running"),
    (COMPLETE, "complete"),
    (NOTIFIED, "notified"),
    (JOIN_INTEREST, "join_interest"),
    (JOIN_WAKER, "join_waker"),
    (CANCELLED, "cancelled"),
    (UNLISTED, "unlisted"),
    (NAMED, "named"),
    (STARTED, "started"),
    (OUT_CANCELLED, "out_cancelled"),
    (WATCHED, "watched"),
];

impl State {
    /// A new task: scheduled once (`NOTIFIED`), with a live handle, and three references
    /// (handle, `Notified`, registry).
    pub(crate) fn new() -> State {
        State {
            val: AtomicUsize::new(NOTIFIED | JOIN_INTEREST | (3 * REF_ONE)),
        }
    }

    #[inline]
    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.val.load(Acquire))
    }

    /// Runs `f` in a compare-exchange loop until it returns `None` (no change; the
    /// result is `Err(current)`) or its proposal is stored (`Ok((previous, output))`).
    #[inline]
    fn fetch_update<T>(
        &self,
        mut f: impl FnMut(Snapshot) -> Option<(Snapshot, T)>,
    ) -> Result<(Snapshot, T), Snapshot> {
        let mut curr = Snapshot(self.val.load(Acquire));
        loop {
            let Some((next, out)) = f(curr) else {
                return Err(curr);
            };
            match self
                .val
                .compare_exchange_weak(curr.0, next.0, AcqRel, Acquire)
            {
                Ok(_) => return Ok((curr, out)),
                Err(actual) => curr = Snapshot(actual),
            }
        }
    }

    /// A popped `Notified` tries to take the future.
    #[inline]
    pub(crate) fn transition_to_running(&self) -> TransitionToRunning {
        let r = self.fetch_update(|s| {
            debug_assert!(s.is_notified() || !s.is_idle(), "{s:?}");
            if s.is_idle() {
                let next = (s.0 & !NOTIFIED) | RUNNING | STARTED;
                let action = if s.is_cancelled() {
                    TransitionToRunning::Cancelled
                } else {
                    TransitionToRunning::Success {
                        first: s.0 & STARTED == 0,
                    }
                };
                Some((Snapshot(next), action))
            } else {
                debug_assert!(s.ref_count() >= 1);
                let next = s.0 - REF_ONE;
                let action = if next >> REF_SHIFT == 0 {
                    TransitionToRunning::Dealloc
                } else {
                    TransitionToRunning::Failed
                };
                Some((Snapshot(next), action))
            }
        });
        match r {
            Ok((_, action)) => action,
            Err(_) => unreachable!("transition_to_running always proposes"),
        }
    }

    /// The poll returned `Pending`: give the future back. `yielded`: the task asked to run
    /// again (rule 7), as if it had been woken during the poll.
    #[inline]
    pub(crate) fn transition_to_idle(&self, yielded: bool) -> TransitionToIdle {
        let r = self.fetch_update(|s| {
            debug_assert!(s.is_running());
            if s.is_cancelled() {
                return None;
            }
            if yielded {
                // The poller's reference stands for the NOTIFIED set here (rule 5).
                Some((
                    Snapshot((s.0 & !RUNNING) | NOTIFIED),
                    TransitionToIdle::OkNotified,
                ))
            } else if s.is_notified() {
                Some((Snapshot(s.0 & !RUNNING), TransitionToIdle::OkNotified))
            } else {
                debug_assert!(s.ref_count() >= 1);
                let next = (s.0 & !RUNNING) - REF_ONE;
                let action = if next >> REF_SHIFT == 0 {
                    TransitionToIdle::OkDealloc
                } else {
                    TransitionToIdle::Ok
                };
                Some((Snapshot(next), action))
            }
        });
        match r {
            Ok((_, action)) => action,
            Err(_) => TransitionToIdle::Cancelled,
        }
    }

    /// The output has been stored (or the future dropped): publish completion.
    /// Returns the state just before, which says whether the handle is still interested and
    /// whether it left a waker.
    /// `cancelled`: the outcome is a cancellation (sets `OUT_CANCELLED` in the same step).
    #[inline]
    pub(crate) fn transition_to_complete(&self, cancelled: bool) -> Snapshot {
        let out = if cancelled { OUT_CANCELLED } else { 0 };
        let prev = Snapshot(self.val.fetch_xor(RUNNING | COMPLETE | out, AcqRel));
        debug_assert!(prev.is_running() && !prev.is_complete(), "{prev:?}");
        prev
    }

    /// After waking the join waker on completion: give up read access to the waker field.
    /// Returns the state just before; if `JOIN_INTEREST` is clear in it, the handle is gone
    /// and the caller must drop the waker itself.
    pub(crate) fn unset_waker_after_complete(&self) -> Snapshot {
        let prev = Snapshot(self.val.fetch_and(!JOIN_WAKER, AcqRel));
        debug_assert!(prev.is_complete() && prev.is_join_waker_set(), "{prev:?}");
        prev
    }

    /// Shutdown: claim the future if nobody runs it (returns `true`: the caller must drop it
    /// and complete the task), and in every case mark the task cancelled so that a running
    /// poller drops the future when its poll ends.
    pub(crate) fn transition_to_shutdown(&self) -> bool {
        let r = self.fetch_update(|s| {
            if s.is_idle() {
                Some((Snapshot(s.0 | RUNNING | CANCELLED), true))
            } else if s.is_complete() || s.is_cancelled() {
                None
            } else {
                Some((Snapshot(s.0 | CANCELLED), false))
            }
        });
        matches!(r, Ok((_, true)))
    }

    /// A waker is consumed by `wake()`.
    #[inline]
    pub(crate) fn transition_to_notified_by_val(&self) -> TransitionToNotified {
        let r = self.fetch_update(|s| {
            debug_assert!(s.ref_count() >= 1);
            if s.is_running() {
                // The poller re-submits with its own reference; ours is released. The poller
                // holds one too, so this cannot be the last.
                debug_assert!(s.ref_count() >= 2);
                Some((
                    Snapshot((s.0 | NOTIFIED) - REF_ONE),
                    TransitionToNotified::DoNothing,
                ))
            } else if s.is_complete() || s.is_notified() {
                let next = s.0 - REF_ONE;
                let action = if next >> REF_SHIFT == 0 {
                    TransitionToNotified::Dealloc
                } else {
                    TransitionToNotified::DoNothing
                };
                Some((Snapshot(next), action))
            } else {
                // Our reference becomes the `Notified`.
                Some((Snapshot(s.0 | NOTIFIED), TransitionToNotified::Submit))
            }
        });
        match r {
            Ok((_, action)) => action,
            Err(_) => unreachable!("always proposes"),
        }
    }

    /// A waker is woken by reference.
    #[inline]
    pub(crate) fn transition_to_notified_by_ref(&self) -> TransitionToNotified {
        self.notify_by_ref(false)
    }

    /// A cancellation request was recorded (task/cancel.rs): as
    /// [`transition_to_notified_by_ref`](State::transition_to_notified_by_ref), but always
    /// an RMW on the state word, also when the task is already notified or complete. The
    /// `Release` half orders the request (and the publication of the cancellation block)
    /// before the poller's next `transition_to_running`, whose `Acquire` then sees it; a
    /// wake that found `NOTIFIED` set and wrote nothing would give the poller no such edge,
    /// and the request could be missed (found by the loom model `cancel_races_completion`).
    pub(crate) fn transition_to_notified_for_cancel(&self) -> TransitionToNotified {
        self.notify_by_ref(true)
    }

    fn notify_by_ref(&self, always_write: bool) -> TransitionToNotified {
        let r = self.fetch_update(|s| {
            if s.is_complete() || s.is_notified() {
                always_write.then_some((s, TransitionToNotified::DoNothing))
            } else if s.is_running() {
                Some((Snapshot(s.0 | NOTIFIED), TransitionToNotified::DoNothing))
            } else {
                // A new reference for the `Notified`.
                Some((
                    Snapshot((s.0 | NOTIFIED) + REF_ONE),
                    TransitionToNotified::Submit,
                ))
            }
        });
        match r {
            Ok((_, action)) => action,
            Err(_) => TransitionToNotified::DoNothing,
        }
    }

    /// The handle stores its first waker (the field was the handle's): publish it.
    /// Fails with the current state if the task completed meanwhile; the field is then still
    /// the handle's.
    pub(crate) fn set_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.fetch_update(|s| {
            debug_assert!(s.is_join_interested() && !s.is_join_waker_set());
            if s.is_complete() {
                None
            } else {
                Some((Snapshot(s.0 | JOIN_WAKER), ()))
            }
        })
        .map(|(prev, ())| prev)
    }

    /// The handle wants to replace its waker: take the field back. Fails if the task has
    /// completed (then the completing thread may be reading the field).
    pub(crate) fn unset_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.fetch_update(|s| {
            // Once complete, the completing thread may already have cleared JOIN_WAKER.
            if s.is_complete() {
                return None;
            }
            debug_assert!(s.is_join_interested() && s.is_join_waker_set(), "{s:?}");
            Some((Snapshot(s.0 & !JOIN_WAKER), ()))
        })
        .map(|(prev, ())| prev)
    }

    /// The handle is dropped. It gives up `JOIN_INTEREST` and, if the task is not complete,
    /// `JOIN_WAKER` too (so that the field is the handle's to clear).
    #[inline]
    pub(crate) fn transition_to_join_handle_dropped(&self) -> JoinDropped {
        let r = self.fetch_update(|s| {
            debug_assert!(s.is_join_interested());
            let mut next = s.0 & !JOIN_INTEREST;
            if !s.is_complete() {
                next &= !JOIN_WAKER;
            }
            Some((Snapshot(next), ()))
        });
        let Ok((prev, ())) = r else {
            unreachable!("always proposes")
        };
        JoinDropped {
            drop_output: prev.is_complete(),
            // Not complete: we just cleared JOIN_WAKER, so the field is ours.
            // Complete without JOIN_WAKER: the completing thread is done with it.
            // Complete with JOIN_WAKER: the completing thread will drop it.
            drop_waker: !prev.is_complete() || !prev.is_join_waker_set(),
        }
    }

    /// `unregister_task` / `register_task` on a built-in task: hide it from, or show it in,
    /// `all_tasks`. Visibility only; ownership is unchanged.
    pub(crate) fn set_unlisted(&self, unlisted: bool) {
        if unlisted {
            self.val.fetch_or(UNLISTED, AcqRel);
        } else {
            self.val.fetch_and(!UNLISTED, AcqRel);
        }
    }

    /// A done callback is being registered (task/done.rs), under the done list's lock.
    /// Returns the state before: if it was already `COMPLETE`, the completing thread did
    /// not see `WATCHED` and the registrant must run the callback itself. Both sides are
    /// read-modify-writes of this one word, so exactly one of them sees the other.
    pub(crate) fn set_watched(&self) -> Snapshot {
        Snapshot(self.val.fetch_or(WATCHED, AcqRel))
    }

    /// The task's name now lives in the side table. `Release` publishes the table entry
    /// written before it.
    pub(crate) fn set_named(&self) {
        self.val.fetch_or(NAMED, AcqRel);
    }

    /// Adds one reference. The caller already holds one.
    #[inline]
    pub(crate) fn ref_inc(&self) {
        let prev = self.val.fetch_add(REF_ONE, Relaxed);
        if prev > isize::MAX as usize {
            std::process::abort();
        }
    }

    /// Drops one reference; `true` if it was the last (the caller must free the task).
    #[inline]
    pub(crate) fn ref_dec(&self) -> bool {
        self.ref_dec_by(1)
    }

    /// Drops `n` references at once; `true` if they were the last.
    #[inline]
    pub(crate) fn ref_dec_by(&self, n: usize) -> bool {
        let prev = Snapshot(self.val.fetch_sub(n * REF_ONE, AcqRel));
        debug_assert!(prev.ref_count() >= n, "{prev:?}");
        prev.ref_count() == n
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A new task's state, moved to running by its first poll.
    fn running() -> State {
        let st = State::new();
        assert!(matches!(
            st.transition_to_running(),
            TransitionToRunning::Success { .. }
        ));
        st
    }

    #[test]
    fn new_task_is_notified_with_three_refs() {
        let s = State::new().load();
        assert!(s.is_notified() && s.is_join_interested() && s.is_idle());
        assert_eq!(s.ref_count(), 3);
    }

    #[test]
    fn run_then_idle_releases_the_pollers_reference() {
        let st = running();
        assert_eq!(st.transition_to_idle(false), TransitionToIdle::Ok);
        assert_eq!(st.load().ref_count(), 2);
        assert!(st.load().is_idle() && !st.load().is_notified());
    }

    #[test]
    fn wake_during_poll_resubmits_with_pollers_reference() {
        let st = running();
        assert_eq!(
            st.transition_to_notified_by_ref(),
            TransitionToNotified::DoNothing
        );
        assert_eq!(st.transition_to_idle(false), TransitionToIdle::OkNotified);
        assert_eq!(st.load().ref_count(), 3);
        assert!(st.load().is_notified());
    }

    /// Rule 7: a yield recorded by the poller ends the poll notified, keeping the poller's
    /// reference for the `Notified`, with no wake during the poll.
    #[test]
    fn yield_ends_the_poll_notified_with_pollers_reference() {
        let st = running();
        assert_eq!(st.transition_to_idle(true), TransitionToIdle::OkNotified);
        assert_eq!(st.load().ref_count(), 3);
        assert!(st.load().is_notified() && st.load().is_idle());
    }

    #[test]
    fn wake_by_ref_when_idle_adds_a_reference() {
        let st = running();
        assert_eq!(st.transition_to_idle(false), TransitionToIdle::Ok);
        assert_eq!(
            st.transition_to_notified_by_ref(),
            TransitionToNotified::Submit
        );
        assert_eq!(st.load().ref_count(), 3);
        // A second wake while notified does nothing.
        assert_eq!(
            st.transition_to_notified_by_ref(),
            TransitionToNotified::DoNothing
        );
    }

    #[test]
    fn wake_by_val_after_complete_can_free() {
        let st = running();
        st.ref_inc(); // a waker
        let prev = st.transition_to_complete(false);
        assert!(prev.is_join_interested());
        assert!(!st.ref_dec()); // poller
        let d = st.transition_to_join_handle_dropped();
        assert!(d.drop_output && d.drop_waker);
        assert!(!st.ref_dec()); // handle
        assert!(!st.ref_dec()); // registry
        assert_eq!(
            st.transition_to_notified_by_val(),
            TransitionToNotified::Dealloc
        );
    }

    #[test]
    fn shutdown_claims_an_idle_task_and_marks_a_running_one() {
        let st = State::new();
        assert!(st.transition_to_shutdown());
        assert!(st.load().is_running() && st.load().is_cancelled());
        // The queued Notified then fails to run.
        assert_eq!(st.transition_to_running(), TransitionToRunning::Failed);

        let st = running();
        assert!(!st.transition_to_shutdown());
        assert_eq!(st.transition_to_idle(false), TransitionToIdle::Cancelled);
    }

    #[test]
    fn join_waker_cannot_be_set_after_completion() {
        let st = running();
        let _ = st.transition_to_complete(false);
        assert!(st.set_join_waker().is_err());
    }

    #[test]
    fn dropping_handle_before_completion_takes_the_waker_back() {
        let st = State::new();
        assert!(st.set_join_waker().is_ok());
        let d = st.transition_to_join_handle_dropped();
        assert!(!d.drop_output && d.drop_waker);
        assert!(!st.load().is_join_waker_set());
    }
}
