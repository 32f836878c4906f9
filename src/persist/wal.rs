//! The write-ahead log: its file format, and reading it back at start. The writer thread,
//! group commit and the fsync policies are in [`writer`].
//!
//! The log is a series of segment files `wal/<first lsn, 20 digits>.wal`. A segment starts
//! with a header naming the feature views its records refer to (so a record stores a small
//! index, and a restore can check each view against the registry), then holds records:
//!
//! ```text
//! segment header: [magic "FGRIDWAL"][u32 version][u32 meta length][u32 CRC-32C of meta][meta]
//!                 meta = codec({ first_lsn, views: [{name, schema}] })
//! record:         [u32 payload length][u64 lsn][u32 CRC-32C of payload][u32 CRC-32C of the
//!                 16 bytes before][payload]
//!                 payload = codec([{ view index, rows in the portable form }])
//! ```
//!
//! One record is one accepted write (a whole push), with its rows for every shard: a
//! restore routes each row again by its key. The log sequence number (lsn) grows by one per
//! record. The payload checksum is computed by the HTTP worker that encodes the record; the
//! writer thread only stamps the lsn and checksums 16 bytes.
//!
//! Reading: a short or mis-checksummed record at the very end of the newest segment is a
//! write cut by a crash; it is dropped, logged, and the file truncated before it. The same
//! damage anywhere else is corruption: the start is refused with the file and the offset,
//! unless `--recover`, which drops the rest of that segment (logged) and goes on.
//!
//! The same segments, writer and reader also hold a cluster node's Raft log
//! (`raft/log/`, see [`crate::cluster::log_store`]): the magic, version, framing, group commit,
//! fsync policies, torn-tail and `--recover` handling are this module's; only the payload
//! differs (the caller's type, through [`encode_payload`] and [`read_segment`]'s `P`), and the
//! header names no views.

mod spare;
pub mod writer;

use std::fs;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::atomic::{sync_dir, Context, FileError};
use super::codec::{self, Blob, CodecError};
use super::{crc32c, ViewMeta};
use crate::grid::partition::{RowBatch, RowLayout};

use spare::{RECORDS_POOL, VIEWS_POOL};
pub use writer::{Done, OnLogged, Wal, WalOptions, WalStats, STALLED};

pub const MAGIC: [u8; 8] = *b"FGRIDWAL";
pub const FORMAT_VERSION: u32 = 2;
/// Bytes before a record's payload.
pub const RECORD_HEADER: usize = 20;
const SEGMENT_PREFIX: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("the write-ahead log cannot take writes ({reason}); writes are refused until it recovers, reads keep working")]
    Unavailable { reason: String },
    /// A write or fsync has not returned for [`writer::STALLED`] or longer (a stuck disk).
    #[error("{}", stalled_message(*.waited_secs, *.queued))]
    Stalled { waited_secs: f64, queued: bool },
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{}: offset {offset}: {problem}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        problem: String,
    },
    #[error("cannot encode a log record: {0}")]
    Encode(#[from] CodecError),
}

fn stalled_message(waited_secs: f64, queued: bool) -> String {
    let why = format!("the write-ahead log has waited {waited_secs:.1} s on the disk (a write or fsync has not returned)");
    match queued {
        false => format!("{why}: writes are refused until the disk answers, reads keep working; nothing of this write was logged"),
        true => format!("{why}: this write is queued and is applied if the disk answers, so its outcome is unknown until then; retrying it is safe (the newest event wins)"),
    }
}

/// When the log is fsynced; Redis's `appendfsync` names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    Always,
    Everysec,
    No,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<FsyncPolicy, String> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "everysec" => Ok(FsyncPolicy::Everysec),
            "no" => Ok(FsyncPolicy::No),
            other => Err(format!(
                "'{other}' is not an fsync policy: expected always, everysec or no"
            )),
        }
    }
}

/// The views a segment's records refer to by index, and its first record's lsn.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentMeta {
    pub first_lsn: u64,
    pub views: Vec<ViewMeta>,
}

/// Where a logged write goes: the online store (the shards), the offline sink, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub online: bool,
    pub offline: bool,
}

impl Destination {
    pub const ONLINE: Destination = Destination {
        online: true,
        offline: false,
    };
}

/// The rows of one view in a record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordView {
    pub view: u32,
    pub data: Blob,
}

pub fn segment_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.wal")
}

/// A segment's header bytes.
pub fn encode_segment_header(meta: &SegmentMeta) -> Result<Vec<u8>, CodecError> {
    let body = codec::encode(meta)?;
    let mut out = Vec::with_capacity(SEGMENT_PREFIX + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// One write's rows (per-shard batches, index = shard) in the portable form, one entry per view.
pub fn portable_views(per_shard: &[Vec<RowBatch>], layouts: &[RowLayout]) -> Vec<RecordView> {
    let mut views: Vec<RecordView> = Vec::new();
    for batch in per_shard.iter().flatten() {
        let at = match views.iter().position(|v| v.view as usize == batch.view) {
            Some(at) => at,
            None => {
                // Sized up front, so the encoding never grows the buffer.
                let mut data = VIEWS_POOL.take();
                data.reserve(portable_len(per_shard, batch.view));
                views.push(RecordView {
                    view: batch.view as u32,
                    data: Blob(data),
                });
                views.len() - 1
            }
        };
        if let Some(layout) = layouts.get(batch.view) {
            batch.encode_portable(layout, &mut views[at].data.0);
        }
    }
    views
}

/// Gives the buffers of views made by [`portable_views`] back to this thread once they are
/// encoded (a write to the online store only: the offline sink keeps its views).
pub fn recycle_views(views: Vec<RecordView>) {
    for view in views {
        VIEWS_POOL.give(view.data.0);
    }
}

/// At least the bytes of `view`'s rows of per-shard batches in the portable form: a portable
/// row is its batch bytes and a few length prefixes.
pub fn portable_len(per_shard: &[Vec<RowBatch>], view: usize) -> usize {
    per_shard
        .iter()
        .flatten()
        .filter(|b| b.view == view)
        .map(|b| b.data_len() + 16 * b.len())
        .sum()
}

/// About the bytes `views` take in a record: the rows, and a few bytes of framing per view.
pub fn views_len_hint(views: &[RecordView]) -> usize {
    views.iter().map(|v| v.data.0.len() + 16).sum::<usize>() + 16
}

/// The payload of a write-ahead log record: where its rows go, and the rows per view.
pub type WritePayload = (Destination, Vec<RecordView>);

/// Encodes one write as a record whose lsn is not yet stamped; the writer stamps it with
/// [`seal`]. The payload is a [`WritePayload`].
pub fn encode_record(dest: Destination, views: &[RecordView]) -> Result<Vec<u8>, CodecError> {
    encode_payload(&(dest, views), views_len_hint(views))
}

/// Keeps a logged record's buffer for the next record this thread encodes (the writer hands
/// each record back to the appender, see [`Wal::append`]), or frees it.
pub fn recycle_record(record: Vec<u8>) {
    RECORDS_POOL.give(record);
}

/// Encodes any payload as a record whose lsn is not yet stamped (the writer stamps it with
/// [`seal`]), in a buffer with room for about `len_hint` payload bytes from the start (a
/// recycled one when this thread has one); [`read_segment`] with the same type reads it back.
pub fn encode_payload<P: Serialize>(payload: &P, len_hint: usize) -> Result<Vec<u8>, CodecError> {
    let mut record = RECORDS_POOL.take();
    record.reserve(RECORD_HEADER + len_hint);
    record.resize(RECORD_HEADER, 0);
    codec::encode_into(payload, &mut record)?;
    let payload_len = (record.len() - RECORD_HEADER) as u32;
    let payload_crc = crc32c(&record[RECORD_HEADER..]);
    record[0..4].copy_from_slice(&payload_len.to_le_bytes());
    record[12..16].copy_from_slice(&payload_crc.to_le_bytes());
    Ok(record)
}

/// Stamps a record made by [`encode_record`] with its lsn and header checksum.
pub fn seal(record: &mut [u8], lsn: u64) {
    record[4..12].copy_from_slice(&lsn.to_le_bytes());
    let crc = crc32c(&record[..16]);
    record[16..20].copy_from_slice(&crc.to_le_bytes());
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A segment file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    pub path: PathBuf,
    pub first_lsn: u64,
}

/// The segments in `dir`, oldest first.
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentFile>, WalError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FileError::new(dir, "list", e).into()),
    };
    let mut segments: Vec<SegmentFile> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let first_lsn = name.strip_suffix(".wal")?.parse().ok()?;
            Some(SegmentFile {
                path: e.path(),
                first_lsn,
            })
        })
        .collect();
    segments.sort_by_key(|s| s.first_lsn);
    Ok(segments)
}

/// What reading a segment found.
#[derive(Debug)]
pub struct SegmentRead {
    pub meta: Option<SegmentMeta>,
    /// Bytes of whole, valid records (and header): the length to truncate the file to.
    pub valid_len: u64,
    pub file_len: u64,
    pub records: u64,
    pub last_lsn: Option<u64>,
    /// Why bytes after `valid_len` were dropped: a torn tail, or skipped corruption.
    pub dropped: Option<String>,
    /// Whole records (checksums good) that did not decode and were skipped (`recover`).
    pub skipped: Vec<String>,
}

/// Reads a segment, calling `on_record(lsn, meta, payload)` for each valid record in order,
/// its payload decoded as a `P` (a [`WritePayload`] for the write-ahead log).
/// `newest`: this is the last segment (a torn tail is expected there). `recover`: skip the
/// rest of a corrupt segment instead of failing.
pub fn read_segment<P: DeserializeOwned>(
    path: &Path,
    newest: bool,
    recover: bool,
    mut on_record: impl FnMut(u64, &SegmentMeta, P) -> Result<(), WalError>,
) -> Result<SegmentRead, WalError> {
    let bytes = fs::read(path).at(path, "read")?;
    let mut read = SegmentRead {
        meta: None,
        valid_len: 0,
        file_len: bytes.len() as u64,
        records: 0,
        last_lsn: None,
        dropped: None,
        skipped: Vec::new(),
    };
    let corrupt = |offset: usize, problem: String| WalError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        problem,
    };
    // The header: a crash while creating the newest segment may leave it short.
    let meta = match parse_header(&bytes) {
        Ok(meta) => meta,
        Err(problem) if newest && header_may_be_torn(&bytes) => {
            read.dropped = Some(format!("torn segment header ({problem})"));
            return Ok(read);
        }
        Err(problem) if recover => {
            read.dropped = Some(format!("unreadable segment header ({problem})"));
            return Ok(read);
        }
        Err(problem) => return Err(corrupt(0, problem)),
    };
    let mut at = SEGMENT_PREFIX + u32_at(&bytes, 12) as usize;
    read.valid_len = at as u64;
    while at < bytes.len() {
        match next_record(&bytes, at, newest) {
            Ok((lsn, end)) => {
                if lsn < meta.first_lsn || read.last_lsn.is_some_and(|last| lsn <= last) {
                    let problem = format!("record lsn {lsn} is out of order");
                    if recover {
                        read.dropped = Some(format!("offset {at}: {problem}"));
                        break;
                    }
                    return Err(corrupt(at, problem));
                }
                let payload = &bytes[at + RECORD_HEADER..end];
                match decode_payload(payload) {
                    Ok(payload) => on_record(lsn, &meta, payload)?,
                    Err(problem) if recover => read
                        .skipped
                        .push(format!("offset {at}: record {lsn} skipped: {problem}")),
                    Err(problem) => return Err(corrupt(at, format!("record {lsn} {problem}"))),
                }
                read.records += 1;
                read.last_lsn = Some(lsn);
                at = end;
                read.valid_len = at as u64;
            }
            Err(Damage::Torn(problem)) => {
                read.dropped = Some(format!("torn last record at offset {at} ({problem})"));
                break;
            }
            Err(Damage::Corrupt(problem)) if recover => {
                read.dropped = Some(format!(
                    "corruption at offset {at} ({problem}); {} bytes skipped",
                    bytes.len() - at
                ));
                break;
            }
            Err(Damage::Corrupt(problem)) => return Err(corrupt(at, problem)),
        }
    }
    read.meta = Some(meta);
    Ok(read)
}

/// A record's payload, all of it.
fn decode_payload<P: DeserializeOwned>(payload: &[u8]) -> Result<P, String> {
    let (record, used) =
        codec::decode_verified(payload).map_err(|e| format!("does not decode: {e}"))?;
    if used != payload.len() {
        return Err("has trailing bytes".into());
    }
    Ok(record)
}

/// Cuts a segment back to its valid bytes (`SegmentRead::valid_len`; removing it when none
/// are), durably.
pub fn cut_segment(path: &Path, len: u64) -> Result<(), FileError> {
    if len == 0 {
        fs::remove_file(path).at(path, "remove the empty log segment")?;
    } else {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(path)
            .at(path, "open")?;
        file.set_len(len).at(path, "truncate")?;
        super::durable::sync_all(&file).at(path, "fsync")?;
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn parse_header(bytes: &[u8]) -> Result<SegmentMeta, String> {
    if bytes.len() < SEGMENT_PREFIX {
        return Err(format!("{} bytes, shorter than the header", bytes.len()));
    }
    if bytes[0..8] != MAGIC {
        return Err("not a featgrid log segment (bad magic)".into());
    }
    let version = u32_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(format!(
            "format version {version}; this featgrid reads version {FORMAT_VERSION}"
        ));
    }
    let len = u32_at(bytes, 12) as usize;
    let Some(body) = bytes.get(SEGMENT_PREFIX..SEGMENT_PREFIX + len) else {
        return Err("the header is cut short".into());
    };
    if crc32c(body) != u32_at(bytes, 16) {
        return Err("header checksum mismatch".into());
    }
    codec::decode_verified::<SegmentMeta>(body)
        .map(|(meta, _)| meta)
        .map_err(|e| format!("the header does not decode: {e}"))
}

/// The largest segment header taken for one a crash may have cut (views' metadata; real
/// ones are kilobytes): a longer declared length is damage, not a creation cut short.
const MAX_TORN_HEADER: usize = 1 << 24;

/// A header that is a prefix of a valid one (or zeros) with nothing after it may be a
/// creation cut by a crash: a segment's header is written and fsynced before any record goes
/// in, so a damaged header followed by bytes (records) is corruption, never a torn write.
fn header_may_be_torn(bytes: &[u8]) -> bool {
    if bytes.iter().all(|&b| b == 0) {
        return true;
    }
    let prefix = bytes.len().min(8);
    if bytes[..prefix] != MAGIC[..prefix] {
        return false;
    }
    if bytes.len() < SEGMENT_PREFIX {
        return true;
    }
    let declared = u32_at(bytes, 12) as usize;
    declared <= MAX_TORN_HEADER && bytes.len() <= SEGMENT_PREFIX + declared
}

enum Damage {
    Torn(String),
    Corrupt(String),
}

/// Checks the record at `at`; answers its lsn and where it ends.
fn next_record(bytes: &[u8], at: usize, newest: bool) -> Result<(u64, usize), Damage> {
    let rest = &bytes[at..];
    let damaged = |problem: &str, at_tail: bool| {
        if newest && (at_tail || rest.iter().all(|&b| b == 0)) {
            Damage::Torn(problem.to_string())
        } else {
            Damage::Corrupt(problem.to_string())
        }
    };
    if rest.len() < RECORD_HEADER {
        return Err(damaged("short record header", true));
    }
    if crc32c(&rest[..16]) != u32_at(rest, 16) {
        return Err(damaged("record header checksum mismatch", false));
    }
    let len = u32_at(rest, 0) as usize;
    let lsn = u64::from_le_bytes(rest[4..12].try_into().unwrap_or_default());
    if rest.len() - RECORD_HEADER < len {
        return Err(damaged("record cut short", true));
    }
    let end = at + RECORD_HEADER + len;
    if crc32c(&bytes[at + RECORD_HEADER..end]) != u32_at(rest, 12) {
        return Err(damaged("record checksum mismatch", end == bytes.len()));
    }
    Ok((lsn, end))
}

#[cfg(test)]
mod tests;
