//! A slot group's Raft log and vote, durable on the node's disk.
//!
//! `raft/g<group>/log` is an append-only file of frames, the write-ahead log's record framing
//! without the lsn: `[u32 payload length][u32 CRC-32C of payload][payload]`, the payload one
//! [`LogRecord`] in the codec's format: appended entries, a truncation (a follower dropping
//! entries a new leader overwrote) or a purge. Reading it back replays the records in order.
//! As in the write-ahead log, a frame cut short or mis-checksummed at the very end is an
//! append cut by a crash (never acknowledged: the append's callback runs after the write) and
//! is cut off; the same damage before the end refuses the start, naming file and offset.
//!
//! Appends are written to the OS before openraft is told they are stored, so a `kill -9`
//! loses nothing a peer counted; under `fsync = always` they are fsynced first, under
//! `everysec` within about a second (by a syncer thread, [`sync_every_second`]), under `no`
//! when the OS likes.
//! The vote is one small file written atomically (temp file, fsync, rename). A purge (after a
//! Raft snapshot) rewrites the file atomically with the entries it keeps, so it stays small.
//! The whole log is kept in memory too (entries are shared with openraft as clones).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, RaftLogReader, StorageIOError};
use serde::{Deserialize, Serialize};

use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::persist::atomic::write_atomic;
use crate::persist::codec;
use crate::persist::crc32c;
use crate::persist::wal::FsyncPolicy;

const FRAME_HEADER: usize = 8;

/// One frame of the log file.
#[derive(Debug, Serialize, Deserialize)]
enum LogRecord {
    Entries(Vec<Entry>),
    /// Drop every entry from this index on.
    Truncate(u64),
    /// Entries up to and including this id were applied and compacted away.
    Purge(LogId),
}

/// Why a group's log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct LogOpenError {
    pub path: PathBuf,
    pub problem: String,
}

struct Inner {
    path: PathBuf,
    vote_path: PathBuf,
    file: File,
    fsync: FsyncPolicy,
    /// Written since the last fsync.
    dirty: bool,
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
}

/// A group's log; clones share it (openraft reads through a clone while it appends).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn write_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_logs(AnyError::error(e.to_string())).into()
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, replaying what it holds.
    pub fn open(dir: &Path, fsync: FsyncPolicy) -> Result<LogStore, LogOpenError> {
        let failed = |path: &Path, problem: String| LogOpenError {
            path: path.to_path_buf(),
            problem,
        };
        std::fs::create_dir_all(dir).map_err(|e| failed(dir, format!("cannot create: {e}")))?;
        let path = dir.join("log");
        let vote_path = dir.join("vote");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(failed(&path, format!("cannot read: {e}"))),
        };
        let mut entries = BTreeMap::new();
        let mut last_purged = None;
        let mut at = 0;
        while at < bytes.len() {
            let rest = &bytes[at..];
            let torn = |problem: &str| format!("offset {at}: {problem}");
            if rest.len() < FRAME_HEADER {
                tracing::warn!(path = %path.display(), offset = at, "raft log: torn last frame dropped");
                break;
            }
            let len = u32::from_le_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
            let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
            let Some(payload) = rest.get(FRAME_HEADER..FRAME_HEADER + len) else {
                tracing::warn!(path = %path.display(), offset = at, "raft log: torn last frame dropped");
                break;
            };
            let at_end = at + FRAME_HEADER + len == bytes.len();
            if crc32c(payload) != crc {
                if at_end {
                    tracing::warn!(path = %path.display(), offset = at, "raft log: torn last frame dropped");
                    break;
                }
                return Err(failed(&path, torn("frame checksum mismatch")));
            }
            let (record, _): (LogRecord, usize) = codec::decode_verified(payload)
                .map_err(|e| failed(&path, torn(&format!("frame does not decode: {e}"))))?;
            match record {
                LogRecord::Entries(list) => {
                    for e in list {
                        entries.insert(e.log_id.index, e);
                    }
                }
                LogRecord::Truncate(since) => {
                    entries.split_off(&since);
                }
                LogRecord::Purge(id) => {
                    entries = entries.split_off(&(id.index + 1));
                    last_purged = Some(id);
                }
            }
            at += FRAME_HEADER + len;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| failed(&path, format!("cannot open: {e}")))?;
        if at < bytes.len() {
            file.set_len(at as u64)
                .and_then(|_| file.sync_all())
                .map_err(|e| failed(&path, format!("cannot cut the torn tail: {e}")))?;
        }
        file.flush().ok();
        let vote = match std::fs::read(&vote_path) {
            Ok(b) => Some(
                serde_json::from_slice(&b)
                    .map_err(|e| failed(&vote_path, format!("does not parse: {e}")))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(failed(&vote_path, format!("cannot read: {e}"))),
        };
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                path,
                vote_path,
                file,
                fsync,
                dirty: false,
                entries,
                last_purged,
                vote,
            })),
        })
    }

    /// Writes appended entries (to the OS, fsynced as the policy says), then keeps them.
    fn store(&self, list: Vec<Entry>) -> Result<(), String> {
        let mut inner = self.lock();
        inner.write(&LogRecord::Entries(list.clone()))?;
        for e in list {
            inner.entries.insert(e.log_id.index, e);
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One record as a frame.
fn frame(record: &LogRecord) -> Result<Vec<u8>, String> {
    let payload = codec::encode(record).map_err(|e| e.to_string())?;
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32c(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

impl Inner {
    /// Rewrites the file with what it holds now (the purge point and the entries after it),
    /// atomically, and appends to the new file from then on.
    fn compact(&mut self) -> Result<(), String> {
        let mut bytes = Vec::new();
        if let Some(purged) = self.last_purged {
            bytes.extend(frame(&LogRecord::Purge(purged))?);
        }
        let entries: Vec<Entry> = self.entries.values().cloned().collect();
        if !entries.is_empty() {
            bytes.extend(frame(&LogRecord::Entries(entries))?);
        }
        write_atomic(&self.path, &bytes).map_err(|e| e.to_string())?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| format!("{}: reopen: {e}", self.path.display()))?;
        Ok(())
    }

    /// Appends one frame; written to the OS (and fsynced as the policy says) on return.
    fn write(&mut self, record: &LogRecord) -> Result<(), String> {
        let frame = frame(record)?;
        let path = self.path.display().to_string();
        self.file
            .write_all(&frame)
            .map_err(|e| format!("{path}: {e}"))?;
        if self.fsync == FsyncPolicy::Always {
            self.file
                .sync_data()
                .map_err(|e| format!("{path}: fsync: {e}"))?;
        } else {
            self.dirty = true;
        }
        Ok(())
    }
}

/// Under `fsync = everysec`: a thread that fsyncs every log written to in the last second,
/// until the logs are gone. A failed fsync is logged and tried again a second later.
pub fn sync_every_second(stores: &[LogStore]) {
    let logs: Vec<Weak<Mutex<Inner>>> = stores.iter().map(|s| Arc::downgrade(&s.inner)).collect();
    let spawned = std::thread::Builder::new()
        .name("featgrid-raft-sync".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let mut alive = false;
            for log in &logs {
                let Some(inner) = log.upgrade() else { continue };
                alive = true;
                // The fsync runs outside the lock, on a handle of the same file.
                let handle = {
                    let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
                    if !std::mem::take(&mut inner.dirty) {
                        continue;
                    }
                    inner.file.try_clone()
                };
                if let Err(e) = handle.and_then(|file| file.sync_data()) {
                    tracing::error!(error = %e, "raft log fsync failed; trying again in a second");
                    inner.lock().unwrap_or_else(|p| p.into_inner()).dirty = true;
                }
            }
            if !alive {
                return;
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the raft log syncer");
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self
            .lock()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.lock();
        let last = inner.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let bytes = serde_json::to_vec(vote).map_err(write_err)?;
        write_atomic(&inner.vote_path, &bytes)
            .map_err(|e| StorageError::from(StorageIOError::write_vote(AnyError::error(e))))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        match self.store(entries.into_iter().collect()) {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.clone())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner
            .write(&LogRecord::Truncate(log_id.index))
            .map_err(write_err)?;
        inner.entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.write(&LogRecord::Purge(log_id)).map_err(write_err)?;
        inner.entries = inner.entries.split_off(&(log_id.index + 1));
        inner.last_purged = Some(log_id);
        // The purged entries are in a snapshot: drop them from the file too. Purges come once
        // per Raft snapshot, and what is rewritten is the few entries kept after it.
        inner.compact().map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 0), index),
            payload: EntryPayload::Blank,
        }
    }

    async fn append(store: &mut LogStore, list: Vec<Entry>) {
        store.store(list).unwrap();
    }

    #[actix_rt::test]
    async fn entries_truncations_purges_and_the_vote_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path(), FsyncPolicy::Always).unwrap();
        append(&mut store, (1..=5).map(|i| entry(1, i)).collect()).await;
        store.truncate(entry(1, 4).log_id).await.unwrap();
        append(&mut store, vec![entry(2, 4)]).await;
        store.purge(entry(1, 1).log_id).await.unwrap();
        store.save_vote(&Vote::new(2, 1)).await.unwrap();
        append(&mut store, vec![entry(2, 5)]).await;
        store.truncate(entry(2, 5).log_id).await.unwrap();
        drop(store);
        let mut again = LogStore::open(dir.path(), FsyncPolicy::Always).unwrap();
        let all = again.try_get_log_entries(..).await.unwrap();
        let ids: Vec<_> = all
            .iter()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect();
        assert_eq!(ids, vec![(1, 2), (1, 3), (2, 4)]);
        let state = again.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(entry(1, 1).log_id));
        assert_eq!(state.last_log_id, Some(entry(2, 4).log_id));
        assert_eq!(again.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
    }

    #[actix_rt::test]
    async fn a_torn_last_frame_is_cut_and_damage_before_the_end_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path(), FsyncPolicy::No).unwrap();
        append(&mut store, vec![entry(1, 1)]).await;
        append(&mut store, vec![entry(1, 2)]).await;
        drop(store);
        let path = dir.path().join("log");
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        let mut again = LogStore::open(dir.path(), FsyncPolicy::No).unwrap();
        assert_eq!(again.try_get_log_entries(..).await.unwrap().len(), 1);
        // Appends after the cut land where the torn frame was.
        append(&mut again, vec![entry(1, 2)]).await;
        drop(again);
        let mut bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), full.len());
        bytes[FRAME_HEADER + 1] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let e = LogStore::open(dir.path(), FsyncPolicy::No).err().unwrap();
        assert!(
            e.to_string().contains("offset 0: frame checksum mismatch"),
            "{e}"
        );
    }
}
