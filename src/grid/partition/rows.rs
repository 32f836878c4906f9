//! How a view's rows are laid out (the record format described in [`super`]), and the
//! batches rows travel in: [`RowBatch`] (writes on their way to a shard), [`ReadBatch`] (keys
//! to read) and [`ReadOutput`] (the rows found), each one buffer with 32-bit [`Span`]s into it.

use std::sync::Arc;

use crate::registry::{FeatureView, Registry, ViewId, WriteRule};
use crate::value::Micros;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    Fixed { offset: usize, width: usize },
    Var { index: usize },
}

/// How a view's rows are laid out. Built once per view from the registry.
#[derive(Debug, Clone)]
pub struct RowLayout {
    /// Width of every join key's canonical bytes, when all are fixed-width.
    pub(super) key_width: Option<usize>,
    pub(super) slots: Vec<Slot>,
    /// Bytes of the value part: timestamps, bitmap and fixed-width fields.
    pub(super) value_len: usize,
    pub(super) var_count: usize,
    /// The view keeps the last write of a key, not its newest event (label views).
    pub(super) last_write_wins: bool,
}

pub(super) const EVENT_AT: usize = 0;
pub(super) const CREATED_AT: usize = 8;
pub(super) const BITMAP_AT: usize = 16;

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

    pub(super) fn key_part_len(&self) -> usize {
        self.key_width.unwrap_or(8)
    }

    pub(super) fn record_len(&self) -> usize {
        self.key_part_len() + self.value_len
    }

    pub fn field_count(&self) -> usize {
        self.slots.len()
    }
}

/// A borrowed view of one stored row (a table record, a batch row or a read result).
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    pub(super) layout: &'a RowLayout,
    pub(super) value: &'a [u8],
    pub(super) vars: &'a [Span],
    pub(super) arena: &'a [u8],
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

pub(super) fn read_i64(bytes: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    i64::from_le_bytes(b)
}

/// A range of an arena, kept as 32-bit offsets: a batch or read result is under 4 GiB
/// ([`MAX_BATCH_BYTES`]; writers check it after every row, reads refuse an answer past their
/// limit, the offline sink rolls its buffers long before), so an offset never truncates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub(super) start: u32,
    pub(super) len: u32,
}

impl Span {
    pub(super) fn new(start: usize, end: usize) -> Span {
        debug_assert!(
            end <= MAX_BATCH_BYTES && start <= end,
            "span {start}..{end}"
        );
        Span {
            start: start as u32,
            len: (end - start) as u32,
        }
    }

    pub(super) fn of<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        &arena[self.start as usize..(self.start + self.len) as usize]
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct BatchRow {
    pub(super) key: Span,
    pub(super) value: u32,
    pub(super) vars: u32,
}

/// Rows for one view on their way to one shard, encoded in the table's value format.
///
/// Built by the API layer (`start_row`, then `encode_field` per non-null field), then moved
/// to the shard in one message: three allocations a batch, none a value.
#[derive(Debug, Clone)]
pub struct RowBatch {
    pub view: ViewId,
    pub(super) rows: Vec<BatchRow>,
    pub(super) data: Vec<u8>,
    pub(super) vars: Vec<Span>,
}

/// The largest batch or read result, in bytes: offsets inside are 32-bit.
pub const MAX_BATCH_BYTES: usize = u32::MAX as usize;

/// The bytes of applied batches a thread keeps for reuse ([`RowBatch::recycle`]), and the
/// largest batch kept. Bytes, not a count: a worker waits on dozens of pushes at once under
/// load, each with a batch per shard (8 by default, about 1.6 KiB each for 100 rows), and all
/// of them come back; a count of 32 ran dry at 64 connections (9 of a push's 56 `malloc`
/// calls were batches, measured). 1 MiB a thread at most.
pub const SPARE_BATCHES_BYTES: usize = 1 << 20;
pub const SPARE_BATCH_BYTES: usize = 32 << 10;

/// The most bytes a key is assumed to take when a batch is sized from one key: the rest of a
/// request's keys may be shorter, and a megabyte-long first key must not make a batch of
/// thousands of rows reserve gigabytes (an allocation failure aborts the process). Longer
/// keys grow the batch as they come.
const KEY_LEN_GUESS_MAX: usize = 64;

/// A thread's spare batches and the bytes they hold.
#[derive(Default)]
struct Spares {
    batches: Vec<RowBatch>,
    bytes: usize,
}

thread_local! {
    static SPARE_BATCHES: std::cell::RefCell<Spares> = std::cell::RefCell::new(Spares::default());
}

/// The batches this thread keeps, and their bytes.
#[cfg(test)]
pub(super) fn spare_batches() -> (usize, usize) {
    SPARE_BATCHES.with_borrow(|spares| (spares.batches.len(), spares.bytes))
}

impl RowBatch {
    pub fn new(view: ViewId) -> RowBatch {
        RowBatch {
            view,
            rows: Vec::new(),
            data: Vec::new(),
            vars: Vec::new(),
        }
    }

    /// An empty batch with room for `rows` rows of `key_len`-byte keys (and 16 bytes per
    /// variable-width value), so a push fills it without growing it. Its buffers are a batch
    /// this thread [`RowBatch::recycle`]d, when there is one.
    pub fn with_capacity(
        view: ViewId,
        layout: &RowLayout,
        rows: usize,
        key_len: usize,
    ) -> RowBatch {
        let key_len = key_len.min(KEY_LEN_GUESS_MAX);
        let data = rows * (key_len + layout.value_len + 16 * layout.var_count);
        let vars = rows * layout.var_count;
        let spare = SPARE_BATCHES.with_borrow_mut(|spares| {
            let batch = spares.batches.pop()?;
            spares.bytes -= batch.capacity_bytes();
            Some(batch)
        });
        match spare {
            Some(mut batch) => {
                batch.view = view;
                batch.rows.reserve(rows);
                batch.data.reserve(data);
                batch.vars.reserve(vars);
                batch
            }
            None => RowBatch {
                view,
                rows: Vec::with_capacity(rows),
                data: Vec::with_capacity(data),
                vars: Vec::with_capacity(vars),
            },
        }
    }

    /// Keeps the batch's buffers for the next [`RowBatch::with_capacity`] on this thread
    /// (at most [`SPARE_BATCHES_KEPT`] batches of at most [`SPARE_BATCH_BYTES`] each), or
    /// frees them. Called by the thread that built the batch once a shard has applied it:
    /// a push then allocates no batch buffers at all, and none is freed on a shard thread
    /// into this thread's malloc arena (under its lock).
    pub fn recycle(mut self) {
        let bytes = self.capacity_bytes();
        if bytes > SPARE_BATCH_BYTES {
            return;
        }
        self.rows.clear();
        self.data.clear();
        self.vars.clear();
        SPARE_BATCHES.with_borrow_mut(|spares| {
            if spares.bytes + bytes <= SPARE_BATCHES_BYTES {
                spares.bytes += bytes;
                spares.batches.push(self);
            }
        });
    }

    /// The bytes the batch's buffers hold, used or not.
    fn capacity_bytes(&self) -> usize {
        self.rows.capacity() * std::mem::size_of::<BatchRow>()
            + self.data.capacity()
            + self.vars.capacity() * std::mem::size_of::<Span>()
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
    pub(super) items: Vec<(ViewId, Span)>,
    pub(super) keys: Vec<u8>,
    pub(super) limit: usize,
}

impl Default for ReadBatch {
    fn default() -> ReadBatch {
        ReadBatch::with_limit(MAX_BATCH_BYTES)
    }
}

impl ReadBatch {
    /// An empty batch whose answer may hold at most `limit` bytes of rows (at most
    /// [`MAX_BATCH_BYTES`]): a larger one is [`super::PartitionError::AnswerTooLarge`].
    pub fn with_limit(limit: usize) -> ReadBatch {
        ReadBatch {
            items: Vec::new(),
            keys: Vec::new(),
            limit: limit.min(MAX_BATCH_BYTES),
        }
    }

    /// Makes room for `items` more keys of about `key_len` bytes each (at most
    /// [`KEY_LEN_GUESS_MAX`] assumed).
    pub fn reserve(&mut self, items: usize, key_len: usize) {
        self.items.reserve(items);
        self.keys.reserve(items * key_len.min(KEY_LEN_GUESS_MAX));
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
    pub(super) items: Vec<Option<(u32, u32)>>,
    pub(super) views: Vec<ViewId>,
    pub(super) values: Vec<u8>,
    pub(super) vars: Vec<Span>,
    pub(super) arena: Vec<u8>,
}

impl ReadOutput {
    pub(super) fn for_items(items: usize) -> ReadOutput {
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
