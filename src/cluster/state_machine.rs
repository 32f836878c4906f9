//! A slot group's state machine: the node's shard partitions, restricted to the group's slots.
//!
//! A committed entry is applied as local writes ([`LocalStore::apply_batch`]): logged ahead in the
//! node's write-ahead log and applied by the shards, so the node's snapshots and log bring it
//! back after a restart like any push. What was applied is remembered in `raft/g<group>/applied`
//! (last applied log id and membership, written atomically at most once a second and on every
//! membership change), always at or behind what the local log holds: after a restart openraft
//! re-applies the entries after it, and re-applying is harmless (newest event wins).
//!
//! A Raft snapshot of the group is its rows (every view, the group's slots only) in the
//! portable form, taken from frozen copies of the shards; installing one applies its rows as a
//! write, which with newest-event-wins gives the leader's state (rows are never deleted).

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, Snapshot, StorageIOError};
use serde::{Deserialize, Serialize};

use super::local::{split_by_group, LocalStore};
use super::topology::Topology;
use super::types::{
    Entry, GroupWrite, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::persist::atomic::write_atomic;
use crate::persist::codec;
use crate::persist::wal::{Destination, RecordView};

/// How often the applied marker is written while entries are applied.
const MARK_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Serialize, Deserialize)]
struct Marker {
    applied: Option<LogId>,
    membership: StoredMembership,
}

#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Arc<Vec<u8>>,
}

/// The state machine of group `group` on this node.
pub struct GroupMachine {
    group: usize,
    local: LocalStore,
    topology: Arc<Topology>,
    marker_path: PathBuf,
    applied: Option<LogId>,
    membership: StoredMembership,
    marked_at: Instant,
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
}

fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

impl GroupMachine {
    /// The machine of `group`, its marker in `dir` (read if present).
    pub fn open(
        group: usize,
        dir: PathBuf,
        local: LocalStore,
        topology: Arc<Topology>,
    ) -> Result<GroupMachine, String> {
        let marker_path = dir.join("applied");
        let marker: Marker = match std::fs::read(&marker_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: does not parse: {e}", marker_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Marker::default(),
            Err(e) => return Err(format!("{}: cannot read: {e}", marker_path.display())),
        };
        Ok(GroupMachine {
            group,
            local,
            topology,
            marker_path,
            applied: marker.applied,
            membership: marker.membership,
            marked_at: Instant::now(),
            snapshot: Arc::new(Mutex::new(None)),
        })
    }

    fn mark(&mut self) -> Result<(), String> {
        let marker = Marker {
            applied: self.applied,
            membership: self.membership.clone(),
        };
        let bytes = serde_json::to_vec(&marker).map_err(|e| e.to_string())?;
        write_atomic(&self.marker_path, &bytes).map_err(|e| e.to_string())?;
        self.marked_at = Instant::now();
        Ok(())
    }

    fn builder(&self) -> GroupSnapshotBuilder {
        GroupSnapshotBuilder {
            group: self.group,
            local: self.local.clone(),
            topology: self.topology.clone(),
            applied: self.applied,
            membership: self.membership.clone(),
            snapshot: self.snapshot.clone(),
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
        let mut membership_changed = false;
        for entry in entries {
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => self.local.apply_batch(batch).await,
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    membership_changed = true;
                }
            }
            self.applied = Some(entry.log_id);
            answers.push(());
        }
        if membership_changed || self.marked_at.elapsed() >= MARK_EVERY {
            self.mark().map_err(sm_err)?;
        }
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> GroupSnapshotBuilder {
        // The log is purged up to the snapshot once it is built: the marker must not lag
        // behind that point, or a restart would start from entries no longer in the log.
        if let Err(e) = self.mark() {
            tracing::error!(group = self.group, error = %e, "cannot write the applied marker");
        }
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
        let data = snapshot.into_inner();
        let (views, _): (Vec<RecordView>, usize) = codec::decode_verified(&data).map_err(sm_err)?;
        self.local
            .apply(&GroupWrite {
                dest: Destination::ONLINE,
                views,
            })
            .await;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.mark().map_err(sm_err)?;
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some(StoredSnapshot {
            meta: meta.clone(),
            data: Arc::new(data),
        });
        tracing::info!(group = self.group, last = ?meta.last_log_id, "raft snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let stored = self
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data.as_ref().clone())),
        }))
    }
}

/// Builds a snapshot of one group from frozen copies of the shards.
pub struct GroupSnapshotBuilder {
    group: usize,
    local: LocalStore,
    topology: Arc<Topology>,
    applied: Option<LogId>,
    membership: StoredMembership,
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl RaftSnapshotBuilder<TypeConfig> for GroupSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Everything applied up to `applied` was queued on the shards before this freeze, so
        // the copy holds at least that (perhaps more, which re-applying later makes harmless).
        let frozen = self.local.grid.freeze().await.map_err(sm_err)?;
        let layouts = self.local.grid.layouts();
        let mut views = Vec::new();
        for part in &frozen {
            for view in 0..layouts.len() {
                let mut data = Vec::new();
                part.encode_view(view, &mut data);
                if !data.is_empty() {
                    views.push(RecordView {
                        view: view as u32,
                        data: codec::Blob(data),
                    });
                }
            }
        }
        let group = self.group;
        let topology = &self.topology;
        let mine = split_by_group(&views, &layouts, topology.groups.len(), |s| {
            topology.group_of_slot(s)
        })
        .map_err(sm_err)?
        .swap_remove(group)
        .unwrap_or_default();
        let data = codec::encode(&mine).map_err(sm_err)?;
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!(
                "g{group}-{}-{}",
                self.applied.map_or(0, |l| l.index),
                crate::value::now_micros()
            ),
        };
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some(StoredSnapshot {
            meta: meta.clone(),
            data: Arc::new(data.clone()),
        });
        tracing::info!(group, bytes = data.len(), "raft snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
