//! Start: lock the data directory, load the newest complete snapshot set, replay the log
//! after it, and open the log for new records.
//!
//! Rows are routed again by their keys with the current shard count, so `--shards` may change
//! between runs. Replay is idempotent: a row older than the stored one is skipped by the
//! partition's newest-event-wins rule, so records the set already holds do no harm.
//!
//! Damage refuses the start with a message naming the file and the problem, unless
//! `recover`: then a damaged set is skipped for the one before it (the log is kept from the
//! oldest set on, so nothing acknowledged is lost by that), a damaged log segment is cut at
//! the damage, rows of views the registry no longer has (or has with other fields) are
//! dropped, and every skip is logged. The caller then writes a fresh set at once.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::atomic::{create_dir, Context, FileError};
use super::manifest::{self, SetEntry};
use super::snapshot::{read_shard, Body, Header, SnapshotError};
use super::wal::{self, FsyncPolicy, RecordView, Wal, WalError, WalOptions};
use super::{DataDir, ViewMeta};
use crate::grid::partition::{Partition, PortableRows, RowBatch, RowLayout};
use crate::grid::routing::Router;
use crate::registry::ViewId;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{}: another featgrid is using this data directory (its lock is held); stop it or give another --data-dir", path.display())]
    Locked { path: PathBuf },
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{0}; start with --recover to fall back to the previous snapshot set")]
    Snapshot(#[from] SnapshotError),
    #[error("{0}; start with --recover to skip the damaged part of the log")]
    Wal(#[from] WalError),
    #[error("{}: {problem}; start with --recover to drop these rows", path.display())]
    Rows { path: PathBuf, problem: String },
}

/// How to open the data directory.
pub struct OpenOptions<'a> {
    pub data_dir: &'a Path,
    pub views: Vec<ViewMeta>,
    pub layouts: Arc<[RowLayout]>,
    pub shards: usize,
    pub fsync: FsyncPolicy,
    pub wal_segment_bytes: u64,
    pub recover: bool,
    /// Per view (index = view id): the lsn up to which its offline rows are in Parquet files.
    pub offline_covered: Vec<u64>,
}

/// What the start found, for the log line and the caller.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RestoreReport {
    pub snapshot_seq: Option<u64>,
    pub snapshot_rows: u64,
    pub wal_records: u64,
    pub wal_rows: u64,
    /// What `--recover` (or a torn log tail) made featgrid drop.
    pub skipped: Vec<String>,
    /// Time loading the snapshot set, replaying the log, and in all.
    pub snapshot_ms: u64,
    pub wal_ms: u64,
    pub elapsed_ms: u64,
}

/// An opened data directory.
pub struct Opened {
    pub dir: DataDir,
    /// The restored partitions, index = shard.
    pub partitions: Vec<Partition>,
    pub wal: Wal,
    /// The manifest's sets still usable, newest first.
    pub sets: Vec<SetEntry>,
    pub next_seq: u64,
    pub report: RestoreReport,
    /// Held for the life of the process.
    pub lock: File,
    /// Logged offline writes not yet in Parquet files, for the offline sink (view = view id).
    pub offline_backlog: Vec<(u64, Vec<RecordView>)>,
    /// Something damaged was skipped: write a fresh set now.
    pub needs_snapshot: bool,
}

/// Where restored rows go: the current registry's views and shards.
struct Target<'a> {
    layouts: &'a [RowLayout],
    router: Router,
    views: HashMap<&'a str, (ViewId, &'a ViewMeta)>,
    partitions: Vec<Partition>,
    recover: bool,
    skipped: Vec<String>,
}

impl<'a> Target<'a> {
    fn new(o: &'a OpenOptions<'_>) -> Target<'a> {
        let router = Router::new(o.shards);
        Target {
            layouts: &o.layouts,
            router,
            views: o
                .views
                .iter()
                .enumerate()
                .map(|(id, v)| (v.name.as_str(), (id, v)))
                .collect(),
            partitions: Self::empty(&o.layouts, o.shards),
            recover: o.recover,
            skipped: Vec::new(),
        }
    }

    fn empty(layouts: &Arc<[RowLayout]>, shards: usize) -> Vec<Partition> {
        (0..shards)
            .map(|_| Partition::new(layouts.clone()))
            .collect()
    }

    /// Makes room in each partition for its share of `rows` rows whose keys lie in `slots`.
    fn reserve(&mut self, view: ViewId, rows: u64, slots: std::ops::Range<u32>) {
        let width = slots.len().max(1) as u64;
        for (shard, partition) in self.partitions.iter_mut().enumerate() {
            let range = self.router.slot_range(shard);
            let overlap = (range.end as u32)
                .min(slots.end)
                .saturating_sub((range.start as u32).max(slots.start));
            partition.reserve(view, (rows * overlap as u64 / width) as usize);
        }
    }

    /// Routes and applies rows of `view`; answers how many rows were read.
    fn load(&mut self, view: &ViewMeta, data: &[u8], origin: &Path) -> Result<u64, RestoreError> {
        let problem = match self.views.get(view.name.as_str()) {
            None => Some(format!("view '{}' is not in the registry", view.name)),
            Some((_, now)) if now.schema != view.schema => Some(format!(
                "view '{}' was stored as {} but the registry now has {}",
                view.name, view.schema, now.schema
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            if self.recover {
                let skipped = format!("{}: {problem}: rows dropped", origin.display());
                tracing::warn!(%skipped, "recover");
                self.skipped.push(skipped);
                return Ok(0);
            }
            return Err(RestoreError::Rows {
                path: origin.to_path_buf(),
                problem,
            });
        }
        let id = self.views[view.name.as_str()].0;
        let layout = &self.layouts[id];
        let mut batches: Vec<RowBatch> = (0..self.router.shards())
            .map(|_| RowBatch::new(id))
            .collect();
        let mut rows = 0;
        let apply = |p: &mut Partition, b: &mut RowBatch| -> Result<(), RestoreError> {
            p.apply(b).map_err(|e| RestoreError::Rows {
                path: origin.to_path_buf(),
                problem: e.to_string(),
            })?;
            *b = RowBatch::new(id);
            Ok(())
        };
        for row in PortableRows::new(layout, data) {
            let row = match row {
                Ok(row) => row,
                Err(e) if self.recover => {
                    let skipped = format!(
                        "{}: view '{}': {e}: the rest of these rows dropped",
                        origin.display(),
                        view.name
                    );
                    tracing::warn!(%skipped, "recover");
                    self.skipped.push(skipped);
                    break;
                }
                Err(e) => {
                    return Err(RestoreError::Rows {
                        path: origin.to_path_buf(),
                        problem: format!("view '{}': {e}", view.name),
                    })
                }
            };
            let shard = self.router.shard_of_key(row.key);
            batches[shard].push_portable(layout, &row);
            if batches[shard].data_len() >= 1 << 22 {
                apply(&mut self.partitions[shard], &mut batches[shard])?;
            }
            rows += 1;
        }
        for (shard, batch) in batches.iter_mut().enumerate() {
            if !batch.is_empty() {
                apply(&mut self.partitions[shard], batch)?;
            }
        }
        Ok(rows)
    }
}

fn lock_dir(dir: &DataDir) -> Result<File, RestoreError> {
    let path = dir.lock();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .at(&path, "open")?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(RestoreError::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(FileError::new(&path, "lock", e).into()),
    }
}

/// Loads one set; answers its rows and the lsn the log is replayed from.
fn load_set(
    dir: &DataDir,
    set: &SetEntry,
    target: &mut Target,
) -> Result<(u64, u64), RestoreError> {
    let set_dir = dir.set(set.seq);
    if set.files.len() != set.shards || set.shards == 0 {
        return Err(SnapshotError::corrupt(
            &set_dir,
            format!(
                "incomplete set: {} files for {} shards",
                set.files.len(),
                set.shards
            ),
        )
        .into());
    }
    let router = Router::new(set.shards.min(crate::grid::routing::SLOTS));
    // A reader thread reads, checks and decodes the next file while this one loads rows.
    std::thread::scope(|scope| {
        let (files, rx) = {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let set_dir = &set_dir;
            let reader = move || {
                for (shard, name) in set.files.iter().enumerate() {
                    let path = set_dir.join(name);
                    let read = read_checked(&path, set, shard, &router).map(|r| (path, r));
                    let failed = read.is_err();
                    if tx.send(read).is_err() || failed {
                        return;
                    }
                }
            };
            (scope.spawn(reader), rx)
        };
        let (mut rows, mut wal_lsn) = (0, None);
        for read in rx {
            let (path, (header, body)) = read?;
            if wal_lsn.is_some_and(|l| l != body.wal_lsn) {
                return Err(SnapshotError::corrupt(
                    &path,
                    "its log position differs from the other files of its set",
                )
                .into());
            }
            wal_lsn = Some(body.wal_lsn);
            for section in &body.views {
                if let Some(&(id, _)) = target.views.get(section.view.name.as_str()) {
                    target.reserve(id, section.rows, header.slots.clone());
                }
                rows += target.load(&section.view, &section.data.0, &path)?;
            }
        }
        drop(files);
        Ok((rows, wal_lsn.unwrap_or(0)))
    })
}

/// Reads a set's file and checks that its header is the one the set expects.
fn read_checked(
    path: &Path,
    set: &SetEntry,
    shard: usize,
    router: &Router,
) -> Result<(Header, Body), RestoreError> {
    let (header, body) = read_shard(path)?;
    let range = router.slot_range(shard);
    let expected = (
        set.seq,
        shard as u32,
        set.shards as u32,
        range.start as u32..range.end as u32,
    );
    let found = (
        header.seq,
        header.shard,
        header.shards,
        header.slots.clone(),
    );
    if found != expected {
        return Err(SnapshotError::corrupt(
            path,
            format!("the header says set {} shard {} of {} slots {:?}; the manifest expects set {} shard {} of {} slots {:?}", found.0, found.1, found.2, found.3, expected.0, expected.1, expected.2, expected.3),
        )
        .into());
    }
    Ok((header, body))
}

/// Opens the data directory: lock, restore, replay, open the log. Blocking.
pub fn open(o: &OpenOptions<'_>) -> Result<Opened, RestoreError> {
    let started = Instant::now();
    let dir = DataDir::new(o.data_dir);
    create_dir(&dir.root)?;
    let lock = lock_dir(&dir)?;
    let mut target = Target::new(o);
    let mut report = RestoreReport::default();
    let mut needs_snapshot = false;
    let mut sets = match manifest::load(&dir) {
        Ok(sets) => sets,
        Err(e) if o.recover => {
            let skipped = format!("{e}; using the sets found in {}", dir.snapshots().display());
            tracing::warn!(%skipped, "recover");
            target.skipped.push(skipped);
            needs_snapshot = true;
            manifest::scan(&dir)
        }
        Err(e) => return Err(e.into()),
    };
    let next_seq = sets
        .iter()
        .map(|s| s.seq)
        .chain(manifest::scan(&dir).iter().map(|s| s.seq))
        .max()
        .map_or(1, |s| s + 1);
    let mut from_lsn = 0;
    let mut usable = Vec::new();
    for (i, set) in sets.iter().enumerate() {
        match load_set(&dir, set, &mut target) {
            Ok((rows, lsn)) => {
                report.snapshot_seq = Some(set.seq);
                report.snapshot_rows = rows;
                from_lsn = lsn;
                usable = sets[i..].to_vec();
                break;
            }
            Err(e) if o.recover => {
                let skipped = format!("snapshot set {} skipped: {e}", set.seq);
                tracing::warn!(%skipped, "recover");
                target.skipped.push(skipped);
                target.partitions = Target::empty(&o.layouts, o.shards);
                needs_snapshot = true;
            }
            Err(e) => return Err(e),
        }
    }
    sets = usable;
    report.snapshot_ms = started.elapsed().as_millis() as u64;
    let mut offline_backlog = Vec::new();
    let next_lsn = replay(
        &dir,
        from_lsn,
        &o.offline_covered,
        &mut offline_backlog,
        &mut target,
        &mut report,
        &mut needs_snapshot,
    )?;
    let wal = Wal::open(WalOptions {
        dir: dir.wal(),
        fsync: o.fsync,
        segment_bytes: o.wal_segment_bytes,
        views: o.views.clone(),
        next_lsn,
        existing: wal::list_segments(&dir.wal())?,
    })?;
    report.skipped = std::mem::take(&mut target.skipped);
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    report.wal_ms = report.elapsed_ms - report.snapshot_ms;
    Ok(Opened {
        dir,
        partitions: target.partitions,
        wal,
        sets,
        next_seq,
        report,
        lock,
        needs_snapshot,
        offline_backlog,
    })
}

/// Replays the log from `from_lsn` into the partitions, and each view's offline writes after
/// its `offline_covered` lsn into `offline_backlog`; answers the lsn for the next record.
fn replay(
    dir: &DataDir,
    from_lsn: u64,
    offline_covered: &[u64],
    offline_backlog: &mut Vec<(u64, Vec<RecordView>)>,
    target: &mut Target,
    report: &mut RestoreReport,
    needs_snapshot: &mut bool,
) -> Result<u64, RestoreError> {
    let segments = wal::list_segments(&dir.wal())?;
    let mut next_lsn = from_lsn.max(1);
    let recover = target.recover;
    // Offline rows may need records older than the snapshot.
    let online_from = from_lsn;
    let from_lsn = offline_covered
        .iter()
        .map(|c| c + 1)
        .min()
        .unwrap_or(from_lsn)
        .min(from_lsn);
    for (i, segment) in segments.iter().enumerate() {
        let newest = i + 1 == segments.len();
        next_lsn = next_lsn.max(segment.first_lsn);
        // A segment whose successor starts at or before from_lsn holds nothing to replay.
        if segments
            .get(i + 1)
            .is_some_and(|next| next.first_lsn <= from_lsn)
        {
            continue;
        }
        let mut failure = None;
        let read = wal::read_segment(&segment.path, newest, recover, |lsn, meta, payload| {
            let (dest, views): wal::WritePayload = payload;
            if lsn < from_lsn || failure.is_some() {
                return Ok(());
            }
            if dest.offline {
                let pending: Vec<RecordView> = views
                    .iter()
                    .filter_map(|v| {
                        let name = &meta.views.get(v.view as usize)?.name;
                        let (id, _) = target.views.get(name.as_str())?;
                        (lsn > offline_covered.get(*id).copied().unwrap_or(0)).then(|| RecordView {
                            view: *id as u32,
                            data: v.data.clone(),
                        })
                    })
                    .collect();
                if !pending.is_empty() {
                    offline_backlog.push((lsn, pending));
                }
            }
            if lsn < online_from || !dest.online {
                return Ok(());
            }
            report.wal_records += 1;
            for v in views {
                let Some(view) = meta.views.get(v.view as usize) else {
                    let problem = format!(
                        "record {lsn} names view index {} that the segment header does not list",
                        v.view
                    );
                    if recover {
                        target.skipped.push(format!(
                            "{}: {problem}: its rows dropped",
                            segment.path.display()
                        ));
                        continue;
                    }
                    return Err(WalError::Corrupt {
                        path: segment.path.clone(),
                        offset: 0,
                        problem,
                    });
                };
                match target.load(view, &v.data.0, &segment.path) {
                    Ok(rows) => report.wal_rows += rows,
                    Err(e) => failure = Some(e),
                }
            }
            Ok(())
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some(last) = read.last_lsn {
            next_lsn = next_lsn.max(last + 1);
        }
        if !read.skipped.is_empty() {
            for skipped in &read.skipped {
                tracing::warn!(file = %segment.path.display(), %skipped, "recover");
            }
            target.skipped.extend(
                read.skipped
                    .iter()
                    .map(|s| format!("{}: {s}", segment.path.display())),
            );
            *needs_snapshot = true;
        }
        if let Some(dropped) = read.dropped {
            let what = format!("{}: {dropped}", segment.path.display());
            if dropped.starts_with("torn") {
                tracing::warn!(file = %segment.path.display(), %dropped, "dropped a torn write at the end of the log");
            } else {
                tracing::warn!(skipped = %what, "recover");
                *needs_snapshot = true;
            }
            target.skipped.push(what);
            wal::cut_segment(&segment.path, read.valid_len)?;
        }
    }
    // A Parquet file may cover records the log on disk no longer holds (under `everysec` the
    // log can be behind a fsynced file): new records must never reuse those lsns.
    let offline_next = offline_covered.iter().max().map_or(0, |c| c + 1);
    Ok(next_lsn.max(offline_next))
}
