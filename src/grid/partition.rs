//! The in-memory store of one shard: plain Rust, no actix.
//!
//! One [`Table`] per feature view. A table keeps its rows as fixed-width records in one
//! `Vec<u8>`, indexed by a `hashbrown::HashTable<u32>` of row ids (4 bytes a slot plus one
//! control byte). A record is
//!
//! ```text
//! [key part][event_ts i64][created_ts i64][null bitmap][fixed-width fields, little-endian]
//! ```
//!
//! The key part holds the canonical key bytes when every join key is fixed-width (an int64
//! driver id: 8 bytes), else an offset and length into the table's append-only key arena.
//! Strings, bytes and lists, which have no fixed width, are one boxed slice per value beside
//! the record. For the driver quickstart (int64 key, two float32 and one int64) a record is
//! 8 + 8 + 8 + 1 + 4 + 4 + 8 = 41 bytes, plus about 5-11 bytes of index.
//!
//! Writes arrive as [`RowBatch`]es whose rows carry the same value part, so applying a row is
//! one hash lookup, one timestamp comparison and one copy. Newest event wins; ties are broken
//! by the created timestamp, then by arrival (the later write wins). A label view keeps the
//! last write instead, whatever its times ([`WriteRule::LastWrite`]): the rule is applied here,
//! so the write path, the log replay and every cluster replica follow it alike. Writes arrive
//! in log order (the log writer queues them, see [`crate::persist::wal::writer`]), so a replay
//! of the log breaks every tie the same way.

use std::sync::Arc;

use crate::registry::{FeatureView, Registry, ViewId, WriteRule};
use crate::value::Micros;

/// A `created` timestamp that was not given: older than any given one.
pub const NO_CREATED: Micros = i64::MIN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Fixed { offset: usize, width: usize },
    Var { index: usize },
}

/// How a view's rows are laid out. Built once per view from the registry.
#[derive(Debug, Clone)]
pub struct RowLayout {
    /// Width of every join key's canonical bytes, when all are fixed-width.
    key_width: Option<usize>,
    slots: Vec<Slot>,
    /// Bytes of the value part: timestamps, bitmap and fixed-width fields.
    value_len: usize,
    var_count: usize,
    /// The view keeps the last write of a key, not its newest event (label views).
    last_write_wins: bool,
}

const EVENT_AT: usize = 0;
const CREATED_AT: usize = 8;
const BITMAP_AT: usize = 16;

impl RowLayout {
    pub fn for_view(view: &FeatureView) -> RowLayout {
        let key_width = view
            .join_keys
            .iter()
            .map(|k| k.value_type.fixed_width())
            .sum::<Option<usize>>();
        let bitmap_len = view.fields.len().div_ceil(8);
        let mut offset = BITMAP_AT + bitmap_len;
        let mut var_count = 0;
        let slots = view
            .fields
            .iter()
            .map(|f| match f.dtype.fixed_width() {
                Some(width) => {
                    let slot = Slot::Fixed { offset, width };
                    offset += width;
                    slot
                }
                None => {
                    var_count += 1;
                    Slot::Var {
                        index: var_count - 1,
                    }
                }
            })
            .collect();
        RowLayout {
            key_width,
            slots,
            value_len: offset,
            var_count,
            last_write_wins: view.write_rule == WriteRule::LastWrite,
        }
    }

    /// Layouts for every view, indexed by [`ViewId`].
    pub fn for_registry(registry: &Registry) -> Arc<[RowLayout]> {
        registry
            .feature_views
            .iter()
            .map(RowLayout::for_view)
            .collect()
    }

    fn key_part_len(&self) -> usize {
        self.key_width.unwrap_or(8)
    }

    fn record_len(&self) -> usize {
        self.key_part_len() + self.value_len
    }

    pub fn field_count(&self) -> usize {
        self.slots.len()
    }
}

/// A borrowed view of one stored row (a table record, a batch row or a read result).
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    layout: &'a RowLayout,
    value: &'a [u8],
    vars: &'a [Span],
    arena: &'a [u8],
}

impl<'a> RowRef<'a> {
    pub fn event_ts(&self) -> Micros {
        read_i64(self.value, EVENT_AT)
    }

    pub fn created_ts(&self) -> Micros {
        read_i64(self.value, CREATED_AT)
    }

    pub fn is_null(&self, field: usize) -> bool {
        self.value[BITMAP_AT + field / 8] & (1 << (field % 8)) == 0
    }

    /// The stored bytes of a non-null field (see [`crate::value::render_json`]).
    pub fn field(&self, field: usize) -> &'a [u8] {
        match self.layout.slots[field] {
            Slot::Fixed { offset, width } => &self.value[offset..offset + width],
            Slot::Var { index } => self.vars[index].of(self.arena),
        }
    }
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    i64::from_le_bytes(b)
}

/// A range of an arena, kept as 32-bit offsets: a batch or read result is under 4 GiB
/// ([`MAX_BATCH_BYTES`]; writers check it after every row, reads refuse an answer past their
/// limit, the offline sink rolls its buffers long before), so an offset never truncates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        debug_assert!(
            end <= MAX_BATCH_BYTES && start <= end,
            "span {start}..{end}"
        );
        Span {
            start: start as u32,
            len: (end - start) as u32,
        }
    }

    fn of<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        &arena[self.start as usize..(self.start + self.len) as usize]
    }
}

#[derive(Debug, Clone, Copy)]
struct BatchRow {
    key: Span,
    value: u32,
    vars: u32,
}

/// Rows for one view on their way to one shard, encoded in the table's value format.
///
/// Built by the API layer (`start_row`, then `encode_field` per non-null field), then moved
/// to the shard in one message: three allocations a batch, none a value.
#[derive(Debug, Clone)]
pub struct RowBatch {
    pub view: ViewId,
    rows: Vec<BatchRow>,
    data: Vec<u8>,
    vars: Vec<Span>,
}

/// The largest batch or read result, in bytes: offsets inside are 32-bit.
pub const MAX_BATCH_BYTES: usize = u32::MAX as usize;

impl RowBatch {
    pub fn new(view: ViewId) -> RowBatch {
        RowBatch {
            view,
            rows: Vec::new(),
            data: Vec::new(),
            vars: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Bytes the batch holds, to be checked against [`MAX_BATCH_BYTES`].
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// Starts a row with every field null.
    pub fn start_row(&mut self, layout: &RowLayout, key: &[u8], event: Micros, created: Micros) {
        let key_start = self.data.len();
        self.data.extend_from_slice(key);
        let value = self.data.len();
        self.data.extend_from_slice(&event.to_le_bytes());
        self.data.extend_from_slice(&created.to_le_bytes());
        self.data.resize(value + layout.value_len, 0);
        self.rows.push(BatchRow {
            key: Span::new(key_start, value),
            value: value as u32,
            vars: self.vars.len() as u32,
        });
        self.vars
            .resize(self.vars.len() + layout.var_count, Span::default());
    }

    /// Sets a field of the row last started: `encode` appends the value's bytes to the
    /// buffer it is given (the format of [`crate::value::encode_value`]). If it fails, the row
    /// is left half-written and the batch must be dropped.
    pub fn encode_field<E>(
        &mut self,
        layout: &RowLayout,
        field: usize,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let row = *self.rows.last().expect("start_row first");
        let start = self.data.len();
        encode(&mut self.data)?;
        match layout.slots[field] {
            Slot::Fixed { offset, width } => {
                let at = row.value as usize + offset;
                self.data.copy_within(start..start + width, at);
                self.data.truncate(start);
            }
            Slot::Var { index } => {
                self.vars[row.vars as usize + index] = Span::new(start, self.data.len());
            }
        }
        self.data[row.value as usize + BITMAP_AT + field / 8] |= 1 << (field % 8);
        Ok(())
    }

    pub fn key(&self, i: usize) -> &[u8] {
        self.rows[i].key.of(&self.data)
    }

    pub fn row<'a>(&'a self, layout: &'a RowLayout, i: usize) -> RowRef<'a> {
        let r = self.rows[i];
        let value = r.value as usize;
        RowRef {
            layout,
            value: &self.data[value..value + layout.value_len],
            vars: &self.vars[r.vars as usize..r.vars as usize + layout.var_count],
            arena: &self.data,
        }
    }
}

/// Keys to read from one shard: each a (view, canonical key) pair, and the most bytes the
/// answer may hold.
#[derive(Debug, Clone)]
pub struct ReadBatch {
    items: Vec<(ViewId, Span)>,
    keys: Vec<u8>,
    limit: usize,
}

impl Default for ReadBatch {
    fn default() -> ReadBatch {
        ReadBatch::with_limit(MAX_BATCH_BYTES)
    }
}

impl ReadBatch {
    /// An empty batch whose answer may hold at most `limit` bytes of rows (at most
    /// [`MAX_BATCH_BYTES`]): a larger one is [`PartitionError::AnswerTooLarge`].
    pub fn with_limit(limit: usize) -> ReadBatch {
        ReadBatch {
            items: Vec::new(),
            keys: Vec::new(),
            limit: limit.min(MAX_BATCH_BYTES),
        }
    }

    pub fn push(&mut self, view: ViewId, key: &[u8]) {
        let start = self.keys.len();
        self.keys.extend_from_slice(key);
        self.items.push((view, Span::new(start, self.keys.len())));
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The (view, key) items, in order.
    pub fn iter(&self) -> impl Iterator<Item = (ViewId, &[u8])> + '_ {
        self.items
            .iter()
            .map(|&(view, key)| (view, key.of(&self.keys)))
    }
}

/// What a shard answers to a [`ReadBatch`]: a copy of each found row's value part.
#[derive(Debug, Default)]
pub struct ReadOutput {
    /// Per item: the offset of its value part in `values` and of its spans in `vars`.
    items: Vec<Option<(u32, u32)>>,
    views: Vec<ViewId>,
    values: Vec<u8>,
    vars: Vec<Span>,
    arena: Vec<u8>,
}

impl ReadOutput {
    fn for_items(items: usize) -> ReadOutput {
        ReadOutput {
            items: Vec::with_capacity(items),
            views: Vec::with_capacity(items),
            ..ReadOutput::default()
        }
    }

    /// Bytes of the rows it holds.
    pub fn bytes(&self) -> usize {
        self.values.len() + self.arena.len()
    }

    /// The row for item `i` of the batch, or `None` when the key is unknown.
    pub fn row<'a>(&'a self, layouts: &'a [RowLayout], i: usize) -> Option<RowRef<'a>> {
        let (value, vars) = self.items[i]?;
        let layout = &layouts[self.views[i]];
        let (value, vars) = (value as usize, vars as usize);
        Some(RowRef {
            layout,
            value: &self.values[value..value + layout.value_len],
            vars: &self.vars[vars..vars + layout.var_count],
            arena: &self.arena,
        })
    }
}

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
    ) -> Result<bool, PartitionError> {
        let key = batch.key(i);
        let incoming = batch.row(layout, i);
        let hash = hasher.hash_one(key);
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
                let mut record = Vec::with_capacity(layout.record_len());
                match layout.key_width {
                    Some(_) => record.extend_from_slice(key),
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
                        record.extend_from_slice(&start32.to_le_bytes());
                        record.extend_from_slice(&len32.to_le_bytes());
                    }
                }
                record.extend_from_slice(incoming.value);
                self.shared.write_new(id, &record);
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
}

impl Partition {
    pub fn new(layouts: Arc<[RowLayout]>) -> Partition {
        let tables = layouts.iter().map(Table::new).collect();
        Partition {
            layouts,
            tables,
            hasher: ahash::RandomState::new(),
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
        for i in 0..batch.len() {
            if table.upsert(layout, &self.hasher, batch, i)? {
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
        let mut out = ReadOutput::for_items(batch.items.len());
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
        let mut out = ReadOutput::for_items(batch.items.len());
        for &(view, key) in &batch.items {
            out.views.push(view);
            let (Some(Some(table)), Some(layout)) = (self.tables.get(view), self.layouts.get(view))
            else {
                out.items.push(None);
                continue;
            };
            let key = key.of(&batch.keys);
            let Some(id) = table.find_key(self.hasher.hash_one(key), key) else {
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
mod shared;

use shared::SharedTable;

pub use frozen::FrozenPartition;
pub use portable::{PortableError, PortableRow, PortableRows};

#[cfg(test)]
mod tests;
