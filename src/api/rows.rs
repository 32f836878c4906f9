//! Writes, whatever the wire format: columnar rows -> validated, typed row batches per shard
//! -> the coordinator.
//!
//! The whole request is converted before anything is sent: one bad value rejects the request
//! with a 400 naming the column and row, and nothing is applied.

use super::{AppState, Frame};
use crate::error::ApiError;
use crate::grid::partition::{RowBatch, RowLayout, MAX_BATCH_BYTES, NO_CREATED};
use crate::persist::wal::Destination;
use crate::registry::{FeatureView, ViewId};
use crate::store::Admission;
use crate::value::{
    encode_key_value, encode_value, is_missing, timestamp_of, Cell, Micros, ValueError,
};
use actix_web::http::StatusCode;

/// The number of rows in a data frame: every column must have the same length.
pub fn row_count<C>(columns: &Frame<C>, what: &str) -> Result<usize, ApiError> {
    let mut lengths = columns.iter().map(|(name, values)| (name, values.len()));
    let Some((first_name, rows)) = lengths.next() else {
        return Ok(0);
    };
    if let Some((name, len)) = lengths.find(|&(_, len)| len != rows) {
        return Err(ApiError::bad_request(
            "column_length_mismatch",
            format!("{what} column '{name}' has {len} values but '{first_name}' has {rows}: every column needs one value per row"),
        ));
    }
    Ok(rows)
}

pub fn column<'a, C>(
    columns: &'a Frame<C>,
    name: &str,
    view: &FeatureView,
    role: &str,
) -> Result<&'a [C], ApiError> {
    columns.get(name).map(Vec::as_slice).ok_or_else(|| {
        ApiError::bad_request(
            "missing_column",
            format!(
                "df has no column '{name}', the {role} of feature view '{}'",
                view.name
            ),
        )
    })
}

pub fn invalid_value(column: &str, row: usize, e: ValueError) -> ApiError {
    ApiError::bad_request("invalid_value", format!("column '{column}' row {row}: {e}"))
}

/// Appends the canonical key of `row` (join keys in name order) to `out`.
pub fn encode_key<C: Cell>(
    view: &FeatureView,
    key_columns: &[(&str, &[C])],
    key_order: &[usize],
    row: usize,
    out: &mut Vec<u8>,
) -> Result<(), ApiError> {
    for &k in key_order {
        let (name, values) = key_columns[k];
        encode_key_value(view.join_keys[k].value_type, &values[row], out)
            .map_err(|e| invalid_value(name, row, e))?;
    }
    Ok(())
}

/// A 413 when a request holds more `what` than the `setting` allows.
pub fn check_limit(
    count: usize,
    limit: usize,
    code: &'static str,
    what: &str,
    setting: &str,
) -> Result<(), ApiError> {
    if count <= limit {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        code,
        format!("{count} {what} is more than the limit of {limit} ({setting}); split the request"),
    ))
}

/// A 413 for a value (or entity key) whose encoded size is past `max_value_bytes`.
fn check_value_size(
    bytes: usize,
    column: &str,
    row: usize,
    state: &AppState,
) -> Result<(), ApiError> {
    let limit = state.limits.max_value_bytes;
    if bytes <= limit {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "value_too_large",
        format!("column '{column}' row {row}: the value takes {bytes} bytes, more than the limit of {limit} (max_value_bytes)"),
    ))
}

/// The last timestamp of a column given as text, and its value: pushes often stamp every row
/// alike, and parsing it again was 2-3% of a push.
struct LastTime<'a>(Option<(std::borrow::Cow<'a, str>, Micros)>);

impl<'a> LastTime<'a> {
    /// `cell`'s timestamp ([`timestamp_of`]).
    fn of<C: Cell>(&mut self, cell: &'a C) -> Result<Micros, ValueError> {
        let text = cell.as_text(false);
        if let (Some(text), Some((last, micros))) = (&text, &self.0) {
            if text == last {
                return Ok(*micros);
            }
        }
        let micros = timestamp_of(cell)?;
        self.0 = text.map(|text| (text, micros));
        Ok(micros)
    }
}

/// Indexes of a view's join keys in name order: the canonical key order.
pub fn key_order(view: &FeatureView) -> std::borrow::Cow<'static, [usize]> {
    // One join key (the usual case): nothing to sort or allocate.
    if view.join_keys.len() == 1 {
        return std::borrow::Cow::Borrowed(&[0]);
    }
    let mut order: Vec<usize> = (0..view.join_keys.len()).collect();
    order.sort_by(|&a, &b| view.join_keys[a].name.cmp(&view.join_keys[b].name));
    std::borrow::Cow::Owned(order)
}

/// Converts `df` into batches for `views`, then stores them ([`store_batches`]).
pub async fn write_rows<C: Cell>(
    state: &AppState,
    views: &[ViewId],
    df: &Frame<C>,
    dest: Destination,
) -> Result<(), ApiError> {
    let batches = to_batches(state, views, df)?;
    store_batches(state, batches, dest).await
}

/// A frame's rows as batches per shard, and the layouts they were encoded with.
pub struct Batches {
    per_shard: Vec<Vec<RowBatch>>,
    layouts: std::sync::Arc<[RowLayout]>,
}

/// `df`'s rows for `views` as batches per shard: every value checked and converted, nothing
/// stored. The frame is not needed once this returns, so a caller can give its buffers back
/// before the write is committed ([`store_batches`]), which may take milliseconds on a cluster.
pub fn to_batches<C: Cell>(
    state: &AppState,
    views: &[ViewId],
    df: &Frame<C>,
) -> Result<Batches, ApiError> {
    let rows = row_count(df, "df")?;
    check_limit(
        rows,
        state.limits.max_rows_per_push,
        "too_many_rows",
        "rows",
        "max_rows_per_push",
    )?;
    let layouts = state.store.grid.layouts();
    if rows == 0 {
        return Ok(Batches {
            per_shard: Vec::new(),
            layouts,
        });
    }
    let router = state.store.grid.router();
    // Loaded after the caller resolved `views`: ids keep their meaning across reloads, and the
    // grid knows every view before a registry naming it is swapped in.
    let registry = state.registry.current();
    let mut per_shard: Vec<Vec<RowBatch>> = vec![Vec::new(); router.shards()];
    // Room for twice a shard's share of the rows (keys spread evenly): a batch rarely grows.
    let per_batch = rows.min(2 * rows.div_ceil(router.shards()) + 2);
    let mut key = Vec::with_capacity(64);
    for &view_id in views {
        let view = &registry.feature_views[view_id];
        let layout = &layouts[view_id];
        let key_columns = view
            .join_keys
            .iter()
            .map(|k| Ok((k.name.as_str(), column(df, &k.name, view, "join key")?)))
            .collect::<Result<Vec<_>, ApiError>>()?;
        let order = key_order(view);
        let event = column(df, &view.timestamp_field, view, "event timestamp column")?;
        let created = df.get(&view.created_timestamp_column);
        let fields = view
            .fields
            .iter()
            .map(|f| column(df, &f.name, view, "feature"))
            .collect::<Result<Vec<_>, ApiError>>()?;
        // Where this view's batch sits in each shard's list, once the shard has one.
        let mut slot_of_shard: Vec<Option<usize>> = vec![None; router.shards()];
        let (mut last_event, mut last_created) = (LastTime(None), LastTime(None));
        for row in 0..rows {
            key.clear();
            encode_key(view, &key_columns, &order, row, &mut key)?;
            check_value_size(key.len(), "entity key", row, state)?;
            let event_ts = last_event
                .of(&event[row])
                .map_err(|e| invalid_value(&view.timestamp_field, row, e))?;
            let created_ts = match created.map(|c| &c[row]) {
                None => NO_CREATED,
                Some(v) if v.is_null() || v.is_nat() => NO_CREATED,
                Some(v) => last_created
                    .of(v)
                    .map_err(|e| invalid_value(&view.created_timestamp_column, row, e))?,
            };
            let shard = router.shard_of_key(&key);
            let batches = &mut per_shard[shard];
            let at = *slot_of_shard[shard].get_or_insert_with(|| {
                batches.push(RowBatch::with_capacity(
                    view_id,
                    layout,
                    per_batch,
                    key.len(),
                ));
                batches.len() - 1
            });
            let batch = &mut batches[at];
            batch.start_row(layout, &key, event_ts, created_ts);
            for (i, values) in fields.iter().enumerate() {
                let value = &values[row];
                let field = &view.fields[i];
                if is_missing(field.dtype, value) {
                    continue;
                }
                batch.encode_field(layout, i, |out| {
                    let start = out.len();
                    encode_value(field.dtype, value, out)
                        .map_err(|e| invalid_value(&field.name, row, e))?;
                    check_value_size(out.len() - start, &field.name, row, state)
                })?;
            }
            if batch.data_len() > MAX_BATCH_BYTES {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_many_rows",
                    "the rows for one shard exceed 4 GiB; split the request",
                ));
            }
        }
    }
    Ok(Batches { per_shard, layouts })
}

/// Stores batches from [`to_batches`] ([`crate::store::LocalStore::store`]); on a cluster
/// node, hands them to the cluster, which commits each group's part through its leader.
pub async fn store_batches(
    state: &AppState,
    Batches { per_shard, layouts }: Batches,
    dest: Destination,
) -> Result<(), ApiError> {
    let rows: usize = per_shard.iter().flatten().map(RowBatch::len).sum();
    if rows == 0 {
        return Ok(());
    }
    let incoming: usize = per_shard.iter().flatten().map(RowBatch::data_len).sum();
    if dest.online {
        state.memory.check(incoming)?;
    }
    match state.cluster.get() {
        // Each replica's store counts the rows it applies.
        Some(cluster) => cluster.write(per_shard, &layouts, dest).await?,
        None => {
            let stats = state
                .store
                .store(per_shard, &layouts, dest, Admission::Refusable)
                .await?;
            tracing::debug!(
                rows,
                written = stats.written,
                skipped_older = stats.skipped_older,
                "rows applied"
            );
        }
    }
    if dest.online {
        state.memory.add(incoming);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::LastTime;
    use crate::value::cell::JsonCell;
    use crate::value::timestamp_of;

    /// The last text's value is reused only for the same text; numbers and errors are not
    /// remembered, and every answer is what parsing would give.
    #[test]
    fn a_timestamp_text_repeated_is_parsed_once_and_the_same() {
        let cells = [
            JsonCell::Str(Cow::Borrowed("2026-01-02T03:04:05Z")),
            JsonCell::Str(Cow::Borrowed("2026-01-02T03:04:05Z")),
            JsonCell::Int(1_700_000_000),
            JsonCell::Str(Cow::Borrowed("2026-01-02 03:04:05.5+01:00")),
            JsonCell::Str(Cow::Borrowed("2026-01-02 03:04:05.5+01:00")),
            JsonCell::Str(Cow::Borrowed("not a time")),
            JsonCell::Str(Cow::Borrowed("2026-01-02T03:04:05Z")),
        ];
        let mut last = LastTime(None);
        for cell in &cells {
            let want = timestamp_of(cell).map_err(|e| e.to_string());
            assert_eq!(last.of(cell).map_err(|e| e.to_string()), want, "{cell:?}");
        }
    }
}
