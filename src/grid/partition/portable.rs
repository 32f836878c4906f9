//! Rows in a portable form: what snapshots and the write-ahead log store, independent of
//! which shard held them, so a restore can route every row again (the shard count may have
//! changed between runs).
//!
//! A row is, little-endian:
//!
//! ```text
//! [u32 key length][canonical key bytes][value part][per variable-length field: u32 length, bytes]
//! ```
//!
//! The value part is the table's (timestamps, null bitmap, fixed-width fields), so its length
//! is fixed by the view's [`RowLayout`]; a null variable-length field is stored with length 0
//! (the bitmap says it is null). The reader checks every length against the bytes it has and
//! against the layout, so a damaged input is an error, never a panic.

use super::{Partition, RowBatch, RowLayout, Slot, Span};
use crate::registry::ViewId;

/// Why portable rows could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortableError {
    #[error("row {row} at byte {offset}: {problem}")]
    Malformed {
        row: u64,
        offset: usize,
        problem: &'static str,
    },
}

/// One row read from portable bytes, borrowing them.
#[derive(Debug, Clone, Copy)]
pub struct PortableRow<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// The variable-length fields, each `[u32 length][bytes]`, already checked.
    vars: &'a [u8],
}

impl<'a> PortableRow<'a> {
    /// Bytes of the variable-length fields, their length prefixes included.
    pub fn vars_len(&self) -> usize {
        self.vars.len()
    }

    /// The variable-length fields' bytes, in the layout's order.
    pub fn vars(&self) -> impl Iterator<Item = &'a [u8]> {
        let mut rest = self.vars;
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let len = u32::from_le_bytes(*len) as usize;
            let (value, tail) = tail.split_at(len);
            rest = tail;
            Some(value)
        })
    }
}

/// Appends one row in the portable form.
pub(super) fn encode_row<'v>(
    key: &[u8],
    value: &[u8],
    vars: impl Iterator<Item = &'v [u8]>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    for v in vars {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
}

/// Reads portable rows of one view, checking each against the layout.
pub struct PortableRows<'a> {
    layout: &'a RowLayout,
    bytes: &'a [u8],
    at: usize,
    row: u64,
}

impl<'a> PortableRows<'a> {
    pub fn new(layout: &'a RowLayout, bytes: &'a [u8]) -> PortableRows<'a> {
        PortableRows {
            layout,
            bytes,
            at: 0,
            row: 0,
        }
    }

    fn take(&mut self, len: usize, problem: &'static str) -> Result<&'a [u8], PortableError> {
        if self.bytes.len() - self.at < len {
            return Err(self.malformed(problem));
        }
        let taken = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(taken)
    }

    fn take_u32(&mut self, problem: &'static str) -> Result<usize, PortableError> {
        let b = self.take(4, problem)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn malformed(&self, problem: &'static str) -> PortableError {
        PortableError::Malformed {
            row: self.row,
            offset: self.at,
            problem,
        }
    }

    fn next_row(&mut self) -> Result<PortableRow<'a>, PortableError> {
        let key_len = self.take_u32("truncated key length")?;
        if self.layout.key_width.is_some_and(|w| w != key_len) {
            return Err(self.malformed("key length does not match the view's join keys"));
        }
        let key = self.take(key_len, "truncated key")?;
        let value = self.take(self.layout.value_len, "truncated value")?;
        let vars_start = self.at;
        for _ in 0..self.layout.var_count {
            let len = self.take_u32("truncated field length")?;
            self.take(len, "truncated field")?;
        }
        self.row += 1;
        Ok(PortableRow {
            key,
            value,
            vars: &self.bytes[vars_start..self.at],
        })
    }
}

impl<'a> Iterator for PortableRows<'a> {
    type Item = Result<PortableRow<'a>, PortableError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let row = self.next_row();
        if row.is_err() {
            // One error ends the stream.
            self.at = self.bytes.len();
        }
        Some(row)
    }
}

impl Partition {
    /// Makes room for `rows` more rows of `view` (a restore knows how many are coming), so
    /// that loading them does not grow and rehash the index over and over.
    pub fn reserve(&mut self, view: ViewId, rows: usize) {
        let (Some(layout), Some(table)) = (self.layouts.get(view), self.tables.get_mut(view))
        else {
            return;
        };
        let hasher = &self.hasher;
        table
            .shared
            .reserve_known(table.rows as usize + rows, |id| {
                table.hash_of(layout, hasher, id)
            });
        table.vars.reserve(rows * layout.var_count);
    }
}

impl RowLayout {
    /// Bytes of a row's value part.
    pub fn value_len(&self) -> usize {
        self.value_len
    }
}

impl RowBatch {
    /// Appends every row of the batch in the portable form.
    pub fn encode_portable(&self, layout: &RowLayout, out: &mut Vec<u8>) {
        for i in 0..self.rows.len() {
            self.encode_portable_row(layout, i, out);
        }
    }

    /// Appends row `i` of the batch in the portable form.
    pub fn encode_portable_row(&self, layout: &RowLayout, i: usize, out: &mut Vec<u8>) {
        let r = self.rows[i];
        let value = r.value as usize;
        let vars = &self.vars[r.vars as usize..r.vars as usize + layout.var_count];
        encode_row(
            self.key(i),
            &self.data[value..value + layout.value_len],
            vars.iter().map(|s| s.of(&self.data)),
            out,
        );
    }

    /// Appends a row read from portable bytes (already checked against `layout`).
    pub fn push_portable(&mut self, layout: &RowLayout, row: &PortableRow<'_>) {
        let key_start = self.data.len();
        self.data.extend_from_slice(row.key);
        let value = self.data.len();
        self.data.extend_from_slice(row.value);
        self.rows.push(super::BatchRow {
            key: Span::new(key_start, value),
            value: value as u32,
            vars: self.vars.len() as u32,
        });
        for v in row.vars() {
            let start = self.data.len();
            self.data.extend_from_slice(v);
            self.vars.push(Span::new(start, self.data.len()));
        }
        debug_assert_eq!(
            layout
                .slots
                .iter()
                .filter(|s| matches!(s, Slot::Var { .. }))
                .count(),
            layout.var_count
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::partition::{Partition, ReadBatch, NO_CREATED};
    use crate::registry::Registry;
    use crate::value::{encode_key_value, encode_value};
    use proptest::prelude::*;
    use serde_json::json;

    fn example() -> (Registry, std::sync::Arc<[RowLayout]>) {
        let registry = Registry::parse(
            include_str!("../../../config/example_registry.toml"),
            "example",
        )
        .unwrap();
        let layouts = RowLayout::for_registry(&registry);
        (registry, layouts)
    }

    /// A batch of `names` rows for the example's customer_profile view (string key, every type).
    fn batch(registry: &Registry, layouts: &[RowLayout], names: &[&str]) -> RowBatch {
        let view = registry.view("customer_profile").unwrap();
        let layout = &layouts[view.id];
        let mut b = RowBatch::new(view.id);
        for (n, name) in names.iter().enumerate() {
            let mut k = Vec::new();
            encode_key_value(view.join_keys[0].value_type, &json!(name), &mut k).unwrap();
            b.start_row(layout, &k, n as i64, NO_CREATED);
            b.encode_field(layout, 4, |out| {
                encode_value(view.fields[4].dtype, &json!(format!("name {n}")), out)
            })
            .unwrap();
            b.encode_field(layout, 0, |out| {
                encode_value(view.fields[0].dtype, &json!(n), out)
            })
            .unwrap();
        }
        b
    }

    #[test]
    fn a_batch_survives_the_portable_form() {
        let (registry, layouts) = example();
        let b = batch(&registry, &layouts, &["alice", "bob", ""]);
        let layout = &layouts[b.view];
        let mut bytes = Vec::new();
        b.encode_portable(layout, &mut bytes);
        let mut again = RowBatch::new(b.view);
        for row in PortableRows::new(layout, &bytes) {
            again.push_portable(layout, &row.unwrap());
        }
        let mut bytes_again = Vec::new();
        again.encode_portable(layout, &mut bytes_again);
        assert_eq!(bytes, bytes_again);
        // And the partition stores what the first batch would have stored.
        let (mut p, mut q) = (
            Partition::new(layouts.clone()),
            Partition::new(layouts.clone()),
        );
        p.apply(&b).unwrap();
        q.apply(&again).unwrap();
        let (fp, fq) = (p.freeze(), q.freeze());
        let names = vec![String::new(); layouts.len()];
        assert_eq!(fp.digest(&names, &|_| true), fq.digest(&names, &|_| true));
        let mut exported = Vec::new();
        fp.encode_view(b.view, &mut exported);
        assert_eq!(exported.len(), bytes.len());
        let mut rb = ReadBatch::default();
        rb.push(
            b.view,
            PortableRows::new(layout, &bytes)
                .next()
                .unwrap()
                .unwrap()
                .key,
        );
        assert!(q.read(&rb).unwrap().row(&layouts, 0).is_some());
    }

    proptest! {
        #[test]
        fn damaged_bytes_are_errors_not_panics(cut in 0usize..400, flip in 0usize..400, bit in 0u8..8) {
            let (registry, layouts) = example();
            let b = batch(&registry, &layouts, &["alice", "bob"]);
            let layout = &layouts[b.view];
            let mut bytes = Vec::new();
            b.encode_portable(layout, &mut bytes);
            if flip < bytes.len() {
                bytes[flip] ^= 1 << bit;
            }
            bytes.truncate(cut.min(bytes.len()));
            let mut again = RowBatch::new(b.view);
            for row in PortableRows::new(layout, &bytes).flatten() {
                again.push_portable(layout, &row);
            }
        }
    }
}
