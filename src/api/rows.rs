//! Writes, whatever the wire format: columnar rows -> validated, typed row batches per shard
//! -> the coordinator.
//!
//! The whole request is converted before anything is sent: one bad value rejects the request
//! with a 400 naming the column and row, and nothing is applied.

use super::{AppState, Frame};
use crate::error::ApiError;
use crate::grid::coordinator::Coordinator;
use crate::grid::partition::{ApplyStats, RowBatch, RowLayout, MAX_BATCH_BYTES, NO_CREATED};
use crate::persist::offline::OfflineSink;
use crate::persist::wal::{self, Destination, Wal, WalError};
use crate::registry::{FeatureView, ViewId};
use crate::value::{encode_key_value, encode_value, is_missing, timestamp_of, Cell, ValueError};
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

/// Indexes of a view's join keys in name order: the canonical key order.
pub fn key_order(view: &FeatureView) -> Vec<usize> {
    let mut order: Vec<usize> = (0..view.join_keys.len()).collect();
    order.sort_by(|&a, &b| view.join_keys[a].name.cmp(&view.join_keys[b].name));
    order
}

/// Converts `df` into batches for `views`, then [`store`]s them; on a cluster node, hands them
/// to the cluster, which commits each group's part through its leader.
pub async fn write_rows<C: Cell>(
    state: &AppState,
    views: &[ViewId],
    df: &Frame<C>,
    dest: Destination,
) -> Result<(), ApiError> {
    let rows = row_count(df, "df")?;
    check_limit(
        rows,
        state.limits.max_rows_per_push,
        "too_many_rows",
        "rows",
        "max_rows_per_push",
    )?;
    if rows == 0 {
        return Ok(());
    }
    let router = state.grid.router();
    // Loaded after the caller resolved `views`: ids keep their meaning across reloads, and the
    // grid knows every view before a registry naming it is swapped in.
    let registry = state.registry.current();
    let layouts = state.grid.layouts();
    let mut per_shard: Vec<Vec<RowBatch>> = vec![Vec::new(); router.shards()];
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
        for row in 0..rows {
            key.clear();
            encode_key(view, &key_columns, &order, row, &mut key)?;
            check_value_size(key.len(), "entity key", row, state)?;
            let event_ts = timestamp_of(&event[row])
                .map_err(|e| invalid_value(&view.timestamp_field, row, e))?;
            let created_ts = match created.map(|c| &c[row]) {
                None => NO_CREATED,
                Some(v) if v.is_null() || v.is_nat() => NO_CREATED,
                Some(v) => timestamp_of(v)
                    .map_err(|e| invalid_value(&view.created_timestamp_column, row, e))?,
            };
            let shard = router.shard_of_key(&key);
            let batches = &mut per_shard[shard];
            let at = *slot_of_shard[shard].get_or_insert_with(|| {
                batches.push(RowBatch::new(view_id));
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
    if dest.offline {
        state.offline.check()?;
    }
    let incoming: usize = per_shard.iter().flatten().map(RowBatch::data_len).sum();
    if dest.online {
        state.memory.check(incoming)?;
    }
    match state.cluster.get() {
        // Each replica's store counts the rows it applies.
        Some(cluster) => cluster.write(per_shard, &layouts, dest).await?,
        None => {
            let stats = store(
                &state.grid,
                &state.wal,
                &state.offline,
                per_shard,
                &layouts,
                dest,
            )
            .await?;
            state.metrics.rows_written.inc_by(stats.written);
            state.metrics.rows_skipped_older.inc_by(stats.skipped_older);
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

/// Logs per-shard batches (index = shard) ahead, then applies them to the online store and/or
/// hands them to the offline sink, as `dest` says: the local write path, taken by every push
/// on a single node and by every committed entry on a cluster replica.
pub async fn store(
    grid: &Coordinator,
    wal: &Wal,
    offline: &OfflineSink,
    per_shard: Vec<Vec<RowBatch>>,
    layouts: &[RowLayout],
    dest: Destination,
) -> Result<ApplyStats, ApiError> {
    if dest.offline {
        offline.check()?;
    }
    // Mailbox places are reserved first: a full shard refuses the write (503) before anything
    // is logged, so a refusal is never applied, live or after a replay. Then the record is
    // logged; the log writer queues the rows on the shards and in the offline sink, in log
    // order, and only then answers.
    let views = wal::portable_views(&per_shard, layouts);
    let record = wal::encode_record(dest, &views).map_err(WalError::from)?;
    let (dispatch, pending) = if dest.online {
        let (dispatch, pending) = grid.prepare_write(per_shard)?;
        (Some(dispatch), Some(pending))
    } else {
        (None, None)
    };
    let offline = dest.offline.then(|| (offline.clone(), views));
    wal.append(
        record,
        Box::new(move |lsn| {
            if let Some((sink, views)) = offline {
                sink.append(lsn, views);
            }
            if let Some(dispatch) = dispatch {
                dispatch.send();
            }
        }),
    )
    .await?;
    let stats = match pending {
        Some(pending) => pending.wait().await,
        None => Ok(Default::default()),
    };
    stats.map_err(ApiError::from)
}
