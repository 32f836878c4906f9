//! The Raft logs of a node's slot groups, and their votes, durable on the node's disk.
//!
//! One log holds every group's records: `raft/log/`, segments of the write-ahead log's format
//! written, read and recovered by its code ([`crate::persist::wal`]): the same magic, record
//! framing, group commit, `--fsync` policy, segment size (`wal_segment_bytes`), torn-tail and
//! `--recover` handling. A record's payload is `(group, `[`Op`]`)`: entries appended, a
//! truncation (a follower dropping entries a new leader overwrote), a purge (entries compacted
//! into a Raft snapshot), or a restatement (the group's whole log, see below). Reading the
//! segments back replays each group's records in order. Concurrent appends of all the groups
//! share one write and, under `always`, one fsync.
//!
//! An append is queued for the writer thread without waiting; openraft is told the entries
//! are stored (its `LogFlushed` callback) from the writer once they are where the policy
//! promises: written to the OS (so a `kill -9` loses nothing a peer counted), and fsynced
//! first under `always`. A record that cannot be written reaches the callback as an error:
//! openraft then stops that group's Raft node (this node leaves the group until restarted;
//! the others carry on), while the log itself recovers as the write-ahead log does.
//! Truncations and purges are awaited until logged.
//!
//! A purge is logged only once a whole Raft snapshot on this disk covers it
//! ([`LogStore::snapshot_kept`]). openraft purges a follower's log as soon as it starts to
//! install a snapshot from the leader, before the snapshot is on disk: such a purge waits, and
//! entries appended meanwhile are acknowledged only once the snapshot is whole. A crash in
//! between leaves the log as it was plus unacknowledged entries after a hole, which the start
//! drops ([`RaftLog::settle`]); a hole the kept snapshot covers is purged then.
//!
//! A segment is deleted once no group needs it: a group needs its records from the oldest one
//! that may hold an entry it keeps, and its last purge. A group that writes little would hold
//! on to every segment after its oldest entry; so once more than [`KEEP_SEGMENTS`] segments
//! are kept, the groups holding the oldest ones write their whole log (the purge point and
//! the entries kept) as one restatement, which supersedes their earlier records.
//!
//! The vote is a small file per group, `raft/g<group>/votes`, one fsync per change
//! ([`vote`]). Every group's log is kept in memory too (entries are handed to openraft as
//! clones).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, EntryPayload, LogState, RaftLogReader, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::persist::wal::{self, FsyncPolicy, Wal, WalError, WalStats};
use crate::sync::lock;

mod open;
#[cfg(test)]
mod tests;
mod vote;

/// Segments kept before the groups holding the oldest ones restate their logs.
pub const KEEP_SEGMENTS: usize = 4;

/// How the node's Raft log is written: the write-ahead log's settings.
#[derive(Debug, Clone, Copy)]
pub struct LogOptions {
    pub fsync: FsyncPolicy,
    pub segment_bytes: u64,
    /// `--recover`: start past damaged segments (see [`wal::read_segment`]).
    pub recover: bool,
}

/// What one record does to one group's log.
#[derive(Debug, Serialize, Deserialize)]
pub enum Op {
    Entries(Vec<Entry>),
    /// Drop every entry from this index on.
    Truncate(u64),
    /// Entries up to and including this id were applied and compacted away.
    Purge(LogId),
    /// The group's whole log: what it purged, and every entry it keeps.
    Restate {
        purged: Option<LogId>,
        entries: Vec<Entry>,
    },
    /// Entries up to and including this id are committed (see [`COMMIT_EVERY`]).
    Commit(LogId),
}

/// How often at most a group's commit index is logged. It is a hint for the next start, which
/// re-applies the committed entries after the group's snapshot at once (the rest once a leader
/// says they are committed): logging it less often never loses an entry, and logging every
/// commit would cost a write (an fsync under `always`) per entry. A commit not logged because
/// of this is logged [`COMMIT_EVERY`] later (the last one before a pause is not left out).
const COMMIT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Why the Raft log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogOpenError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("{}: {problem}", path.display())]
    File { path: PathBuf, problem: String },
}

/// A group's log as it stands (its records replayed).
#[derive(Default)]
struct GroupState {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    /// The last commit index openraft reported, and when one was last logged.
    committed: Option<LogId>,
    commit_logged_at: Option<std::time::Instant>,
    /// A commit is waiting to be logged ([`LogStore::log_commit_later`]).
    commit_pending: bool,
}

impl Op {
    /// About how many bytes the record encodes to ([`GroupBatch::encoded_len_hint`] per
    /// entry), so its buffer is sized once.
    fn encoded_len_hint(&self) -> usize {
        let entries = match self {
            Op::Entries(list) | Op::Restate { entries: list, .. } => list.as_slice(),
            Op::Truncate(_) | Op::Purge(_) | Op::Commit(_) => &[],
        };
        entries
            .iter()
            .map(|e| match &e.payload {
                EntryPayload::Normal(batch) => 48 + batch.encoded_len_hint(),
                _ => 256,
            })
            .sum::<usize>()
            + 64
    }
}

impl GroupState {
    fn apply(&mut self, op: Op) {
        match op {
            Op::Entries(list) => {
                for e in list {
                    self.entries.insert(e.log_id.index, e);
                }
            }
            Op::Truncate(since) => {
                self.entries.split_off(&since);
            }
            Op::Purge(id) => {
                self.entries = self.entries.split_off(&(id.index + 1));
                self.last_purged = Some(id);
            }
            Op::Restate { purged, entries } => {
                self.entries = entries.into_iter().map(|e| (e.log_id.index, e)).collect();
                self.last_purged = purged;
            }
            Op::Commit(id) => self.committed = self.committed.max(Some(id)),
        }
    }

    /// The commit index as far as this log can vouch for it: one whose entry is in the log as
    /// committed, or at or below the purge point; anything else (entries lost with a power cut
    /// under a lax `--fsync`, or dropped by `--recover`) is forgotten, and the leader tells again.
    fn checked_committed(&self) -> Option<LogId> {
        let committed = self.committed?;
        let covered = self.last_purged.is_some_and(|p| p.index >= committed.index);
        let logged = self
            .entries
            .get(&committed.index)
            .is_some_and(|e| e.log_id == committed);
        (covered || logged).then_some(committed)
    }
}

/// A group's purges waiting for a whole Raft snapshot to cover them.
#[derive(Default)]
struct Deferred {
    /// The last index the whole Raft snapshot kept here covers.
    covered: Option<u64>,
    /// A purge asked for beyond `covered`: logged once a snapshot covers it.
    purge: Option<LogId>,
    /// Appends logged while `purge` waits: acknowledged once it is covered.
    held: Vec<Box<dyn FnOnce() + Send>>,
}

/// Which of a group's logged records it still needs (by lsn).
#[derive(Debug, Default)]
struct Pins {
    /// Records that may hold entries the group keeps: lsn -> the last index they hold.
    records: BTreeMap<u64, u64>,
    /// The group's last purge or restatement.
    purge: Option<u64>,
}

/// What a logged record changes in its group's [`Pins`].
#[derive(Debug, Clone, Copy)]
enum Pin {
    Nothing,
    Entries { last: u64 },
    Purge { index: u64 },
    Restate { last: Option<u64> },
}

impl Pin {
    fn of(op: &Op) -> Pin {
        match op {
            Op::Entries(list) => match list.last() {
                Some(e) => Pin::Entries {
                    last: e.log_id.index,
                },
                None => Pin::Nothing,
            },
            Op::Truncate(_) | Op::Commit(_) => Pin::Nothing,
            Op::Purge(id) => Pin::Purge { index: id.index },
            Op::Restate { entries, .. } => Pin::Restate {
                last: entries.last().map(|e| e.log_id.index),
            },
        }
    }
}

impl Pins {
    /// Notes a record logged at `lsn`, in lsn order. A truncation pins nothing: it follows the
    /// records it truncates, and segments are only deleted from the oldest on.
    fn note(&mut self, lsn: u64, pin: Pin) {
        match pin {
            Pin::Nothing => {}
            Pin::Entries { last } => {
                self.records.insert(lsn, last);
            }
            Pin::Purge { index } => {
                self.records.retain(|_, last| *last > index);
                self.purge = Some(lsn);
            }
            Pin::Restate { last } => {
                self.records.clear();
                if let Some(last) = last {
                    self.records.insert(lsn, last);
                }
                self.purge = Some(lsn);
            }
        }
    }

    /// The oldest lsn the group needs; `None`: nothing logged is needed.
    fn needed_from(&self) -> Option<u64> {
        let oldest = self.records.keys().next().copied();
        oldest.into_iter().chain(self.purge).min()
    }
}

struct Group {
    /// Held while a record of the group is queued and applied, so that the group's records
    /// are queued in the order its state changes.
    state: Mutex<GroupState>,
    /// What a whole snapshot covers, and what waits for one (never locked with `state` held).
    deferred: Mutex<Deferred>,
    /// Updated by the writer thread once a record is logged (never while queueing).
    pins: Mutex<Pins>,
    vote_file: Mutex<vote::VoteFile>,
}

struct Shared {
    wal: Wal,
    groups: Vec<Group>,
    /// Held while segments are deleted ([`RaftLog::tidy`] runs on blocking threads).
    tidying: Mutex<()>,
}

/// The node's Raft log: every group's records. Cheap to clone.
#[derive(Clone)]
pub struct RaftLog {
    shared: Arc<Shared>,
}

/// One group's log (openraft's storage of it); clones share it (openraft reads through a
/// clone while it appends).
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
    group: usize,
}

fn write_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_logs(AnyError::error(e.to_string())).into()
}

impl RaftLog {
    /// The log of `group` (below the number of groups it was opened with).
    pub fn store(&self, group: usize) -> LogStore {
        LogStore {
            shared: self.shared.clone(),
            group,
        }
    }

    /// Whether `group` has any Raft state here: a vote, entries, or a purge (a snapshot).
    pub fn has_state(&self, group: usize) -> bool {
        let state = lock(&self.shared.groups[group].state);
        state.vote.is_some() || !state.entries.is_empty() || state.last_purged.is_some()
    }

    /// The index of `group`'s last entry (or of its purge point), if any.
    pub fn last_index(&self, group: usize) -> Option<u64> {
        let state = lock(&self.shared.groups[group].state);
        let last = state.entries.keys().next_back().copied();
        last.or(state.last_purged.map(|l| l.index))
    }

    /// The last index `group` purged (compacted into a snapshot), if any.
    pub fn purged(&self, group: usize) -> Option<u64> {
        lock(&self.shared.groups[group].state)
            .last_purged
            .map(|l| l.index)
    }

    /// Squares `group`'s log with the whole Raft snapshot kept here (`snapshot`, its last log
    /// id) before the group starts. A purge past it means the log lost entries no snapshot
    /// holds (damage, deleted files): refused. A hole in the entries that the snapshot covers
    /// (a purge deferred while a snapshot from the leader was being installed, see
    /// [`LogStore::snapshot_kept`]) is purged; entries after any other hole were never
    /// acknowledged (appends wait for the deferred purge), or `--recover` skipped what was
    /// between: they are truncated. Both are logged, so a later append cannot resurrect them.
    pub fn settle(&self, group: usize, snapshot: Option<LogId>) -> Result<(), String> {
        let store = self.store(group);
        store.deferred().covered = snapshot.map(|s| s.index);
        let (purge, truncate) = {
            let state = store.lock();
            if let Some(purged) = state.last_purged {
                if snapshot.map(|s| s.index) < Some(purged.index) {
                    return Err(format!(
                        "the Raft log is purged up to index {}, but no whole Raft snapshot covers it (the newest covers {:?})",
                        purged.index,
                        snapshot.map(|s| s.index)
                    ));
                }
            }
            let hole = first_hole(
                state.entries.keys().copied(),
                state.last_purged.map(|p| p.index),
            );
            match (hole, snapshot) {
                (None, _) => (None, None),
                (Some(at), Some(s)) if s.index + 1 >= at => {
                    let after = state.entries.range(s.index + 1..).map(|(i, _)| *i);
                    (Some(s), first_hole(after, Some(s.index)))
                }
                (Some(at), _) => (None, Some(at)),
            }
        };
        if let Some(s) = purge {
            tracing::info!(
                group,
                upto = s.index,
                "raft log: a hole the kept snapshot covers is purged"
            );
            store
                .write(|_| Op::Purge(s), |_| {})
                .map_err(|e| e.to_string())?;
        }
        if let Some(at) = truncate {
            let dropped = store.lock().entries.range(at..).count();
            tracing::warn!(
                group,
                at,
                dropped,
                "raft log entries after a hole dropped (never acknowledged, or skipped by --recover)"
            );
            store
                .write(|_| Op::Truncate(at), |_| {})
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    pub fn stats(&self) -> WalStats {
        self.shared.wal.stats()
    }

    /// How long the oldest write or fsync of the log in progress has waited on the disk.
    pub fn disk_wait(&self) -> Option<std::time::Duration> {
        self.shared.wal.disk_wait()
    }

    /// Writes what is queued, fsyncs and stops the writer (at shutdown, after the Raft
    /// nodes). Blocking.
    pub fn close(&self) {
        self.shared.wal.close();
    }

    /// Deletes the segments no group needs; when more than [`KEEP_SEGMENTS`] are still kept,
    /// has the groups holding the older ones restate their logs (the next tidy deletes them).
    /// Failures are logged: nothing is lost, the disk is only not reclaimed yet.
    fn tidy(&self) {
        let shared = &self.shared;
        let _one_at_a_time = lock(&shared.tidying);
        let needs: Vec<Option<u64>> = shared
            .groups
            .iter()
            .map(|g| lock(&g.pins).needed_from())
            .collect();
        let upto = needs
            .iter()
            .flatten()
            .min()
            .copied()
            .unwrap_or_else(|| shared.wal.covered_lsn());
        match shared.wal.delete_covered(upto) {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "raft log segments deleted"),
            Err(e) => tracing::warn!(error = %e, "cannot delete raft log segments"),
        }
        let segments = shared.wal.segments();
        let Some(bound) = segments
            .len()
            .checked_sub(KEEP_SEGMENTS)
            .and_then(|at| segments.get(at))
            .map(|s| s.first_lsn)
        else {
            return;
        };
        for (group, need) in needs.iter().enumerate() {
            if need.is_some_and(|lsn| lsn < bound) {
                if let Err(e) = self.store(group).restate() {
                    tracing::warn!(group, error = %e, "cannot restate a raft log");
                }
            }
        }
    }
}

impl LogStore {
    /// Queues the record `make` builds from the group's state for the writer, and applies it
    /// to that state, under the group's lock (so records are queued in the order the state
    /// changes). Once it is logged, the writer notes it in the group's pins and calls `done`
    /// with its lsn (or the write's error).
    fn write(
        &self,
        make: impl FnOnce(&GroupState) -> Op,
        done: impl FnOnce(Result<u64, WalError>) + Send + 'static,
    ) -> Result<(), WalError> {
        let mut state = self.lock();
        let op = make(&state);
        let record = wal::encode_payload(&(self.group as u32, &op), op.encoded_len_hint())?;
        let pin = Pin::of(&op);
        let shared = self.shared.clone();
        let group = self.group;
        self.shared.wal.submit(
            record,
            Box::new(move |logged| {
                if let Ok(lsn) = logged {
                    lock(&shared.groups[group].pins).note(lsn, pin);
                }
                done(logged);
            }),
        )?;
        // A restatement is the state as it is: nothing to apply.
        if !matches!(op, Op::Restate { .. }) {
            state.apply(op);
        }
        Ok(())
    }

    /// [`LogStore::write`], then waits until the record is logged.
    async fn write_logged(&self, op: Op) -> Result<u64, WalError> {
        let (tx, rx) = oneshot::channel();
        self.write(
            |_| op,
            move |logged| {
                let _ = tx.send(logged);
            },
        )?;
        rx.await.map_err(|_| WalError::Unavailable {
            reason: "the raft log closed".into(),
        })?
    }

    /// Queues appended entries (readable at once); `done` runs once they are logged, and
    /// while a purge waits for a snapshot, once that snapshot is whole.
    fn push(
        &self,
        list: Vec<Entry>,
        done: impl FnOnce(std::io::Result<()>) + Send + 'static,
    ) -> Result<(), WalError> {
        let store = self.clone();
        self.write(
            |_| Op::Entries(list),
            move |logged| {
                if logged.is_ok() {
                    let mut deferred = store.deferred();
                    if deferred.purge.is_some() {
                        deferred.held.push(Box::new(move || done(Ok(()))));
                        return;
                    }
                }
                done(logged.map(|_| ()).map_err(std::io::Error::other))
            },
        )
    }

    /// Queues the group's whole log as one record, superseding its earlier ones.
    fn restate(&self) -> Result<(), WalError> {
        let group = self.group;
        let make = |state: &GroupState| Op::Restate {
            purged: state.last_purged,
            entries: state.entries.values().cloned().collect(),
        };
        self.write(make, move |logged| {
            if let Ok(lsn) = logged {
                tracing::debug!(group, lsn, "raft log restated");
            }
        })?;
        // The records it supersedes may hold the last commit record.
        let committed = self.lock().committed;
        match committed {
            Some(id) => self.write(|_| Op::Commit(id), |_| {}),
            None => Ok(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GroupState> {
        lock(&self.shared.groups[self.group].state)
    }

    fn deferred(&self) -> MutexGuard<'_, Deferred> {
        lock(&self.shared.groups[self.group].deferred)
    }

    /// A whole Raft snapshot up to `last` is on disk: a purge it covers that was waiting is
    /// logged now (and the segments it frees deleted), and the appends held behind it are
    /// acknowledged. Blocking (call it where the snapshot was kept, off the Raft cores).
    pub fn snapshot_kept(&self, last: Option<LogId>) {
        let Some(last) = last else { return };
        let (purge, held) = {
            let mut deferred = self.deferred();
            deferred.covered = deferred.covered.max(Some(last.index));
            match deferred.purge {
                Some(p) if p.index <= last.index => {
                    (deferred.purge.take(), std::mem::take(&mut deferred.held))
                }
                _ => (None, Vec::new()),
            }
        };
        for ack in held {
            ack();
        }
        let Some(purge) = purge else { return };
        let (tx, rx) = std::sync::mpsc::channel();
        let queued = self.write(
            |_| Op::Purge(purge),
            move |logged| {
                let _ = tx.send(logged);
            },
        );
        match queued.map(|()| rx.recv()) {
            Ok(Ok(Ok(_))) => RaftLog {
                shared: self.shared.clone(),
            }
            .tidy(),
            // Nothing is lost: the entries stay logged and the next purge tries again.
            Ok(Ok(Err(e))) | Err(e) => {
                tracing::warn!(group = self.group, error = %e, "a deferred raft log purge is not logged")
            }
            Ok(Err(_)) => {}
        }
    }

    /// Logs the group's commit index [`COMMIT_EVERY`] from now (one such wait at a time).
    fn log_commit_later(&self) {
        let store = self.clone();
        // openraft runs the Raft cores as tokio tasks outside actix's local task set.
        tokio::spawn(async move {
            tokio::time::sleep(COMMIT_EVERY).await;
            let committed = {
                let mut state = store.lock();
                state.commit_pending = false;
                state.commit_logged_at = Some(std::time::Instant::now());
                state.committed
            };
            if let Some(id) = committed {
                if let Err(e) = store.write(|_| Op::Commit(id), |_| {}) {
                    tracing::debug!(group = store.group, error = %e, "commit index not logged");
                }
            }
        });
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
        let state = self.lock();
        let last = state.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: state.last_purged,
            last_log_id: last.or(state.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        // The fsyncs run on a blocking thread: the Raft cores (and their heartbeats) share
        // the thread this is called on. openraft saves one vote at a time per group.
        let (shared, group, saved) = (self.shared.clone(), self.group, *vote);
        actix_rt::task::spawn_blocking(move || {
            let mut file = shared.groups[group]
                .vote_file
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            file.save(&saved)
        })
        .await
        .map_err(|e| StorageError::from(StorageIOError::write_vote(AnyError::error(e))))?
        .map_err(|e| StorageError::from(StorageIOError::write_vote(AnyError::error(e))))?;
        self.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let (due, later) = {
            let mut state = self.lock();
            state.committed = committed.max(state.committed);
            let due = state
                .commit_logged_at
                .is_none_or(|at| at.elapsed() >= COMMIT_EVERY);
            if due {
                state.commit_logged_at = Some(std::time::Instant::now());
            }
            let later = !due && !std::mem::replace(&mut state.commit_pending, true);
            (due.then_some(state.committed).flatten(), later)
        };
        if let Some(id) = due {
            // Not awaited: a hint, queued like an append; a failed write shows on the next one.
            self.write(|_| Op::Commit(id), |_| {}).map_err(write_err)?;
        }
        if later {
            self.log_commit_later();
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().checked_committed())
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
        // When the record cannot even be queued, `push` dropped the callback: the error
        // returned stops the Raft node as a failed write would.
        self.push(entries.into_iter().collect(), move |r| {
            callback.log_io_completed(r)
        })
        .map_err(write_err)
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write_logged(Op::Truncate(log_id.index))
            .await
            .map_err(write_err)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        {
            let mut deferred = self.deferred();
            if deferred.covered < Some(log_id.index) {
                tracing::info!(
                    group = self.group,
                    upto = log_id.index,
                    "raft log purge deferred until a whole snapshot covers it"
                );
                deferred.purge = deferred.purge.max(Some(log_id));
                return Ok(());
            }
        }
        self.write_logged(Op::Purge(log_id))
            .await
            .map_err(write_err)?;
        // Deleting segments fsyncs and unlinks: off the Raft cores' thread.
        let log = RaftLog {
            shared: self.shared.clone(),
        };
        actix_rt::task::spawn_blocking(move || log.tidy());
        Ok(())
    }
}

/// The index of the first entry that does not follow the one before it (or `after`, the
/// purge point), if any.
fn first_hole(indexes: impl Iterator<Item = u64>, after: Option<u64>) -> Option<u64> {
    let mut expect = after.map(|a| a + 1);
    for index in indexes {
        if expect.is_some_and(|e| e != index) {
            return Some(index);
        }
        expect = Some(index + 1);
    }
    None
}

/// The directory of group `group`'s vote (and its state machine's files).
pub fn group_dir(raft_dir: &Path, group: usize) -> PathBuf {
    raft_dir.join(format!("g{group}"))
}
