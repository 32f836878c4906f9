//! The registry: entities, feature views, push sources and feature services.
//!
//! It is declared in TOML (see `config/driver_registry.toml`, the embedded default, and
//! `config/example_registry.toml`) or read from a Feast feature repo ([`feast`]); both are
//! turned into the same declarations and validated whole by one function. A registry is
//! immutable: a reload builds a new one and swaps it in ([`crate::reload`]). Everything
//! downstream refers to views by [`ViewId`] and to features by index.

pub mod batch;
pub mod feast;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::value::{ScalarType, ValueType};

mod checks;

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
    #[error("{source_name}: {key}: {problem}")]
    Invalid {
        source_name: String,
        key: String,
        problem: String,
    },
}

// ---------------------------------------------------------------------------------------------
// The file format.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    entities: Vec<EntityDecl>,
    #[serde(default)]
    feature_views: Vec<FeatureViewDecl>,
    #[serde(default)]
    push_sources: Vec<PushSourceDecl>,
    #[serde(default)]
    batch_sources: Vec<BatchSourceDecl>,
    #[serde(default)]
    feature_services: Vec<FeatureServiceDecl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntityDecl {
    name: String,
    join_key: Option<String>,
    value_type: String,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureViewDecl {
    name: String,
    entities: Vec<String>,
    fields: Vec<FieldDecl>,
    #[serde(default)]
    ttl: Option<toml::Value>,
    source: Option<String>,
    #[serde(default = "default_timestamp_field")]
    timestamp_field: String,
    #[serde(default = "default_created_column")]
    created_timestamp_column: String,
    #[serde(default)]
    description: String,
    /// Where materialization reads the view's rows (from a Feast repo; TOML names it through
    /// `source`).
    #[serde(skip)]
    offline: Option<batch::OfflineSource>,
}

fn default_timestamp_field() -> String {
    "event_timestamp".into()
}

fn default_created_column() -> String {
    "created".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldDecl {
    name: String,
    dtype: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushSourceDecl {
    name: String,
    #[serde(default)]
    description: String,
}

/// An offline source: views naming it are written through `write-to-online-store` (e.g. by
/// Feast's client-side `feast materialize`), or, with a `path`, materialized by featgrid from
/// that Parquet file or directory ([`batch`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchSourceDecl {
    name: String,
    #[serde(default)]
    description: String,
    /// A Parquet file or a directory of Parquet files, relative to the registry file.
    path: Option<String>,
    /// Source column -> the view's column.
    #[serde(default)]
    field_mapping: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureServiceDecl {
    name: String,
    features: Vec<String>,
    #[serde(default)]
    description: String,
    /// The view alias each item of `features` is read under (Feast's `view.with_name(..)`),
    /// index-aligned with `features`; empty when none has one (always, from TOML).
    #[serde(skip)]
    aliases: Vec<Option<String>>,
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
    /// Where materialization reads the view's rows; `None` when the view has no batch source
    /// with data featgrid knows of (a push-only view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<batch::OfflineSource>,
    /// Removed from the registry by a reload: unknown to requests, but its id (and rows) stay
    /// until a restart, since ids index the shards' tables.
    #[serde(skip)]
    pub retired: bool,
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
    /// Objects the file declares that featgrid does not serve, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_served: Vec<String>,
    /// What the file declares but the last reload refused to apply (loaded definitions kept).
    #[serde(skip_serializing_if = "Vec::is_empty")]
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
    fn build(file: RegistryFile, source_name: &str) -> Result<Registry, RegistryError> {
        let invalid = |key: String, problem: String| RegistryError::Invalid {
            source_name: source_name.to_string(),
            key,
            problem,
        };

        let mut entities = Vec::new();
        let mut join_key_types: HashMap<String, ValueType> = HashMap::new();
        for (i, decl) in file.entities.into_iter().enumerate() {
            let key = |k: &str| format!("entities[{i}].{k}");
            check_name(&decl.name).map_err(|p| invalid(key("name"), p))?;
            if entities.iter().any(|e: &Entity| e.name == decl.name) {
                return Err(invalid(
                    key("name"),
                    format!("entity '{}' is declared twice", decl.name),
                ));
            }
            let join_key = decl.join_key.unwrap_or_else(|| decl.name.clone());
            check_name(&join_key).map_err(|p| invalid(key("join_key"), p))?;
            let ty = ValueType::parse(&decl.value_type).ok_or_else(|| {
                invalid(
                    key("value_type"),
                    format!(
                        "'{}' is not a type: expected {}",
                        decl.value_type,
                        ValueType::expected()
                    ),
                )
            })?;
            if ty.list || matches!(ty.scalar, ScalarType::Float32 | ScalarType::Float64) {
                return Err(invalid(
                    key("value_type"),
                    format!("a join key cannot be {ty}: expected int32, int64, string, bytes, bool or unix_timestamp"),
                ));
            }
            if let Some(prev) = join_key_types.insert(join_key.clone(), ty) {
                if prev != ty {
                    return Err(invalid(
                        key("value_type"),
                        format!("join key '{join_key}' is declared as {prev} by another entity"),
                    ));
                }
            }
            entities.push(Entity {
                name: decl.name,
                join_key,
                value_type: ty.to_string(),
                description: decl.description,
            });
        }

        let mut push_sources: Vec<PushSource> = Vec::new();
        for (i, decl) in file.push_sources.into_iter().enumerate() {
            check_name(&decl.name).map_err(|p| invalid(format!("push_sources[{i}].name"), p))?;
            if push_sources.iter().any(|p| p.name == decl.name) {
                return Err(invalid(
                    format!("push_sources[{i}].name"),
                    format!("push source '{}' is declared twice", decl.name),
                ));
            }
            push_sources.push(PushSource {
                name: decl.name,
                feature_views: Vec::new(),
                views: Vec::new(),
                description: decl.description,
            });
        }

        let mut batch_sources: Vec<BatchSource> = Vec::new();
        for (i, decl) in file.batch_sources.into_iter().enumerate() {
            let key = format!("batch_sources[{i}].name");
            check_name(&decl.name).map_err(|p| invalid(key.clone(), p))?;
            if push_sources.iter().any(|p| p.name == decl.name)
                || batch_sources.iter().any(|b| b.name == decl.name)
            {
                return Err(invalid(
                    key,
                    format!("source '{}' is declared twice", decl.name),
                ));
            }
            batch_sources.push(BatchSource {
                name: decl.name,
                feature_views: Vec::new(),
                description: decl.description,
                path: decl.path.map(Into::into),
                field_mapping: decl.field_mapping,
            });
        }

        let mut views: Vec<FeatureView> = Vec::new();
        for (i, decl) in file.feature_views.into_iter().enumerate() {
            let key = |k: &str| format!("feature_views[{i}].{k}");
            check_name(&decl.name).map_err(|p| invalid(key("name"), p))?;
            if views.iter().any(|v| v.name == decl.name) {
                return Err(invalid(
                    key("name"),
                    format!("feature view '{}' is declared twice", decl.name),
                ));
            }
            if decl.entities.is_empty() {
                return Err(invalid(
                    key("entities"),
                    "a feature view needs at least one entity".into(),
                ));
            }
            let mut join_keys: Vec<JoinKey> = Vec::new();
            for (j, entity_name) in decl.entities.iter().enumerate() {
                let entity = entities
                    .iter()
                    .find(|e| &e.name == entity_name)
                    .ok_or_else(|| {
                        invalid(
                            format!("feature_views[{i}].entities[{j}]"),
                            format!("no entity named '{entity_name}'"),
                        )
                    })?;
                if join_keys.iter().any(|k| k.name == entity.join_key) {
                    return Err(invalid(
                        key("entities"),
                        format!("join key '{}' appears twice", entity.join_key),
                    ));
                }
                join_keys.push(JoinKey {
                    name: entity.join_key.clone(),
                    value_type: join_key_types[&entity.join_key],
                });
            }
            for (column, setting) in [
                (&decl.timestamp_field, "timestamp_field"),
                (&decl.created_timestamp_column, "created_timestamp_column"),
            ] {
                if join_keys.iter().any(|k| &k.name == column) {
                    return Err(invalid(
                        key(setting),
                        format!("'{column}' is a join key of feature view '{}': every row's key would be read as its time; name the timestamp column", decl.name),
                    ));
                }
            }
            if decl.fields.is_empty() {
                return Err(invalid(
                    key("fields"),
                    "a feature view needs at least one field".into(),
                ));
            }
            let mut fields: Vec<Field> = Vec::new();
            for (j, f) in decl.fields.into_iter().enumerate() {
                let fkey = |k: &str| format!("feature_views[{i}].fields[{j}].{k}");
                check_name(&f.name).map_err(|p| invalid(fkey("name"), p))?;
                let reserved = [
                    decl.timestamp_field.as_str(),
                    decl.created_timestamp_column.as_str(),
                ];
                if fields.iter().any(|x| x.name == f.name)
                    || join_keys.iter().any(|k| k.name == f.name)
                    || reserved.contains(&f.name.as_str())
                {
                    return Err(invalid(
                        fkey("name"),
                        format!(
                            "'{}' is already a field, join key or timestamp column of this view",
                            f.name
                        ),
                    ));
                }
                let dtype = ValueType::parse(&f.dtype).ok_or_else(|| {
                    invalid(
                        fkey("dtype"),
                        format!(
                            "'{}' is not a type: expected {}",
                            f.dtype,
                            ValueType::expected()
                        ),
                    )
                })?;
                fields.push(Field {
                    name: f.name,
                    dtype,
                });
            }
            if fields.len() > u16::MAX as usize {
                return Err(invalid(
                    key("fields"),
                    "at most 65535 fields per view".into(),
                ));
            }
            let ttl = match &decl.ttl {
                None => Duration::ZERO,
                Some(v) => parse_duration_value(v)
                    .and_then(|ttl| {
                        if ttl > Duration::ZERO && ttl < Duration::from_micros(1) {
                            Err(format!("{ttl:?} is below a microsecond, the resolution of event times; use 0 for no expiry"))
                        } else {
                            Ok(ttl)
                        }
                    })
                    .map_err(|p| invalid(key("ttl"), p))?,
            };
            let id = views.len();
            let mut offline = decl.offline;
            if let Some(source) = &decl.source {
                if let Some(ps) = push_sources.iter_mut().find(|p| &p.name == source) {
                    ps.views.push(id);
                    ps.feature_views.push(decl.name.clone());
                } else if let Some(bs) = batch_sources.iter_mut().find(|b| &b.name == source) {
                    bs.feature_views.push(decl.name.clone());
                    offline = bs.path.clone().map(|path| batch::OfflineSource {
                        name: bs.name.clone(),
                        format: batch::SourceFormat::Parquet { path },
                        field_mapping: bs.field_mapping.clone(),
                    });
                } else {
                    return Err(invalid(
                        key("source"),
                        format!("feature view '{}' names source '{source}', which is neither a push source nor a batch source: declare it under [[push_sources]] (pushed to featgrid) or [[batch_sources]] (written with write-to-online-store)", decl.name),
                    ));
                }
            }
            views.push(FeatureView {
                id,
                name: decl.name,
                entities: decl.entities,
                join_keys,
                fields,
                ttl,
                source: decl.source,
                timestamp_field: decl.timestamp_field,
                created_timestamp_column: decl.created_timestamp_column,
                description: decl.description,
                offline,
                retired: false,
            });
        }
        for (i, ps) in push_sources.iter().enumerate() {
            if ps.views.is_empty() {
                return Err(invalid(
                    format!("push_sources[{i}]"),
                    format!("push source '{}' feeds no feature view: set `source = \"{}\"` on a feature view", ps.name, ps.name),
                ));
            }
        }

        checks::one_role_per_column(&views, &push_sources)
            .map_err(|(key, problem)| invalid(key, problem))?;

        let mut registry = Registry::from_parts(entities, views, push_sources, Vec::new());
        registry.batch_sources = batch_sources;

        for (i, decl) in file.feature_services.into_iter().enumerate() {
            let key = format!("feature_services[{i}]");
            check_name(&decl.name).map_err(|p| invalid(format!("{key}.name"), p))?;
            if registry
                .feature_services
                .iter()
                .any(|s| s.name == decl.name)
            {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("feature service '{}' is declared twice", decl.name),
                ));
            }
            let mut refs = Vec::new();
            let mut aliases = Vec::new();
            // Where each feature (under its alias) was listed, to name both places of a
            // duplicate.
            let mut listed: HashMap<(FeatureRef, Option<String>), usize> = HashMap::new();
            for (j, item) in decl.features.iter().enumerate() {
                let resolved = if item.contains(':') {
                    registry.resolve_ref(item).map(|r| vec![r])
                } else {
                    registry.view(item).map(|v| {
                        (0..v.fields.len())
                            .map(|field| FeatureRef { view: v.id, field })
                            .collect()
                    })
                };
                let resolved =
                    resolved.map_err(|e| invalid(format!("{key}.features[{j}]"), e.to_string()))?;
                let alias = decl.aliases.get(j).cloned().flatten();
                for &r in &resolved {
                    if let Some(first) = listed.insert((r, alias.clone()), j) {
                        return Err(invalid(
                            format!("{key}.features[{j}]"),
                            format!("feature service '{}' lists '{}' twice (also in features[{first}]): list each feature once", decl.name, registry.ref_name(r)),
                        ));
                    }
                }
                aliases.extend(std::iter::repeat_n(alias, resolved.len()));
                refs.extend(resolved);
            }
            if aliases.iter().all(Option::is_none) {
                aliases.clear();
            }
            let features = refs.iter().map(|r| registry.ref_name(*r)).collect();
            registry.feature_services.push(FeatureService {
                name: decl.name,
                features,
                refs,
                aliases,
                description: decl.description,
            });
        }
        registry.rebuild_index();
        Ok(registry)
    }

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

    /// `view:feature` for a resolved reference.
    pub fn ref_name(&self, r: FeatureRef) -> String {
        let view = &self.feature_views[r.view];
        format!("{}:{}", view.name, view.fields[r.field].name)
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(format!("'{name}' is not a valid name: expected 1-255 characters of letters, digits, '_', '-' or '.'"))
    }
}

/// A duration from TOML: an integer number of seconds, or a string like `"5"`, `"30s"`, `"2m"`, `"1d"`.
pub fn parse_duration_value(value: &toml::Value) -> Result<Duration, String> {
    match value {
        toml::Value::Integer(secs) if *secs >= 0 => Ok(Duration::from_secs(*secs as u64)),
        toml::Value::String(text) => parse_duration(text),
        other => Err(format!(
            "expected a duration like 86400, \"30s\", \"2m\" or \"1d\", got {other}"
        )),
    }
}

/// Parses `"5"` (seconds), `"30s"`, `"2m"`, `"1d"`, `"1h 30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("'{text}' is not a duration ({e}): expected seconds like 5 or a duration like 30s, 2m, 1d"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_registry_is_the_feast_quickstart() {
        let r = Registry::embedded();
        let view = r.view("driver_hourly_stats").unwrap();
        assert_eq!(view.join_keys[0].name, "driver_id");
        assert_eq!(view.join_keys[0].value_type.to_string(), "int64");
        let names: Vec<_> = view
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.dtype.to_string()))
            .collect();
        assert_eq!(
            names,
            [
                ("conv_rate", "float32".into()),
                ("acc_rate", "float32".into()),
                ("avg_daily_trips", "int64".into())
            ]
        );
        assert_eq!(view.ttl, Duration::from_secs(86_400));
        assert_eq!(
            r.push_source("driver_stats_push_source").unwrap().views,
            vec![view.id]
        );
        assert_eq!(r.feature_service("driver_activity").unwrap().refs.len(), 3);
    }

    #[test]
    fn example_registry_is_valid() {
        let text = include_str!("../config/example_registry.toml");
        let r = Registry::parse(text, "example").unwrap();
        assert!(r.feature_views.iter().any(|v| v.join_keys.len() > 1));
    }

    #[test]
    fn resolves_references() {
        let r = Registry::embedded();
        assert_eq!(
            r.resolve_ref("driver_hourly_stats:acc_rate").unwrap().field,
            1
        );
        assert!(matches!(
            r.resolve_ref("nope:x"),
            Err(RegistryError::UnknownFeatureView { .. })
        ));
        assert!(matches!(
            r.resolve_ref("driver_hourly_stats:x"),
            Err(RegistryError::UnknownFeature { .. })
        ));
        assert!(matches!(
            r.resolve_ref("conv_rate"),
            Err(RegistryError::BadFeatureRef { .. })
        ));
        assert!(matches!(
            r.resolve_ref(":conv_rate"),
            Err(RegistryError::BadFeatureRef { .. })
        ));
    }

    fn error_of(text: &str) -> String {
        Registry::parse(text, "bad.toml").unwrap_err().to_string()
    }

    #[test]
    fn errors_name_file_key_and_expectation() {
        let e = error_of(
            r#"
            [[entities]]
            name = "d"
            value_type = "int65"
            "#,
        );
        assert!(
            e.starts_with("bad.toml: entities[0].value_type: 'int65' is not a type"),
            "{e}"
        );
        let e = error_of(
            r#"
            [[entities]]
            name = "d"
            value_type = "int64"
            [[feature_views]]
            name = "v"
            entities = ["e"]
            fields = [{ name = "x", dtype = "int64" }]
            "#,
        );
        assert!(
            e.contains("feature_views[0].entities[0]: no entity named 'e'"),
            "{e}"
        );
        let e = error_of("[[entities]]\nname = 3\n");
        assert!(e.starts_with("bad.toml: line 2"), "{e}");
        let e = error_of(&view_with_ttl("forever"));
        assert!(
            e.contains("feature_views[0].ttl: 'forever' is not a duration"),
            "{e}"
        );
    }

    /// A registry of one int64 entity and one view with the given `ttl`.
    fn view_with_ttl(ttl: &str) -> String {
        format!(
            "[[entities]]\nname = \"d\"\nvalue_type = \"int64\"\n[[feature_views]]\nname = \"v\"\nentities = [\"d\"]\nttl = \"{ttl}\"\nfields = [{{ name = \"x\", dtype = \"int64\" }}]\n"
        )
    }

    #[test]
    fn a_ttl_below_a_microsecond_is_refused_not_taken_as_no_ttl() {
        let e = error_of(&view_with_ttl("500ns"));
        assert!(
            e.contains("feature_views[0].ttl") && e.contains("below a microsecond"),
            "{e}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert!(parse_duration("soon").is_err());
    }
}
