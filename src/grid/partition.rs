//! The in-memory store of one shard: plain Rust, no actix.
//!
//! One [`Table`] per feature view. A table keeps its rows as fixed-width records in
//! chunks that never move, indexed by an open-addressing table of row ids (4 bytes a slot,
//! at most 3/4 and after growing 1/2 full; see `shared`). A record is
//!
//! ```text
//! [key part][event_ts i64][created_ts i64][null bitmap][fixed-width fields, little-endian]
//! ```
//!
//! The key part holds the canonical key bytes when every join key is fixed-width (an int64
//! driver id: 8 bytes), else an offset and length into the table's append-only key arena.
//! Strings, bytes and lists, which have no fixed width, are one boxed slice per value beside
//! the record. For the driver quickstart (int64 key, two float32 and one int64) a record is
//! 8 + 8 + 8 + 1 + 4 + 4 + 8 = 41 bytes, plus 5.3-8 bytes of index.
//!
//! Writes arrive as [`RowBatch`]es whose rows carry the same value part, so applying a row is
//! one hash lookup, one timestamp comparison and one copy. Newest event wins; ties are broken
//! by the created timestamp, then by arrival (the later write wins). A label view keeps the
//! last write instead, whatever its times ([`crate::registry::WriteRule::LastWrite`]): the rule
//! is applied here, so the write path, the log replay and every cluster replica follow it
//! alike. Writes arrive in log order (the log writer queues them, see
//! [`crate::persist::wal::writer`]), so a replay of the log breaks every tie the same way.
//!
//! Here: the tables, the partition and its readers' view. `rows`: the row layout and the
//! batches rows travel in; `shared`: the part of a table other threads read; `frozen`: frozen
//! copies for snapshots and digests; `portable`: rows independent of their shard (snapshots,
//! the write-ahead log).

use std::sync::Arc;

use crate::registry::ViewId;
use crate::value::Micros;

/// A `created` timestamp that was not given: older than any given one.
pub const NO_CREATED: Micros = i64::MIN;

/// Counts from applying writes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ApplyStats {
    /// Rows stored (new keys or newer events).
    pub written: u64,
    /// Rows skipped because the stored row was newer.
    pub skipped_older: u64,
}

impl std::ops::AddAssign for ApplyStats {
    fn add_assign(&mut self, o: ApplyStats) {
        self.written += o.written;
        self.skipped_older += o.skipped_older;
    }
}

/// Why a write could not be applied.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PartitionError {
    #[error("feature view id {view} is not known to this partition")]
    UnknownView { view: ViewId },
    #[error("the table of view id {view} is full: at most 4 294 967 295 rows and 4 GiB of variable-length keys per shard")]
    TableFull { view: ViewId },
    #[error("the answer holds more than {limit} bytes of feature values (max_answer_bytes); read fewer entities or features per request")]
    AnswerTooLarge { limit: usize },
}

/// One view's rows in one shard. The records, their sequence numbers and the index live in
/// a [`SharedTable`] that readers on other threads may read ([`PartitionView`]); the key
/// arena and the variable-length values are the writer's alone (views that have them are
/// read through the shard actor).
struct Table {
    shared: Arc<SharedTable>,
    key_arena: Vec<u8>,
    vars: Vec<Option<Box<[u8]>>>,
    rows: u32,
}

/// An empty answer to `batch`, sized for every key to be found (at most the batch's limit):
/// grown by doubling, the rows of a read of 100 x 3 were 11 `realloc` calls.
fn output_for(layouts: &[RowLayout], batch: &ReadBatch) -> ReadOutput {
    let mut out = ReadOutput::for_items(batch.items.len());
    let bytes: usize = batch
        .items
        .iter()
        .filter_map(|&(view, _)| layouts.get(view))
        .map(|layout| layout.value_len)
        .sum();
    out.values.reserve(bytes.min(batch.limit));
    out
}

/// A stored key: the key part of a record, or (variable-length keys) the arena bytes it
/// points at.
fn key_of<'a>(layout: &RowLayout, key_part: &'a [u8], key_arena: &'a [u8]) -> &'a [u8] {
    match layout.key_width {
        Some(_) => key_part,
        None => {
            let start = u32::from_le_bytes(key_part[0..4].try_into().unwrap_or_default()) as usize;
            let len = u32::from_le_bytes(key_part[4..8].try_into().unwrap_or_default()) as usize;
            &key_arena[start..start + len]
        }
    }
}

/// Key equality, with the common 8-byte key (an int64 id) compared as one word rather than
/// through `memcmp`, which the profile of a push showed at the top: a probe compares keys.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    match (<[u8; 8]>::try_from(a), <[u8; 8]>::try_from(b)) {
        (Ok(a), Ok(b)) => u64::from_ne_bytes(a) == u64::from_ne_bytes(b),
        _ => a == b,
    }
}

/// The key of record `id` in a flat array of records (a frozen copy).
fn record_key<'a>(layout: &RowLayout, records: &'a [u8], key_arena: &'a [u8], id: u32) -> &'a [u8] {
    let at = id as usize * layout.record_len();
    key_of(layout, &records[at..at + layout.key_part_len()], key_arena)
}

impl Table {
    fn new(layout: &RowLayout) -> Table {
        Table {
            shared: Arc::new(SharedTable::new(layout.record_len())),
            key_arena: Vec::new(),
            vars: Vec::new(),
            rows: 0,
        }
    }

    /// Calls `f` with the stored key of row `id` (the writer's view).
    fn with_key<R>(&self, layout: &RowLayout, id: u32, f: impl FnOnce(&[u8]) -> R) -> R {
        let part = &self.shared.writer_row(id)[..layout.key_part_len()];
        f(key_of(layout, part, &self.key_arena))
    }

    fn hash_of(&self, layout: &RowLayout, hasher: &ahash::RandomState, id: u32) -> u64 {
        self.with_key(layout, id, |key| hasher.hash_one(key))
    }

    fn find(&self, layout: &RowLayout, hash: u64, key: &[u8]) -> Option<u32> {
        self.shared.writer_find(hash, |id| {
            self.with_key(layout, id, |stored| same_key(stored, key))
        })
    }

    fn value_range(layout: &RowLayout) -> std::ops::Range<usize> {
        layout.key_part_len()..layout.record_len()
    }

    fn upsert(
        &mut self,
        layout: &RowLayout,
        hasher: &ahash::RandomState,
        batch: &RowBatch,
        i: usize,
        hash: u64,
    ) -> Result<bool, PartitionError> {
        let key = batch.key(i);
        let incoming = batch.row(layout, i);
        let id = match self.find(layout, hash, key) {
            Some(id) => {
                let at = layout.key_part_len();
                let stored = &self.shared.writer_row(id)[at..];
                let stored_order = (read_i64(stored, EVENT_AT), read_i64(stored, CREATED_AT));
                if !layout.last_write_wins
                    && (incoming.event_ts(), incoming.created_ts()) < stored_order
                {
                    return Ok(false);
                }
                self.shared.overwrite(id, at, incoming.value);
                id
            }
            None => {
                let id = self.rows;
                if id == u32::MAX {
                    return Err(PartitionError::TableFull { view: batch.view });
                }
                // The key part: the key itself, or where it sits in the key arena.
                let mut in_arena = [0u8; 8];
                let key_part = match layout.key_width {
                    Some(_) => key,
                    None => {
                        let start = self.key_arena.len();
                        let (Ok(start32), Ok(len32)) =
                            (u32::try_from(start), u32::try_from(key.len()))
                        else {
                            return Err(PartitionError::TableFull { view: batch.view });
                        };
                        if u32::try_from(start + key.len()).is_err() {
                            return Err(PartitionError::TableFull { view: batch.view });
                        }
                        self.key_arena.extend_from_slice(key);
                        in_arena[..4].copy_from_slice(&start32.to_le_bytes());
                        in_arena[4..].copy_from_slice(&len32.to_le_bytes());
                        &in_arena[..]
                    }
                };
                self.shared.write_new(id, &[key_part, incoming.value]);
                self.vars
                    .resize_with(self.vars.len() + layout.var_count, || None);
                self.rows += 1;
                let this = &*self;
                this.shared.publish(id, hash, this.rows as usize, |other| {
                    this.hash_of(layout, hasher, other)
                });
                id
            }
        };
        let vars_at = id as usize * layout.var_count;
        for (j, slot) in layout.slots.iter().enumerate() {
            if let Slot::Var { index } = *slot {
                self.vars[vars_at + index] =
                    (!incoming.is_null(j)).then(|| incoming.field(j).into());
            }
        }
        Ok(true)
    }

    fn bytes(&self) -> usize {
        let index = self.shared.index_slots() * std::mem::size_of::<u32>();
        let vars = self.vars.capacity() * std::mem::size_of::<Option<Box<[u8]>>>()
            + self.vars.iter().flatten().map(|v| v.len()).sum::<usize>();
        index + self.shared.chunk_bytes() + self.key_arena.capacity() + vars
    }
}

/// One shard's data: a table per feature view.
pub struct Partition {
    layouts: Arc<[RowLayout]>,
    tables: Vec<Table>,
    hasher: ahash::RandomState,
    /// The keys' hashes of the batch being applied (kept: a batch allocates nothing).
    hashes: Vec<u64>,
}

impl Partition {
    pub fn new(layouts: Arc<[RowLayout]>) -> Partition {
        let tables = layouts.iter().map(Table::new).collect();
        Partition {
            layouts,
            tables,
            hasher: ahash::RandomState::new(),
            hashes: Vec::new(),
        }
    }

    /// Takes `layouts`, the current ones followed by those of views added to the registry,
    /// with an empty table per new view. Existing views keep their layout and rows (a reload
    /// never changes a loaded view's layout); fewer layouts than tables changes nothing.
    pub fn add_views(&mut self, layouts: Arc<[RowLayout]>) {
        if layouts.len() <= self.tables.len() {
            return;
        }
        for layout in &layouts[self.tables.len()..] {
            self.tables.push(Table::new(layout));
        }
        self.layouts = layouts;
    }

    /// Applies a batch row by row, newest event winning.
    pub fn apply(&mut self, batch: &RowBatch) -> Result<ApplyStats, PartitionError> {
        let view = batch.view;
        let (Some(layout), Some(table)) = (self.layouts.get(view), self.tables.get_mut(view))
        else {
            return Err(PartitionError::UnknownView { view });
        };
        let mut stats = ApplyStats::default();
        let hashes = &mut self.hashes;
        hashes.clear();
        hashes.extend((0..batch.len()).map(|i| self.hasher.hash_one(batch.key(i))));
        // The index slots, then the rows, of every key loaded into the cache first (see
        // `PartitionView::read`). (Tried, 2026-12-04: prefetching 16 slots and 8 rows ahead of
        // the row being written instead was no faster.)
        for row in [false, true] {
            for &hash in hashes.iter() {
                table.shared.writer_prefetch(hash, row);
            }
        }
        for (i, &hash) in hashes.iter().enumerate() {
            if table.upsert(layout, &self.hasher, batch, i, hash)? {
                stats.written += 1;
            } else {
                stats.skipped_older += 1;
            }
        }
        Ok(stats)
    }

    /// Looks every item of `batch` up and copies the rows found; refuses, rather than
    /// truncates, an answer over the batch's limit.
    pub fn read(&self, batch: &ReadBatch) -> Result<ReadOutput, PartitionError> {
        let mut out = output_for(&self.layouts, batch);
        for &(view, key) in &batch.items {
            out.views.push(view);
            let (Some(layout), Some(table)) = (self.layouts.get(view), self.tables.get(view))
            else {
                out.items.push(None);
                continue;
            };
            let key = key.of(&batch.keys);
            let Some(id) = table.find(layout, self.hasher.hash_one(key), key) else {
                out.items.push(None);
                continue;
            };
            let stored =
                &table.vars[id as usize * layout.var_count..(id as usize + 1) * layout.var_count];
            let row_bytes =
                layout.value_len + stored.iter().flatten().map(|v| v.len()).sum::<usize>();
            if out.values.len() + out.arena.len() + row_bytes > batch.limit {
                return Err(PartitionError::AnswerTooLarge { limit: batch.limit });
            }
            let value_at = out.values.len() as u32;
            let vars_at = out.vars.len() as u32;
            table
                .shared
                .read(id, Table::value_range(layout), &mut out.values);
            for v in stored {
                let start = out.arena.len();
                if let Some(v) = v {
                    out.arena.extend_from_slice(v);
                }
                out.vars.push(Span::new(start, out.arena.len()));
            }
            out.items.push(Some((value_at, vars_at)));
        }
        Ok(out)
    }

    /// Rows stored for each view.
    pub fn row_counts(&self) -> Vec<u64> {
        self.tables.iter().map(|t| t.rows as u64).collect()
    }

    /// Heap bytes the partition holds (capacity, not just length).
    pub fn memory_bytes(&self) -> usize {
        self.tables.iter().map(Table::bytes).sum()
    }
}

impl Partition {
    /// What readers on other threads may read of this partition without a message (see
    /// [`PartitionView`]).
    pub fn view(&self) -> PartitionView {
        PartitionView {
            tables: self
                .tables
                .iter()
                .zip(self.layouts.iter())
                .map(|(t, layout)| layout.direct_reads().then(|| t.shared.clone()))
                .collect(),
            layouts: self.layouts.clone(),
            hasher: self.hasher.clone(),
        }
    }
}

impl RowLayout {
    /// Whether a view's rows can be read without the shard actor: fixed-width keys and
    /// fields, so that a row is one record in shared memory.
    fn direct_reads(&self) -> bool {
        self.key_width.is_some() && self.var_count == 0
    }
}

/// A partition as readers on other threads see it: the shared part of each table whose rows
/// are fixed-width records ([`SharedTable`]). Reading through it sends no message and never
/// blocks the shard actor, which stays the only writer; a row is never seen half written.
/// Cheap to clone.
#[derive(Clone)]
pub struct PartitionView {
    /// Indexed by view id; `None` where the view is read through the actor.
    tables: Vec<Option<Arc<SharedTable>>>,
    layouts: Arc<[RowLayout]>,
    hasher: ahash::RandomState,
}

impl PartitionView {
    /// Reads `batch` as [`Partition::read`] would, or `None` when one of its views must be
    /// read through the actor (variable-length keys or fields, or a view this view predates).
    pub fn read(&self, batch: &ReadBatch) -> Option<Result<ReadOutput, PartitionError>> {
        if batch
            .items
            .iter()
            .any(|&(view, _)| !matches!(self.tables.get(view), Some(Some(_))))
        {
            return None;
        }
        let mut out = output_for(&self.layouts, batch);
        // One pin for the batch; the index slots, then the rows, of every key are loaded into
        // the cache before the keys are probed one by one (their misses overlap).
        let guard = shared::pin();
        let hash_of = |key: Span| self.hasher.hash_one(key.of(&batch.keys));
        // (A single key needs no prefetch, nor an allocation.)
        let hashes: Vec<u64> = match batch.items.len() {
            1 => Vec::new(),
            _ => batch.items.iter().map(|&(_, key)| hash_of(key)).collect(),
        };
        for row in [false, true] {
            for (&(view, _), &hash) in batch.items.iter().zip(&hashes) {
                if let Some(Some(table)) = self.tables.get(view) {
                    table.prefetch(&guard, hash, row);
                }
            }
        }
        for (i, &(view, key)) in batch.items.iter().enumerate() {
            let hash = hashes.get(i).copied().unwrap_or_else(|| hash_of(key));
            out.views.push(view);
            let (Some(Some(table)), Some(layout)) = (self.tables.get(view), self.layouts.get(view))
            else {
                out.items.push(None);
                continue;
            };
            let key = key.of(&batch.keys);
            // Keys come from peers too (forwarded reads): one of another width than the view's
            // keys is no key of it (a shorter one would match a prefix of a stored key).
            if layout.key_width != Some(key.len()) {
                out.items.push(None);
                continue;
            }
            let Some(id) = table.find_key_pinned(&guard, hash, key) else {
                out.items.push(None);
                continue;
            };
            if out.values.len() + layout.value_len > batch.limit {
                return Some(Err(PartitionError::AnswerTooLarge { limit: batch.limit }));
            }
            let value_at = out.values.len() as u32;
            table.read(id, Table::value_range(layout), &mut out.values);
            out.items.push(Some((value_at, 0)));
        }
        Some(Ok(out))
    }
}

mod frozen;
mod portable;
mod rows;
mod shared;

use shared::SharedTable;

pub use frozen::FrozenPartition;
pub use portable::{PortableError, PortableRow, PortableRows};
use rows::{read_i64, BatchRow, Slot, CREATED_AT, EVENT_AT};
pub use rows::{
    ReadBatch, ReadOutput, RowBatch, RowLayout, RowRef, Span, MAX_BATCH_BYTES, SPARE_BATCHES_BYTES,
    SPARE_BATCH_BYTES,
};

#[cfg(test)]
mod tests;
