//! An immutable copy of a partition, for snapshots and digests.
//!
//! Copying runs on the shard thread and only copies the tables' flat arrays (the fixed-width
//! records and the key arena are `memcpy`s; variable-length values are one small allocation
//! each). The index is not copied: a frozen copy is only walked in order. Everything slow
//! (encoding, hashing, checksums, file I/O) then runs on the copy, off the shard thread.
//!
//! A copy can be taken in steps ([`Partition::freeze_step`], a few MiB each) so that the shard
//! serves other messages between steps. Rows are only ever appended or overwritten in place,
//! so the steps together hold every row that existed when the first step ran, each at its
//! value then or a newer one. That is what a snapshot needs: it is replayed together with the
//! log from a position taken before the first step, and replay is newest-event-wins.

use std::sync::Arc;

use crc::{Crc, Table as CrcTable, CRC_64_XZ};

use super::portable::encode_row;
use super::{record_key, Partition, RowLayout};

use crate::registry::ViewId;

const CRC64: Crc<u64, CrcTable<16>> = Crc::<u64, CrcTable<16>>::new(&CRC_64_XZ);

struct FrozenTable {
    records: Vec<u8>,
    key_arena: Vec<u8>,
    vars: Vec<Option<Box<[u8]>>>,
    rows: u32,
}

/// A copy of a partition's rows (see the module documentation for what "copy" promises
/// when it was taken in steps).
pub struct FrozenPartition {
    layouts: Arc<[RowLayout]>,
    tables: Vec<FrozenTable>,
    /// The view the next step copies from.
    next_view: usize,
}

impl Partition {
    /// Copies every table's rows (not the index) at once.
    pub fn freeze(&self) -> FrozenPartition {
        let mut frozen = FrozenPartition::empty(self.layouts.clone());
        while !self.freeze_step(&mut frozen, usize::MAX) {}
        frozen
    }

    /// Copies about `budget` more bytes of records into `frozen` (at least one row);
    /// answers whether the copy is now complete.
    pub fn freeze_step(&self, frozen: &mut FrozenPartition, budget: usize) -> bool {
        let mut spent = 0usize;
        // Views added to the registry after the copy began are not in it: the copy covers
        // the views it was made for (`frozen.tables`).
        let views = frozen.tables.len().min(self.tables.len());
        while let (true, Some(table), Some(layout)) = (
            frozen.next_view < views,
            self.tables.get(frozen.next_view),
            self.layouts.get(frozen.next_view),
        ) {
            let copy = &mut frozen.tables[frozen.next_view];
            let record_len = layout.record_len().max(1);
            let fit = (budget.saturating_sub(spent) / record_len).clamp(1, u32::MAX as usize);
            let rows = (table.rows - copy.rows).min(fit as u32);
            let (from, to) = (copy.rows as usize, (copy.rows + rows) as usize);
            if from == 0 {
                // One allocation, not a growing one copied over and over on the shard thread.
                copy.records
                    .reserve_exact(table.rows as usize * layout.record_len());
                copy.vars.reserve_exact(table.vars.len());
            }
            for id in from..to {
                copy.records
                    .extend_from_slice(table.shared.writer_row(id as u32));
            }
            copy.vars
                .extend_from_slice(&table.vars[from * layout.var_count..to * layout.var_count]);
            // The arena is append-only: its new part holds the keys of the rows just copied.
            copy.key_arena
                .extend_from_slice(&table.key_arena[copy.key_arena.len()..]);
            copy.rows += rows;
            spent += rows as usize * record_len;
            if copy.rows == table.rows {
                frozen.next_view += 1;
            }
            if spent >= budget {
                break;
            }
        }
        frozen.next_view >= views
    }
}

impl FrozenPartition {
    /// An empty copy, to fill with [`Partition::freeze_step`].
    pub fn empty(layouts: Arc<[RowLayout]>) -> FrozenPartition {
        FrozenPartition {
            tables: layouts
                .iter()
                .map(|_| FrozenTable {
                    records: Vec::new(),
                    key_arena: Vec::new(),
                    vars: Vec::new(),
                    rows: 0,
                })
                .collect(),
            layouts,
            next_view: 0,
        }
    }

    /// Rows of each view.
    pub fn row_counts(&self) -> Vec<u64> {
        self.tables.iter().map(|t| t.rows as u64).collect()
    }

    /// Total rows over every view.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows as u64).sum()
    }

    /// Calls `f` with the key and the portable form (see [`super::portable`]) of each row
    /// of `view`.
    fn for_each_row(&self, view: ViewId, scratch: &mut Vec<u8>, mut f: impl FnMut(&[u8], &[u8])) {
        let (Some(layout), Some(table)) = (self.layouts.get(view), self.tables.get(view)) else {
            return;
        };
        for id in 0..table.rows {
            scratch.clear();
            Self::encode(layout, table, id, scratch);
            f(
                record_key(layout, &table.records, &table.key_arena, id),
                scratch,
            );
        }
    }

    fn encode(layout: &RowLayout, table: &FrozenTable, id: u32, out: &mut Vec<u8>) {
        let key = record_key(layout, &table.records, &table.key_arena, id);
        let at = id as usize * layout.record_len();
        let value = &table.records[at + layout.key_part_len()..at + layout.record_len()];
        let vars =
            &table.vars[id as usize * layout.var_count..(id as usize + 1) * layout.var_count];
        encode_row(
            key,
            value,
            vars.iter().map(|v| v.as_deref().unwrap_or_default()),
            out,
        );
    }

    /// Appends every row of `view` in the portable form.
    pub fn encode_view(&self, view: ViewId, out: &mut Vec<u8>) {
        let (Some(layout), Some(table)) = (self.layouts.get(view), self.tables.get(view)) else {
            return;
        };
        out.reserve(table.records.len() + 4 * table.rows as usize);
        for id in 0..table.rows {
            Self::encode(layout, table, id, out);
        }
    }

    /// An order-independent digest of every row: the wrapping sum of each row's CRC-64 over
    /// its view's name and its portable bytes. Equal contents give equal digests whatever
    /// the shard count or insertion order. `view_names` is indexed by view id. Only the rows
    /// whose key `keep` accepts count; answers (rows, digest).
    pub fn digest(&self, view_names: &[String], keep: &dyn Fn(&[u8]) -> bool) -> (u64, u64) {
        let (mut rows, mut sum) = (0u64, 0u64);
        let mut scratch = Vec::new();
        for (view, name) in view_names.iter().enumerate().take(self.tables.len()) {
            self.for_each_row(view, &mut scratch, |key, row| {
                if !keep(key) {
                    return;
                }
                let mut digest = CRC64.digest();
                digest.update(name.as_bytes());
                digest.update(&[0]);
                digest.update(row);
                sum = sum.wrapping_add(digest.finalize());
                rows += 1;
            });
        }
        (rows, sum)
    }
}
