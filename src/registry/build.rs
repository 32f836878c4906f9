//! Registry declarations (the TOML file format, and what a Feast repo is turned into) and
//! their validation into a [`Registry`]: one function checks every object, whatever it was
//! read from, and its errors name the object and key. The declarations themselves are in
//! [`decl`].

use std::collections::HashMap;
use std::time::Duration;

use super::{
    checks, BatchSource, Entity, FeatureRef, FeatureService, FeatureView, Field, JoinKey,
    PushSource, Registry, RegistryError, ViewKind, WriteRule,
};
use crate::value::ValueType;

mod decl;

pub(super) use decl::{
    EntityDecl, FeatureServiceDecl, FeatureViewDecl, FieldDecl, PushSourceDecl, RegistryFile,
};

/// Feast's `ConflictPolicy` values, as `conflict_policy` takes them.
const CONFLICT_POLICIES: [&str; 3] = ["last_write_wins", "labeler_priority", "majority_vote"];

impl Registry {
    /// Validates declarations, whatever they were read from; `source_name` names them in errors.
    pub(super) fn build(file: RegistryFile, source_name: &str) -> Result<Registry, RegistryError> {
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
            if ty.list || !ty.scalar.can_be_key() {
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
                let own_type = decl
                    .key_types
                    .iter()
                    .find(|(k, _)| k == &entity.join_key)
                    .map(|&(_, t)| t)
                    .filter(|t| !t.list && t.scalar.can_be_key());
                join_keys.push(JoinKey {
                    name: entity.join_key.clone(),
                    value_type: own_type.unwrap_or(join_key_types[&entity.join_key]),
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
            let mut offline = decl.offline.clone();
            if let Some(source) = &decl.source {
                if let Some(ps) = push_sources.iter_mut().find(|p| &p.name == source) {
                    ps.views.push(id);
                    ps.feature_views.push(decl.name.clone());
                } else if let Some(bs) = batch_sources.iter_mut().find(|b| &b.name == source) {
                    bs.feature_views.push(decl.name.clone());
                    offline = bs.path.clone().map(|path| super::batch::OfflineSource {
                        name: bs.name.clone(),
                        format: super::batch::SourceFormat::Parquet { path },
                        field_mapping: bs.field_mapping.clone(),
                    });
                } else {
                    return Err(invalid(
                        key("source"),
                        format!("feature view '{}' names source '{source}', which is neither a push source nor a batch source: declare it under [[push_sources]] (pushed to featgrid) or [[batch_sources]] (written with write-to-online-store)", decl.name),
                    ));
                }
            }
            let label = decl.kind == ViewKind::LabelView;
            if !label {
                for (setting, given) in [
                    ("labeler_field", decl.labeler_field.is_some()),
                    ("conflict_policy", decl.conflict_policy.is_some()),
                ] {
                    if given {
                        return Err(invalid(
                            key(setting),
                            format!("only a label view has a {setting}: set kind = \"label_view\" on '{}'", decl.name),
                        ));
                    }
                }
            }
            if let Some(labeler) = &decl.labeler_field {
                if !fields.iter().any(|f| &f.name == labeler) {
                    return Err(invalid(
                        key("labeler_field"),
                        format!("'{labeler}' is not a field of label view '{}'", decl.name),
                    ));
                }
            }
            let conflict_policy = match decl.conflict_policy {
                Some(p) if !CONFLICT_POLICIES.contains(&p.as_str()) => {
                    return Err(invalid(
                        key("conflict_policy"),
                        format!(
                            "'{p}' is not a conflict policy: expected one of {}",
                            CONFLICT_POLICIES.join(", ")
                        ),
                    ))
                }
                Some(p) => Some(p),
                None => label.then(|| CONFLICT_POLICIES[0].to_string()),
            };
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
                kind: decl.kind,
                write_rule: if label {
                    WriteRule::LastWrite
                } else {
                    WriteRule::NewestEvent
                },
                labeler_field: decl.labeler_field,
                conflict_policy,
                version: decl.version,
                version_number: decl.version_number,
                enable_validation: decl.enable_validation,
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
