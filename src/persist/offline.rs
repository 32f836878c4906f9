//! The offline sink: rows pushed with `to: offline` or `online_and_offline` end in Parquet
//! files under `data_dir/offline/<feature_view>/`, which pandas, pyarrow, DuckDB and Feast's
//! `FileSource` read.
//!
//! A push reaches the sink only after its write-ahead-log record is written (the record says
//! where its rows go), so an acknowledged offline row is as durable as an online one. A
//! dedicated thread buffers rows per view and rolls a buffer into a file when it holds
//! `offline_roll_rows` rows, when its oldest row is `offline_roll_interval` old, before a
//! snapshot deletes log segments, and at shutdown. Each file is written whole in memory, then
//! atomically (temporary file, fsync, rename, directory fsync): a reader never sees half a file.
//!
//! Files are named `<first lsn>-<covered lsn>.parquet`: every logged offline write up to the
//! covered lsn is in this view's files. After a crash, the log is replayed into the sink from
//! there, so no acknowledged row is lost; rows of writes that were in flight at a roll may be
//! written twice (at-least-once; each row keeps its event and created timestamps, so duplicates
//! are recognisable).
//!
//! Columns: the join keys, the event timestamp and created columns (`timestamp[us, UTC]`), and
//! the features, typed: int32, int64, float, double, boolean, string (UTF-8), binary,
//! timestamps, and lists of those as Parquet `LIST`s; nulls as nulls.
//!
//! Here: the sink's thread, its buffers and rolls, and the covered lsns. `file`: one
//! Parquet file's bytes; `columns`: its typed column buffers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};

use super::atomic::{create_dir, write_atomic};
use super::wal::{RecordView, Wal};
use crate::grid::partition::{PortableRows, RowBatch, RowLayout};
use crate::registry::{FeatureView, ViewId};

mod columns;
mod file;

pub use file::encode_parquet;

#[derive(Debug, Clone, thiserror::Error)]
pub enum OfflineError {
    #[error("the offline sink holds {rows} rows not yet written to Parquet (the last write failed: {last_error}); retry shortly")]
    Backlog { rows: u64, last_error: String },
    #[error("the offline sink has stopped")]
    Stopped,
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
}

pub struct OfflineOptions {
    /// `data_dir/offline`.
    pub dir: PathBuf,
    pub views: Vec<FeatureView>,
    pub layouts: Arc<[RowLayout]>,
    pub roll_rows: usize,
    pub roll_interval: Duration,
    pub wal: Wal,
}

enum Command {
    Append {
        lsn: u64,
        views: Vec<RecordView>,
    },
    Flush(Sender<Result<usize, OfflineError>>),
    /// The registry changed: its views (indexed by view id) and their layouts.
    SetViews {
        views: Vec<FeatureView>,
        layouts: Arc<[RowLayout]>,
    },
}

#[derive(Default)]
struct Shared {
    buffered_rows: AtomicU64,
    files: AtomicU64,
    rows_written: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// The sink's counters, for `GET /admin/snapshot`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OfflineStats {
    pub buffered_rows: u64,
    pub files: u64,
    pub rows_written: u64,
    pub failures: u64,
    pub last_error: Option<String>,
}

/// A handle to the sink's thread. Cheap to clone; the thread ends when every handle is gone.
#[derive(Clone)]
pub struct OfflineSink {
    tx: Sender<Command>,
    shared: Arc<Shared>,
    backlog_limit: u64,
}

/// The covered lsn of each view's existing files (0 where a view has none).
pub fn covered_lsns(dir: &Path, views: &[FeatureView]) -> Vec<u64> {
    views
        .iter()
        .map(|v| {
            std::fs::read_dir(dir.join(&v.name))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let (_, covered) = name.strip_suffix(".parquet")?.split_once('-')?;
                    covered.parse::<u64>().ok()
                })
                .max()
                .unwrap_or(0)
        })
        .collect()
}

impl OfflineSink {
    /// Starts the sink's thread. `backlog`: log records to re-add (replayed after a restart).
    pub fn start(
        options: OfflineOptions,
        backlog: Vec<(u64, Vec<RecordView>)>,
    ) -> Result<OfflineSink, OfflineError> {
        create_dir(&options.dir).map_err(|e| OfflineError::File {
            path: options.dir.clone(),
            problem: e.to_string(),
        })?;
        let (tx, rx) = channel::unbounded();
        let shared = Arc::new(Shared::default());
        let sink = OfflineSink {
            tx,
            shared: shared.clone(),
            backlog_limit: (options.roll_rows as u64).saturating_mul(10).max(100_000),
        };
        for (lsn, views) in backlog {
            sink.send(lsn, views);
        }
        std::thread::Builder::new()
            .name("featgrid-offline".into())
            .spawn(move || Writer::new(options, shared, rx).run())
            .map_err(|e| OfflineError::File {
                path: PathBuf::from("(thread)"),
                problem: e.to_string(),
            })?;
        Ok(sink)
    }

    fn send(&self, lsn: u64, views: Vec<RecordView>) {
        let _ = self.tx.send(Command::Append { lsn, views });
    }

    /// Refuses new offline rows while too many are waiting for a failing disk.
    pub fn check(&self) -> Result<(), OfflineError> {
        let rows = self.shared.buffered_rows.load(Ordering::Relaxed);
        if rows > self.backlog_limit && self.shared.failures.load(Ordering::Relaxed) > 0 {
            let last_error = self
                .shared
                .last_error
                .lock()
                .map(|e| e.clone().unwrap_or_default())
                .unwrap_or_default();
            return Err(OfflineError::Backlog { rows, last_error });
        }
        Ok(())
    }

    /// Hands a logged write's rows (record `lsn`) to the sink.
    pub fn append(&self, lsn: u64, views: Vec<RecordView>) {
        self.send(lsn, views);
    }

    /// The registry changed (a reload): rows are written with these views' names from now on.
    /// `views` and `layouts` are indexed by view id; a loaded view keeps its id and layout.
    pub fn set_views(&self, views: Vec<FeatureView>, layouts: Arc<[RowLayout]>) {
        let _ = self.tx.send(Command::SetViews { views, layouts });
    }

    /// Rolls every buffer into files; answers the number of files written. Blocking.
    pub fn flush(&self) -> Result<usize, OfflineError> {
        let (tx, rx) = channel::bounded(1);
        self.tx
            .send(Command::Flush(tx))
            .map_err(|_| OfflineError::Stopped)?;
        rx.recv().map_err(|_| OfflineError::Stopped)?
    }

    pub fn stats(&self) -> OfflineStats {
        OfflineStats {
            buffered_rows: self.shared.buffered_rows.load(Ordering::Relaxed),
            files: self.shared.files.load(Ordering::Relaxed),
            rows_written: self.shared.rows_written.load(Ordering::Relaxed),
            failures: self.shared.failures.load(Ordering::Relaxed),
            last_error: self.shared.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}

/// A buffer is rolled into a file once it holds this many bytes of rows, whatever the row
/// count: a [`RowBatch`] stays far below its 4 GiB limit.
const ROLL_BYTES: usize = 256 << 20;

/// One view's rows waiting for a file.
struct Buffer {
    batch: RowBatch,
    first_lsn: u64,
    last_lsn: u64,
    since: Instant,
}

impl Buffer {
    fn full(&self, roll_rows: usize) -> bool {
        self.batch.len() >= roll_rows || self.batch.data_len() >= ROLL_BYTES
    }
}

struct Writer {
    o: OfflineOptions,
    shared: Arc<Shared>,
    buffers: HashMap<ViewId, Buffer>,
    rx: Receiver<Command>,
    /// Flushes that arrived while a roll drained the queue: answered right after it.
    deferred: Vec<Sender<Result<usize, OfflineError>>>,
}

impl Writer {
    fn new(o: OfflineOptions, shared: Arc<Shared>, rx: Receiver<Command>) -> Writer {
        Writer {
            o,
            shared,
            buffers: HashMap::new(),
            rx,
            deferred: Vec::new(),
        }
    }

    fn run(mut self) {
        loop {
            let wait = self
                .buffers
                .values()
                .map(|b| self.o.roll_interval.saturating_sub(b.since.elapsed()))
                .min()
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_millis(10));
            match self.rx.recv_timeout(wait) {
                Ok(Command::Append { lsn, views }) => {
                    for v in views {
                        self.add(lsn, v);
                    }
                    let roll_rows = self.o.roll_rows;
                    if self.buffers.values().any(|b| b.full(roll_rows)) {
                        let _ = self.roll_where(|b| b.full(roll_rows));
                    }
                }
                Ok(Command::Flush(reply)) => self.deferred.push(reply),
                Ok(Command::SetViews { views, layouts }) => self.set_views(views, layouts),
                Err(RecvTimeoutError::Timeout) => {
                    let interval = self.o.roll_interval;
                    let _ = self.roll_where(|b| b.since.elapsed() >= interval);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.roll_where(|_| true);
                    return;
                }
            }
            while !self.deferred.is_empty() {
                let replies = std::mem::take(&mut self.deferred);
                let result = self.roll_where(|_| true);
                for reply in replies {
                    let _ = reply.send(result.clone());
                }
            }
        }
    }

    /// Takes in the writes already queued, holding back flushes for later; stops early once
    /// a buffer holds [`ROLL_BYTES`] (the rest waits for the next roll).
    fn drain(&mut self) {
        while !self
            .buffers
            .values()
            .any(|b| b.batch.data_len() >= ROLL_BYTES)
        {
            let Ok(command) = self.rx.try_recv() else {
                break;
            };
            match command {
                Command::Append { lsn, views } => {
                    for v in views {
                        self.add(lsn, v);
                    }
                }
                Command::Flush(reply) => self.deferred.push(reply),
                Command::SetViews { views, layouts } => self.set_views(views, layouts),
            }
        }
    }

    fn set_views(&mut self, views: Vec<FeatureView>, layouts: Arc<[RowLayout]>) {
        self.o.views = views;
        self.o.layouts = layouts;
    }

    fn add(&mut self, lsn: u64, record: RecordView) {
        let view = record.view as ViewId;
        let Some(layout) = self.o.layouts.get(view) else {
            return;
        };
        let buffer = self.buffers.entry(view).or_insert_with(|| Buffer {
            batch: RowBatch::new(view),
            first_lsn: lsn,
            last_lsn: lsn,
            since: Instant::now(),
        });
        let before = buffer.batch.len();
        for row in PortableRows::new(layout, &record.data.0).flatten() {
            buffer.batch.push_portable(layout, &row);
        }
        let added = (buffer.batch.len() - before) as u64;
        self.shared
            .buffered_rows
            .fetch_add(added, Ordering::Relaxed);
        buffer.first_lsn = buffer.first_lsn.min(lsn);
        buffer.last_lsn = buffer.last_lsn.max(lsn);
    }

    /// Writes the buffers `pick` chooses; a failed one stays buffered for the next try.
    ///
    /// Coverage: the log writer queues records here in lsn order, and before it moves
    /// [`Wal::covered_lsn`] past them. So once a buffer holds a row of record `last_lsn`,
    /// every earlier record has reached the sink; and a record at or above the `watermark`
    /// read here may still be on its way. A file claims both bounds: every write of its view
    /// up to `min(last_lsn, watermark - 1)` is in it or an earlier file.
    fn roll_where(&mut self, pick: impl Fn(&Buffer) -> bool) -> Result<usize, OfflineError> {
        let watermark = self.o.wal.covered_lsn();
        self.drain();
        let views: Vec<ViewId> = self
            .buffers
            .iter()
            .filter(|(_, b)| pick(b))
            .map(|(v, _)| *v)
            .collect();
        let mut written = 0;
        let mut first_err = None;
        for view in views {
            let Some(buffer) = self.buffers.remove(&view) else {
                continue;
            };
            match self.write(view, &buffer, watermark) {
                Ok(()) => {
                    written += 1;
                    let rows = buffer.batch.len() as u64;
                    self.shared.buffered_rows.fetch_sub(rows, Ordering::Relaxed);
                    self.shared.rows_written.fetch_add(rows, Ordering::Relaxed);
                    self.shared.files.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::error!(error = %e, "offline sink: writing a Parquet file failed; the rows stay buffered");
                    self.shared.failures.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut last) = self.shared.last_error.lock() {
                        *last = Some(e.to_string());
                    }
                    self.buffers.insert(view, buffer);
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }

    fn write(&self, view_id: ViewId, buffer: &Buffer, watermark: u64) -> Result<(), OfflineError> {
        let view = &self.o.views[view_id];
        let dir = self.o.dir.join(&view.name);
        let file_error = |path: &Path, problem: String| OfflineError::File {
            path: path.to_path_buf(),
            problem,
        };
        create_dir(&dir).map_err(|e| file_error(&dir, e.to_string()))?;
        // See `roll_where` for the two bounds. Rows of later writes in this file are replayed
        // again after a crash (at-least-once).
        let covered = buffer.last_lsn.min(watermark.saturating_sub(1));
        let path = dir.join(format!("{:020}-{:020}.parquet", buffer.first_lsn, covered));
        let started = Instant::now();
        let bytes = encode_parquet(view, &self.o.layouts[view_id], &buffer.batch)
            .map_err(|e| file_error(&path, e))?;
        write_atomic(&path, &bytes).map_err(|e| file_error(&path, e.to_string()))?;
        tracing::info!(view = %view.name, rows = buffer.batch.len(), bytes = bytes.len(), elapsed_ms = started.elapsed().as_millis() as u64, file = %path.display(), "offline file written");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::partition::NO_CREATED;
    use crate::registry::Registry;

    #[test]
    fn a_file_never_claims_an_lsn_that_may_still_be_on_its_way() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::embedded();
        let layouts = RowLayout::for_registry(&registry);
        // The log has handed on every record below 5; records 5..=9 may still be in flight.
        let wal = Wal::open(crate::persist::wal::WalOptions {
            dir: dir.path().join("wal"),
            fsync: crate::persist::wal::FsyncPolicy::No,
            segment_bytes: 1 << 20,
            views: crate::persist::ViewMeta::all(&registry),
            next_lsn: 5,
            existing: Vec::new(),
        })
        .unwrap();
        let sink = OfflineSink::start(
            OfflineOptions {
                dir: dir.path().join("offline"),
                views: registry.feature_views.clone(),
                layouts: layouts.clone(),
                roll_rows: 1000,
                roll_interval: Duration::from_secs(60),
                wal: wal.clone(),
            },
            Vec::new(),
        )
        .unwrap();
        let mut batch = RowBatch::new(0);
        batch.start_row(&layouts[0], &1i64.to_le_bytes(), 1, NO_CREATED);
        // Record 10 reaches the sink (replayed, say) before 5..=9 do.
        sink.append(
            10,
            crate::persist::wal::portable_views(&[vec![batch]], &layouts),
        );
        assert_eq!(sink.flush().unwrap(), 1);
        assert_eq!(
            covered_lsns(&dir.path().join("offline"), &registry.feature_views),
            vec![4]
        );
        wal.close();
    }

    #[test]
    fn covered_lsns_come_from_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::embedded();
        let view_dir = dir.path().join("driver_hourly_stats");
        std::fs::create_dir_all(&view_dir).unwrap();
        for name in [
            "00000000000000000001-00000000000000000009.parquet",
            "00000000000000000010-00000000000000000042.parquet",
            "junk.txt",
        ] {
            std::fs::write(view_dir.join(name), b"").unwrap();
        }
        assert_eq!(covered_lsns(dir.path(), &registry.feature_views), vec![42]);
        assert_eq!(
            covered_lsns(&dir.path().join("none"), &registry.feature_views),
            vec![0]
        );
    }
}
