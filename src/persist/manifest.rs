//! The manifest: the complete snapshot sets, newest first, as one small JSON file written
//! atomically after every file of a new set is durable. A set is in the manifest only once
//! it is whole, so a crash while writing a set leaves the previous manifest, which never
//! names the half-written set. The manifest carries a CRC-32C of its sets.
//!
//! ```json
//! {"format":1,"crc32c":"1a2b3c4d","sets":[{"seq":7,"shards":8,"wal_lsn":1200,"rows":1000000,
//!   "bytes":53000000,"finished_at":"2026-11-25T10:00:00Z","files":["shard-00000.snap", ...]}]}
//! ```

use std::fs;
use std::io;

use serde::{Deserialize, Serialize};

use super::atomic::{write_atomic, FileError};
use super::snapshot::SnapshotError;
use super::{crc32c, DataDir};

pub const FORMAT: u32 = 1;

/// One complete snapshot set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetEntry {
    pub seq: u64,
    pub shards: usize,
    /// Every log record with a smaller sequence number is in the set.
    pub wal_lsn: u64,
    pub rows: u64,
    pub bytes: u64,
    pub finished_at: String,
    /// File names inside the set's directory, one per shard, in shard order.
    pub files: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    format: u32,
    crc32c: String,
    sets: Vec<SetEntry>,
}

fn checksum(sets: &[SetEntry]) -> String {
    let json = serde_json::to_vec(sets).unwrap_or_default();
    format!("{:08x}", crc32c(&json))
}

/// The sets the manifest names, newest first; empty when there is no manifest yet.
pub fn load(dir: &DataDir) -> Result<Vec<SetEntry>, SnapshotError> {
    let path = dir.manifest();
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FileError::new(&path, "read", e).into()),
    };
    let stored: Stored = serde_json::from_slice(&text)
        .map_err(|e| SnapshotError::corrupt(&path, format!("not a valid manifest: {e}")))?;
    if stored.format != FORMAT {
        return Err(SnapshotError::corrupt(
            &path,
            format!(
                "manifest format {}; this featgrid reads format {FORMAT}",
                stored.format
            ),
        ));
    }
    let computed = checksum(&stored.sets);
    if computed != stored.crc32c {
        return Err(SnapshotError::corrupt(
            &path,
            format!(
                "manifest checksum mismatch (stored {}, computed {computed})",
                stored.crc32c
            ),
        ));
    }
    Ok(stored.sets)
}

/// Replaces the manifest, atomically and durably.
pub fn store(dir: &DataDir, sets: &[SetEntry]) -> Result<(), SnapshotError> {
    let stored = Stored {
        format: FORMAT,
        crc32c: checksum(sets),
        sets: sets.to_vec(),
    };
    let mut json = serde_json::to_vec_pretty(&stored)
        .map_err(|e| SnapshotError::Writer(format!("cannot render the manifest: {e}")))?;
    json.push(b'\n');
    write_atomic(&dir.manifest(), &json)?;
    Ok(())
}

/// The sets found on disk by listing `snapshots/`, newest first, for `--recover` when the
/// manifest itself is damaged. Each lists every shard file of its directory; whether a set
/// is complete is checked when it is loaded.
pub fn scan(dir: &DataDir) -> Vec<SetEntry> {
    let Ok(entries) = fs::read_dir(dir.snapshots()) else {
        return Vec::new();
    };
    let mut sets: Vec<SetEntry> = entries
        .flatten()
        .filter_map(|e| {
            let seq: u64 = e.file_name().to_str()?.parse().ok()?;
            let mut files: Vec<String> = fs::read_dir(e.path())
                .ok()?
                .flatten()
                .filter_map(|f| f.file_name().into_string().ok())
                .filter(|n| n.starts_with("shard-") && n.ends_with(".snap"))
                .collect();
            files.sort();
            Some(SetEntry {
                seq,
                shards: files.len(),
                wal_lsn: 0,
                rows: 0,
                bytes: 0,
                finished_at: String::new(),
                files,
            })
        })
        .collect();
    sets.sort_by_key(|s| std::cmp::Reverse(s.seq));
    sets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> SetEntry {
        SetEntry {
            seq,
            shards: 1,
            wal_lsn: seq * 10,
            rows: 5,
            bytes: 100,
            finished_at: "2026-11-25T10:00:00Z".into(),
            files: vec![super::super::snapshot::file_name(0)],
        }
    }

    #[test]
    fn round_trips_and_detects_damage() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        assert_eq!(load(&dir).unwrap(), vec![]);
        store(&dir, &[entry(2), entry(1)]).unwrap();
        assert_eq!(load(&dir).unwrap(), vec![entry(2), entry(1)]);
        let text = fs::read_to_string(dir.manifest()).unwrap();
        fs::write(dir.manifest(), text.replace("\"rows\": 5", "\"rows\": 6")).unwrap();
        let e = load(&dir).unwrap_err().to_string();
        assert!(
            e.contains("MANIFEST.json: manifest checksum mismatch"),
            "{e}"
        );
        fs::write(dir.manifest(), "{").unwrap();
        let e = load(&dir).unwrap_err().to_string();
        assert!(e.contains("MANIFEST.json: not a valid manifest"), "{e}");
    }

    #[test]
    fn scan_lists_set_directories_newest_first() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        for seq in [3, 10] {
            fs::create_dir_all(dir.set(seq)).unwrap();
            fs::write(dir.shard_file(seq, 0), b"x").unwrap();
        }
        fs::create_dir_all(dir.snapshots().join("junk")).unwrap();
        let sets = scan(&dir);
        assert_eq!(sets.iter().map(|s| s.seq).collect::<Vec<_>>(), [10, 3]);
        assert_eq!(sets[0].files, ["shard-00000.snap"]);
    }
}
