//! Serving from a Feast feature repo: `feature_store.yaml` names the project and the registry
//! file that `feast apply` writes (a serialized `feast.core.Registry`, see [`proto`]); the
//! file's objects of that project become the same declarations a TOML registry gives, and
//! go through the same validation ([`Registry::build`]).
//!
//! Read: entities (name, join key, value type), feature views (name, entities, schema, ttl,
//! online, the push source feeding them, the batch source's timestamp columns, version),
//! label views (the same, plus `labeler_field` and `conflict_policy`; they keep the last
//! write), push sources, feature services (each projection's view, feature columns and
//! alias), on-demand feature views ([`super::on_demand`]: modes python and pandas, request
//! sources, write time). Objects featgrid cannot serve (stream feature views, feature tables,
//! offline-only, disabled and entity-less views, services that remap join keys or use such
//! views, push sources that feed none of the served views, and any object the validation
//! refuses, with its reason) are listed in [`LoadedFrom::not_served`] and logged: one such
//! object never stops the rest from being served. A TOML registry stays strict.

pub mod proto;
mod views;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message as _;
use serde::Deserialize;

use super::build::{EntityDecl, FeatureServiceDecl, FeatureViewDecl, PushSourceDecl, RegistryFile};
use super::on_demand::{self, OnDemandService, OnDemandView};
use super::{LoadedFrom, Registry, RegistryError};

/// Feast's default `cache_ttl_seconds`.
const DEFAULT_CACHE_TTL_SECONDS: u64 = 600;
/// Feast's placeholder entity of entity-less feature views.
const DUMMY_ENTITY: &str = "__dummy";

/// A Feast feature repo as `feature_store.yaml` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeastRepo {
    pub dir: PathBuf,
    pub project: String,
    /// The registry file (relative paths are resolved against the repo, as Feast does).
    pub registry_path: PathBuf,
    /// How often the registry file is checked for changes; zero: only on SIGHUP.
    pub cache_ttl: Duration,
}

#[derive(Debug, Deserialize)]
struct FeatureStoreYaml {
    project: Option<String>,
    registry: Option<RegistryYaml>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RegistryYaml {
    Path(String),
    Config {
        #[serde(default)]
        path: String,
        registry_type: Option<String>,
        registry_store_type: Option<String>,
        cache_ttl_seconds: Option<i64>,
    },
}

impl FeastRepo {
    /// Reads `dir/feature_store.yaml` (with `$VAR` and `${VAR}` expanded from the environment,
    /// as Feast does). Registries featgrid cannot read are refused, named.
    pub fn open(dir: &Path) -> Result<FeastRepo, RegistryError> {
        let file = dir.join("feature_store.yaml");
        let name = file.display().to_string();
        let invalid = |key: &str, problem: String| RegistryError::Invalid {
            source_name: name.clone(),
            key: key.into(),
            problem,
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| invalid("(file)", format!("cannot read: {e}: expected a Feast feature repo (the folder where `feast apply` runs)")))?;
        let text = shellexpand::env_with_context_no_errors(&text, |var| std::env::var(var).ok());
        let yaml: FeatureStoreYaml =
            serde_norway::from_str(&text).map_err(|e| invalid("(document)", e.to_string()))?;
        let project = yaml.project.filter(|p| !p.is_empty()).ok_or_else(|| {
            invalid(
                "project",
                "missing: Feast's project name is required".into(),
            )
        })?;
        let (path, registry_type, store_type, ttl) = match yaml.registry {
            None => return Err(invalid(
                "registry",
                "missing: expected the registry file's path (e.g. `registry: data/registry.db`)"
                    .into(),
            )),
            Some(RegistryYaml::Path(path)) => (path, None, None, None),
            Some(RegistryYaml::Config {
                path,
                registry_type,
                registry_store_type,
                cache_ttl_seconds,
            }) => (path, registry_type, registry_store_type, cache_ttl_seconds),
        };
        if let Some(kind) = registry_type.filter(|t| t != "file") {
            return Err(invalid(
                "registry.registry_type",
                format!("'{kind}' registries cannot be read by featgrid: expected registry_type: file (a registry file that `feast apply` writes locally)"),
            ));
        }
        if let Some(store) = store_type.filter(|t| t != "FileRegistryStore" && t != "file") {
            return Err(invalid(
                "registry.registry_store_type",
                format!("'{store}' cannot be read by featgrid: expected a local registry file"),
            ));
        }
        if path.is_empty() {
            return Err(invalid(
                "registry.path",
                "missing: expected the registry file's path".into(),
            ));
        }
        if let Some((scheme, _)) = path.split_once("://") {
            return Err(invalid(
                "registry",
                format!("'{path}' is a {scheme}:// registry, which featgrid cannot read: expected a local file path (copy the file next to featgrid, or use a file registry)"),
            ));
        }
        let cache_ttl = match ttl {
            None => Duration::from_secs(DEFAULT_CACHE_TTL_SECONDS),
            Some(secs) => Duration::from_secs(u64::try_from(secs).map_err(|_| {
                invalid(
                    "registry.cache_ttl_seconds",
                    format!("{secs} is negative: expected seconds, or 0 to reload only on SIGHUP"),
                )
            })?),
        };
        Ok(FeastRepo {
            dir: dir.to_path_buf(),
            project,
            registry_path: dir.join(path),
            cache_ttl,
        })
    }

    /// Reads and decodes the registry file, and builds featgrid's registry from it.
    pub fn load(&self) -> Result<Registry, RegistryError> {
        let bytes = std::fs::read(&self.registry_path).map_err(|e| RegistryError::Invalid {
            source_name: self.registry_path.display().to_string(),
            key: "(file)".into(),
            problem: format!(
                "cannot read: {e}: run `feast apply` in {} first",
                self.dir.display()
            ),
        })?;
        self.decode(&bytes)
    }

    /// Builds featgrid's registry from the registry file's bytes.
    pub fn decode(&self, bytes: &[u8]) -> Result<Registry, RegistryError> {
        let source_name = format!(
            "{} (project {})",
            self.registry_path.display(),
            self.project
        );
        if bytes.is_empty() {
            // Feast always writes a version_id; an empty file is one it is writing.
            return Err(RegistryError::Invalid {
                source_name,
                key: "(file)".into(),
                problem:
                    "the file is empty: is `feast apply` writing it? Try again once it is done"
                        .into(),
            });
        }
        let file = proto::Registry::decode(bytes).map_err(|e| RegistryError::Invalid {
            source_name: source_name.clone(),
            key: "(file)".into(),
            problem: format!("not a Feast registry file: {e}"),
        })?;
        let version_id = (!file.version_id.is_empty()).then(|| file.version_id.clone());
        let last_updated = file.last_updated.and_then(|t| {
            chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        });
        let (decls, mut not_served, on_demand) = declarations(file, &self.project);
        let mut registry = build_serving_what_can_be(decls, &source_name, &mut not_served)?;
        let on_demand = on_demand.resolve(&registry, &mut not_served);
        registry.on_demand_views = on_demand.views;
        registry.on_demand_services = on_demand.services;
        registry.resolve_batch_paths(&self.dir);
        registry.loaded_from = LoadedFrom {
            kind: "feast",
            path: Some(self.registry_path.display().to_string()),
            project: Some(self.project.clone()),
            version_id,
            last_updated,
            not_served,
            refused: Vec::new(),
        };
        Ok(registry)
    }
}

/// Builds the registry from `decls`; an object the validation refuses is left out, listed in
/// `not_served` with the reason, and the rest is built again (objects that depend on it then
/// fail in turn, with their own reason): one object featgrid cannot serve never stops the
/// others from being served.
fn build_serving_what_can_be(
    mut decls: RegistryFile,
    source_name: &str,
    not_served: &mut Vec<String>,
) -> Result<Registry, RegistryError> {
    loop {
        match Registry::build(decls.clone(), source_name) {
            Err(RegistryError::Invalid {
                source_name,
                key,
                problem,
            }) => match decls.remove_named_by(&key) {
                Some(object) => {
                    tracing::warn!(%object, %key, %problem, "not served");
                    not_served.push(format!("{object}: {problem}"));
                }
                None => {
                    return Err(RegistryError::Invalid {
                        source_name,
                        key,
                        problem,
                    })
                }
            },
            built => return built,
        }
    }
}

pub use views::value_type;
use views::{label_view_declaration, view_declaration};

/// The project's objects as registry declarations, and what is not served (with why).
fn declarations(file: proto::Registry, project: &str) -> (RegistryFile, Vec<String>, OnDemand) {
    let mut not_served = Vec::new();
    let named = |objects: &[proto::Named], what: &str, not_served: &mut Vec<String>| {
        for spec in objects.iter().filter_map(|o| o.spec.as_ref()) {
            if spec.project == project {
                not_served.push(format!("{what} '{}': {what}s are not served", spec.name));
            }
        }
    };
    named(
        &file.stream_feature_views,
        "stream feature view",
        &mut not_served,
    );
    named(&file.feature_tables, "feature table", &mut not_served);

    // Feature views first: an entity declared without a value type takes its join key's
    // type from a view's entity columns, as `feast apply` inferred it.
    let mut key_types: HashMap<String, i32> = HashMap::new();
    let mut feature_views = Vec::new();
    for view in file.feature_views {
        let Some(spec) = view.spec else { continue };
        if spec.project != project {
            continue;
        }
        let version_number = view
            .meta
            .map_or(0, |m| u32::try_from(m.current_version_number).unwrap_or(0));
        for column in &spec.entity_columns {
            key_types
                .entry(column.name.clone())
                .or_insert(column.value_type);
        }
        let why_not = if spec.disabled {
            Some("disabled")
        } else if !spec.online {
            Some("online=False")
        } else if spec.entities.iter().all(|e| e == DUMMY_ENTITY) {
            Some("entity-less feature views are not served")
        } else {
            None
        };
        if let Some(why) = why_not {
            not_served.push(format!("feature view '{}': {why}", spec.name));
            continue;
        }
        let name = spec.name.clone();
        match view_declaration(spec) {
            Ok(decl) => feature_views.push(FeatureViewDecl {
                version_number,
                ..decl
            }),
            Err(why) => not_served.push(format!("feature view '{name}': {why}")),
        }
    }
    for spec in file.label_views.into_iter().filter_map(|v| v.spec) {
        if spec.project != project {
            continue;
        }
        for column in &spec.entity_columns {
            key_types
                .entry(column.name.clone())
                .or_insert(column.value_type);
        }
        if !spec.online {
            not_served.push(format!("label view '{}': online=False", spec.name));
            continue;
        }
        let name = spec.name.clone();
        match label_view_declaration(spec) {
            Ok(decl) => feature_views.push(decl),
            Err(why) => not_served.push(format!("label view '{name}': {why}")),
        }
    }

    // On-demand views: a write-time one is also a stored feature view.
    let mut on_demand_views = Vec::new();
    for spec in file
        .on_demand_feature_views
        .iter()
        .filter_map(|v| v.spec.as_ref())
    {
        if spec.project != project {
            continue;
        }
        match on_demand::on_demand_view(spec) {
            Ok(view) => {
                if view.write_to_online_store {
                    feature_views.push(on_demand::stored_declaration(spec, &view));
                }
                on_demand_views.push(view);
            }
            Err(why) => not_served.push(format!("on-demand feature view '{}': {why}", spec.name)),
        }
    }
    let computed_at_read = |name: &str| {
        on_demand_views
            .iter()
            .any(|v| v.name == name && !v.write_to_online_store)
    };

    let mut entities = Vec::new();
    for spec in file.entities.into_iter().filter_map(|e| e.spec) {
        if spec.project != project || spec.name == DUMMY_ENTITY {
            continue;
        }
        let join_key = if spec.join_key.is_empty() {
            spec.name.clone()
        } else {
            spec.join_key
        };
        let feast_type = match spec.value_type {
            0 => key_types.get(&join_key).copied().unwrap_or(0),
            declared => declared,
        };
        let used = feature_views
            .iter()
            .any(|v| v.entities.contains(&spec.name));
        if feast_type == 0 && !used {
            not_served.push(format!(
                "entity '{}': no value type, and no served feature view uses it",
                spec.name
            ));
            continue;
        }
        if feast_type == 0 {
            not_served.push(format!("entity '{}': no value type, and no feature view gives join key '{join_key}' one: declare the entity with value_type=ValueType.<type>", spec.name));
            continue;
        }
        let Some(ty) = value_type(feast_type) else {
            not_served.push(format!(
                "entity '{}': Feast type {} is not a join key type",
                spec.name,
                proto::value_type::name(feast_type)
            ));
            continue;
        };
        entities.push(EntityDecl {
            name: spec.name,
            join_key: Some(join_key),
            value_type: ty.to_string(),
            description: spec.description,
        });
    }

    let served: HashMap<&str, &FeatureViewDecl> =
        feature_views.iter().map(|v| (v.name.as_str(), v)).collect();
    let mut push_sources: Vec<PushSourceDecl> = Vec::new();
    for view in &feature_views {
        if let Some(source) = &view.source {
            if !push_sources.iter().any(|p| &p.name == source) {
                let description = file
                    .data_sources
                    .iter()
                    .find(|d| &d.name == source && d.project == project)
                    .map(|d| d.description.clone())
                    .unwrap_or_default();
                push_sources.push(PushSourceDecl {
                    name: source.clone(),
                    description,
                });
            }
        }
    }
    for source in &file.data_sources {
        let unused = source.r#type == proto::PUSH_SOURCE
            && source.project == project
            && !push_sources.iter().any(|p| p.name == source.name);
        if unused {
            not_served.push(format!(
                "push source '{}': feeds no feature view featgrid serves",
                source.name
            ));
        }
    }

    let mut feature_services = Vec::new();
    let mut on_demand_services = Vec::new();
    'services: for spec in file.feature_services.into_iter().filter_map(|s| s.spec) {
        if spec.project != project {
            continue;
        }
        let mut features = Vec::new();
        let mut aliases = Vec::new();
        let mut on_demand_refs = Vec::new();
        for p in &spec.features {
            let on_demand = computed_at_read(&p.feature_view_name);
            let why_not = if !p.join_key_map.is_empty() {
                Some(format!(
                    "its projection of '{}' remaps join keys (join_key_map)",
                    p.feature_view_name
                ))
            } else if !on_demand && !served.contains_key(p.feature_view_name.as_str()) {
                Some(format!(
                    "it reads '{}', which featgrid does not serve",
                    p.feature_view_name
                ))
            } else {
                None
            };
            if let Some(why) = why_not {
                not_served.push(format!("feature service '{}': {why}", spec.name));
                continue 'services;
            }
            let alias = (!p.feature_view_name_alias.is_empty()
                && p.feature_view_name_alias != p.feature_view_name)
                .then(|| p.feature_view_name_alias.clone());
            if on_demand && p.feature_columns.is_empty() {
                let view = on_demand_views
                    .iter()
                    .find(|v| v.name == p.feature_view_name);
                for field in view.iter().flat_map(|v| &v.fields) {
                    on_demand_refs.push((
                        p.feature_view_name.clone(),
                        field.name.clone(),
                        alias.clone(),
                    ));
                }
            } else if p.feature_columns.is_empty() {
                let view = served[p.feature_view_name.as_str()];
                for field in &view.fields {
                    on_demand_refs.push((
                        p.feature_view_name.clone(),
                        field.name.clone(),
                        alias.clone(),
                    ));
                }
                features.push(p.feature_view_name.clone());
                aliases.push(alias.clone());
            }
            for column in &p.feature_columns {
                on_demand_refs.push((
                    p.feature_view_name.clone(),
                    column.name.clone(),
                    alias.clone(),
                ));
                if !on_demand {
                    features.push(format!("{}:{}", p.feature_view_name, column.name));
                    aliases.push(alias.clone());
                }
            }
        }
        if spec
            .features
            .iter()
            .any(|p| computed_at_read(&p.feature_view_name))
        {
            on_demand_services.push(OnDemandService {
                name: spec.name,
                features: on_demand_refs
                    .iter()
                    .map(|(v, f, _)| format!("{v}:{f}"))
                    .collect(),
                refs: on_demand_refs,
            });
            continue;
        }
        feature_services.push(FeatureServiceDecl {
            name: spec.name,
            features,
            description: spec.description,
            aliases,
        });
    }

    let decls = RegistryFile {
        entities,
        feature_views,
        push_sources,
        batch_sources: Vec::new(),
        feature_services,
    };
    let on_demand = OnDemand {
        views: on_demand_views,
        services: on_demand_services,
    };
    (decls, not_served, on_demand)
}

/// A project's on-demand views and the services that read them at read time.
struct OnDemand {
    views: Vec<OnDemandView>,
    services: Vec<OnDemandService>,
}

impl OnDemand {
    /// Keeps the views whose sources the built registry serves, and the services whose
    /// references all resolve; what is dropped is listed in `not_served`.
    fn resolve(self, registry: &Registry, not_served: &mut Vec<String>) -> OnDemand {
        let mut views = Vec::new();
        for view in self.views {
            let missing = view
                .sources
                .iter()
                .find_map(|s| match registry.view(&s.view) {
                    Err(_) => Some(format!(
                        "it reads '{}', which featgrid does not serve",
                        s.view
                    )),
                    Ok(v) => s
                        .features
                        .iter()
                        .find(|f| v.field_index(f).is_none())
                        .map(|f| {
                            format!(
                                "it reads '{}:{f}', which is not a feature of that view",
                                s.view
                            )
                        }),
                });
            let stored = view.write_to_online_store && registry.view(&view.name).is_err();
            match missing {
                Some(why) => {
                    not_served.push(format!("on-demand feature view '{}': {why}", view.name))
                }
                None if stored => not_served.push(format!(
                    "on-demand feature view '{}': its stored table was not served",
                    view.name
                )),
                None => views.push(view),
            }
        }
        let mut services = Vec::new();
        for service in self.services {
            let missing =
                service
                    .refs
                    .iter()
                    .find(|(v, f, _)| match views.iter().find(|o| &o.name == v) {
                        Some(o) => o.field(f).is_none(),
                        None => registry.resolve_ref(&format!("{v}:{f}")).is_err(),
                    });
            match missing {
                Some((v, f, _)) => not_served.push(format!(
                    "feature service '{}': it reads '{v}:{f}', which featgrid does not serve",
                    service.name
                )),
                None => services.push(service),
            }
        }
        OnDemand { views, services }
    }
}

#[cfg(test)]
mod tests;
