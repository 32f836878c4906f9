//! The settings layers: embedded defaults -> the `--config` file -> `FEATGRID_*` environment
//! variables -> command-line flags, each value checked against its default's type as it is
//! layered, with the [`Origin`] of every value kept for the errors; then the registry the
//! settings name is loaded.

use std::path::{Path, PathBuf};

use super::{parse_bytes, ConfigError, Overrides, Settings, DEFAULT_SETTINGS};
use crate::registry::feast::FeastRepo;
use crate::registry::Registry;

/// Where a setting's value came from: named in every error about it, and the directory a
/// relative `registry` path is resolved against (the file's for the file, the working
/// directory's otherwise).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Origin {
    Default,
    File(PathBuf),
    Env(String),
    Flag(&'static str),
    /// Another source, described (e.g. a node's address in the cluster topology).
    Named(String),
}

impl Origin {
    fn describe(&self) -> String {
        match self {
            Origin::Default => "embedded defaults".into(),
            Origin::File(path) => path.display().to_string(),
            Origin::Env(var) => format!("environment variable {var}"),
            Origin::Flag(flag) => format!("flag {flag}"),
            Origin::Named(source) => source.clone(),
        }
    }
}

/// Each setting's [`Origin`].
#[derive(Debug, Default)]
pub(super) struct Origins(std::collections::HashMap<String, Origin>);

impl Origins {
    pub(super) fn of(&self, key: &str) -> &Origin {
        self.0.get(key).unwrap_or(&Origin::Default)
    }

    pub(super) fn invalid(&self, key: &str, problem: String) -> ConfigError {
        ConfigError::Invalid {
            source_name: self.of(key).describe(),
            key: key.into(),
            problem,
        }
    }
}

impl Settings {
    /// Layers the sources and validates the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Overrides,
    ) -> Result<(Settings, Registry), ConfigError> {
        let defaults: toml::Table =
            toml::from_str(DEFAULT_SETTINGS).expect("embedded defaults are valid");
        let mut table = defaults.clone();
        let mut origins = Origins::default();
        if let Some(path) = file {
            let origin = Origin::File(path.to_path_buf());
            let invalid = |key: &str, problem: String| ConfigError::Invalid {
                source_name: origin.describe(),
                key: key.to_string(),
                problem,
            };
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid("(file)", format!("cannot read: {e}")))?;
            let overlay: toml::Table = toml::from_str(&text)
                .map_err(|e| invalid("(document)", e.message().to_string()))?;
            for (key, value) in overlay {
                let Some(default) = defaults.get(&key) else {
                    let known: Vec<_> = defaults.keys().cloned().collect();
                    return Err(invalid(
                        &key,
                        format!("unknown setting; expected one of {}", known.join(", ")),
                    ));
                };
                check_value(&key, default, &value).map_err(|p| invalid(&key, p))?;
                origins.0.insert(key.clone(), origin.clone());
                table.insert(key, value);
            }
        }
        for (var, raw) in env {
            let Some(key) = var.strip_prefix("FEATGRID_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            let Some(default) = defaults.get(&key) else {
                // Variables the binary does not own (e.g. FEATGRID_FEAST_VENV for the tests) are ignored.
                continue;
            };
            let origin = Origin::Env(var.clone());
            let invalid = |problem: String| ConfigError::Invalid {
                source_name: origin.describe(),
                key: key.clone(),
                problem,
            };
            let value = match default {
                toml::Value::Integer(_) => raw
                    .trim()
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .map_err(|_| invalid(format!("'{raw}' is not a whole number")))?,
                toml::Value::Boolean(_) => match raw.trim() {
                    "true" | "1" => toml::Value::Boolean(true),
                    "false" | "0" => toml::Value::Boolean(false),
                    _ => {
                        return Err(invalid(format!(
                            "'{raw}' is not a boolean: expected true or false"
                        )))
                    }
                },
                _ => toml::Value::String(raw),
            };
            check_value(&key, default, &value).map_err(invalid)?;
            origins.0.insert(key.clone(), origin);
            table.insert(key, value);
        }
        let mut settings: Settings =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    source_name: file
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "settings".into()),
                    key: "(settings)".into(),
                    problem: e.message().to_string(),
                })?;
        if let Some(v) = &flags.bind {
            settings.bind = v.clone();
            let origin = match &flags.bind_source {
                Some(source) => Origin::Named(source.clone()),
                None => Origin::Flag("--bind"),
            };
            origins.0.insert("bind".into(), origin);
        }
        let mut flag = |key: &str, name: &'static str| {
            origins.0.insert(key.into(), Origin::Flag(name));
        };
        if let Some(v) = &flags.feast_repo {
            settings.feast_repo = v.display().to_string();
            flag("feast_repo", "--feast-repo");
        }
        if let Some(v) = flags.shards {
            settings.shards = v;
            flag("shards", "--shards");
        }
        if let Some(v) = flags.shard_threads {
            settings.shard_threads = v;
            flag("shard_threads", "--shard-threads");
        }
        if let Some(v) = &flags.python {
            settings.python = v.display().to_string();
            flag("python", "--python");
        }
        if let Some(v) = flags.workers {
            settings.workers = v;
            flag("workers", "--workers");
        }
        if let Some(v) = &flags.data_dir {
            settings.data_dir = v.clone();
            flag("data_dir", "--data-dir");
        }
        if let Some(v) = &flags.fsync {
            settings.fsync = v.clone();
            flag("fsync", "--fsync");
        }
        if let Some(v) = &flags.snapshot_interval {
            settings.snapshot_interval = toml::Value::String(v.clone());
            flag("snapshot_interval", "--snapshot-interval");
        }
        if let Some(v) = flags.snapshot_keep {
            settings.snapshot_keep = v;
            flag("snapshot_keep", "--snapshot-keep");
        }
        if let Some(v) = &flags.auth_tokens {
            settings.auth_tokens = v.display().to_string();
            flag("auth_tokens", "--auth-tokens");
        }
        if let Some(v) = &flags.tls_cert {
            settings.tls_cert = v.display().to_string();
            flag("tls_cert", "--tls-cert");
        }
        if let Some(v) = &flags.tls_key {
            settings.tls_key = v.display().to_string();
            flag("tls_key", "--tls-key");
        }
        if let Some(v) = &flags.max_memory {
            settings.max_memory = toml::Value::String(v.clone());
            flag("max_memory", "--max-memory");
        }
        settings.recover = flags.recover;
        settings.insecure = flags.insecure;
        settings.validate(&origins)?;
        // A path is relative to the settings file when set there, else to the working
        // directory (an environment variable or flag is typed where the server starts).
        let base = |key: &str| match origins.of(key) {
            Origin::File(path) => path.parent().map(Path::to_path_buf).unwrap_or_default(),
            _ => PathBuf::new(),
        };
        for key in FILE_PATH_KEYS {
            let path = match *key {
                "auth_tokens" => &mut settings.auth_tokens,
                "auth_jwt_keys" => &mut settings.auth_jwt_keys,
                "tls_cert" => &mut settings.tls_cert,
                _ => &mut settings.tls_key,
            };
            if !path.is_empty() && Path::new(path.as_str()).is_relative() {
                *path = base(key).join(&*path).display().to_string();
            }
        }
        let registry = match (settings.registry.is_empty(), settings.feast_repo.is_empty()) {
            (true, true) => Registry::embedded(),
            (false, true) => Registry::load(&base("registry").join(&settings.registry))?,
            (true, false) => {
                let repo = FeastRepo::open(&base("feast_repo").join(&settings.feast_repo))?;
                let registry = repo.load()?;
                settings.feast = Some(repo);
                registry
            }
            (false, false) => {
                return Err(origins.invalid(
                    "feast_repo",
                    format!(
                        "both a TOML registry (registry = '{}') and a Feast feature repo (feast_repo = '{}') are given: give one",
                        settings.registry, settings.feast_repo
                    ),
                ))
            }
        };
        Ok((settings, registry))
    }
}

/// Settings that take seconds (an integer) or a duration string.
const DURATION_KEYS: &[&str] = &["snapshot_interval", "offline_roll_interval"];

/// Settings naming files: relative ones in the `--config` file are relative to its directory.
const FILE_PATH_KEYS: &[&str] = &["auth_tokens", "auth_jwt_keys", "tls_cert", "tls_key"];
/// Checks a value given for `key` against the default's type: a duration for the duration
/// keys; otherwise the same TOML type, and a whole number no smaller than 0 for integers (every
/// integer setting is a count or a size).
fn check_value(key: &str, default: &toml::Value, given: &toml::Value) -> Result<(), String> {
    if DURATION_KEYS.contains(&key) {
        return crate::registry::parse_duration_value(given).map(|_| ());
    }
    if key == "max_memory" {
        return parse_bytes(given).map(|_| ());
    }
    if default.type_str() != given.type_str() {
        return Err(format!(
            "expected {}, got {} ({given})",
            default.type_str(),
            given.type_str()
        ));
    }
    match given {
        toml::Value::Integer(n) if *n < 0 => Err(format!("{n} is negative: expected 0 or more")),
        _ => Ok(()),
    }
}
