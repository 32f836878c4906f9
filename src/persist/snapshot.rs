//! One shard's snapshot file: a fixed header, then the body encoded by [`super::codec`].
//!
//! ```text
//! offset  size  field (little-endian)
//!      0     8  magic "FGRIDSNP"
//!      8     4  format version (1)
//!     12     4  shard id
//!     16     4  shard count of the set
//!     20     4  first slot of the shard's range
//!     24     4  end of the slot range (exclusive)
//!     28     4  reserved (0)
//!     32     8  sequence number of the set
//!     40     8  rows in the file
//!     48     8  body length in bytes
//!     56     4  CRC-32C of the body
//!     60     4  CRC-32C of bytes 0..60
//!     64        body: { wal_lsn, views: [{ view: {name, schema}, rows, data }] }
//! ```
//!
//! `data` is the view's rows in the portable form of [`crate::grid::partition::PortableRows`]:
//! canonical key, value part, variable-length fields. Nothing in a file depends on the shard
//! count that wrote it except the header's bookkeeping, so a restore routes every row again.
//! A file is written through [`super::atomic`]; reading checks the magic, both checksums and
//! every length, and any failure names the file and what is wrong.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::atomic::{write_atomic_with, Context, FileError};
use super::codec::{self, Blob, CodecError};
use super::{crc32c, ViewMeta};
use crate::grid::coordinator::GridError;
use crate::grid::partition::FrozenPartition;

pub const MAGIC: [u8; 8] = *b"FGRIDSNP";
pub const FORMAT_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{}: {problem}", path.display())]
    Corrupt { path: PathBuf, problem: String },
    #[error("cannot encode a snapshot: {0}")]
    Encode(#[from] CodecError),
    #[error("cannot copy the shards' rows: {0}")]
    Grid(#[from] GridError),
    #[error("the snapshot writer stopped unexpectedly: {0}")]
    Writer(String),
}

impl SnapshotError {
    pub fn corrupt(path: &Path, problem: impl Into<String>) -> SnapshotError {
        SnapshotError::Corrupt {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }
}

/// The file name of a shard's snapshot inside its set's directory.
pub fn file_name(shard: usize) -> String {
    format!("shard-{shard:05}.snap")
}

/// The header's description of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub shard: u32,
    pub shards: u32,
    pub slots: Range<u32>,
    pub seq: u64,
    pub rows: u64,
}

/// Rows of one view in a file.
#[derive(Debug, Serialize, Deserialize)]
pub struct ViewSection {
    pub view: ViewMeta,
    pub rows: u64,
    pub data: Blob,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Body {
    /// Every log record before this sequence number is in the set.
    pub wal_lsn: u64,
    pub views: Vec<ViewSection>,
}

fn encode_header(h: &Header, body_len: u64, body_crc: u32) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&h.shard.to_le_bytes());
    out[16..20].copy_from_slice(&h.shards.to_le_bytes());
    out[20..24].copy_from_slice(&h.slots.start.to_le_bytes());
    out[24..28].copy_from_slice(&h.slots.end.to_le_bytes());
    out[32..40].copy_from_slice(&h.seq.to_le_bytes());
    out[40..48].copy_from_slice(&h.rows.to_le_bytes());
    out[48..56].copy_from_slice(&body_len.to_le_bytes());
    out[56..60].copy_from_slice(&body_crc.to_le_bytes());
    let crc = crc32c(&out[..60]);
    out[60..64].copy_from_slice(&crc.to_le_bytes());
    out
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    (u32_at(b, at) as u64) | ((u32_at(b, at + 4) as u64) << 32)
}

/// Writes a shard's frozen rows to `path` atomically; answers the file's size in bytes.
/// `views` is indexed by view id.
pub fn write_shard(
    path: &Path,
    header: &Header,
    wal_lsn: u64,
    frozen: &FrozenPartition,
    views: &[ViewMeta],
) -> Result<u64, SnapshotError> {
    let counts = frozen.row_counts();
    let sections = views
        .iter()
        .enumerate()
        .filter(|&(id, _)| counts.get(id).is_some_and(|&n| n > 0))
        .map(|(id, meta)| {
            let mut data = Vec::new();
            frozen.encode_view(id, &mut data);
            ViewSection {
                view: meta.clone(),
                rows: counts[id],
                data: Blob(data),
            }
        })
        .collect();
    let body = Body {
        wal_lsn,
        views: sections,
    };
    let (head, encoded) = encode_parts(header, &body)?;
    drop(body);
    write_atomic_with(path, |file| {
        use std::io::Write;
        file.write_all(&head)?;
        file.write_all(&encoded)
    })?;
    Ok((HEADER_LEN + encoded.len()) as u64)
}

/// A whole file's bytes (header and body), for a file that travels before it is written: a
/// cluster group's Raft snapshot is one such file ([`crate::cluster::state_machine`]).
pub fn encode_file(header: &Header, body: &Body) -> Result<Vec<u8>, SnapshotError> {
    let (head, encoded) = encode_parts(header, body)?;
    let mut out = Vec::with_capacity(HEADER_LEN + encoded.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(&encoded);
    Ok(out)
}

/// A file's header and encoded body.
fn encode_parts(
    header: &Header,
    body: &Body,
) -> Result<([u8; HEADER_LEN], Vec<u8>), SnapshotError> {
    let encoded = codec::encode(body)?;
    let head = encode_header(header, encoded.len() as u64, crc32c(&encoded));
    Ok((head, encoded))
}

/// Reads and checks a shard file.
pub fn read_shard(path: &Path) -> Result<(Header, Body), SnapshotError> {
    let bytes = fs::read(path).at(path, "read")?;
    parse_file(path, &bytes)
}

/// Checks and decodes a file's bytes; `path` names it in errors.
pub fn parse_file(path: &Path, bytes: &[u8]) -> Result<(Header, Body), SnapshotError> {
    let corrupt = |problem: String| SnapshotError::corrupt(path, problem);
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(format!(
            "truncated: {} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    if bytes[0..8] != MAGIC {
        return Err(corrupt("not a featgrid snapshot (bad magic)".into()));
    }
    let stored = u32_at(bytes, 60);
    let computed = crc32c(&bytes[..60]);
    if stored != computed {
        return Err(corrupt(format!(
            "header checksum mismatch (stored {stored:08x}, computed {computed:08x})"
        )));
    }
    let version = u32_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {version}; this featgrid reads version {FORMAT_VERSION}"
        )));
    }
    let header = Header {
        shard: u32_at(bytes, 12),
        shards: u32_at(bytes, 16),
        slots: u32_at(bytes, 20)..u32_at(bytes, 24),
        seq: u64_at(bytes, 32),
        rows: u64_at(bytes, 40),
    };
    let body_len = u64_at(bytes, 48);
    let actual = (bytes.len() - HEADER_LEN) as u64;
    if actual != body_len {
        let what = if actual < body_len {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(corrupt(format!(
            "{what}: the body is {actual} bytes, the header says {body_len}"
        )));
    }
    let body_bytes = &bytes[HEADER_LEN..];
    let (stored, computed) = (u32_at(bytes, 56), crc32c(body_bytes));
    if stored != computed {
        return Err(corrupt(format!(
            "body checksum mismatch (stored {stored:08x}, computed {computed:08x})"
        )));
    }
    let (body, used): (Body, usize) = codec::decode_verified(body_bytes)
        .map_err(|e| corrupt(format!("the body does not decode: {e}")))?;
    if used != body_bytes.len() {
        return Err(corrupt("trailing bytes after the body".into()));
    }
    let rows: u64 = body.views.iter().map(|v| v.rows).sum();
    if rows != header.rows {
        return Err(corrupt(format!(
            "the body holds {rows} rows, the header says {}",
            header.rows
        )));
    }
    Ok((header, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::partition::{Partition, PortableRows, RowBatch, RowLayout, NO_CREATED};
    use crate::registry::Registry;

    fn frozen(rows: i64) -> (Registry, std::sync::Arc<[RowLayout]>, FrozenPartition) {
        let registry = Registry::embedded();
        let layouts = RowLayout::for_registry(&registry);
        let mut p = Partition::new(layouts.clone());
        let mut b = RowBatch::new(0);
        for id in 0..rows {
            b.start_row(&layouts[0], &id.to_le_bytes(), id, NO_CREATED);
        }
        p.apply(&b).unwrap();
        let f = p.freeze();
        (registry, layouts, f)
    }

    fn header(rows: u64) -> Header {
        Header {
            shard: 3,
            shards: 8,
            slots: 6144..8192,
            seq: 42,
            rows,
        }
    }

    #[test]
    fn a_written_file_reads_back() {
        let (registry, layouts, f) = frozen(100);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(3));
        let bytes = write_shard(&path, &header(100), 7, &f, &ViewMeta::all(&registry)).unwrap();
        assert_eq!(bytes, fs::metadata(&path).unwrap().len());
        let (h, body) = read_shard(&path).unwrap();
        assert_eq!(h, header(100));
        assert_eq!(body.wal_lsn, 7);
        assert_eq!(body.views.len(), 1);
        assert_eq!(body.views[0].view.name, "driver_hourly_stats");
        let rows = PortableRows::new(&layouts[0], &body.views[0].data.0).count();
        assert_eq!(rows, 100);
    }

    #[test]
    fn a_shard_larger_than_the_network_decode_limit_reads_back() {
        let rows = (codec::DECODE_LIMIT / 41 + 100) as i64;
        let (registry, layouts, f) = frozen(rows);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(3));
        let bytes = write_shard(
            &path,
            &header(rows as u64),
            7,
            &f,
            &ViewMeta::all(&registry),
        )
        .unwrap();
        assert!(bytes as usize > codec::DECODE_LIMIT);
        let (_, body) = read_shard(&path).unwrap();
        let read = PortableRows::new(&layouts[0], &body.views[0].data.0).count();
        assert_eq!(read as i64, rows);
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_detected_and_named() {
        let (registry, _, f) = frozen(3);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name(3));
        write_shard(&path, &header(3), 7, &f, &ViewMeta::all(&registry)).unwrap();
        let good = fs::read(&path).unwrap();
        let damaged = dir.path().join("damaged.snap");
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            fs::write(&damaged, &bad).unwrap();
            let e = read_shard(&damaged).unwrap_err().to_string();
            assert!(e.contains("damaged.snap"), "byte {at}: {e}");
        }
        for cut in 0..good.len() {
            fs::write(&damaged, &good[..cut]).unwrap();
            let e = read_shard(&damaged).unwrap_err().to_string();
            assert!(
                e.contains("damaged.snap") && e.contains("truncated"),
                "cut {cut}: {e}"
            );
        }
    }
}
