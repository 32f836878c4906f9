//! Settings: embedded defaults (`config/default.toml`) -> the `--config` file -> `FEATGRID_*`
//! environment variables -> command-line flags. Validated once at start; every error names
//! where the bad value came from, the key, and what is expected.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::registry::feast::FeastRepo;
use crate::registry::{Registry, RegistryError};

pub const DEFAULT_SETTINGS: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{source_name}: {key}: {problem}")]
    Invalid {
        source_name: String,
        key: String,
        problem: String,
    },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Validated settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub bind: String,
    pub registry: String,
    /// A Feast feature repo to serve the registry of (exclusive with `registry`).
    pub feast_repo: String,
    /// The repo `feast_repo` names, once read (for the registry reloads).
    #[serde(skip)]
    pub feast: Option<FeastRepo>,
    pub shards: usize,
    pub shard_threads: usize,
    pub workers: usize,
    pub data_dir: PathBuf,
    pub fsync: String,
    /// Seconds (an integer) or a duration string; see [`Settings::snapshot_interval`].
    pub snapshot_interval: toml::Value,
    pub snapshot_keep: usize,
    pub wal_segment_bytes: u64,
    pub offline_roll_rows: usize,
    pub offline_roll_interval: toml::Value,
    /// `--recover`: start past damaged snapshots and log segments (a flag, not a setting).
    #[serde(skip)]
    pub recover: bool,
    pub max_body_bytes: usize,
    pub max_entities_per_request: usize,
    pub max_rows_per_push: usize,
    pub max_answer_bytes: usize,
    pub mailbox_capacity: usize,
    pub shard_timeout_ms: u64,
    /// `direct` or `actor`; see [`crate::grid::coordinator::ReadPath`].
    pub read_path: String,
    /// Security (README "Security"); paths are relative to the settings file when set there.
    pub auth_tokens: String,
    pub auth_jwt_keys: String,
    pub auth_jwt_issuer: String,
    pub auth_jwt_audience: String,
    pub auth_jwt_scopes_claim: String,
    pub metrics_require_auth: bool,
    pub error_format: String,
    pub tls_cert: String,
    pub tls_key: String,
    pub header_timeout_ms: u64,
    pub body_timeout_ms: u64,
    pub keep_alive_secs: u64,
    pub max_connections: usize,
    pub max_read_body_bytes: usize,
    pub max_value_bytes: usize,
    /// Bytes (an integer) or a size string; see [`Settings::max_memory`].
    pub max_memory: toml::Value,
    /// `--insecure`: serve a non-loopback address without credentials (a flag, not a setting).
    #[serde(skip)]
    pub insecure: bool,
}

/// Values given as command-line flags; `None` leaves the lower layers' value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<String>,
    /// Where `bind` comes from when not from `--bind` (a cluster node listens on its `client`
    /// address in the topology): named in errors about it.
    pub bind_source: Option<String>,
    pub feast_repo: Option<PathBuf>,
    pub shards: Option<usize>,
    pub shard_threads: Option<usize>,
    pub workers: Option<usize>,
    pub data_dir: Option<PathBuf>,
    pub fsync: Option<String>,
    pub snapshot_interval: Option<String>,
    pub snapshot_keep: Option<usize>,
    pub recover: bool,
    pub auth_tokens: Option<PathBuf>,
    pub insecure: bool,
    pub max_memory: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// Where a setting's value came from: named in every error about it, and the directory a
/// relative `registry` path is resolved against (the file's for the file, the working
/// directory's otherwise).
#[derive(Debug, Clone, PartialEq)]
enum Origin {
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
struct Origins(std::collections::HashMap<String, Origin>);

impl Origins {
    fn of(&self, key: &str) -> &Origin {
        self.0.get(key).unwrap_or(&Origin::Default)
    }

    fn invalid(&self, key: &str, problem: String) -> ConfigError {
        ConfigError::Invalid {
            source_name: self.of(key).describe(),
            key: key.into(),
            problem,
        }
    }
}

impl Settings {
    /// The embedded defaults alone.
    pub fn defaults() -> Settings {
        toml::from_str(DEFAULT_SETTINGS).expect("embedded defaults are valid")
    }

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

    fn validate(&self, origins: &Origins) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: String| origins.invalid(key, problem);
        let bind = self.bind_addr().map_err(|p| invalid("bind", p))?;
        crate::auth::check_exposure(bind, self.auth_configured(), self.insecure)
            .map_err(|p| invalid("bind", p))?;
        if !["featgrid", "feast"].contains(&self.error_format.as_str()) {
            return Err(invalid(
                "error_format",
                format!(
                    "'{}': expected \"featgrid\" or \"feast\"",
                    self.error_format
                ),
            ));
        }
        if !(1..=crate::grid::routing::SLOTS).contains(&self.shards) {
            return Err(invalid(
                "shards",
                format!("{} is out of range: expected 1 to 16384", self.shards),
            ));
        }
        if self.shard_threads == 0 || self.shard_threads > self.shards {
            return Err(invalid(
                "shard_threads",
                format!(
                    "{} is out of range: expected 1 to the number of shards ({})",
                    self.shard_threads, self.shards
                ),
            ));
        }
        if self.data_dir.is_file() {
            return Err(invalid(
                "data_dir",
                format!(
                    "{} is a file: expected a directory",
                    self.data_dir.display()
                ),
            ));
        }
        self.fsync_policy().map_err(|p| invalid("fsync", p))?;
        self.read_path().map_err(|p| invalid("read_path", p))?;
        for (key, value) in [
            ("snapshot_interval", &self.snapshot_interval),
            ("offline_roll_interval", &self.offline_roll_interval),
        ] {
            crate::registry::parse_duration_value(value).map_err(|p| invalid(key, p))?;
        }
        if self.offline_roll_interval().is_zero() {
            return Err(invalid(
                "offline_roll_interval",
                "must be more than 0: expected seconds (60) or a duration (\"1m\")".into(),
            ));
        }
        if self.wal_segment_bytes < 4096 {
            return Err(invalid(
                "wal_segment_bytes",
                format!(
                    "{} is too small: expected at least 4096",
                    self.wal_segment_bytes
                ),
            ));
        }
        parse_bytes(&self.max_memory).map_err(|p| invalid("max_memory", p))?;
        if self.tls_cert.is_empty() != self.tls_key.is_empty() {
            let key = if self.tls_cert.is_empty() {
                "tls_cert"
            } else {
                "tls_key"
            };
            return Err(invalid(
                key,
                "TLS needs both tls_cert and tls_key (--tls-cert, --tls-key)".into(),
            ));
        }
        for (key, value) in [
            ("header_timeout_ms", self.header_timeout_ms as usize),
            ("body_timeout_ms", self.body_timeout_ms as usize),
            ("max_connections", self.max_connections),
            ("max_read_body_bytes", self.max_read_body_bytes),
            ("max_value_bytes", self.max_value_bytes),
            ("snapshot_keep", self.snapshot_keep),
            ("offline_roll_rows", self.offline_roll_rows),
            ("max_body_bytes", self.max_body_bytes),
            ("max_entities_per_request", self.max_entities_per_request),
            ("max_rows_per_push", self.max_rows_per_push),
            ("max_answer_bytes", self.max_answer_bytes),
            ("mailbox_capacity", self.mailbox_capacity),
            ("shard_timeout_ms", self.shard_timeout_ms as usize),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        if self.max_answer_bytes > crate::grid::partition::MAX_BATCH_BYTES {
            return Err(invalid(
                "max_answer_bytes",
                format!(
                    "{} is too large: expected at most {} (4 GiB - 1)",
                    self.max_answer_bytes,
                    crate::grid::partition::MAX_BATCH_BYTES
                ),
            ));
        }
        Ok(())
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        self.bind.parse().map_err(|_| {
            format!(
                "'{}' is not an address: expected IP:PORT like 127.0.0.1:6566",
                self.bind
            )
        })
    }

    /// The memory ceiling in bytes; 0: none. Validated at load.
    pub fn max_memory(&self) -> usize {
        parse_bytes(&self.max_memory).unwrap_or_default()
    }

    /// The TLS certificate and key files, when TLS is on.
    pub fn tls_files(&self) -> Option<(PathBuf, PathBuf)> {
        (!self.tls_cert.is_empty())
            .then(|| (PathBuf::from(&self.tls_cert), PathBuf::from(&self.tls_key)))
    }

    /// Whether any credential source is configured.
    pub fn auth_configured(&self) -> bool {
        !self.auth_tokens.is_empty() || !self.auth_jwt_keys.is_empty()
    }

    pub fn auth_options(&self) -> crate::auth::AuthOptions {
        crate::auth::AuthOptions {
            tokens_file: (!self.auth_tokens.is_empty()).then(|| PathBuf::from(&self.auth_tokens)),
            jwt: (!self.auth_jwt_keys.is_empty()).then(|| {
                crate::auth::jwt::options(
                    Path::new(&self.auth_jwt_keys),
                    &self.auth_jwt_issuer,
                    &self.auth_jwt_audience,
                    &self.auth_jwt_scopes_claim,
                )
            }),
            metrics_require_auth: self.metrics_require_auth,
        }
    }

    pub fn fsync_policy(&self) -> Result<crate::persist::wal::FsyncPolicy, String> {
        self.fsync.parse()
    }

    pub fn read_path(&self) -> Result<crate::grid::coordinator::ReadPath, String> {
        self.read_path.parse()
    }

    /// Time between periodic snapshots; zero: none. Validated at load.
    pub fn snapshot_interval(&self) -> Duration {
        crate::registry::parse_duration_value(&self.snapshot_interval).unwrap_or_default()
    }

    pub fn offline_roll_interval(&self) -> Duration {
        crate::registry::parse_duration_value(&self.offline_roll_interval).unwrap_or_default()
    }

    pub fn shard_timeout(&self) -> Duration {
        Duration::from_millis(self.shard_timeout_ms)
    }

    /// HTTP workers to start: the setting, or one per core.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }
}

/// Settings that take seconds (an integer) or a duration string.
const DURATION_KEYS: &[&str] = &["snapshot_interval", "offline_roll_interval"];

/// Settings naming files: relative ones in the `--config` file are relative to its directory.
const FILE_PATH_KEYS: &[&str] = &["auth_tokens", "auth_jwt_keys", "tls_cert", "tls_key"];

/// Bytes: an integer, or a number with a unit (`B`, `KiB`/`K`, `MiB`/`M`, `GiB`/`G`, `TiB`/`T`;
/// powers of 1024).
pub fn parse_bytes(value: &toml::Value) -> Result<usize, String> {
    let bad = || {
        format!(
            "'{value}' is not a size: expected bytes (1073741824) or a size (\"1GiB\", \"512MiB\")"
        )
    };
    match value {
        toml::Value::Integer(n) => usize::try_from(*n).map_err(|_| bad()),
        toml::Value::String(s) => {
            let s = s.trim();
            let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (number, unit) = s.split_at(split);
            let number: usize = number.parse().map_err(|_| bad())?;
            let shift = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 0,
                "k" | "kb" | "kib" => 10,
                "m" | "mb" | "mib" => 20,
                "g" | "gb" | "gib" => 30,
                "t" | "tb" | "tib" => 40,
                _ => return Err(bad()),
            };
            number.checked_mul(1usize << shift).ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_config(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_are_valid() {
        let (s, r) = Settings::load(None, [], &Overrides::default()).unwrap();
        assert_eq!(s.bind, "127.0.0.1:6566");
        assert!(r.view("driver_hourly_stats").is_ok());
    }

    #[test]
    fn layers_apply_in_order() {
        let f = write_config("shards = 4\nbind = \"127.0.0.1:7000\"\n");
        let env = [
            ("FEATGRID_SHARDS".to_string(), "6".to_string()),
            ("PATH".into(), "/bin".into()),
        ];
        let (s, _) = Settings::load(Some(f.path()), env.clone(), &Overrides::default()).unwrap();
        assert_eq!((s.shards, s.bind.as_str()), (6, "127.0.0.1:7000"));
        let flags = Overrides {
            shards: Some(2),
            ..Default::default()
        };
        let (s, _) = Settings::load(Some(f.path()), env, &flags).unwrap();
        assert_eq!(s.shards, 2);
    }

    #[test]
    fn errors_name_source_key_and_expectation() {
        let f = write_config("shards = \"many\"\n");
        let e = Settings::load(Some(f.path()), [], &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&f.path().display().to_string()) && e.contains("shards: expected integer"),
            "{e}"
        );

        let f = write_config("shardz = 3\n");
        let e = Settings::load(Some(f.path()), [], &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("shardz: unknown setting"), "{e}");

        let env = [("FEATGRID_SHARDS".to_string(), "x".to_string())];
        let e = Settings::load(None, env, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("FEATGRID_SHARDS") && e.contains("not a whole number"),
            "{e}"
        );

        let flags = Overrides {
            shards: Some(0),
            ..Default::default()
        };
        let e = Settings::load(None, [], &flags).unwrap_err().to_string();
        assert!(e.contains("shards: 0 is out of range"), "{e}");

        let flags = Overrides {
            bind: Some("localhost".into()),
            ..Default::default()
        };
        let e = Settings::load(None, [], &flags).unwrap_err().to_string();
        assert!(e.contains("bind: 'localhost' is not an address"), "{e}");
    }

    #[test]
    fn durability_settings_parse_and_validate() {
        let (s, _) = Settings::load(None, [], &Overrides::default()).unwrap();
        assert_eq!(
            s.fsync_policy(),
            Ok(crate::persist::wal::FsyncPolicy::Everysec)
        );
        assert_eq!(s.snapshot_interval(), Duration::from_secs(300));
        let f = write_config("snapshot_interval = 5\nfsync = \"always\"\n");
        let (s, _) = Settings::load(Some(f.path()), [], &Overrides::default()).unwrap();
        assert_eq!(s.snapshot_interval(), Duration::from_secs(5));
        let env = [("FEATGRID_SNAPSHOT_INTERVAL".to_string(), "2m".to_string())];
        let (s, _) = Settings::load(None, env, &Overrides::default()).unwrap();
        assert_eq!(s.snapshot_interval(), Duration::from_secs(120));
        let flags = Overrides {
            snapshot_interval: Some("7".into()),
            recover: true,
            ..Default::default()
        };
        let (s, _) = Settings::load(None, [], &flags).unwrap();
        assert_eq!(
            (s.snapshot_interval(), s.recover),
            (Duration::from_secs(7), true)
        );
        let flags = Overrides {
            fsync: Some("sometimes".into()),
            ..Default::default()
        };
        let e = Settings::load(None, [], &flags).unwrap_err().to_string();
        assert!(
            e.contains("fsync: 'sometimes' is not an fsync policy"),
            "{e}"
        );
        let flags = Overrides {
            snapshot_interval: Some("soon".into()),
            ..Default::default()
        };
        let e = Settings::load(None, [], &flags).unwrap_err().to_string();
        assert!(
            e.contains("snapshot_interval: 'soon' is not a duration"),
            "{e}"
        );
    }

    /// A setting's effective value as text; panics for a key without a case below.
    fn effective(s: &Settings, key: &str) -> String {
        match key {
            "bind" => s.bind.clone(),
            "shards" => s.shards.to_string(),
            "shard_threads" => s.shard_threads.to_string(),
            "workers" => s.workers.to_string(),
            "data_dir" => s.data_dir.display().to_string(),
            "fsync" => s.fsync.clone(),
            "snapshot_interval" => format!("{:?}", s.snapshot_interval()),
            "snapshot_keep" => s.snapshot_keep.to_string(),
            "wal_segment_bytes" => s.wal_segment_bytes.to_string(),
            "offline_roll_rows" => s.offline_roll_rows.to_string(),
            "offline_roll_interval" => format!("{:?}", s.offline_roll_interval()),
            "max_body_bytes" => s.max_body_bytes.to_string(),
            "max_entities_per_request" => s.max_entities_per_request.to_string(),
            "max_rows_per_push" => s.max_rows_per_push.to_string(),
            "max_answer_bytes" => s.max_answer_bytes.to_string(),
            "mailbox_capacity" => s.mailbox_capacity.to_string(),
            "shard_timeout_ms" => s.shard_timeout_ms.to_string(),
            "read_path" => s.read_path.clone(),
            "auth_tokens" => s.auth_tokens.clone(),
            "auth_jwt_keys" => s.auth_jwt_keys.clone(),
            "auth_jwt_issuer" => s.auth_jwt_issuer.clone(),
            "auth_jwt_audience" => s.auth_jwt_audience.clone(),
            "auth_jwt_scopes_claim" => s.auth_jwt_scopes_claim.clone(),
            "metrics_require_auth" => s.metrics_require_auth.to_string(),
            "error_format" => s.error_format.clone(),
            "header_timeout_ms" => s.header_timeout_ms.to_string(),
            "body_timeout_ms" => s.body_timeout_ms.to_string(),
            "keep_alive_secs" => s.keep_alive_secs.to_string(),
            "max_connections" => s.max_connections.to_string(),
            "max_read_body_bytes" => s.max_read_body_bytes.to_string(),
            "max_value_bytes" => s.max_value_bytes.to_string(),
            "max_memory" => s.max_memory().to_string(),
            other => {
                panic!("setting '{other}' has no case in every_setting_loads_from_every_source")
            }
        }
    }

    /// Sets the flag for `key` to `value`, when the key has a flag and `value` is of its type
    /// (a value clap refuses never reaches the settings).
    fn flag(key: &str, value: &str) -> Option<Overrides> {
        let mut o = Overrides::default();
        match key {
            "bind" => o.bind = Some(value.into()),
            "shards" => o.shards = Some(value.parse().ok()?),
            "shard_threads" => o.shard_threads = Some(value.parse().ok()?),
            "workers" => o.workers = Some(value.parse().ok()?),
            "data_dir" => o.data_dir = Some(value.into()),
            "fsync" => o.fsync = Some(value.into()),
            "snapshot_interval" => o.snapshot_interval = Some(value.into()),
            "snapshot_keep" => o.snapshot_keep = Some(value.parse().ok()?),
            _ => return None,
        }
        Some(o)
    }

    #[test]
    fn sizes_parse_with_units_and_bad_ones_are_refused() {
        let v = |s: &str| toml::Value::String(s.into());
        assert_eq!(parse_bytes(&toml::Value::Integer(4096)), Ok(4096));
        assert_eq!(parse_bytes(&v("0")), Ok(0));
        assert_eq!(parse_bytes(&v("512MiB")), Ok(512 << 20));
        assert_eq!(parse_bytes(&v("4 GiB")), Ok(4 << 30));
        assert_eq!(parse_bytes(&v("2k")), Ok(2048));
        for bad in [
            "lots",
            "1.5GiB",
            "-1",
            "5 parsecs",
            "99999999999999999999TiB",
        ] {
            assert!(
                parse_bytes(&v(bad)).unwrap_err().contains("is not a size"),
                "{bad}"
            );
        }
        let flags = Overrides {
            max_memory: Some("1GiB".into()),
            ..Default::default()
        };
        let (s, _) = Settings::load(None, [], &flags).unwrap();
        assert_eq!(s.max_memory(), 1 << 30);
        let env = [("FEATGRID_MAX_MEMORY".to_string(), "64MiB".to_string())];
        let (s, _) = Settings::load(None, env, &Overrides::default()).unwrap();
        assert_eq!(s.max_memory(), 64 << 20);
    }

    #[test]
    fn every_setting_loads_from_every_source() {
        // key | good value in TOML | as a variable or flag | loads as | bad value in TOML | as
        // a variable or flag | what its error says
        const CASES: &str = r#"
            bind | "127.0.0.1:7000" | 127.0.0.1:7000 | 127.0.0.1:7000 | "nowhere" | nowhere | 'nowhere' is not an address
            shards | 6 | 6 | 6 | -1 | -1 | -1 is negative
            shard_threads | 2 | 2 | 2 | 0 | 0 | 0 is out of range
            workers | 3 | 3 | 3 | -1 | -1 | -1 is negative
            data_dir | "elsewhere" | elsewhere | elsewhere | "Cargo.toml" | Cargo.toml | Cargo.toml is a file
            fsync | "always" | always | always | "sometimes" | sometimes | 'sometimes' is not an fsync policy
            snapshot_interval | 30 | 30s | 30s | "soon" | soon | 'soon' is not a duration
            snapshot_keep | 5 | 5 | 5 | 0 | 0 | must be at least 1
            wal_segment_bytes | 8192 | 8192 | 8192 | 100 | 100 | 100 is too small
            offline_roll_rows | 10 | 10 | 10 | 0 | 0 | must be at least 1
            offline_roll_interval | 60 | 60 | 60s | 0 | 0 | must be more than 0
            max_body_bytes | 1000 | 1000 | 1000 | 0 | 0 | must be at least 1
            max_entities_per_request | 10 | 10 | 10 | 0 | 0 | must be at least 1
            max_rows_per_push | 10 | 10 | 10 | 0 | 0 | must be at least 1
            max_answer_bytes | 1000 | 1000 | 1000 | 0 | 0 | must be at least 1
            mailbox_capacity | 10 | 10 | 10 | 0 | 0 | must be at least 1
            shard_timeout_ms | 10 | 10 | 10 | 0 | 0 | must be at least 1
            read_path | "actor" | actor | actor | "sideways" | sideways | 'sideways' is not a read path
            auth_tokens | "/t.toml" | /t.toml | /t.toml | 1 | - | expected string
            auth_jwt_keys | "/k.pem" | /k.pem | /k.pem | 1 | - | expected string
            auth_jwt_issuer | "https://i" | https://i | https://i | 1 | - | expected string
            auth_jwt_audience | "aud" | aud | aud | 1 | - | expected string
            auth_jwt_scopes_claim | "scope" | scope | scope | 1 | - | expected string
            metrics_require_auth | true | true | true | "yes" | yes | boolean
            error_format | "feast" | feast | feast | "xml" | xml | expected "featgrid" or "feast"
            header_timeout_ms | 10 | 10 | 10 | 0 | 0 | must be at least 1
            body_timeout_ms | 10 | 10 | 10 | 0 | 0 | must be at least 1
            keep_alive_secs | 0 | 0 | 0 | -1 | -1 | -1 is negative
            max_connections | 10 | 10 | 10 | 0 | 0 | must be at least 1
            max_read_body_bytes | 1000 | 1000 | 1000 | 0 | 0 | must be at least 1
            max_value_bytes | 1000 | 1000 | 1000 | 0 | 0 | must be at least 1
            max_memory | "1GiB" | 1GiB | 1073741824 | "lots" | lots | is not a size
        "#;
        let cases: Vec<Vec<&str>> = CASES
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split('|').map(str::trim).collect())
            .collect();
        let defaults: toml::Table = toml::from_str(DEFAULT_SETTINGS).unwrap();
        // The two registry paths have their own tests: registry_path_follows_its_source and
        // feast_repo_comes_from_file_environment_or_flag_and_excludes_a_toml_registry; the TLS
        // pair (valid only together) has tls::a_bad_certificate_or_half_a_pair_refuses_the_start.
        for key in defaults.keys() {
            assert!(
                matches!(
                    key.as_str(),
                    "registry" | "feast_repo" | "tls_cert" | "tls_key"
                ) || cases.iter().any(|c| c[0] == key),
                "setting '{key}' has no case here"
            );
        }
        for case in &cases {
            let &[key, file_good, good, loaded, file_bad, bad, problem] = case.as_slice() else {
                panic!("a case needs 7 fields: {case:?}");
            };
            let var = format!("FEATGRID_{}", key.to_ascii_uppercase());
            let file = |value: &str| write_config(&format!("{key} = {value}\n"));
            let env = |value: &str| [(var.clone(), value.to_string())];
            let none = Overrides::default();

            let f = file(file_good);
            let (s, _) = Settings::load(Some(f.path()), [], &none).unwrap();
            assert_eq!(effective(&s, key), loaded, "{key} from the file");
            let (s, _) = Settings::load(None, env(good), &none).unwrap();
            assert_eq!(effective(&s, key), loaded, "{key} from {var}");

            let f = file(file_bad);
            let e = Settings::load(Some(f.path()), [], &none)
                .unwrap_err()
                .to_string();
            let at = format!("{}: {key}: ", f.path().display());
            assert!(
                e.starts_with(&at) && e.contains(problem),
                "{key} from the file: {e}"
            );
            // `-`: every text is a valid value of this setting in the environment.
            if bad != "-" {
                let e = Settings::load(None, env(bad), &none)
                    .unwrap_err()
                    .to_string();
                let at = format!("environment variable {var}: {key}: ");
                assert!(
                    e.starts_with(&at) && e.contains(problem),
                    "{key} from {var}: {e}"
                );
            }

            if let Some(flags) = flag(key, good) {
                let (s, _) = Settings::load(None, [], &flags).unwrap();
                assert_eq!(effective(&s, key), loaded, "{key} from its flag");
            }
            if let Some(flags) = flag(key, bad) {
                let e = Settings::load(None, [], &flags).unwrap_err().to_string();
                let at = format!("flag --{}: {key}: ", key.replace('_', "-"));
                assert!(
                    e.starts_with(&at) && e.contains(problem),
                    "{key} from its flag: {e}"
                );
            }
        }
    }

    #[test]
    fn registry_path_follows_its_source() {
        // From the environment (or a flag), relative to the working directory, where the
        // command was typed; from a settings file, relative to that file.
        let dir = tempfile::tempdir().unwrap();
        let settings = dir.path().join("settings.toml");
        std::fs::write(&settings, "shards = 2\n").unwrap();
        let env = [(
            "FEATGRID_REGISTRY".to_string(),
            "config/example_registry.toml".to_string(),
        )];
        let (_, r) = Settings::load(Some(&settings), env, &Overrides::default()).unwrap();
        assert!(r.view("customer_profile").is_ok());
        let env = [("FEATGRID_REGISTRY".to_string(), "missing.toml".to_string())];
        let e = Settings::load(None, env, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("missing.toml: (file): cannot read"), "{e}");
    }

    /// A Feast repo `dir/name` with an empty registry of project `shop`.
    fn feast_repo(dir: &Path, name: &str) -> PathBuf {
        use prost::Message as _;
        let repo = dir.join(name);
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(
            repo.join("feature_store.yaml"),
            "project: shop\nregistry:\n  path: registry.db\n  cache_ttl_seconds: 7\n",
        )
        .unwrap();
        let file = crate::registry::feast::proto::Registry {
            version_id: name.into(),
            ..Default::default()
        };
        std::fs::write(repo.join("registry.db"), file.encode_to_vec()).unwrap();
        repo
    }

    #[test]
    fn feast_repo_comes_from_file_environment_or_flag_and_excludes_a_toml_registry() {
        let dir = tempfile::tempdir().unwrap();
        let version = |r: &Registry| r.loaded_from.version_id.clone().unwrap();

        let from_flag = feast_repo(dir.path(), "flag");
        let flags = Overrides {
            feast_repo: Some(from_flag.clone()),
            ..Default::default()
        };
        let (s, r) = Settings::load(None, [], &flags).unwrap();
        assert_eq!(version(&r), "flag");
        let repo = s.feast.unwrap();
        assert_eq!(
            (repo.project.as_str(), repo.cache_ttl),
            ("shop", Duration::from_secs(7))
        );

        let from_env = feast_repo(dir.path(), "env");
        let env = [(
            "FEATGRID_FEAST_REPO".to_string(),
            from_env.display().to_string(),
        )];
        let (_, r) = Settings::load(None, env, &Overrides::default()).unwrap();
        assert_eq!(version(&r), "env");

        // In a config file, relative to the file's directory.
        feast_repo(dir.path(), "file");
        let config = dir.path().join("featgrid.toml");
        std::fs::write(&config, "feast_repo = \"file\"\n").unwrap();
        let (_, r) = Settings::load(Some(&config), [], &Overrides::default()).unwrap();
        assert_eq!(version(&r), "file");
        // The flag wins over the file.
        let (_, r) = Settings::load(Some(&config), [], &flags).unwrap();
        assert_eq!(version(&r), "flag");

        std::fs::write(&config, "registry = \"r.toml\"\n").unwrap();
        let e = Settings::load(Some(&config), [], &flags)
            .unwrap_err()
            .to_string();
        assert!(e.contains("feast_repo: both a TOML registry"), "{e}");
    }

    #[test]
    fn registry_path_is_relative_to_the_config_file() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let path = Path::new(dir).join("config/example.toml");
        let (s, r) = Settings::load(Some(&path), [], &Overrides::default()).unwrap();
        assert_eq!(s.shards, 4);
        assert!(r.view("customer_profile").is_ok());
    }
}
