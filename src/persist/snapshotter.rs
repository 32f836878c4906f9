//! Writing snapshot sets: periodically (a scheduler task that asks, never a timer inside a
//! shard actor), on `POST /admin/snapshot`, after a `--recover` start and at shutdown.
//!
//! One set at a time (an async mutex). Order, each step durable before the next:
//!
//! 1. note the log position every handed-off write is below ([`Wal::covered_lsn`]);
//! 2. shard by shard: ask the shard's thread for a frozen copy (flat copies of one shard;
//!    the thread goes on serving at once), then, off the actor threads (`spawn_blocking`),
//!    encode, checksum and write the shard's file atomically into `snapshots/<seq>/`;
//! 3. write the manifest naming the new set first and the previous `keep - 1` sets;
//! 4. only then delete the sets the manifest no longer names, and the log segments all of
//!    whose records are below the *oldest* kept set's position (so `--recover` falling back
//!    to an older set still finds the log after it).
//!
//! A crash at any step leaves the previous manifest and everything it needs.
//!
//! On a cluster node the sets hold no rows (`rows: false`): each slot group's Raft snapshot
//! holds them ([`crate::cluster::state_machine`]). Its sets only mark how far the write-ahead
//! log, which then carries offline rows alone, is covered, so that its segments can be deleted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::atomic::{create_dir, Context};
use super::manifest::{self, SetEntry};
use super::offline::OfflineSink;
use super::snapshot::{file_name, write_shard, Header, SnapshotError};
use super::wal::Wal;
use super::{DataDir, ViewMeta};
use crate::grid::coordinator::Coordinator;
use crate::grid::partition::FrozenPartition;
use crate::grid::routing::Router;

/// What one snapshot wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotReport {
    pub seq: u64,
    pub shards: usize,
    pub rows: u64,
    pub bytes: u64,
    pub duration_ms: u64,
    /// Of the duration, the time spent getting the shards' copies (queueing included): an
    /// upper bound on what the snapshot cost the shard threads.
    pub freeze_ms: u64,
    pub finished_at: String,
    pub wal_lsn: u64,
    pub wal_segments_deleted: usize,
}

struct State {
    next_seq: u64,
    sets: Vec<SetEntry>,
}

struct Inner {
    dir: DataDir,
    grid: Coordinator,
    wal: Wal,
    offline: OfflineSink,
    /// Indexed by view id; replaced when views are added to the registry.
    views: Mutex<Arc<[ViewMeta]>>,
    keep: usize,
    state: tokio::sync::Mutex<State>,
    rows: bool,
    last: Mutex<Option<SnapshotReport>>,
    /// The manifest's sets, for reporting without waiting for a snapshot in progress.
    sets: Mutex<Vec<SetEntry>>,
    _lock: std::fs::File,
}

/// Writes snapshot sets. Cheap to clone.
#[derive(Clone)]
pub struct Snapshotter {
    inner: Arc<Inner>,
}

/// What [`Snapshotter::new`] needs from the opened data directory.
pub struct SnapshotterOptions {
    pub dir: DataDir,
    pub grid: Coordinator,
    pub wal: Wal,
    pub offline: OfflineSink,
    pub views: Vec<ViewMeta>,
    pub keep: usize,
    pub next_seq: u64,
    pub sets: Vec<SetEntry>,
    pub lock: std::fs::File,
    /// Whether the sets hold the shards' rows: not on a cluster node, whose rows each group's
    /// Raft snapshot holds (its sets then only mark how far its log, offline rows only, is
    /// covered).
    pub rows: bool,
}

impl Snapshotter {
    pub fn new(o: SnapshotterOptions) -> Snapshotter {
        Snapshotter {
            inner: Arc::new(Inner {
                dir: o.dir,
                grid: o.grid,
                wal: o.wal,
                offline: o.offline,
                views: Mutex::new(o.views.into()),
                keep: o.keep.max(1),
                sets: Mutex::new(o.sets.clone()),
                state: tokio::sync::Mutex::new(State {
                    next_seq: o.next_seq,
                    sets: o.sets,
                }),
                rows: o.rows,
                last: Mutex::new(None),
                _lock: o.lock,
            }),
        }
    }

    pub fn wal(&self) -> &Wal {
        &self.inner.wal
    }

    /// Views were added to the registry: sets from now on name `views` (indexed by view id).
    pub fn set_views(&self, views: Vec<ViewMeta>) {
        *self.inner.views.lock().unwrap_or_else(|p| p.into_inner()) = views.into();
    }

    /// The last snapshot written by this process.
    pub fn last(&self) -> Option<SnapshotReport> {
        self.inner
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The complete sets the manifest names, newest first (also those of earlier runs).
    pub fn sets(&self) -> Vec<SetEntry> {
        self.inner
            .sets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Writes a set; answers once it and the manifest naming it are durable. Cancel safety:
    /// the write goes on in the background if the caller goes away.
    pub async fn take(&self) -> Result<SnapshotReport, SnapshotError> {
        let inner = self.inner.clone();
        // Spawned so that a caller hanging up cannot leave a half-finished set behind.
        actix_rt::spawn(async move { inner.take().await })
            .await
            .map_err(|e| SnapshotError::Writer(e.to_string()))?
    }

    /// Starts the periodic scheduler; `every` of zero schedules nothing.
    pub fn schedule(&self, every: Duration) -> Option<actix_rt::task::JoinHandle<()>> {
        if every.is_zero() {
            return None;
        }
        let this = self.clone();
        Some(actix_rt::spawn(async move {
            loop {
                actix_rt::time::sleep(every).await;
                if let Err(e) = this.take().await {
                    tracing::error!(error = %e, "periodic snapshot failed; the log still holds every write");
                }
            }
        }))
    }
}

impl Inner {
    async fn take(&self) -> Result<SnapshotReport, SnapshotError> {
        let mut state = self.state.lock().await;
        let started = Instant::now();
        let wal_lsn = self.wal.covered_lsn();
        let job = Arc::new(SetJob {
            dir: self.dir.clone(),
            seq: state.next_seq,
            shards: self.grid.router().shards(),
            wal_lsn,
            views: self.views.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            keep: self.keep,
            sets: state.sets.clone(),
            wal: self.wal.clone(),
            offline: self.offline.clone(),
        });
        let mut freeze = Duration::ZERO;
        let written = self.write_files(&job, &mut freeze).await;
        let entry = match written {
            Ok(entry) => entry,
            Err(e) => {
                let path = job.dir.set(job.seq);
                let _ = blocking(move || Ok(std::fs::remove_dir_all(path))).await;
                return Err(e);
            }
        };
        let finish = job.clone();
        let (sets, deleted) = blocking(move || finish.publish(entry)).await?;
        let entry = sets[0].clone();
        state.next_seq = entry.seq + 1;
        *self.sets.lock().unwrap_or_else(|p| p.into_inner()) = sets.clone();
        state.sets = sets;
        let report = SnapshotReport {
            seq: entry.seq,
            shards: entry.shards,
            rows: entry.rows,
            bytes: entry.bytes,
            duration_ms: started.elapsed().as_millis() as u64,
            freeze_ms: freeze.as_millis() as u64,
            finished_at: entry.finished_at,
            wal_lsn,
            wal_segments_deleted: deleted,
        };
        tracing::info!(
            seq = report.seq,
            rows = report.rows,
            bytes = report.bytes,
            elapsed_ms = report.duration_ms,
            freeze_ms = report.freeze_ms,
            "snapshot written"
        );
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(report.clone());
        Ok(report)
    }

    /// Shard by shard: a frozen copy from its thread, then its file written off the actor
    /// threads. One copy is alive at a time, so a snapshot needs one shard's worth of memory.
    async fn write_files(
        &self,
        job: &Arc<SetJob>,
        freeze: &mut Duration,
    ) -> Result<SetEntry, SnapshotError> {
        let prepare = job.clone();
        blocking(move || prepare.prepare()).await?;
        let (mut rows, mut bytes) = (0, 0);
        for shard in 0..job.shards {
            let asked = Instant::now();
            let frozen = if self.rows {
                self.grid.freeze_shard(shard).await?
            } else {
                FrozenPartition::empty(self.grid.layouts())
            };
            *freeze += asked.elapsed();
            let write = job.clone();
            let (r, b) = blocking(move || write.write_shard(shard, &frozen)).await?;
            rows += r;
            bytes += b;
        }
        Ok(SetEntry {
            seq: job.seq,
            shards: job.shards,
            wal_lsn: job.wal_lsn,
            rows,
            bytes,
            finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            files: (0..job.shards).map(file_name).collect(),
        })
    }
}

/// Runs blocking file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SnapshotError> + Send + 'static,
) -> Result<T, SnapshotError> {
    actix_rt::task::spawn_blocking(f)
        .await
        .map_err(|e| SnapshotError::Writer(e.to_string()))?
}

/// The blocking parts of a snapshot.
struct SetJob {
    dir: DataDir,
    seq: u64,
    shards: usize,
    wal_lsn: u64,
    views: Arc<[ViewMeta]>,
    keep: usize,
    sets: Vec<SetEntry>,
    wal: Wal,
    offline: OfflineSink,
}

impl SetJob {
    /// An empty directory for the set (a leftover of a failed or crashed attempt is removed).
    fn prepare(&self) -> Result<(), SnapshotError> {
        let set_dir = self.dir.set(self.seq);
        if set_dir.exists() {
            std::fs::remove_dir_all(&set_dir).at(&set_dir, "remove the unfinished set")?;
        }
        create_dir(&self.dir.snapshots())?;
        create_dir(&set_dir)?;
        Ok(())
    }

    /// Writes one shard's file; answers its rows and bytes.
    fn write_shard(
        &self,
        shard: usize,
        frozen: &FrozenPartition,
    ) -> Result<(u64, u64), SnapshotError> {
        let range = Router::new(self.shards).slot_range(shard);
        let header = Header {
            shard: shard as u32,
            shards: self.shards as u32,
            slots: range.start as u32..range.end as u32,
            seq: self.seq,
            rows: frozen.rows(),
        };
        let path = self.dir.set(self.seq).join(file_name(shard));
        let bytes = write_shard(&path, &header, self.wal_lsn, frozen, &self.views)?;
        Ok((header.rows, bytes))
    }

    /// Names the new set in the manifest, then deletes what the manifest no longer needs.
    fn publish(&self, entry: SetEntry) -> Result<(Vec<SetEntry>, usize), SnapshotError> {
        let mut sets = vec![entry];
        sets.extend(self.sets.iter().filter(|s| s.seq != self.seq).cloned());
        sets.truncate(self.keep);
        manifest::store(&self.dir, &sets)?;
        // The manifest is durable: what it no longer names can go.
        self.delete_unnamed_sets(&sets);
        let oldest = sets.last().map_or(0, |s| s.wal_lsn);
        // Offline rows wait in the sink's buffers with only the log to back them: roll them
        // into Parquet files first, and keep the log if that fails.
        if let Err(e) = self.offline.flush() {
            tracing::warn!(error = %e, "offline sink could not flush; keeping the log segments");
            return Ok((sets, 0));
        }
        let deleted = self.wal.delete_covered(oldest).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not delete covered log segments");
            0
        });
        Ok((sets, deleted))
    }

    fn delete_unnamed_sets(&self, sets: &[SetEntry]) {
        for old in manifest::scan(&self.dir) {
            if !sets.iter().any(|s| s.seq == old.seq) {
                let path = self.dir.set(old.seq);
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "could not delete an old snapshot set");
                }
            }
        }
        let _ = super::atomic::sync_dir(&self.dir.snapshots());
    }
}

/// The durability side of a running server: the snapshotter and its scheduler.
pub struct Durability {
    pub snapshotter: Snapshotter,
    pub scheduler: Option<actix_rt::task::JoinHandle<()>>,
}

impl Durability {
    /// The last step of a shutdown, after HTTP has drained: stop the scheduler, write a final
    /// set, close the log (fsynced whatever the policy).
    pub async fn shutdown(self) -> Result<SnapshotReport, SnapshotError> {
        if let Some(scheduler) = self.scheduler {
            scheduler.abort();
        }
        let result = self.snapshotter.take().await;
        let wal = self.snapshotter.wal().clone();
        let _ = actix_rt::task::spawn_blocking(move || wal.close()).await;
        result
    }
}
