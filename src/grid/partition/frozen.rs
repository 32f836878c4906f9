//! An immutable copy of a partition, for snapshots and digests.
//!
//! [`Partition::freeze`] runs on the shard thread and only copies the tables' flat arrays
//! (the fixed-width records and the key arena are one `memcpy` each; variable-length values
//! are one small allocation each). The index is not copied: a frozen copy is only walked in
//! order. Everything slow (encoding, hashing, checksums, file I/O) then runs on the copy,
//! off the shard thread, while the shard goes on serving.

use std::sync::Arc;

use crc::{Crc, Table as CrcTable, CRC_64_XZ};

use super::portable::encode_row;
use super::{record_key, Partition, RowLayout, Table};
use crate::registry::ViewId;

const CRC64: Crc<u64, CrcTable<16>> = Crc::<u64, CrcTable<16>>::new(&CRC_64_XZ);

struct FrozenTable {
    records: Vec<u8>,
    key_arena: Vec<u8>,
    vars: Vec<Option<Box<[u8]>>>,
    rows: u32,
}

/// A copy of a partition's rows at one instant.
pub struct FrozenPartition {
    layouts: Arc<[RowLayout]>,
    tables: Vec<FrozenTable>,
}

impl Partition {
    /// Copies every table's rows (not the index). See the module documentation for the cost.
    pub fn freeze(&self) -> FrozenPartition {
        FrozenPartition {
            layouts: self.layouts.clone(),
            tables: self.tables.iter().map(Table::freeze).collect(),
        }
    }
}

impl Table {
    fn freeze(&self) -> FrozenTable {
        FrozenTable {
            records: self.records.clone(),
            key_arena: self.key_arena.clone(),
            vars: self.vars.clone(),
            rows: self.rows,
        }
    }
}

impl FrozenPartition {
    /// Rows of each view.
    pub fn row_counts(&self) -> Vec<u64> {
        self.tables.iter().map(|t| t.rows as u64).collect()
    }

    /// Total rows over every view.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows as u64).sum()
    }

    /// Calls `f` with each row of `view` in the portable form (see [`super::portable`]).
    fn for_each_row(&self, view: ViewId, scratch: &mut Vec<u8>, mut f: impl FnMut(&[u8])) {
        let (Some(layout), Some(table)) = (self.layouts.get(view), self.tables.get(view)) else {
            return;
        };
        for id in 0..table.rows {
            scratch.clear();
            Self::encode(layout, table, id, scratch);
            f(scratch);
        }
    }

    fn encode(layout: &RowLayout, table: &FrozenTable, id: u32, out: &mut Vec<u8>) {
        let key = record_key(layout, &table.records, &table.key_arena, id);
        let value = &table.records[Table::value_range(layout, id)];
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
    /// the shard count or insertion order. `view_names` is indexed by view id.
    pub fn digest(&self, view_names: &[String]) -> (u64, u64) {
        let mut sum = 0u64;
        let mut scratch = Vec::new();
        for (view, name) in view_names.iter().enumerate().take(self.tables.len()) {
            self.for_each_row(view, &mut scratch, |row| {
                let mut digest = CRC64.digest();
                digest.update(name.as_bytes());
                digest.update(&[0]);
                digest.update(row);
                sum = sum.wrapping_add(digest.finalize());
            });
        }
        (self.rows(), sum)
    }
}
