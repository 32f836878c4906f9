//! Bytes on disk and on the wire: the codec (the only user of bincode), atomic files,
//! snapshots, the write-ahead log, and restoring both at start.
//!
//! The data directory:
//!
//! ```text
//! <data_dir>/LOCK                                   held (flock) while a featgrid uses the directory
//! <data_dir>/MANIFEST.json                          the complete snapshot sets, newest first
//! <data_dir>/snapshots/<seq>/shard-<id>.snap        one file per shard of set <seq>
//! <data_dir>/wal/<first lsn>.wal                    log segments, named by their first record
//! ```
//!
//! Start: [`restore::open`] loads the newest complete set, replays the log after it and opens
//! a new log segment. Serving: every accepted write is appended to the log before it is
//! acknowledged ([`wal`]); [`snapshotter`] writes sets periodically, on request and at
//! shutdown, and then deletes what the oldest kept set makes unnecessary.

pub mod atomic;
pub mod codec;
pub mod durable;
pub mod manifest;
pub mod offline;
pub mod restore;
pub mod snapshot;
pub mod snapshotter;
pub mod wal;

use std::path::{Path, PathBuf};

use crate::registry::{FeatureView, Registry, WriteRule};

/// The CRC-32C (Castagnoli) of `bytes`: the checksum of every file and record featgrid
/// writes.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// A feature view as persisted files name it: its name and a description of its stored
/// form (canonical join keys, then fields, with types). Rows are restored into a view only
/// when both still match the registry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ViewMeta {
    pub name: String,
    pub schema: String,
}

impl ViewMeta {
    pub fn of(view: &FeatureView) -> ViewMeta {
        let mut keys: Vec<_> = view.join_keys.iter().collect();
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        let keys: Vec<String> = keys
            .iter()
            .map(|k| format!("{}:{}", k.name, k.value_type))
            .collect();
        let fields: Vec<String> = view
            .fields
            .iter()
            .map(|f| format!("{}:{}", f.name, f.dtype))
            .collect();
        let mut schema = format!("keys({}) fields({})", keys.join(","), fields.join(","));
        // Part of the stored form: a replay under another rule would keep other rows. Only
        // said when not the default, so files written before rules existed still match.
        if view.write_rule == WriteRule::LastWrite {
            schema.push_str(" write_rule(last_write)");
        }
        ViewMeta {
            name: view.name.clone(),
            schema,
        }
    }

    /// Every view of the registry, indexed by view id.
    pub fn all(registry: &Registry) -> Vec<ViewMeta> {
        registry.feature_views.iter().map(ViewMeta::of).collect()
    }
}

/// Paths inside the data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: &Path) -> DataDir {
        DataDir {
            root: root.to_path_buf(),
        }
    }

    pub fn lock(&self) -> PathBuf {
        self.root.join("LOCK")
    }

    pub fn manifest(&self) -> PathBuf {
        self.root.join("MANIFEST.json")
    }

    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    pub fn set(&self, seq: u64) -> PathBuf {
        self.snapshots().join(format!("{seq:020}"))
    }

    pub fn shard_file(&self, seq: u64, shard: usize) -> PathBuf {
        self.set(seq).join(snapshot::file_name(shard))
    }

    pub fn wal(&self) -> PathBuf {
        self.root.join("wal")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_test_vector() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        // RFC 3720, B.4.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
    }

    proptest::proptest! {
        /// The same function as the table implementation that wrote the files of earlier
        /// versions: their checksums still verify.
        #[test]
        fn crc32c_equals_the_table_implementation(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096)) {
            const TABLE: crc::Crc<u32, crc::Table<16>> =
                crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);
            proptest::prop_assert_eq!(crc32c(&bytes), TABLE.checksum(&bytes));
        }
    }

    #[test]
    fn view_meta_names_keys_in_canonical_order_and_fields_in_order() {
        let r = Registry::embedded();
        let meta = ViewMeta::of(r.view("driver_hourly_stats").unwrap());
        assert_eq!(
            meta.schema,
            "keys(driver_id:int64) fields(conv_rate:float32,acc_rate:float32,avg_daily_trips:int64)"
        );
    }
}
