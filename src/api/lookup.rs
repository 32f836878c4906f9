//! Reads, whatever the wire format: entity rows -> canonical keys grouped by shard -> the
//! coordinator -> a [`Lookup`] that the Feast JSON and native renderers walk column by column.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use super::rows::{check_limit, encode_key, invalid_value, key_order, row_count};
use super::{AppState, Frame};
use crate::cluster::Consistency;
use crate::error::ApiError;
use crate::grid::partition::{ReadBatch, ReadOutput, RowLayout, RowRef};
use crate::registry::{FeatureRef, Registry, ViewId};
use crate::value::{encode_key_value, now_micros, Cell, Micros, ValueType};

/// Feast's status of one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Status {
    Present,
    NullValue,
    NotFound,
    OutsideMaxAge,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Present => "PRESENT",
            Status::NullValue => "NULL_VALUE",
            Status::NotFound => "NOT_FOUND",
            Status::OutsideMaxAge => "OUTSIDE_MAX_AGE",
        }
    }
}

/// A join-key column echoed at the front of the answer.
pub struct EchoedKey<'r> {
    pub name: &'r str,
    pub ty: ValueType,
    /// Index of the column in the request's entities.
    pub column: usize,
}

/// The features a read asks for: references, and the view alias each is read under (empty
/// when none has one; see [`crate::registry::FeatureService::aliases`]).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub refs: Vec<FeatureRef>,
    pub aliases: Vec<Option<String>>,
}

/// The answer to a read, before rendering.
pub struct Lookup<'s> {
    /// Output names of the features (`feature`, or `view__feature` with the view's alias if
    /// it has one), in request order.
    pub names: Vec<String>,
    pub refs: Vec<FeatureRef>,
    pub echoed: Vec<EchoedKey<'s>>,
    pub rows: usize,
    /// The registry the request was resolved against.
    registry: Arc<Registry>,
    layouts: Arc<[RowLayout]>,
    view_pos: Vec<usize>,
    outputs: Vec<Option<ReadOutput>>,
    located: Vec<(u32, u32)>,
    now: Micros,
}

impl Lookup<'_> {
    /// The stored row behind feature `f` (index into `refs`) for entity row `row`.
    pub fn row(&self, f: usize, row: usize) -> Option<RowRef<'_>> {
        let (shard, i) = self.located[self.view_pos[f] * self.rows + row];
        self.outputs[shard as usize]
            .as_ref()?
            .row(&self.layouts, i as usize)
    }

    /// The value's status, and the row when one is stored.
    pub fn status(&self, f: usize, row: usize) -> (Status, Option<RowRef<'_>>) {
        let r = self.refs[f];
        let Some(stored) = self.row(f, row) else {
            return (Status::NotFound, None);
        };
        let ttl =
            i64::try_from(self.registry.feature_views[r.view].ttl.as_micros()).unwrap_or(i64::MAX);
        let status = if stored.is_null(r.field) {
            Status::NullValue
        } else if ttl > 0 && self.now.saturating_sub(stored.event_ts()) > ttl {
            Status::OutsideMaxAge
        } else {
            Status::Present
        };
        (status, Some(stored))
    }

    /// The declared type of feature `f`.
    pub fn dtype(&self, f: usize) -> ValueType {
        let r = self.refs[f];
        self.registry.feature_views[r.view].fields[r.field].dtype
    }

    /// Whether features `f` and `g` read the same stored row (same view), so share timestamps.
    pub fn same_view(&self, f: usize, g: usize) -> bool {
        self.view_pos[f] == self.view_pos[g]
    }
}

/// The canonical key bytes of an echoed join-key value, for rendering it in its declared type.
pub fn echo_value<'b, C: Cell>(
    key: &EchoedKey<'_>,
    value: &C,
    row: usize,
    scratch: &'b mut Vec<u8>,
) -> Result<&'b [u8], ApiError> {
    scratch.clear();
    let range: Range<usize> =
        encode_key_value(key.ty, value, scratch).map_err(|e| invalid_value(key.name, row, e))?;
    Ok(&scratch[range])
}

/// Looks up `refs` for every entity row (on a cluster node, as fresh as `consistency` says).
pub async fn lookup<'s, C: Cell>(
    state: &'s AppState,
    selection: Selection,
    entities: &'s Frame<C>,
    full_names: bool,
    consistency: Consistency,
) -> Result<Lookup<'s>, ApiError> {
    let Selection { refs, aliases } = selection;
    let registry = state.registry.current();
    let views = &registry.feature_views[..];
    let names: Vec<String> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let view = &views[r.view];
            let field = &view.fields[r.field].name;
            if full_names {
                let alias = aliases.get(i).and_then(|a| a.as_deref());
                format!("{}__{}", alias.unwrap_or(&view.name), field)
            } else {
                field.clone()
            }
        })
        .collect();
    let mut seen = HashSet::with_capacity(names.len());
    if let Some(name) = names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(ApiError::bad_request(
            "feature_name_collision",
            format!("two requested features are both named '{name}': request each once, or set \"full_feature_names\": true"),
        ));
    }

    // The views involved, in order of first appearance, and each ref's view position.
    let mut involved: Vec<ViewId> = Vec::new();
    let view_pos: Vec<usize> = refs
        .iter()
        .map(|r| {
            involved
                .iter()
                .position(|&v| v == r.view)
                .unwrap_or_else(|| {
                    involved.push(r.view);
                    involved.len() - 1
                })
        })
        .collect();

    let rows = row_count(entities, "entities")?;
    check_limit(
        rows,
        state.limits.max_entities_per_request,
        "too_many_entities",
        "entity rows",
        "max_entities_per_request",
    )?;

    // Route every (view, row) key to its shard; remember where each went.
    let router = state.grid.router();
    let mut per_shard = vec![ReadBatch::default(); router.shards()];
    let mut located: Vec<(u32, u32)> = Vec::with_capacity(involved.len() * rows);
    let mut key = Vec::with_capacity(64);
    for &view_id in &involved {
        let view = &views[view_id];
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
    let outputs = match state.cluster.get() {
        Some(cluster) => cluster.read(per_shard, consistency).await?,
        None => state.grid.read(per_shard).await?,
    };

    // The echoed join-key columns: those of the entities that some requested view uses.
    let echoed = entities
        .iter()
        .enumerate()
        .filter_map(|(column, (name, _))| {
            involved.iter().find_map(|&v| {
                let k = views[v].join_keys.iter().find(|k| &k.name == name)?;
                Some(EchoedKey {
                    name: name.as_str(),
                    ty: k.value_type,
                    column,
                })
            })
        })
        .collect();

    Ok(Lookup {
        names,
        refs,
        echoed,
        rows,
        registry,
        layouts: state.grid.layouts(),
        view_pos,
        outputs,
        located,
        now: now_micros(),
    })
}
