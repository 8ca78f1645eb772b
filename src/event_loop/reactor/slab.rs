//! The sources registered on one poller: a slab whose keys carry a generation (rules R5,
//! R6 of `reactor/mod.rs`).
//!
//! A poller event names its source by key. The key is the slot index in the low 32 bits
//! and the slot's generation above, so an event for a slot that was released — and maybe
//! reused by another source on the same descriptor number — finds a different generation
//! and is ignored (Go's netpoller tags its registrations with a sequence number for the
//! same reason). A released slot is reused only after a harvest that began after the
//! release has ended.

use std::sync::Arc;

use super::readiness::ScheduledIo;

const INDEX_BITS: u32 = 32;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;
/// The poller crate reserves `usize::MAX` for its own notifications; generations stay
/// below `u32::MAX` so a key never collides with it.
const GEN_LIMIT: usize = u32::MAX as usize - 1;

struct Slot {
    generation: usize,
    io: Option<Arc<ScheduledIo>>,
}

/// A released slot waiting for the next harvest to end.
struct Pending {
    index: usize,
    /// The harvest count when it was released.
    released_at: u64,
}

#[derive(Default)]
pub(crate) struct Slab {
    slots: Vec<Slot>,
    free: Vec<usize>,
    pending: Vec<Pending>,
    /// Harvests begun on the owning poller.
    harvests: u64,
    live: usize,
}

impl Slab {
    /// Stores `io` and returns its key.
    pub(crate) fn insert(&mut self, io: Arc<ScheduledIo>) -> usize {
        self.live += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index];
            slot.io = Some(io);
            return index | (slot.generation << INDEX_BITS);
        }
        let index = self.slots.len();
        self.slots.push(Slot {
            generation: 0,
            io: Some(io),
        });
        index
    }

    /// The source of `key` if the key is current (rule R5).
    pub(crate) fn get(&self, key: usize) -> Option<&Arc<ScheduledIo>> {
        let slot = self.slots.get(key & INDEX_MASK)?;
        if slot.generation != key >> INDEX_BITS {
            return None;
        }
        slot.io.as_ref()
    }

    /// Releases `key`'s slot: its generation moves on at once (later events for the key are
    /// ignored), the slot itself is reused after the next harvest (rule R6).
    pub(crate) fn remove(&mut self, key: usize) -> Option<Arc<ScheduledIo>> {
        let index = key & INDEX_MASK;
        let slot = self.slots.get_mut(index)?;
        if slot.generation != key >> INDEX_BITS {
            return None;
        }
        let io = slot.io.take()?;
        slot.generation = if slot.generation >= GEN_LIMIT {
            0
        } else {
            slot.generation + 1
        };
        self.live -= 1;
        self.pending.push(Pending {
            index,
            released_at: self.harvests,
        });
        Some(io)
    }

    /// A harvest begins; returns its number for [`Slab::end_harvest`].
    pub(crate) fn begin_harvest(&mut self) -> u64 {
        self.harvests += 1;
        self.harvests
    }

    /// Harvest `n` has dispatched its events: slots released before it began are free.
    pub(crate) fn end_harvest(&mut self, n: u64) {
        let free = &mut self.free;
        self.pending.retain(|p| {
            if p.released_at < n {
                free.push(p.index);
                false
            } else {
                true
            }
        });
    }

    /// How many sources are registered.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Every registered source (the driver going away wakes them).
    pub(crate) fn drain(&mut self) -> Vec<Arc<ScheduledIo>> {
        self.live = 0;
        self.slots.iter_mut().filter_map(|s| s.io.take()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stale key (released, slot reused) finds nothing: rule R5.
    #[test]
    fn stale_key_is_ignored_after_reuse() {
        let mut slab = Slab::default();
        let a = slab.insert(Arc::default());
        assert!(slab.remove(a).is_some());
        let h = slab.begin_harvest();
        slab.end_harvest(h);
        let b = slab.insert(Arc::default());
        assert_eq!(a & INDEX_MASK, b & INDEX_MASK, "the slot is reused");
        assert!(slab.get(a).is_none());
        assert!(slab.get(b).is_some());
        assert!(slab.remove(a).is_none());
    }

    /// A released slot is not reused before a harvest that began after the release ends:
    /// rule R6.
    #[test]
    fn slot_is_reused_only_after_the_next_harvest() {
        let mut slab = Slab::default();
        let h = slab.begin_harvest();
        let a = slab.insert(Arc::default());
        slab.remove(a);
        slab.end_harvest(h); // began before the release
        let b = slab.insert(Arc::default());
        assert_ne!(a & INDEX_MASK, b & INDEX_MASK);
        let h = slab.begin_harvest();
        slab.end_harvest(h);
        let c = slab.insert(Arc::default());
        assert_eq!(a & INDEX_MASK, c & INDEX_MASK);
        assert_eq!(slab.live(), 2);
    }
}
