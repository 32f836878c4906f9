//! Entity key -> slot -> shard.
//!
//! A key is routed by the canonical bytes of its join-key values (see [`crate::value::encode_key_value`],
//! join keys in name order), so every process, build and platform agrees. The slot is Redis
//! Cluster's: CRC16-XMODEM of the bytes, `& 16383`. Slots map to shards in contiguous ranges, so a
//! shard owns `[start, end)` of the slot space and a snapshot can name its range.

use std::ops::Range;

use crc::{Crc, Table, CRC_16_XMODEM};

/// Number of slots in the key space (Redis Cluster's 16,384).
pub const SLOTS: usize = 16_384;

/// Sliced 16 ways: 16 bytes a step, each an independent table load, where the one-table form
/// takes 16 steps each waiting on the last.
const CRC16: Crc<u16, Table<16>> = Crc::<u16, Table<16>>::new(&CRC_16_XMODEM);

/// The slot of a canonical entity key.
pub fn slot(key: &[u8]) -> u16 {
    // XMODEM's register starts at zero, so zero bytes in front of a message leave its CRC as
    // it is: a key of up to 16 bytes (an int64 id is 8) is one step of the sliced table.
    // (2026-12-04: the byte-at-a-time loop was about a third of a push's row building.)
    let crc = match key.len() {
        0..=16 => {
            let mut block = [0u8; 16];
            block[16 - key.len()..].copy_from_slice(key);
            CRC16.checksum(&block)
        }
        _ => CRC16.checksum(key),
    };
    crc & (SLOTS as u16 - 1)
}

/// Maps slots to a fixed number of local shards.
#[derive(Debug, Clone, Copy)]
pub struct Router {
    shards: usize,
}

impl Router {
    /// `shards` must be in `1..=SLOTS` (checked by the settings).
    pub fn new(shards: usize) -> Router {
        assert!((1..=SLOTS).contains(&shards), "shards must be 1..=16384");
        Router { shards }
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    pub fn shard_of_slot(&self, slot: u16) -> usize {
        slot as usize * self.shards / SLOTS
    }

    pub fn shard_of_key(&self, key: &[u8]) -> usize {
        self.shard_of_slot(slot(key))
    }

    /// The slots shard `shard` owns.
    pub fn slot_range(&self, shard: usize) -> Range<u16> {
        let start = (shard * SLOTS).div_ceil(self.shards);
        let end = ((shard + 1) * SLOTS).div_ceil(self.shards);
        start as u16..end as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc16_xmodem_test_vector() {
        assert_eq!(CRC16.checksum(b"123456789"), 0x31C3);
        assert_eq!(slot(b"123456789"), 0x31C3 & 0x3FFF);
    }

    #[test]
    fn slot_of_a_driver_key_is_fixed_forever() {
        // driver_id 1001 as int64 little-endian: changing this breaks every persisted and
        // clustered deployment, so it is pinned.
        assert_eq!(slot(&1001i64.to_le_bytes()), 12_722);
    }

    #[test]
    fn ranges_cover_the_slot_space_once() {
        for shards in [1, 2, 3, 7, 8, 1000, SLOTS] {
            let r = Router::new(shards);
            let mut next = 0u32;
            for s in 0..shards {
                let range = r.slot_range(s);
                assert_eq!(range.start as u32, next, "shards={shards} s={s}");
                next = range.end as u32;
                if shards < SLOTS {
                    assert!(!range.is_empty());
                }
            }
            assert_eq!(next as usize, SLOTS);
        }
    }

    proptest! {
        #[test]
        fn a_slot_belongs_to_the_shard_whose_range_holds_it(shards in 1usize..=SLOTS, slot in 0u16..SLOTS as u16) {
            let r = Router::new(shards);
            let shard = r.shard_of_slot(slot);
            prop_assert!(shard < shards);
            let range = r.slot_range(shard);
            prop_assert!(range.contains(&slot));
        }

        /// The padded, sliced form is the textbook CRC16-XMODEM, a byte at a time, for short
        /// keys, 16-byte ones and long ones alike.
        #[test]
        fn slot_is_crc16_xmodem_of_the_key(key in proptest::collection::vec(any::<u8>(), 0..80)) {
            let bytewise = Crc::<u16>::new(&CRC_16_XMODEM).checksum(&key);
            prop_assert_eq!(slot(&key), bytewise & (SLOTS as u16 - 1));
        }
    }
}
