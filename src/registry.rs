//! The registry: entities, feature views, push sources and feature services.
//!
//! It is declared in TOML (see `config/driver_registry.toml`, the embedded default, and
//! `config/example_registry.toml`) or read from a Feast feature repo ([`feast`]); both are
//! turned into the same declarations and validated whole by one function. A registry is
//! immutable: a reload builds a new one and swaps it in ([`crate::reload`]). Everything
//! downstream refers to views by [`ViewId`] and to features by index.

pub mod batch;
mod build;
pub mod feast;
pub mod on_demand;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::value::ValueType;

mod checks;

use build::RegistryFile;
pub use build::{parse_duration, parse_duration_value};

/// The embedded default registry: Feast's `driver` quickstart.
pub const DEFAULT_REGISTRY: &str = include_str!("../config/driver_registry.toml");

/// Index of a feature view in [`Registry::views`].
pub type ViewId = usize;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("feature view '{name}' is not in the registry")]
    UnknownFeatureView { name: String },
    #[error("feature '{feature}' is not a field of feature view '{view}'")]
    UnknownFeature { view: String, feature: String },
    #[error("feature service '{name}' is not in the registry")]
    UnknownFeatureService { name: String },
    #[error("push source '{name}' is not in the registry")]
    UnknownPushSource { name: String },
    #[error("'{reference}' is not a feature reference: expected 'feature_view:feature'")]
    BadFeatureRef { reference: String },
    #[error("'{reference}' names a feature view version: featgrid serves the current version of each view only, as Feast's feature server does without `enable_online_feature_view_versioning`; use '{view}:{feature}' (or '{view}@latest:{feature}')")]
    VersionedReference {
        reference: String,
        view: String,
        feature: String,
    },
    #[error("{source_name}: {key}: {problem}")]
    Invalid {
        source_name: String,
        key: String,
        problem: String,
    },
}

// ---------------------------------------------------------------------------------------------
// The resolved registry.

#[derive(Debug, Clone, Serialize)]
pub struct Entity {
    pub name: String,
    pub join_key: String,
    pub value_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct JoinKey {
    pub name: String,
    #[serde(serialize_with = "display")]
    pub value_type: ValueType,
}

#[derive(Debug, Clone, Serialize)]
pub struct Field {
    pub name: String,
    #[serde(serialize_with = "display")]
    pub dtype: ValueType,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureView {
    #[serde(skip)]
    pub id: ViewId,
    pub name: String,
    /// The entities' names, one per join key, in the order of `join_keys`.
    pub entities: Vec<String>,
    /// The view's join keys in declaration order.
    pub join_keys: Vec<JoinKey>,
    pub fields: Vec<Field>,
    /// Values older than this are `OUTSIDE_MAX_AGE` at read; zero means they never expire.
    #[serde(rename = "ttl_seconds", serialize_with = "seconds")]
    pub ttl: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub timestamp_field: String,
    pub created_timestamp_column: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// A feature view, or a label view (Feast's `LabelView`: human labels fed by a push source).
    pub kind: ViewKind,
    /// Which write of a key the online store keeps ([`WriteRule`]).
    pub write_rule: WriteRule,
    /// A label view's field naming who labeled a row (Feast's `labeler_field`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labeler_field: Option<String>,
    /// A label view's `conflict_policy` as Feast declares it (`last_write_wins`,
    /// `labeler_priority`, `majority_vote`): Feast applies it offline only; online, a label
    /// view always keeps the last write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict_policy: Option<String>,
    /// The version the view was declared with (Feast's `version=`, e.g. `latest` or `v2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Feast's `current_version_number` (0 until a view is versioned): answered in
    /// `feature_view_metadata` when a read asks for it, as Feast does.
    #[serde(skip_serializing_if = "is_zero")]
    pub version_number: u32,
    /// Feast's `enable_validation` (schema checks when materializing): shown only; featgrid
    /// checks every written value against its declared type whatever it says.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enable_validation: bool,
    /// Where materialization reads the view's rows; `None` when the view has no batch source
    /// with data featgrid knows of (a push-only view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<batch::OfflineSource>,
    /// Removed from the registry by a reload: unknown to requests, but its id (and rows) stay
    /// until a restart, since ids index the shards' tables.
    #[serde(skip)]
    pub retired: bool,
}

/// What a view is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewKind {
    #[default]
    FeatureView,
    LabelView,
}

/// Which write of a key the online store keeps, live, after a replay and on every replica (the
/// rule is applied where a shard's partition applies a row).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteRule {
    /// The newest event time wins (ties: the newest created time, then the later write).
    #[default]
    NewestEvent,
    /// The last write wins, whatever its times: label views ("the online store always uses
    /// LAST_WRITE_WINS", Feast's LabelView).
    LastWrite,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl FeatureView {
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PushSource {
    pub name: String,
    /// Names of the feature views this source feeds.
    pub feature_views: Vec<String>,
    #[serde(skip)]
    pub views: Vec<ViewId>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchSource {
    pub name: String,
    /// Names of the feature views that name this source.
    pub feature_views: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Where its rows are read from by materialization (a Parquet file or directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<std::path::PathBuf>,
    #[serde(skip)]
    pub field_mapping: BTreeMap<String, String>,
}

/// One feature of one view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeatureRef {
    pub view: ViewId,
    pub field: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureService {
    pub name: String,
    /// The features as `view:feature` references.
    pub features: Vec<String>,
    #[serde(skip)]
    pub refs: Vec<FeatureRef>,
    /// The view alias of each feature (index-aligned with `refs`): with `full_feature_names`
    /// its column is `alias__feature`. Empty when no feature has one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<Option<String>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl FeatureService {
    /// The alias feature `i` is read under, if any.
    pub fn alias(&self, i: usize) -> Option<&str> {
        self.aliases.get(i).and_then(|a| a.as_deref())
    }
}

/// Where a registry was read from, for `GET /registry` and the logs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadedFrom {
    /// `embedded`, `toml` or `feast`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The Feast project served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Feast's `version_id` of the registry file (a new one on every `feast apply`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Feast's `last_updated` of the registry file, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
    /// Objects the file declares that featgrid does not serve, and why (always present).
    pub not_served: Vec<String>,
    /// What the file declares but the last reload refused to apply (loaded definitions kept;
    /// always present).
    pub refused: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Registry {
    pub loaded_from: LoadedFrom,
    pub entities: Vec<Entity>,
    /// Indexed by [`ViewId`]; retired views are kept (see [`FeatureView::retired`]) but not shown.
    #[serde(serialize_with = "without_retired")]
    pub feature_views: Vec<FeatureView>,
    pub push_sources: Vec<PushSource>,
    pub batch_sources: Vec<BatchSource>,
    pub feature_services: Vec<FeatureService>,
    /// On-demand feature views (Feast repos only); a write-time one is also in
    /// `feature_views`, as its stored table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on_demand_views: Vec<on_demand::OnDemandView>,
    /// Feature services reading on-demand views computed at read time (not in
    /// `feature_services`, whose references all name stored views).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on_demand_services: Vec<on_demand::OnDemandService>,
    #[serde(skip)]
    index: Index,
}

#[derive(Debug, Clone, Default)]
struct Index {
    views: HashMap<String, ViewId>,
    push_sources: HashMap<String, usize>,
    services: HashMap<String, usize>,
}

fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

fn without_retired<S: serde::Serializer>(views: &[FeatureView], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(views.iter().filter(|v| !v.retired))
}

impl Registry {
    /// The embedded default (Feast's driver quickstart).
    pub fn embedded() -> Registry {
        Registry::parse(DEFAULT_REGISTRY, "embedded registry")
            .expect("the embedded registry is valid")
    }

    /// Reads and validates a registry file; errors name the file and the key.
    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| RegistryError::Invalid {
            source_name: name.clone(),
            key: "(file)".into(),
            problem: format!("cannot read: {e}"),
        })?;
        let mut registry = Registry::parse(&text, &name)?;
        registry.resolve_batch_paths(path.parent().unwrap_or(Path::new(".")));
        registry.loaded_from = LoadedFrom {
            kind: "toml",
            path: Some(name),
            ..LoadedFrom::default()
        };
        Ok(registry)
    }

    /// Parses and validates registry TOML; `source_name` names it in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Registry, RegistryError> {
        let file: RegistryFile = toml::from_str(text).map_err(|e| {
            let problem = e.message().to_string();
            let at = e
                .span()
                .map(|s| format!("line {}", text[..s.start].lines().count().max(1)))
                .unwrap_or_else(|| "(document)".into());
            RegistryError::Invalid {
                source_name: source_name.to_string(),
                key: at,
                problem,
            }
        })?;
        Registry::build(file, source_name)
    }

    /// Validates declarations, whatever they were read from; `source_name` names them in errors.
    /// Resolves relative Parquet paths of batch sources against `dir`.
    pub(crate) fn resolve_batch_paths(&mut self, dir: &Path) {
        for view in &mut self.feature_views {
            if let Some(source) = &mut view.offline {
                source.resolve_against(dir);
            }
        }
        for source in &mut self.batch_sources {
            if let Some(path) = source.path.as_mut().filter(|p| p.is_relative()) {
                *path = dir.join(&*path);
            }
        }
    }

    /// A registry of already validated parts (view ids = positions); retired views get no name.
    pub(crate) fn from_parts(
        entities: Vec<Entity>,
        feature_views: Vec<FeatureView>,
        push_sources: Vec<PushSource>,
        feature_services: Vec<FeatureService>,
    ) -> Registry {
        let mut registry = Registry {
            loaded_from: LoadedFrom {
                kind: "embedded",
                ..LoadedFrom::default()
            },
            entities,
            feature_views,
            push_sources,
            batch_sources: Vec::new(),
            feature_services,
            on_demand_views: Vec::new(),
            on_demand_services: Vec::new(),
            index: Index::default(),
        };
        registry.rebuild_index();
        registry
    }

    /// The views requests can name (not retired).
    pub fn serving_views(&self) -> impl Iterator<Item = &FeatureView> {
        self.feature_views.iter().filter(|v| !v.retired)
    }

    fn rebuild_index(&mut self) {
        self.index = Index {
            views: self
                .serving_views()
                .map(|v| (v.name.clone(), v.id))
                .collect(),
            push_sources: self
                .push_sources
                .iter()
                .enumerate()
                .map(|(i, p)| (p.name.clone(), i))
                .collect(),
            services: self
                .feature_services
                .iter()
                .enumerate()
                .map(|(i, s)| (s.name.clone(), i))
                .collect(),
        };
    }

    pub fn view(&self, name: &str) -> Result<&FeatureView, RegistryError> {
        self.index
            .views
            .get(name)
            .map(|&id| &self.feature_views[id])
            .ok_or_else(|| RegistryError::UnknownFeatureView {
                name: name.to_string(),
            })
    }

    pub fn push_source(&self, name: &str) -> Result<&PushSource, RegistryError> {
        self.index
            .push_sources
            .get(name)
            .map(|&i| &self.push_sources[i])
            .ok_or_else(|| RegistryError::UnknownPushSource {
                name: name.to_string(),
            })
    }

    pub fn feature_service(&self, name: &str) -> Result<&FeatureService, RegistryError> {
        self.index
            .services
            .get(name)
            .map(|&i| &self.feature_services[i])
            .ok_or_else(|| RegistryError::UnknownFeatureService {
                name: name.to_string(),
            })
    }

    /// Resolves `view:feature`.
    pub fn resolve_ref(&self, reference: &str) -> Result<FeatureRef, RegistryError> {
        let (view_name, feature) = reference
            .split_once(':')
            .filter(|(v, f)| !v.is_empty() && !f.is_empty())
            .ok_or_else(|| RegistryError::BadFeatureRef {
                reference: reference.to_string(),
            })?;
        let view_name = match view_name.split_once('@') {
            // Feast: `view@latest` and `view@` are the current version; `view@vN` a pinned
            // one; anything else after '@' is part of the view's name.
            Some((name, version))
                if version.is_empty() || version.eq_ignore_ascii_case("latest") =>
            {
                name
            }
            Some((name, version))
                if version.len() > 1
                    && version.starts_with(['v', 'V'])
                    && version[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                return Err(RegistryError::VersionedReference {
                    reference: reference.to_string(),
                    view: name.to_string(),
                    feature: feature.to_string(),
                })
            }
            _ => view_name,
        };
        let view = self.view(view_name)?;
        let field = view
            .field_index(feature)
            .ok_or_else(|| RegistryError::UnknownFeature {
                view: view_name.to_string(),
                feature: feature.to_string(),
            })?;
        Ok(FeatureRef {
            view: view.id,
            field,
        })
    }

    /// The on-demand view named `name`.
    pub fn on_demand_view(&self, name: &str) -> Option<&on_demand::OnDemandView> {
        self.on_demand_views.iter().find(|v| v.name == name)
    }

    /// The feature service named `name` that reads on-demand views at read time.
    pub fn on_demand_service(&self, name: &str) -> Option<&on_demand::OnDemandService> {
        self.on_demand_services.iter().find(|s| s.name == name)
    }

    /// `view:feature` for a resolved reference.
    pub fn ref_name(&self, r: FeatureRef) -> String {
        let view = &self.feature_views[r.view];
        format!("{}:{}", view.name, view.fields[r.field].name)
    }
}

#[cfg(test)]
mod tests;
