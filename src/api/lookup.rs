//! Reads, whatever the wire format: entity rows -> canonical keys grouped by shard -> the
//! coordinator -> a [`Lookup`] that the Feast JSON and native renderers walk column by column.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::{Arc, Once};

use super::rows::{check_limit, encode_key, invalid_value, key_order, row_count};
use super::{AppState, Frame};
use crate::cluster::Consistency;
use crate::error::ApiError;
use crate::grid::coordinator::GridError;
use crate::grid::partition::{PartitionError, ReadBatch, ReadOutput, RowLayout, RowRef};
use crate::registry::{FeatureRef, FeatureView, Registry, ViewId};
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
    /// The join key: the column's name in the answer.
    pub name: String,
    /// The column's name in the request: the join key, or the entity's name.
    pub given: &'r str,
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
    /// Output names of the features in request order, when they are not the fields' own
    /// names (`view__feature` with the view's alias if it has one, or names given by
    /// [`Lookup::rename`]); `None`: the fields' names, read from the registry (no copy per
    /// read).
    names: Option<Vec<String>>,
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
    /// The output name of feature `f` (index into `refs`, or into the names given by
    /// [`Lookup::rename`]).
    pub fn name(&self, f: usize) -> &str {
        output_name(
            self.names.as_deref(),
            &self.registry.feature_views,
            &self.refs,
            f,
        )
    }

    /// How many output names there are.
    pub fn name_count(&self) -> usize {
        self.names.as_ref().map_or(self.refs.len(), Vec::len)
    }

    /// Replaces the output names.
    pub fn rename(&mut self, names: Vec<String>) {
        self.names = Some(names);
    }

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
        encode_key_value(key.ty, value, scratch).map_err(|e| invalid_value(key.given, row, e))?;
    Ok(&scratch[range])
}

/// The request's column for join key `k` of `view`: (its index, its name, its values). By
/// the join key; or, as Feast still accepts with a deprecation warning, by the entity's name
/// (logged once per process).
fn key_column<'e, C>(
    entities: &'e Frame<C>,
    view: &FeatureView,
    k: usize,
) -> Result<(usize, &'e str, &'e [C]), ApiError> {
    static ENTITY_NAME_USED: Once = Once::new();
    let join_key = &view.join_keys[k].name;
    let entity = &view.entities[k];
    let by_key = entities.get_full(join_key.as_str());
    let by_entity = (entity != join_key)
        .then(|| entities.get_full(entity.as_str()))
        .flatten();
    match (by_key, by_entity) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "invalid_request",
            format!("entities gives both '{join_key}' and '{entity}', the name of its entity: give the join key '{join_key}' once"),
        )),
        (Some((i, name, values)), None) | (None, Some((i, name, values))) => {
            if name != join_key {
                ENTITY_NAME_USED.call_once(|| {
                    tracing::warn!(entity = %entity, join_key = %join_key, "entities keyed by entity name instead of join key: accepted as Feast does, but deprecated there; send join keys");
                });
            }
            Ok((i, name.as_str(), values.as_slice()))
        }
        (None, None) => Err(ApiError::bad_request(
            "missing_join_key",
            format!(
                "entities has no column '{join_key}', a join key of feature view '{}'",
                view.name
            ),
        )),
    }
}

/// Output name `f`: from `names` when given, else the field's own name.
fn output_name<'a>(
    names: Option<&'a [String]>,
    views: &'a [FeatureView],
    refs: &[FeatureRef],
    f: usize,
) -> &'a str {
    match names {
        Some(names) => &names[f],
        None => &views[refs[f].view].fields[refs[f].field].name,
    }
}

/// The first of `count` names (`name(i)`) that repeats an earlier one. A few names are
/// compared pairwise: no set to allocate per read.
fn first_repeated<'a>(count: usize, name: impl Fn(usize) -> &'a str) -> Option<&'a str> {
    if count <= 16 {
        return (1..count)
            .find(|&i| (0..i).any(|j| name(j) == name(i)))
            .map(name);
    }
    let mut seen = HashSet::with_capacity(count);
    (0..count).map(name).find(|n| !seen.insert(*n))
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
    let names: Option<Vec<String>> = full_names.then(|| {
        refs.iter()
            .enumerate()
            .map(|(i, r)| {
                let view = &views[r.view];
                let alias = aliases.get(i).and_then(|a| a.as_deref());
                format!(
                    "{}__{}",
                    alias.unwrap_or(&view.name),
                    view.fields[r.field].name
                )
            })
            .collect()
    });
    let name = |i| output_name(names.as_deref(), views, &refs, i);
    if let Some(name) = first_repeated(refs.len(), name) {
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

    // Route every (view, row) key to its shard; remember where each went. The join-key
    // columns of the views involved are echoed at the front, in the request's order.
    let router = state.store.grid.router();
    let limit = state.limits.max_answer_bytes;
    let mut per_shard = vec![ReadBatch::with_limit(limit); router.shards()];
    // A shard's batch is sized when it gets its first key, for twice its share of the keys
    // (spread evenly): growing it by doubling was 15 `realloc` calls a read of 100 x 3.
    let keys = involved.len() * rows;
    let share = keys.min(2 * keys.div_ceil(router.shards()) + 2);
    let mut located: Vec<(u32, u32)> = Vec::with_capacity(keys);
    let mut echoed: Vec<EchoedKey> = Vec::new();
    let mut key = Vec::with_capacity(64);
    for &view_id in &involved {
        let view = &views[view_id];
        let key_columns = (0..view.join_keys.len())
            .map(|k| {
                let (column, given, values) = key_column(entities, view, k)?;
                if !echoed.iter().any(|e| e.column == column) {
                    echoed.push(EchoedKey {
                        name: view.join_keys[k].name.clone(),
                        given,
                        ty: view.join_keys[k].value_type,
                        column,
                    });
                }
                Ok((given, values))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let order = key_order(view);
        for row in 0..rows {
            key.clear();
            encode_key(view, &key_columns, &order, row, &mut key)?;
            let shard = router.shard_of_key(&key);
            let batch = &mut per_shard[shard];
            if batch.is_empty() {
                batch.reserve(share, key.len());
            }
            located.push((shard as u32, batch.len() as u32));
            batch.push(view_id, &key);
        }
    }
    let outputs = match state.cluster.get() {
        Some(cluster) => cluster.read(per_shard, consistency).await?,
        None => state.store.grid.read(per_shard).await?,
    };
    let answer_bytes: usize = outputs.iter().flatten().map(ReadOutput::bytes).sum();
    if answer_bytes > limit {
        return Err(GridError::from(PartitionError::AnswerTooLarge { limit }).into());
    }
    echoed.sort_by_key(|e| e.column);

    Ok(Lookup {
        names,
        refs,
        echoed,
        rows,
        registry,
        layouts: state.store.grid.layouts(),
        view_pos,
        outputs,
        located,
        now: now_micros(),
    })
}

#[cfg(test)]
mod tests {
    use super::first_repeated;

    #[test]
    fn a_repeated_name_is_found_among_few_names_and_many() {
        for n in [0, 1, 2, 16, 17, 100] {
            let mut names: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
            let first =
                |names: &[String]| first_repeated(names.len(), |i| &names[i]).map(String::from);
            assert_eq!(first(&names), None, "{n} names");
            if n >= 2 {
                names.push(format!("f{}", n / 2));
                names.push("f0".into());
                assert_eq!(first(&names), Some(format!("f{}", n / 2)), "{n} names");
            }
        }
    }
}
