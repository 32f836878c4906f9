//! Reads of on-demand views computed at read time, as Feast's feature server does them
//! (feast/utils.py `_augment_response_with_on_demand_transforms`):
//!
//! 1. [`plan`]: the requested features split into stored ones (read as usual) and on-demand
//!    ones; the source features the transformations need are read too, and left out of the
//!    answer unless requested.
//! 2. [`compute`]: one batch to a Python worker for every view of the read, holding every
//!    entity row: the join keys, the request-source values given in `entities`, and the
//!    views' source features (named `feature`, or `view__feature` with full feature names, as
//!    Feast names them). The worker runs each view's `transform_dict` / `transform_arrow` on it
//!    and keeps the requested outputs, in the transformation's order: one output part per view.
//! 3. The renderer appends each output after the stored features, with status `PRESENT` and
//!    the epoch as event timestamp, as Feast does.

use std::collections::HashSet;

use super::arrow::{input_batch, output_columns, InputColumn};
use super::pool::{Request, ViewCall};
use super::{OnDemandError, Pool};
use crate::api::lookup::{echo_value, Lookup, Selection};
use crate::api::rows::invalid_value;
use crate::api::Frame;
use crate::error::ApiError;
use crate::registry::on_demand::OnDemandView;
use crate::registry::{FeatureRef, Registry, RegistryError};
use crate::value::cell::JsonCell;
use crate::value::{encode_value, is_missing, ValueType};

/// An on-demand view a read computes.
#[derive(Debug, Clone)]
pub struct Planned {
    pub view: String,
    /// The view's name in the answer with full feature names (its alias in a service).
    pub name_to_use: String,
    /// The output features asked for.
    pub features: Vec<String>,
}

/// How a read naming on-demand views is served.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Stored features: the `shown` requested ones first, then the sources only the
    /// transformations read.
    pub selection: Selection,
    pub shown: usize,
    pub views: Vec<Planned>,
}

/// One computed column of the answer: stored-form values of its declared type.
pub struct Computed {
    pub name: String,
    pub dtype: ValueType,
    pub values: Vec<Option<Vec<u8>>>,
}

/// The view part of a feature reference (`view:feature`, `view@latest:feature`).
fn view_of(reference: &str) -> Option<(&str, &str)> {
    let (view, feature) = reference.split_once(':')?;
    let view = view.split_once('@').map_or(view, |(v, _)| v);
    Some((view, feature))
}

/// The plan of a read, or `None` when it names no view computed at read time (a plain read,
/// which never touches Python).
pub fn plan<S: AsRef<str>>(
    registry: &Registry,
    features: Option<&[S]>,
    service: Option<&str>,
) -> Result<Option<Plan>, ApiError> {
    if registry.on_demand_views.is_empty() {
        return Ok(None);
    }
    let computed = |name: &str| {
        registry
            .on_demand_view(name)
            .filter(|v| !v.write_to_online_store)
    };
    let features = features.filter(|f| !f.is_empty());
    let refs: Vec<(String, String, Option<String>)> = match (features, service) {
        (None, Some(service)) => match registry.on_demand_service(service) {
            Some(s) => s.refs.clone(),
            None => return Ok(None),
        },
        (Some(features), None) => {
            let named = features
                .iter()
                .any(|f| view_of(f.as_ref()).is_some_and(|(v, _)| computed(v).is_some()));
            if !named {
                return Ok(None);
            }
            features
                .iter()
                .map(|f| match view_of(f.as_ref()) {
                    Some((v, feature)) if computed(v).is_some() => {
                        Ok((v.to_string(), feature.to_string(), None))
                    }
                    _ => {
                        let r = registry.resolve_ref(f.as_ref())?;
                        let view = &registry.feature_views[r.view];
                        Ok((view.name.clone(), view.fields[r.field].name.clone(), None))
                    }
                })
                .collect::<Result<_, ApiError>>()?
        }
        _ => return Ok(None),
    };
    let mut selection = Selection::default();
    let mut views: Vec<Planned> = Vec::new();
    for (view, feature, alias) in refs {
        if let Some(odfv) = computed(&view) {
            if odfv.field(&feature).is_none() {
                return Err(RegistryError::UnknownFeature { view, feature }.into());
            }
            let name_to_use = alias.unwrap_or_else(|| view.clone());
            match views.iter_mut().find(|p| p.view == view) {
                Some(p) => p.features.push(feature),
                None => views.push(Planned {
                    view,
                    name_to_use,
                    features: vec![feature],
                }),
            }
        } else {
            selection
                .refs
                .push(registry.resolve_ref(&format!("{view}:{feature}"))?);
            selection.aliases.push(alias);
        }
    }
    let shown = selection.refs.len();
    for planned in &views {
        let Some(odfv) = computed(&planned.view) else {
            continue;
        };
        for source in &odfv.sources {
            for feature in source_features(registry, &source.view, &source.features) {
                let r = registry.resolve_ref(&format!("{}:{feature}", source.view))?;
                if !selection.refs.contains(&r) {
                    selection.refs.push(r);
                    selection.aliases.push(None);
                }
            }
        }
    }
    Ok(Some(Plan {
        selection,
        shown,
        views,
    }))
}

/// The features a source projection reads: those it names, or the whole view.
pub(super) fn source_features(registry: &Registry, view: &str, named: &[String]) -> Vec<String> {
    if !named.is_empty() {
        return named.to_vec();
    }
    registry
        .view(view)
        .map(|v| v.fields.iter().map(|f| f.name.clone()).collect())
        .unwrap_or_default()
}

/// The answer's names of the stored features shown (`feature`, or `alias__feature`), checked
/// for collisions as a plain read is.
pub fn shown_names(
    registry: &Registry,
    plan: &Plan,
    full_names: bool,
) -> Result<Vec<String>, ApiError> {
    let mut names = Vec::with_capacity(plan.shown);
    let mut seen = HashSet::new();
    for (i, r) in plan.selection.refs[..plan.shown].iter().enumerate() {
        let view = &registry.feature_views[r.view];
        let field = &view.fields[r.field].name;
        let name = if full_names {
            let alias = plan.selection.aliases.get(i).and_then(|a| a.as_deref());
            format!("{}__{}", alias.unwrap_or(&view.name), field)
        } else {
            field.clone()
        };
        if !seen.insert(name.clone()) {
            return Err(ApiError::bad_request(
                "feature_name_collision",
                format!("two requested features are both named '{name}': request each once, or set \"full_feature_names\": true"),
            ));
        }
        names.push(name);
    }
    Ok(names)
}

/// Runs the plan's transformations on what `found` read; the computed columns, in Feast's
/// order.
pub async fn compute(
    pool: Option<&Pool>,
    registry: &Registry,
    plan: &Plan,
    found: &Lookup<'_>,
    entities: &Frame<JsonCell<'_>>,
    full_names: bool,
) -> Result<Vec<Computed>, ApiError> {
    let Some(pool) = pool else {
        let view = plan
            .views
            .first()
            .map(|p| p.view.clone())
            .unwrap_or_default();
        return Err(OnDemandError::NotEnabled { view }.into());
    };
    let rows = found.rows;
    let odfvs: Vec<&OnDemandView> = plan
        .views
        .iter()
        .filter_map(|p| registry.on_demand_view(&p.view))
        .collect();

    // What every transformation sees: the join keys, and the request data of all of them.
    let mut common: Vec<InputColumn> = Vec::new();
    let mut scratch = Vec::new();
    for key in &found.echoed {
        let mut values = Vec::with_capacity(rows);
        for (row, value) in entities[key.column].iter().enumerate() {
            values.push(Some(echo_value(key, value, row, &mut scratch)?.to_vec()));
        }
        common.push(InputColumn {
            name: key.name.clone(),
            dtype: key.ty,
            values,
        });
    }
    for odfv in &odfvs {
        for field in &odfv.request_fields {
            if common.iter().any(|c| c.name == field.name) {
                continue;
            }
            let Some(cells) = entities.get(&field.name) else {
                return Err(ApiError::bad_request(
                    "missing_request_data",
                    format!("entities has no column '{}', request data that on-demand feature view '{}' needs: give it as a column of entities, one value per row", field.name, odfv.name),
                ));
            };
            let mut values = Vec::with_capacity(rows);
            for (row, cell) in cells.iter().enumerate() {
                if is_missing(field.dtype, cell) {
                    values.push(None);
                    continue;
                }
                let mut out = Vec::new();
                encode_value(field.dtype, cell, &mut out)
                    .map_err(|e| invalid_value(&field.name, row, e))?;
                values.push(Some(out));
            }
            common.push(InputColumn {
                name: field.name.clone(),
                dtype: field.dtype,
                values,
            });
        }
    }

    // One batch for every view of the read, in one round trip (Feast, too, hands each
    // transformation the whole response): the join keys, the request data, and each view's
    // source features, once each.
    let mut columns = common;
    let mut column_refs: Vec<Option<FeatureRef>> = vec![None; columns.len()];
    let mut calls = Vec::with_capacity(plan.views.len());
    for (planned, odfv) in plan.views.iter().zip(&odfvs) {
        for source in &odfv.sources {
            for feature in source_features(registry, &source.view, &source.features) {
                let r = registry.resolve_ref(&format!("{}:{feature}", source.view))?;
                let Some(f) = found.refs.iter().position(|x| *x == r) else {
                    continue;
                };
                let name = if full_names {
                    format!("{}__{feature}", source.name_to_use)
                } else {
                    feature.clone()
                };
                match columns.iter().position(|c| c.name == name) {
                    Some(i) if column_refs[i] == Some(r) => continue,
                    Some(_) => {
                        return Err(ApiError::bad_request(
                            "feature_name_collision",
                            format!("two inputs of the on-demand feature views read are both named '{name}': set \"full_feature_names\": true"),
                        ))
                    }
                    None => {
                        columns.push(InputColumn {
                            name,
                            dtype: found.dtype(f),
                            values: stored_values(found, f, r),
                        });
                        column_refs.push(Some(r));
                    }
                }
            }
        }
        calls.push(ViewCall {
            view: odfv.name.clone(),
            requested: planned
                .features
                .iter()
                .map(|f| match full_names {
                    true => format!("{}__{f}", planned.name_to_use),
                    false => f.clone(),
                })
                .collect(),
            name_to_use: planned.name_to_use.clone(),
        });
    }
    let names = calls
        .iter()
        .map(|c| c.view.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let body = input_batch(&columns, rows).map_err(|e| OnDemandError::BadOutput {
        view: names.clone(),
        detail: format!("cannot build its input: {e}"),
    })?;
    let request = Request {
        view: names,
        op: "read",
        registry_version: registry.loaded_from.version_id.clone(),
        full_feature_names: full_names,
        views: calls,
    };
    let answer = pool.run(request, body).await?;

    let mut parts = Parts(&answer);
    let mut computed = Vec::new();
    for (planned, odfv) in plan.views.iter().zip(&odfvs) {
        let bad = |detail: String| OnDemandError::BadOutput {
            view: odfv.name.clone(),
            detail,
        };
        let part = parts
            .next()
            .ok_or_else(|| bad("the worker's answer has no output for it".into()))?;
        let (outputs, out_rows) = output_columns(part).map_err(bad)?;
        if !outputs.is_empty() && out_rows != rows {
            return Err(bad(format!(
                "the transformation returned {out_rows} rows for {rows} entity rows"
            ))
            .into());
        }
        let prefix = format!("{}__", planned.name_to_use);
        for (name, cells) in outputs {
            let field = odfv
                .field(&name)
                .or_else(|| name.strip_prefix(&prefix).and_then(|n| odfv.field(n)))
                .ok_or_else(|| {
                    bad(format!(
                        "the transformation returned '{name}', which is not in its schema"
                    ))
                })?;
            let mut values = Vec::with_capacity(rows);
            for (row, cell) in cells.iter().enumerate() {
                if is_missing(field.dtype, cell) {
                    values.push(None);
                    continue;
                }
                let mut out = Vec::new();
                encode_value(field.dtype, cell, &mut out).map_err(|e| {
                    bad(format!(
                        "output '{name}' row {row} is not a {}: {e}",
                        field.dtype
                    ))
                })?;
                values.push(Some(out));
            }
            computed.push(Computed {
                name,
                dtype: field.dtype,
                values,
            });
        }
    }
    Ok(computed)
}

/// The stored values of feature `f` (reference `r`) for every row; `None` where nothing or
/// null is stored.
fn stored_values(found: &Lookup<'_>, f: usize, r: FeatureRef) -> Vec<Option<Vec<u8>>> {
    (0..found.rows)
        .map(|row| match found.row(f, row) {
            Some(stored) if !stored.is_null(r.field) => Some(stored.field(r.field).to_vec()),
            _ => None,
        })
        .collect()
}

/// The parts of a read's answer, one per view in the request's order: each a little-endian
/// `u32` length and that many bytes (an Arrow IPC stream).
struct Parts<'a>(&'a [u8]);

impl<'a> Iterator for Parts<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        let part = rest.get(..len)?;
        self.0 = &rest[len..];
        Some(part)
    }
}
