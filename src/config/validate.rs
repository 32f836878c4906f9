//! Validation of layered settings: ranges, formats and the combinations that must hold
//! (TLS files in pairs, credentials off loopback), each error naming where the value came
//! from; and the size parser (`"4GiB"`) the layers and the validation share.

use super::layers::Origins;
use super::{ConfigError, Settings};

impl Settings {
    pub(super) fn validate(&self, origins: &Origins) -> Result<(), ConfigError> {
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
            ("python_timeout_ms", self.python_timeout_ms as usize),
            ("python_queue", self.python_queue),
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
}

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
