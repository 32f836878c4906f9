//! The node's own store and its write path: a write is logged ahead in the node's write-ahead
//! log, then applied to the shards and/or handed to the offline sink ([`LocalStore::store`]).
//! The HTTP routes (a push on a single node) and the cluster (a committed entry on a replica)
//! both call it; it knows nothing of HTTP, JSON or Raft, and neither caller reaches into the
//! other. A cluster replica applies the online rows of a committed entry with
//! [`LocalStore::apply_online`] instead: the Raft log is their only log.

use crate::grid::coordinator::{Coordinator, GridError};
use crate::grid::partition::{ApplyStats, PartitionError, RowBatch, RowLayout};
use crate::persist::offline::{OfflineError, OfflineSink};
use crate::persist::wal::{self, Destination, Wal, WalError};

/// The node's shards, log and offline sink, with the counters of what they applied. Cheap to
/// clone.
#[derive(Clone)]
pub struct LocalStore {
    pub grid: Coordinator,
    /// The node's `max_memory` ceiling (a cluster leader checks it for every replica's write).
    pub memory: std::sync::Arc<crate::memory::MemoryGuard>,
    pub wal: Wal,
    pub offline: OfflineSink,
    pub rows_written: prometheus::IntCounter,
    pub rows_skipped_older: prometheus::IntCounter,
}

/// Whether a write may still be refused because of the offline sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A client's write: refused (nothing logged) while the offline sink is failing with a
    /// backlog past its limit.
    Refusable,
    /// A committed Raft entry: applied to the online store whatever the offline sink's health;
    /// the sink buffers its rows and catches up (or reports in `GET /admin/snapshot`).
    Committed,
}

/// Why the local store did not apply a write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Grid(#[from] GridError),
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Offline(#[from] OfflineError),
}

impl StoreError {
    /// Whether the write was certainly not applied and trying it again later may succeed: a
    /// full mailbox (refused before anything was logged) or a log that cannot take writes
    /// for now (nothing applied).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Grid(GridError::Overloaded { .. }) => true,
            StoreError::Wal(WalError::Encode(_)) => false,
            StoreError::Wal(WalError::Stalled { queued, .. }) => !queued,
            StoreError::Wal(_) => true,
            StoreError::Offline(_) => true,
            _ => false,
        }
    }

    /// Whether the write was queued (on the shards, or for a stalled disk) but not answered
    /// in time: it will still be applied (in order), so it must not be tried again.
    pub fn is_queued(&self) -> bool {
        matches!(
            self,
            StoreError::Grid(GridError::Timeout { .. })
                | StoreError::Wal(WalError::Stalled { queued: true, .. })
        )
    }

    /// Whether the shards refused the write for good: a full table, a view they do not hold, a
    /// stopped shard thread.
    pub fn is_permanent(&self) -> bool {
        !self.is_retryable() && !self.is_queued()
    }

    /// A full shard table (`shard_full`).
    pub fn is_full(&self) -> bool {
        matches!(
            self,
            StoreError::Grid(GridError::Partition(PartitionError::TableFull { .. }))
        )
    }
}

impl LocalStore {
    /// Logs per-shard batches (index = shard) ahead, then applies them to the online store
    /// and/or hands them to the offline sink, as `dest` says, and counts the rows written and
    /// skipped as older. The local write path, taken by every push on a single node and by
    /// every committed entry on a cluster replica.
    pub async fn store(
        &self,
        per_shard: Vec<Vec<RowBatch>>,
        layouts: &[RowLayout],
        dest: Destination,
        admission: Admission,
    ) -> Result<ApplyStats, StoreError> {
        if dest.offline && admission == Admission::Refusable {
            self.offline.check()?;
        }
        // Mailbox places are reserved first: a full shard refuses the write (503) before
        // anything is logged, so a refusal is never applied, live or after a replay. Then the
        // record is logged; the log writer queues the rows on the shards and in the offline
        // sink, in log order, and only then answers.
        let views = wal::portable_views(&per_shard, layouts);
        let record = wal::encode_record(dest, &views).map_err(WalError::from)?;
        let (dispatch, pending) = if dest.online {
            let (dispatch, pending) = self.grid.prepare_write(per_shard)?;
            (Some(dispatch), Some(pending))
        } else {
            (None, None)
        };
        let offline = if dest.offline {
            Some((self.offline.clone(), views))
        } else {
            wal::recycle_views(views);
            None
        };
        let logged = self.wal.append(
            record,
            Box::new(move |lsn| {
                if let Some((sink, views)) = offline {
                    sink.append(lsn, views);
                }
                if let Some(dispatch) = dispatch {
                    dispatch.send();
                }
            }),
        );
        match admission {
            // A client waits no longer than a stalled disk takes to be called stalled; the
            // record stays queued (dropping the append does not take it back).
            Admission::Refusable => match actix_rt::time::timeout(wal::STALLED, logged).await {
                Ok(logged) => logged?,
                Err(_) => {
                    return Err(StoreError::Wal(WalError::Stalled {
                        waited_secs: wal::STALLED.as_secs_f64(),
                        queued: true,
                    }))
                }
            },
            // A committed entry is applied in order: it waits for the disk.
            Admission::Committed => logged.await?,
        };
        let stats = match pending {
            Some(pending) => pending.wait().await?,
            None => ApplyStats::default(),
        };
        Ok(self.count(stats))
    }

    /// Applies per-shard batches to the online store without logging them: for rows whose
    /// log is elsewhere (a committed Raft entry, durable in the Raft log before it is
    /// applied). A full mailbox refuses the write before any of it is queued.
    pub async fn apply_online(
        &self,
        per_shard: Vec<Vec<RowBatch>>,
    ) -> Result<ApplyStats, StoreError> {
        let (dispatch, pending) = self.grid.prepare_write(per_shard)?;
        dispatch.send();
        let stats = pending.wait().await?;
        Ok(self.count(stats))
    }

    fn count(&self, stats: ApplyStats) -> ApplyStats {
        self.rows_written.inc_by(stats.written);
        self.rows_skipped_older.inc_by(stats.skipped_older);
        stats
    }
}
