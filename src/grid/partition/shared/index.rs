//! The index of a [`super::SharedTable`]: open addressing with linear probing over any number
//! of slots, each holding a row id and a tag of its key's hash (see the module documentation
//! of `shared`). The writer inserts; readers probe at the same time.

use std::sync::atomic::{AtomicU32, Ordering};

use super::ZeroedAtomics;

/// Fullest an index may be, as a fraction: a write that would make it fuller grows it.
pub(super) const MAX_LOAD: (usize, usize) = (3, 4);
/// How full an index is right after it grows.
/// Half: growing by half again rather than doubling, 5.3-8 bytes a row where doubling cost
/// 5.3-10.7. Measured (BENCHMARKS.md, 2026-12-05), 3/5 (a quarter at a time) saved 0.3 bytes
/// more a row at 1M but grew three times as often: push 100 of new keys had p99 11-12 ms
/// against 3.6-4.1 ms.
pub(super) const GROWN_LOAD: (usize, usize) = (1, 2);
/// How full an index sized for a known number of rows is (a restore's, from its snapshot's
/// counts): 5.7 bytes a row, where growing would leave 8 after every restart. A shard's share
/// of a snapshot is estimated from slot ranges, off by well under 1% at a hundred thousand
/// rows; more than 7% past it, the index grows as usual.
pub(super) const KNOWN_LOAD: (usize, usize) = (7, 10);

pub(super) struct Index {
    pub(super) slots: Box<[AtomicU32]>,
    /// The low bits of a slot that hold `row id + 1`; the bits above hold the hash's tag.
    id_mask: u32,
}

impl Index {
    /// An index of `slots` slots (at least 16) for row ids below `slots`.
    pub(super) fn with_slots(slots: usize) -> Index {
        let slots = slots.max(16);
        // `row id + 1` <= rows <= slots must fit under the mask.
        let id_mask = u32::try_from(slots + 1)
            .ok()
            .and_then(u32::checked_next_power_of_two)
            .map_or(u32::MAX, |p| p - 1);
        Index {
            slots: Box::<[AtomicU32]>::new_zeroed_slice(slots).into_boxed_atomic(),
            id_mask,
        }
    }

    /// Slots for `rows` rows `load` full.
    pub(super) fn slots_for(rows: usize, load: (usize, usize)) -> usize {
        (rows * load.1).div_ceil(load.0)
    }

    /// Where `hash`'s probe starts: the hash's high bits scaled to the slot count.
    pub(super) fn home(&self, hash: u64) -> usize {
        ((hash as u128 * self.slots.len() as u128) >> 64) as usize
    }

    /// The slot after `at` on a probe.
    fn next(&self, at: usize) -> usize {
        if at + 1 == self.slots.len() {
            0
        } else {
            at + 1
        }
    }

    /// `hash`'s tag: its low bits above the id bits (none when ids take all 32).
    fn tag(&self, hash: u64) -> u32 {
        hash as u32 & !self.id_mask
    }

    /// The writer's insert of a row not yet in the index.
    pub(super) fn insert(&self, hash: u64, id: u32) {
        debug_assert!(id < self.id_mask, "row {id} past the index's id bits");
        let mut at = self.home(hash);
        while self.slots[at].load(Ordering::Relaxed) != 0 {
            at = self.next(at);
        }
        self.slots[at].store(self.tag(hash) | (id + 1), Ordering::Release);
    }

    /// The rows on `hash`'s probe sequence whose slot has its tag, in probe order, among the
    /// first `most` slots (the sequence ends at an empty slot).
    fn candidates(&self, hash: u64, most: usize) -> impl Iterator<Item = u32> + '_ {
        let tag = self.tag(hash);
        let mut at = self.home(hash);
        std::iter::from_fn(move || {
            let slot = self.slots[at].load(Ordering::Acquire);
            at = self.next(at);
            Some(slot)
        })
        .take(most)
        .take_while(|&slot| slot != 0)
        .filter(move |&slot| slot & !self.id_mask == tag)
        .map(|slot| (slot & self.id_mask) - 1)
    }

    /// The first row id on `hash`'s probe sequence, among those with its tag, for which `eq`
    /// holds.
    pub(super) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.candidates(hash, usize::MAX).find(|&id| eq(id))
    }

    /// The first row on `hash`'s probe sequence with its tag, among the first `most` slots.
    pub(super) fn first_candidate(&self, hash: u64, most: usize) -> Option<u32> {
        self.candidates(hash, most).next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tags_share_a_slot_without_overlapping_at_every_size() {
        // Around powers of two, where the id bits change; a hash of all ones has every tag bit.
        for slots in [16, 17, 31, 32, 33, 1000, 1 << 16, (1 << 16) + 1, 3 << 20] {
            let index = Index::with_slots(slots);
            let last = (slots * MAX_LOAD.0 / MAX_LOAD.1) as u32 - 1;
            for (id, hash) in [
                (0, u64::MAX),
                (last, u64::MAX),
                (last - 1, 0),
                (1, 0x5555_5555),
            ] {
                index.insert(hash, id);
                assert_eq!(
                    index.find(hash, |found| found == id),
                    Some(id),
                    "{slots} slots, row {id}"
                );
            }
            assert_eq!(index.find(0x1234_5678_9abc, |_| false), None);
        }
        assert_eq!(Index::with_slots(65_535).id_mask, 65_535);
        assert_eq!(Index::with_slots(65_536).id_mask, 131_071);
        assert_eq!(Index::with_slots(1 << 31).id_mask, u32::MAX);
    }
}
