//! On-demand feature views (Feast's `OnDemandFeatureView`) as the registry knows them: what
//! a read or a write of one needs (its sources, request fields, output schema, mode), never
//! the transformation itself, which Feast's own code runs in the Python workers
//! ([`crate::ondemand`]).
//!
//! A view with `write_to_online_store=True` is also declared as a plain feature view (its
//! table keyed by its entities), so that its computed rows are stored and read like any
//! view's (the registry's feature view of the same name). The others are computed at read
//! time.

use serde::Serialize;

use super::build::{FeatureViewDecl, FieldDecl};
use super::feast::proto;
use super::feast::value_type;
use super::{Field, ViewKind};

/// The event-time column of a write-time view's stored rows (Feast stamps them with the time
/// of the write).
pub const WRITE_TIME_COLUMN: &str = "event_timestamp";

/// Feast's `mode` of a transformation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `transform_dict`: the UDF takes and returns a dict of lists (or one row: `singleton`).
    Python,
    /// `transform_arrow`: the UDF takes and returns a pandas DataFrame.
    Pandas,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Python => "python",
            Mode::Pandas => "pandas",
        }
    }
}

/// A feature view an on-demand view reads, as its projection says.
#[derive(Debug, Clone, Serialize)]
pub struct SourceView {
    /// The feature view read.
    pub view: String,
    /// Its name in the transformation's input with full feature names (`name_to_use`: the
    /// projection's alias, else the view's name).
    pub name_to_use: String,
    /// The features read (the whole view when the projection names none).
    pub features: Vec<String>,
}

/// One on-demand feature view.
#[derive(Debug, Clone, Serialize)]
pub struct OnDemandView {
    pub name: String,
    pub mode: Mode,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub singleton: bool,
    pub write_to_online_store: bool,
    /// The output schema.
    pub fields: Vec<Field>,
    pub sources: Vec<SourceView>,
    /// Values the request gives in `entities` (all of its request sources' fields).
    pub request_fields: Vec<Field>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl OnDemandView {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A feature service that reads at least one on-demand view computed at read time: its
/// references in the service's order, each `(view, feature, alias)`.
#[derive(Debug, Clone, Serialize)]
pub struct OnDemandService {
    pub name: String,
    pub features: Vec<String>,
    #[serde(skip)]
    pub refs: Vec<(String, String, Option<String>)>,
}

/// The view's declaration from Feast's proto; `Err` says why it cannot be served.
pub(super) fn on_demand_view(
    spec: &proto::OnDemandFeatureViewSpec,
) -> Result<OnDemandView, String> {
    if spec.disabled {
        return Err("disabled".into());
    }
    let mode = match spec.mode.as_str() {
        "python" => Mode::Python,
        "pandas" | "" => Mode::Pandas,
        "substrait" => {
            return Err("mode 'substrait' is not served (modes python and pandas are)".into())
        }
        other => return Err(format!("mode '{other}' is not a Feast transformation mode")),
    };
    if !spec.aggregations.is_empty() {
        return Err("aggregations are not served (transformations are)".into());
    }
    let field = |f: &proto::FeatureSpec| {
        value_type(f.value_type)
            .map(|dtype| Field {
                name: f.name.clone(),
                dtype,
            })
            .ok_or_else(|| {
                format!(
                    "field '{}': Feast type {} is not a feature type",
                    f.name,
                    proto::value_type::name(f.value_type)
                )
            })
    };
    let fields = spec
        .features
        .iter()
        .map(field)
        .collect::<Result<Vec<_>, _>>()?;
    // Sources in name order: the proto's map has none of its own.
    let mut names: Vec<&String> = spec.sources.keys().collect();
    names.sort();
    let mut sources = Vec::new();
    let mut request_fields: Vec<Field> = Vec::new();
    for name in names {
        let source = &spec.sources[name];
        if let Some(p) = &source.feature_view_projection {
            sources.push(SourceView {
                view: p.feature_view_name.clone(),
                name_to_use: if p.feature_view_name_alias.is_empty() {
                    p.feature_view_name.clone()
                } else {
                    p.feature_view_name_alias.clone()
                },
                features: p.feature_columns.iter().map(|c| c.name.clone()).collect(),
            });
        } else if let Some(v) = source.feature_view.as_ref().and_then(|v| v.spec.as_ref()) {
            sources.push(SourceView {
                view: v.name.clone(),
                name_to_use: v.name.clone(),
                features: v.features.iter().map(|c| c.name.clone()).collect(),
            });
        } else if let Some(r) = &source.request_data_source {
            for f in r.request_data_options.iter().flat_map(|o| &o.schema) {
                if !request_fields.iter().any(|g| g.name == f.name) {
                    request_fields
                        .push(field(f).map_err(|e| format!("request source '{}': {e}", r.name))?);
                }
            }
        }
    }
    if spec.write_to_online_store && spec.entities.iter().all(|e| e == "__dummy") {
        return Err("write_to_online_store=True needs entities to key its stored rows".into());
    }
    Ok(OnDemandView {
        name: spec.name.clone(),
        mode,
        singleton: spec.singleton,
        write_to_online_store: spec.write_to_online_store,
        fields,
        sources,
        request_fields,
        entities: spec
            .entities
            .iter()
            .filter(|e| e.as_str() != "__dummy")
            .cloned()
            .collect(),
        description: spec.description.clone(),
    })
}

/// The table of a write-time view: keyed by its entities, its output fields (less its join
/// keys), stamped with the time of the write.
pub(super) fn stored_declaration(
    spec: &proto::OnDemandFeatureViewSpec,
    view: &OnDemandView,
) -> FeatureViewDecl {
    let keys: Vec<&str> = spec
        .entity_columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    FeatureViewDecl {
        name: view.name.clone(),
        entities: view.entities.clone(),
        fields: view
            .fields
            .iter()
            .filter(|f| !keys.contains(&f.name.as_str()))
            .map(|f| FieldDecl {
                name: f.name.clone(),
                dtype: f.dtype.to_string(),
            })
            .collect(),
        ttl: None,
        source: None,
        timestamp_field: WRITE_TIME_COLUMN.into(),
        created_timestamp_column: "created".into(),
        description: view.description.clone(),
        key_types: spec
            .entity_columns
            .iter()
            .filter_map(|c| Some((c.name.clone(), value_type(c.value_type)?)))
            .collect(),
        kind: ViewKind::FeatureView,
        labeler_field: None,
        conflict_policy: None,
        version: None,
        version_number: 0,
        enable_validation: false,
        offline: None,
    }
}
