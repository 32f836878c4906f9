//! A slot group's state machine: the node's shard partitions, restricted to the group's slots.
//!
//! The Raft log is the replica's only log. A committed entry is applied to the shards in
//! memory ([`Replica::apply_batch`]; offline rows go on to the offline sink through the node's
//! write-ahead log, the sink's queue); nothing else is written per entry. What was applied is
//! known from the group's newest Raft snapshot: a snapshot file in the shards' own format
//! ([`crate::persist::snapshot`]: header, checksums, every view's rows in the portable form)
//! holding the group's rows, taken from frozen copies of the shards: header shard = group,
//! sequence = the last log index it covers. It is kept as `raft/g<group>/snapshot-<index>.snap`
//! with its Raft metadata in `snapshot-<index>.meta` (both written atomically and fsynced
//! before openraft is told it exists, so the log is only ever purged below a durable snapshot;
//! the older pair is deleted only then; a pair that does not match is skipped at start for the
//! one before it).
//!
//! Recovery is the newest snapshot, then the log: at start the snapshot's rows are applied and
//! `applied` is its last log id; openraft re-applies the committed entries after it (the log
//! remembers how far it committed, see [`super::log_store`]) and the rest once a leader says
//! they are committed. Re-applying is harmless: newest event wins, and a label view's last
//! write is the last entry applied, which the replay applies last too.
//!
//! Installing a snapshot from the leader checks it like any snapshot file, keeps it, and
//! applies its rows as a write (views matched by name and schema), which gives the leader's
//! state (rows are never deleted).

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, Snapshot, StorageIOError};

use super::local::{split_by_group, Replica};
use super::log_store::LogStore;
use super::topology::Topology;
use super::types::{
    Entry, GroupWrite, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::grid::partition::{FrozenPartition, PortableRows, RowLayout};
use crate::persist::atomic::write_atomic;
use crate::persist::codec::Blob;
use crate::persist::snapshot::{self, Body, Header, ViewSection};
use crate::persist::wal::{Destination, RecordView};
use crate::persist::ViewMeta;

/// The file in which earlier versions kept the last applied log id (the snapshot holds it now).
const LEGACY_MARKER: &str = "applied";

/// Where a group's Raft snapshots are kept: a pair of files per snapshot, named by the last log
/// index it covers (`snapshot-<index>.snap` with its rows, `snapshot-<index>.meta` with its Raft
/// metadata), each written atomically. A new pair is complete on disk before the older pairs
/// are deleted, so a crash at any point leaves a complete pair covering at least what the log
/// was purged to (openraft purges only once the snapshot is built, i.e. kept). A snapshot built
/// here and one installed from the leader may be kept concurrently: one lock orders keeping,
/// deleting and reading, and a snapshot older than the one kept is never kept over it.
#[derive(Clone)]
struct SnapshotFiles {
    dir: PathBuf,
    /// The metadata of the snapshot kept (the newest), under the lock that orders the files.
    kept: Arc<Mutex<Option<SnapshotMeta>>>,
    /// The group's Raft log, told when a snapshot is whole (its purges wait for one).
    log: LogStore,
}

/// The pair of files of earlier builds (one pair per group, overwritten in place).
const LEGACY_PAIR: (&str, &str) = ("snapshot.snap", "snapshot.meta");

impl SnapshotFiles {
    fn in_dir(dir: &std::path::Path, log: LogStore) -> SnapshotFiles {
        SnapshotFiles {
            dir: dir.to_path_buf(),
            kept: Arc::new(Mutex::new(None)),
            log,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<SnapshotMeta>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The metadata of the snapshot kept, if any.
    fn current(&self) -> Option<SnapshotMeta> {
        self.lock().clone()
    }

    fn pair(&self, index: u64) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("snapshot-{index:020}.snap")),
            self.dir.join(format!("snapshot-{index:020}.meta")),
        )
    }

    /// The snapshot pairs in the directory, newest first (the legacy pair last).
    fn pairs(&self) -> Vec<(PathBuf, PathBuf)> {
        let mut indexes: Vec<u64> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("snapshot-")?
                    .strip_suffix(".meta")?
                    .parse()
                    .ok()
            })
            .collect();
        indexes.sort_unstable_by(|a, b| b.cmp(a));
        let mut pairs: Vec<_> = indexes.into_iter().map(|i| self.pair(i)).collect();
        pairs.push((self.dir.join(LEGACY_PAIR.0), self.dir.join(LEGACY_PAIR.1)));
        pairs
    }

    /// Keeps `bytes` (a checked snapshot file) and its metadata as the current snapshot, then
    /// deletes the older pairs; a snapshot older than the one kept is not kept (the newer one
    /// covers more). Blocking.
    fn keep(&self, meta: &SnapshotMeta, bytes: &[u8]) -> Result<(), String> {
        let mut kept = self.lock();
        let index = meta.last_log_id.map_or(0, |l| l.index);
        if kept
            .as_ref()
            .is_some_and(|k| k.last_log_id.map_or(0, |l| l.index) > index)
        {
            return Ok(());
        }
        let (file, meta_file) = self.pair(index);
        write_atomic(&file, bytes).map_err(|e| e.to_string())?;
        let encoded = serde_json::to_vec(meta).map_err(|e| e.to_string())?;
        write_atomic(&meta_file, &encoded).map_err(|e| e.to_string())?;
        *kept = Some(meta.clone());
        let mut deleted = false;
        for (old_file, old_meta) in self.pairs() {
            if old_file != file {
                for path in [old_meta, old_file] {
                    match std::fs::remove_file(&path) {
                        Ok(()) => deleted = true,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            tracing::warn!(file = %path.display(), error = %e, "cannot delete an older raft snapshot")
                        }
                    }
                }
            }
        }
        if deleted {
            crate::persist::atomic::sync_dir(&self.dir).map_err(|e| e.to_string())?;
        }
        drop(kept);
        self.log.snapshot_kept(meta.last_log_id);
        Ok(())
    }

    /// The newest whole snapshot whose pair matches, now the one kept: its metadata and rows.
    /// Blocking.
    fn load(&self) -> Option<(SnapshotMeta, Body)> {
        let mut kept = self.lock();
        for (file, meta_file) in self.pairs() {
            let Ok(meta) = std::fs::read(&meta_file) else {
                continue;
            };
            let meta: SnapshotMeta = match serde_json::from_slice(&meta) {
                Ok(meta) => meta,
                Err(e) => {
                    tracing::warn!(file = %meta_file.display(), error = %e, "raft snapshot ignored: its metadata does not parse");
                    continue;
                }
            };
            let bytes = match std::fs::read(&file) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "raft snapshot ignored");
                    continue;
                }
            };
            match snapshot::parse_file(&file, &bytes) {
                Ok((header, body)) if Some(header.seq) == meta.last_log_id.map(|l| l.index) => {
                    *kept = Some(meta.clone());
                    return Some((meta, body));
                }
                Ok(_) => {
                    tracing::warn!(file = %file.display(), "raft snapshot ignored: it does not match its metadata")
                }
                Err(e) => tracing::warn!(error = %e, "raft snapshot ignored"),
            }
        }
        None
    }

    /// The snapshot kept, its metadata and rows file, if any. Blocking.
    fn read(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, String> {
        let kept = self.lock();
        let Some(meta) = kept.as_ref() else {
            return Ok(None);
        };
        let (file, _) = self.pair(meta.last_log_id.map_or(0, |l| l.index));
        let bytes = self.read_file(&file)?;
        Ok(Some((meta.clone(), bytes)))
    }

    fn read_file(&self, file: &std::path::Path) -> Result<Vec<u8>, String> {
        match std::fs::read(file) {
            Ok(bytes) => Ok(bytes),
            // A snapshot kept by an earlier build, not replaced yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let legacy = self.dir.join(LEGACY_PAIR.0);
                std::fs::read(&legacy).map_err(|e| format!("{}: {e}", legacy.display()))
            }
            Err(e) => Err(format!("{}: {e}", file.display())),
        }
    }
}

/// The state machine of group `group` on this node.
pub struct GroupMachine {
    group: usize,
    local: Replica,
    topology: Arc<Topology>,
    applied: Option<LogId>,
    membership: StoredMembership,
    files: SnapshotFiles,
}

fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

/// Runs `work` (file I/O, fsyncs, encoding or checking a snapshot) on a blocking thread: the
/// thread this is awaited on drives every group's Raft core, heartbeats included, and a
/// snapshot of any size must not delay them into an election.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    actix_rt::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(format!("a blocking task failed: {e}")))
}

impl GroupMachine {
    /// The machine of `group`, its files in `dir`: the kept snapshot's rows are applied to the
    /// shards and `applied` is where it ends (nothing applied without one).
    pub async fn open(
        group: usize,
        dir: PathBuf,
        local: Replica,
        topology: Arc<Topology>,
        log: LogStore,
    ) -> Result<GroupMachine, String> {
        let files = SnapshotFiles::in_dir(&dir, log);
        let mut machine = GroupMachine {
            group,
            local,
            topology,
            applied: None,
            membership: StoredMembership::default(),
            files: files.clone(),
        };
        let legacy = dir.join(LEGACY_MARKER);
        let kept = blocking(move || {
            // The replay starts from the snapshot now, whatever an old marker said.
            match std::fs::remove_file(&legacy) {
                Ok(()) => tracing::info!(
                    group,
                    "the applied marker of an earlier version is no longer used: removed"
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: cannot remove: {e}", legacy.display())),
            }
            Ok(files.load())
        })
        .await?;
        if let Some((meta, body)) = kept {
            let write = machine.write_of(body)?;
            machine
                .local
                .apply(&write)
                .await
                .map_err(|e| e.to_string())?;
            machine.applied = meta.last_log_id;
            machine.membership = meta.last_membership.clone();
            tracing::info!(group, last = ?meta.last_log_id, "raft snapshot restored");
        }
        Ok(machine)
    }

    /// The last entry applied (at open: the kept snapshot's).
    pub fn applied(&self) -> Option<LogId> {
        self.applied
    }

    /// A snapshot's rows as a write to this node's store: its views matched by name and schema.
    fn write_of(&self, body: Body) -> Result<GroupWrite, String> {
        let views = self.local.wal.views();
        let mut write = GroupWrite {
            dest: Destination::ONLINE,
            views: Vec::with_capacity(body.views.len()),
        };
        for section in body.views {
            let Some(id) = views.iter().position(|v| *v == section.view) else {
                // Skipping the rows would leave this replica short of what it says it holds.
                return Err(format!(
                    "a raft snapshot of group {} holds feature view '{}', which this node does not serve (every node must serve the same registry)",
                    self.group, section.view.name
                ));
            };
            write.views.push(RecordView {
                view: id as u32,
                data: section.data,
            });
        }
        Ok(write)
    }

    fn builder(&self) -> GroupSnapshotBuilder {
        GroupSnapshotBuilder {
            group: self.group,
            local: self.local.clone(),
            topology: self.topology.clone(),
            applied: self.applied,
            membership: self.membership.clone(),
            files: self.files.clone(),
        }
    }
}

impl RaftStateMachine<TypeConfig> for GroupMachine {
    type SnapshotBuilder = GroupSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut answers = Vec::new();
        for entry in entries {
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => self.local.apply_batch(batch).await.map_err(|e| {
                    tracing::error!(group = self.group, index = entry.log_id.index, error = %e, "the group stops on this node");
                    sm_err(e)
                })?,
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                }
            }
            self.applied = Some(entry.log_id);
            answers.push(());
        }
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> GroupSnapshotBuilder {
        self.builder()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = Arc::new(snapshot.into_inner());
        let index = meta.last_log_id.map_or(0, |l| l.index);
        tracing::info!(group = self.group, last = ?meta.last_log_id, bytes = data.len(), "installing a raft snapshot from the leader");
        let (path, bytes) = (self.files.pair(index).0, data.clone());
        let (_, body) =
            blocking(move || snapshot::parse_file(&path, &bytes).map_err(|e| e.to_string()))
                .await
                .map_err(sm_err)?;
        let write = self.write_of(body).map_err(|e| {
            tracing::error!(group = self.group, error = %e, "the group stops on this node");
            sm_err(e)
        })?;
        // Kept first: once its rows are visible, the snapshot is on disk too.
        let (files, kept) = (self.files.clone(), meta.clone());
        blocking(move || {
            if let Some(pause) = install_pause() {
                std::thread::sleep(pause);
            }
            files.keep(&kept, &data)
        })
        .await
        .map_err(sm_err)?;
        self.local.apply(&write).await.map_err(|e| {
            tracing::error!(group = self.group, error = %e, "the group stops on this node");
            sm_err(e)
        })?;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        tracing::info!(group = self.group, last = ?meta.last_log_id, "raft snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        if self.files.current().is_none() {
            return Ok(None);
        }
        let files = self.files.clone();
        let kept = blocking(move || files.read()).await.map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(None, AnyError::error(e)))
        })?;
        Ok(kept.map(|(meta, bytes)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

/// Tests (`FEATGRID_TEST_HOOKS=1`) may hold every snapshot installed from a leader this long
/// before it is kept (`FEATGRID_TEST_SNAPSHOT_INSTALL_PAUSE_MS`), to kill a node in the middle.
fn install_pause() -> Option<std::time::Duration> {
    super::test_setting("FEATGRID_TEST_SNAPSHOT_INSTALL_PAUSE_MS")
        .map(std::time::Duration::from_millis)
}

/// Builds a snapshot of one group from frozen copies of the shards.
pub struct GroupSnapshotBuilder {
    group: usize,
    local: Replica,
    topology: Arc<Topology>,
    applied: Option<LogId>,
    membership: StoredMembership,
    files: SnapshotFiles,
}

impl RaftSnapshotBuilder<TypeConfig> for GroupSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Everything applied up to `applied` was queued on the shards before this freeze, so
        // the copy holds at least that (perhaps more, which re-applying later makes harmless).
        let frozen = self.local.grid.freeze().await.map_err(sm_err)?;
        let layouts = self.local.grid.layouts();
        let metas = self.local.wal.views();
        let group = self.group;
        let index = self.applied.map_or(0, |l| l.index);
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!("g{group}-{index}-{}", crate::value::now_micros()),
        };
        // Encoding and keeping the file take long for a large group: off the Raft thread.
        let (topology, files, kept) = (self.topology.clone(), self.files.clone(), meta.clone());
        let (header, data) = blocking(move || {
            let (header, data) = encode_group(&frozen, &layouts, &metas, &topology, group, index)?;
            files.keep(&kept, &data)?;
            Ok((header, data))
        })
        .await
        .map_err(sm_err)?;
        tracing::info!(
            group,
            bytes = data.len(),
            rows = header.rows,
            "raft snapshot built"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

/// Group `group`'s rows in frozen copies of the shards, as a snapshot file whose sequence is
/// the last log index it covers: its header and bytes.
fn encode_group(
    frozen: &[FrozenPartition],
    layouts: &[RowLayout],
    metas: &[ViewMeta],
    topology: &Topology,
    group: usize,
    index: u64,
) -> Result<(Header, Vec<u8>), String> {
    let mut views = Vec::new();
    for part in frozen {
        for view in 0..layouts.len() {
            let mut data = Vec::new();
            part.encode_view(view, &mut data);
            if !data.is_empty() {
                views.push(RecordView {
                    view: view as u32,
                    data: Blob(data),
                });
            }
        }
    }
    let mine = split_by_group(&views, layouts, topology.groups.len(), |s| {
        topology.group_of_slot(s)
    })?
    .swap_remove(group)
    .unwrap_or_default();
    let mut sections = Vec::with_capacity(mine.len());
    for rv in mine {
        let id = rv.view as usize;
        let (Some(layout), Some(view)) = (layouts.get(id), metas.get(id)) else {
            return Err(format!("view id {id} has no name in the log's views"));
        };
        sections.push(ViewSection {
            view: view.clone(),
            rows: PortableRows::new(layout, &rv.data.0).count() as u64,
            data: rv.data,
        });
    }
    let ranges = &topology.groups[group].ranges;
    let header = Header {
        shard: group as u32,
        shards: topology.groups.len() as u32,
        slots: ranges.iter().map(|r| r.0 as u32).min().unwrap_or(0)
            ..ranges.iter().map(|r| r.1 as u32 + 1).max().unwrap_or(0),
        seq: index,
        rows: sections.iter().map(|s| s.rows).sum(),
    };
    let data = snapshot::encode_file(
        &header,
        &Body {
            wal_lsn: index,
            views: sections,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok((header, data))
}

#[cfg(test)]
mod tests;
