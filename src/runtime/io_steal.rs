//! Serving the sockets of a worker that does not come back to its loop (reactor rule R10).
//!
//! A source lives on the poller of the worker that first waited on it (R7), and only a
//! harvest of that poller wakes its tasks. A task that computes without yielding keeps
//! its worker from harvesting, so an idle worker does it instead: before parking it
//! harvests every peer whose poller has sources and has gone unharvested for
//! `PEER_IO_STALE` (the woken tasks join its own queue), and while some peer with sources
//! is running it parks for at most `PEER_IO_STALE`, so that it looks again. The bound this
//! gives — a socket of a stuck worker waits about `2 × PEER_IO_STALE` (2 ms) — holds while
//! at least one worker is idle; with every worker stuck, nothing harvests.
//!
//! Owns: nothing. Must not: harvest a parked peer (the driver's try-lock sees to that).

use std::time::Duration;

use super::shared::Shared;
use crate::shim::tuning::PEER_IO_STALE;

/// Harvests every stuck peer of worker `me`; how many sources became ready.
pub(crate) fn harvest_stuck_peers(shared: &Shared, me: usize) -> usize {
    let mut ready = 0;
    for (i, p) in shared.parkers.iter().enumerate() {
        if i != me {
            ready += p.driver().harvest_if_stuck(PEER_IO_STALE);
        }
    }
    ready
}

/// The park timeout of worker `me`: at most `PEER_IO_STALE` while a peer that owns
/// sources is running.
pub(crate) fn cap_park(shared: &Shared, me: usize, timeout: Option<Duration>) -> Option<Duration> {
    let busy_peer = shared
        .parkers
        .iter()
        .enumerate()
        .any(|(i, p)| i != me && p.driver().has_sources() && !shared.idle.is_parked(i));
    if busy_peer {
        Some(timeout.map_or(PEER_IO_STALE, |t| t.min(PEER_IO_STALE)))
    } else {
        timeout
    }
}
