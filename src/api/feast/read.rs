//! `get-online-features`: entity rows -> keys grouped by shard -> the coordinator -> Feast's
//! column-major answer, rendered straight into one buffer.

use std::collections::HashSet;
use std::ops::Range;

use actix_web::http::StatusCode;
use serde_json::Value as Json;

use super::push::{encode_key, invalid_value, key_order, row_count};
use super::Columns;
use crate::api::AppState;
use crate::error::ApiError;
use crate::grid::partition::{ReadBatch, RowRef};
use crate::registry::{FeatureRef, ViewId};
use crate::value::{
    encode_key_value, now_micros, render_json, render_str, write_timestamp, ValueType,
    EPOCH_RFC3339,
};

const PRESENT: &str = "PRESENT";
const NULL_VALUE: &str = "NULL_VALUE";
const NOT_FOUND: &str = "NOT_FOUND";
const OUTSIDE_MAX_AGE: &str = "OUTSIDE_MAX_AGE";

/// Looks up `refs` for every entity row and renders the answer.
pub async fn read_features(
    state: &AppState,
    refs: &[FeatureRef],
    entities: &Columns,
    full_names: bool,
) -> Result<Vec<u8>, ApiError> {
    let registry = &state.registry;
    let names: Vec<String> = refs
        .iter()
        .map(|r| {
            let view = &registry.feature_views[r.view];
            let field = &view.fields[r.field].name;
            if full_names {
                format!("{}__{}", view.name, field)
            } else {
                field.clone()
            }
        })
        .collect();
    let mut seen = HashSet::with_capacity(names.len());
    for name in &names {
        if !seen.insert(name.as_str()) {
            return Err(ApiError::bad_request(
                "feature_name_collision",
                format!("two requested features are both named '{name}': request each once, or set \"full_feature_names\": true"),
            ));
        }
    }

    // The views involved, in order of first appearance, and each ref's view position.
    let mut views: Vec<ViewId> = Vec::new();
    let view_pos: Vec<usize> = refs
        .iter()
        .map(|r| {
            views.iter().position(|&v| v == r.view).unwrap_or_else(|| {
                views.push(r.view);
                views.len() - 1
            })
        })
        .collect();

    let rows = row_count(entities, "entities")?;
    if rows > state.limits.max_entities_per_request {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_entities",
            format!(
                "{rows} entity rows is more than the limit of {} (max_entities_per_request); split the request",
                state.limits.max_entities_per_request
            ),
        ));
    }

    // Route every (view, row) key to its shard; remember where each went.
    let router = state.grid.router();
    let mut per_shard = vec![ReadBatch::default(); router.shards()];
    let mut located: Vec<(u32, u32)> = Vec::with_capacity(views.len() * rows);
    let mut key = Vec::with_capacity(64);
    for &view_id in &views {
        let view = &registry.feature_views[view_id];
        let key_columns = view
            .join_keys
            .iter()
            .map(|k| {
                let values = entities.get(&k.name).ok_or_else(|| {
                    ApiError::bad_request(
                        "missing_join_key",
                        format!(
                            "entities has no column '{}', a join key of feature view '{}'",
                            k.name, view.name
                        ),
                    )
                })?;
                Ok((k.name.as_str(), values.as_slice()))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let order = key_order(view);
        for row in 0..rows {
            key.clear();
            encode_key(view, &key_columns, &order, row, &mut key)?;
            let shard = router.shard_of_key(&key);
            let batch = &mut per_shard[shard];
            located.push((shard as u32, batch.len() as u32));
            batch.push(view_id, &key);
        }
    }

    let outputs = state.grid.read(per_shard).await?;
    let layouts = state.grid.layouts();
    let found: Vec<Option<RowRef<'_>>> = located
        .iter()
        .map(|&(shard, i)| {
            outputs[shard as usize]
                .as_ref()
                .and_then(|o| o.row(layouts, i as usize))
        })
        .collect();

    // The echoed join-key columns: those of the entities that some requested view uses.
    let echoed: Vec<(&str, ValueType, &[Json])> = entities
        .iter()
        .filter_map(|(name, values)| {
            views.iter().find_map(|&v| {
                let k = registry.feature_views[v]
                    .join_keys
                    .iter()
                    .find(|k| &k.name == name)?;
                Some((name.as_str(), k.value_type, values.as_slice()))
            })
        })
        .collect();

    // One event timestamp text per (view, row), shared by all of the view's features.
    let mut ts_arena = Vec::with_capacity(found.len() * 27);
    let ts_text: Vec<Range<usize>> = found
        .iter()
        .map(|row| {
            let start = ts_arena.len();
            match row {
                Some(r) => write_timestamp(r.event_ts(), &mut ts_arena),
                None => ts_arena.extend_from_slice(EPOCH_RFC3339.as_bytes()),
            }
            start..ts_arena.len()
        })
        .collect();

    let now = now_micros();
    let mut out = Vec::with_capacity(128 + (names.len() + echoed.len()) * rows * 48);
    out.extend_from_slice(b"{\"metadata\":{\"feature_names\":[");
    for (i, name) in echoed
        .iter()
        .map(|e| e.0)
        .chain(names.iter().map(String::as_str))
        .enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        render_str(name, &mut out);
    }
    out.extend_from_slice(b"]},\"results\":[");
    let mut scratch = Vec::new();
    for (c, &(name, ty, values)) in echoed.iter().enumerate() {
        if c > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"values\":[");
        for (row, value) in values.iter().enumerate() {
            if row > 0 {
                out.push(b',');
            }
            scratch.clear();
            let range = encode_key_value(ty, value, &mut scratch)
                .map_err(|e| invalid_value(name, row, e))?;
            render_json(ty, &scratch[range], &mut out);
        }
        out.extend_from_slice(b"],\"statuses\":[");
        repeat(&mut out, rows, PRESENT);
        out.extend_from_slice(b"],\"event_timestamps\":[");
        repeat(&mut out, rows, EPOCH_RFC3339);
        out.extend_from_slice(b"]}");
    }
    for (f, r) in refs.iter().enumerate() {
        if f > 0 || !echoed.is_empty() {
            out.push(b',');
        }
        let view = &registry.feature_views[r.view];
        let field = &view.fields[r.field];
        let ttl = i64::try_from(view.ttl.as_micros()).unwrap_or(i64::MAX);
        let base = view_pos[f] * rows;
        let column = &found[base..base + rows];
        out.extend_from_slice(b"{\"values\":[");
        for (row, found) in column.iter().enumerate() {
            if row > 0 {
                out.push(b',');
            }
            match found {
                Some(stored) if !stored.is_null(r.field) => {
                    render_json(field.dtype, stored.field(r.field), &mut out)
                }
                _ => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b"],\"statuses\":[");
        for (row, found) in column.iter().enumerate() {
            if row > 0 {
                out.push(b',');
            }
            let status = match found {
                None => NOT_FOUND,
                Some(stored) if stored.is_null(r.field) => NULL_VALUE,
                Some(stored) if ttl > 0 && now.saturating_sub(stored.event_ts()) > ttl => {
                    OUTSIDE_MAX_AGE
                }
                Some(_) => PRESENT,
            };
            quoted(&mut out, status);
        }
        out.extend_from_slice(b"],\"event_timestamps\":[");
        for row in 0..rows {
            if row > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(&ts_arena[ts_text[base + row].clone()]);
            out.push(b'"');
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Appends a string that needs no escaping, in quotes.
fn quoted(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

fn repeat(out: &mut Vec<u8>, times: usize, text: &str) {
    for i in 0..times {
        if i > 0 {
            out.push(b',');
        }
        quoted(out, text);
    }
}
