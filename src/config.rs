//! Settings: embedded defaults (`config/default.toml`) -> the `--config` file -> `FEATGRID_*`
//! environment variables -> command-line flags. Validated once at start; every error names
//! where the bad value came from, the key, and what is expected.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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
    pub mailbox_capacity: usize,
    pub shard_timeout_ms: u64,
    /// Security (README "Security"); paths from the `--config` file are relative to it.
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
    pub max_answer_bytes: usize,
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
        let mut table: toml::Table =
            toml::from_str(DEFAULT_SETTINGS).expect("embedded defaults are valid");
        let mut registry_base = PathBuf::from(".");
        if let Some(path) = file {
            let name = path.display().to_string();
            let invalid = |key: &str, problem: String| ConfigError::Invalid {
                source_name: name.clone(),
                key: key.to_string(),
                problem,
            };
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid("(file)", format!("cannot read: {e}")))?;
            let overlay: toml::Table = toml::from_str(&text)
                .map_err(|e| invalid("(document)", e.message().to_string()))?;
            for (key, value) in overlay {
                if !table.contains_key(&key) {
                    let known: Vec<_> = table.keys().cloned().collect();
                    return Err(invalid(
                        &key,
                        format!("unknown setting; expected one of {}", known.join(", ")),
                    ));
                }
                if !DURATION_KEYS.contains(&key.as_str()) && key != "max_memory" {
                    check_same_type(&table[&key], &value).map_err(|p| invalid(&key, p))?;
                }
                table.insert(key, value);
            }
            registry_base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            for key in FILE_PATH_KEYS {
                if let Some(toml::Value::String(p)) = table.get_mut(*key) {
                    if !p.is_empty() && Path::new(p.as_str()).is_relative() {
                        *p = registry_base.join(&*p).display().to_string();
                    }
                }
            }
        }
        for (var, raw) in env {
            let Some(key) = var.strip_prefix("FEATGRID_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            let Some(current) = table.get(&key) else {
                // Variables the binary does not own (e.g. FEATGRID_FEAST_VENV for the tests) are ignored.
                continue;
            };
            let value = match current {
                toml::Value::Integer(_) => raw
                    .trim()
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .map_err(|_| ConfigError::Invalid {
                        source_name: format!("environment variable {var}"),
                        key: key.clone(),
                        problem: format!("'{raw}' is not a whole number"),
                    })?,
                toml::Value::Boolean(_) => match raw.trim() {
                    "true" | "1" => toml::Value::Boolean(true),
                    "false" | "0" => toml::Value::Boolean(false),
                    _ => {
                        return Err(ConfigError::Invalid {
                            source_name: format!("environment variable {var}"),
                            key: key.clone(),
                            problem: format!("'{raw}' is not true or false"),
                        })
                    }
                },
                _ => toml::Value::String(raw),
            };
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
        }
        if let Some(v) = flags.shards {
            settings.shards = v;
        }
        if let Some(v) = flags.shard_threads {
            settings.shard_threads = v;
        }
        if let Some(v) = flags.workers {
            settings.workers = v;
        }
        if let Some(v) = &flags.data_dir {
            settings.data_dir = v.clone();
        }
        if let Some(v) = &flags.fsync {
            settings.fsync = v.clone();
        }
        if let Some(v) = &flags.snapshot_interval {
            settings.snapshot_interval = toml::Value::String(v.clone());
        }
        if let Some(v) = flags.snapshot_keep {
            settings.snapshot_keep = v;
        }
        settings.recover = flags.recover;
        if let Some(v) = &flags.auth_tokens {
            settings.auth_tokens = v.display().to_string();
        }
        settings.insecure = flags.insecure;
        if let Some(v) = &flags.tls_cert {
            settings.tls_cert = v.display().to_string();
        }
        if let Some(v) = &flags.tls_key {
            settings.tls_key = v.display().to_string();
        }
        if let Some(v) = &flags.max_memory {
            settings.max_memory = toml::Value::String(v.clone());
        }
        settings.validate()?;
        let registry = if settings.registry.is_empty() {
            Registry::embedded()
        } else {
            Registry::load(&registry_base.join(&settings.registry))?
        };
        Ok((settings, registry))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            source_name: "settings".into(),
            key: key.into(),
            problem,
        };
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
        crate::registry::parse_duration_value(&self.snapshot_interval)
            .map_err(|p| invalid("snapshot_interval", p))?;
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
            return Err(invalid(
                if self.tls_cert.is_empty() {
                    "tls_cert"
                } else {
                    "tls_key"
                },
                "TLS needs both tls_cert and tls_key (--tls-cert, --tls-key)".into(),
            ));
        }
        for (key, value) in [
            ("header_timeout_ms", self.header_timeout_ms as usize),
            ("body_timeout_ms", self.body_timeout_ms as usize),
            ("max_connections", self.max_connections),
            ("max_read_body_bytes", self.max_read_body_bytes),
            ("max_value_bytes", self.max_value_bytes),
            ("max_answer_bytes", self.max_answer_bytes),
            ("snapshot_keep", self.snapshot_keep),
            ("offline_roll_rows", self.offline_roll_rows),
            ("max_body_bytes", self.max_body_bytes),
            ("max_entities_per_request", self.max_entities_per_request),
            ("max_rows_per_push", self.max_rows_per_push),
            ("mailbox_capacity", self.mailbox_capacity),
            ("shard_timeout_ms", self.shard_timeout_ms as usize),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
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

/// Settings naming files: relative ones in the `--config` file are relative to its directory.
const FILE_PATH_KEYS: &[&str] = &["auth_tokens", "auth_jwt_keys", "tls_cert", "tls_key"];

/// Settings that take seconds (an integer) or a duration string.
const DURATION_KEYS: &[&str] = &["snapshot_interval"];

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

fn check_same_type(default: &toml::Value, given: &toml::Value) -> Result<(), String> {
    if default.type_str() == given.type_str() {
        Ok(())
    } else {
        Err(format!(
            "expected {}, got {} ({given})",
            default.type_str(),
            given.type_str()
        ))
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
    fn registry_path_is_relative_to_the_config_file() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let path = Path::new(dir).join("config/example.toml");
        let (s, r) = Settings::load(Some(&path), [], &Overrides::default()).unwrap();
        assert_eq!(s.shards, 4);
        assert!(r.view("customer_profile").is_ok());
    }
}
