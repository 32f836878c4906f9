//! Settings: embedded defaults (`config/default.toml`) -> the `--config` file -> `FEATGRID_*`
//! environment variables -> command-line flags. Validated once at start; every error names
//! where the bad value came from, the key, and what is expected.
//!
//! Here: the settings, the flags' overrides and the typed accessors the server reads them
//! through. `layers`: the layering and the origin of every value ([`Settings::load`]).
//! `validate`: ranges, formats and combinations; the size parser ([`parse_bytes`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::registry::feast::FeastRepo;
use crate::registry::RegistryError;

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
    /// The Python of the Feast environment that runs on-demand transformations; empty: none.
    pub python: String,
    pub python_workers: usize,
    pub python_timeout_ms: u64,
    pub python_queue: usize,
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
    pub python: Option<PathBuf>,
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

mod layers;
mod validate;

pub use validate::parse_bytes;

impl Settings {
    /// The embedded defaults alone.
    pub fn defaults() -> Settings {
        toml::from_str(DEFAULT_SETTINGS).expect("embedded defaults are valid")
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

    /// The on-demand transformation workers' settings; `None` without `python`.
    pub fn ondemand_options(&self) -> Option<crate::ondemand::PoolOptions> {
        (!self.python.is_empty()).then(|| crate::ondemand::PoolOptions {
            python: PathBuf::from(&self.python),
            workers: if self.python_workers > 0 {
                self.python_workers
            } else {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            },
            timeout: Duration::from_millis(self.python_timeout_ms.max(1)),
            queue: self.python_queue,
        })
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

#[cfg(test)]
mod tests;
