//! The log writer: one dedicated thread owns the current segment file. HTTP workers (or a
//! Raft group's log, through [`Wal::submit`]) send it encoded records over a bounded
//! crossbeam channel; it takes whatever is queued (group
//! commit), stamps the lsns, writes the batch with one `write`, and under `fsync = always`
//! one `fdatasync`, then answers every waiter through its oneshot. So concurrent pushes
//! share one fsync, and a push is acknowledged only once its record is where the policy
//! promises:
//!
//! - `always`: on disk (fsynced) before the answer;
//! - `everysec`: written to the OS before the answer; a syncer thread fsyncs once a second;
//! - `no`: written to the OS before the answer; the OS flushes when it likes.
//!
//! A failed write or fsync is never retried and ignored: the writer marks the log unhealthy,
//! answers the batch with [`WalError::Unavailable`], refuses new records at once, logs and
//! counts the failure. Once a second it tries to recover: truncate the segment back to its
//! last good length, then start a new segment; on success the log takes writes again.
//!
//! Each record comes with what to do once it is logged (`on_logged`): the caller queues its
//! rows on the shards and in the offline sink there. The writer runs these in lsn order,
//! right after the write (and the fsync, under `always`) and before it answers, so
//!
//! - the shards apply writes in log order: a replay of the log reproduces the live state,
//!   exact ties included (the later record wins, live and replayed);
//! - every record below [`Wal::covered_lsn`] is in the shards' mailboxes and the sink's queue,
//!   whether or not its requester still waits: a snapshot that notes that lsn and then
//!   freezes the shards holds them all.
//!
//! A disk that stops answering (a write or an fsync that does not return: a stuck device, a
//! frozen file system) is not a failure the writer can see: [`DiskWatch`] notes when each
//! disk call started, and once one has waited [`STALLED`] the log refuses new records at
//! once in [`Wal::append`] ([`WalError::Stalled`]; a Raft group's records, through
//! [`Wal::submit`], wait for the disk) and `GET /health` says so.
//!
//! This file is the handle ([`Wal`]) the rest of the process holds; the writer thread and the
//! syncer themselves are in [`thread`].

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Sender, TrySendError};
use tokio::sync::oneshot;

mod thread;

use super::{FsyncPolicy, SegmentFile, WalError};
use crate::persist::atomic::{create_dir, sync_dir, Context, FileError};
use crate::persist::durable;
use crate::persist::ViewMeta;
use crate::sync::lock;
use thread::{new_segment, sync_every_second, Writer};

/// Records queued for the writer before appends are refused.
const QUEUE: usize = 4096;
/// Most records in one group commit.
const MAX_GROUP: usize = 1024;
/// How often a failed log tries to recover.
const RECOVER_EVERY: Duration = Duration::from_secs(1);
/// How long a write or fsync may wait on the disk before the log counts as stalled: new
/// records are refused, and a push waits no longer than this for its record.
pub const STALLED: Duration = Duration::from_secs(5);

/// How to open the log.
#[derive(Debug, Clone)]
pub struct WalOptions {
    pub dir: PathBuf,
    pub fsync: FsyncPolicy,
    pub segment_bytes: u64,
    /// The registry's views, indexed by view id: written in each segment's header.
    pub views: Vec<ViewMeta>,
    /// The lsn of the first record to write.
    pub next_lsn: u64,
    /// Segments already on disk (from earlier runs), oldest first.
    pub existing: Vec<SegmentFile>,
}

/// Counters, for `GET /admin/snapshot`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WalStats {
    pub fsync: FsyncPolicy,
    pub healthy: bool,
    pub failures: u64,
    pub last_error: Option<String>,
    pub next_lsn: u64,
    pub segments: usize,
    pub records: u64,
    pub group_commits: u64,
    pub fsyncs: u64,
}

struct Shared {
    options: WalOptions,
    /// The lsn the next record gets (stamped by the writer thread only).
    next_lsn: AtomicU64,
    /// Every record below this has been logged and handed on (`on_logged` has run).
    covered: AtomicU64,
    /// The views new segments name: `options.views`, then as [`Wal::set_views`] says.
    views: Mutex<Vec<ViewMeta>>,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    failures: AtomicU64,
    records: AtomicU64,
    group_commits: AtomicU64,
    fsyncs: AtomicU64,
    segments: Mutex<Vec<SegmentFile>>,
    /// The segment being written, for the everysec syncer.
    current: Mutex<Option<Arc<File>>>,
    disk: DiskWatch,
    inject_failures: AtomicU32,
}

/// Who waits on the disk: the writer thread, the `everysec` syncer, or a caller of
/// [`Wal::delete_covered`].
#[derive(Clone, Copy)]
enum Waiter {
    Writer = 0,
    Syncer = 1,
    Deleter = 2,
}

/// When each [`Waiter`]'s disk call in progress started (microseconds after `epoch`, plus
/// one; 0 when none is).
struct DiskWatch {
    epoch: Instant,
    since: [AtomicU64; 3],
}

/// Notes a disk call in progress until dropped.
struct Waiting<'a>(&'a AtomicU64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

impl DiskWatch {
    fn new() -> DiskWatch {
        DiskWatch {
            epoch: Instant::now(),
            since: Default::default(),
        }
    }

    /// Notes that `who` calls the disk until the answer is dropped.
    fn waiting(&self, who: Waiter) -> Waiting<'_> {
        let slot = &self.since[who as usize];
        let now = self.epoch.elapsed().as_micros() as u64 + 1;
        slot.store(now, Ordering::Release);
        Waiting(slot)
    }

    /// How long the oldest disk call in progress has waited; `None` when none is.
    fn longest(&self) -> Option<Duration> {
        let oldest = self
            .since
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .filter(|&s| s > 0)
            .min()?;
        let now = self.epoch.elapsed().as_micros() as u64 + 1;
        Some(Duration::from_micros(now.saturating_sub(oldest)))
    }
}

impl Shared {
    fn fail(&self, what: &str, e: &dyn std::fmt::Display) {
        let reason = format!("{what}: {e}");
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.healthy.store(false, Ordering::Release);
        tracing::error!(dir = %self.options.dir.display(), error = %reason, failures = self.failures.load(Ordering::Relaxed), "write-ahead log failed; refusing writes until it recovers");
        *lock(&self.last_error) = Some(reason);
    }

    fn unavailable(&self) -> WalError {
        WalError::Unavailable {
            reason: lock(&self.last_error)
                .clone()
                .unwrap_or_else(|| "the log is closed".into()),
        }
    }
}

/// What to do with a record once it is logged, given its lsn; run on the writer thread, in
/// lsn order, so it must only queue work elsewhere (never block).
pub type OnLogged = Box<dyn FnOnce(u64) + Send>;

/// What [`Wal::submit`] calls with the outcome of one record (its lsn once logged); run on
/// the writer thread, in lsn order, so it must only hand work on (never block).
pub type Done = Box<dyn FnOnce(Result<u64, WalError>) + Send>;

/// Where the writer answers one append: the record's lsn.
enum Answer {
    /// [`Wal::append`] awaits it, with the record: the appending thread frees the record it
    /// allocated (freed on the writer thread, its buffer would go back to the appender's
    /// malloc arena under that arena's lock).
    Channel(oneshot::Sender<(Result<u64, WalError>, Vec<u8>)>),
    /// [`Wal::submit`]'s callback.
    Call(Done),
}

impl Answer {
    fn send(self, result: Result<u64, WalError>, record: Vec<u8>) {
        match self {
            Answer::Channel(tx) => {
                let _ = tx.send((result, record));
            }
            Answer::Call(done) => done(result),
        }
    }
}

enum Job {
    Append {
        record: Vec<u8>,
        on_logged: OnLogged,
        answer: Answer,
    },
    SetViews {
        views: Vec<ViewMeta>,
        answer: oneshot::Sender<()>,
    },
    Close,
}

/// The log: cheap to clone; every clone talks to the one writer thread.
#[derive(Clone)]
pub struct Wal {
    shared: Arc<Shared>,
    tx: Sender<Job>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Wal {
    /// Creates a new segment for records from `options.next_lsn` on and starts the writer
    /// (and, under `everysec`, the syncer).
    pub fn open(options: WalOptions) -> Result<Wal, WalError> {
        create_dir(&options.dir)?;
        let shared = Arc::new(Shared {
            next_lsn: AtomicU64::new(options.next_lsn),
            covered: AtomicU64::new(options.next_lsn),
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
            failures: AtomicU64::new(0),
            records: AtomicU64::new(0),
            group_commits: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            segments: Mutex::new(options.existing.clone()),
            current: Mutex::new(None),
            disk: DiskWatch::new(),
            inject_failures: AtomicU32::new(0),
            views: Mutex::new(options.views.clone()),
            options,
        });
        // The newest existing segment may hold records written but never fsynced (a
        // `kill -9` under `everysec` or `no` leaves them in the page cache): they are made
        // durable before anything newer goes to a new segment, so a power cut later cannot
        // leave a hole behind durable records.
        if let Some(last) = shared.options.existing.last() {
            let file = File::open(&last.path).at(&last.path, "open")?;
            durable::sync_all(&file).at(&last.path, "fsync")?;
        }
        let (file, len) = new_segment(&shared)?;
        let (tx, rx) = channel::bounded(QUEUE);
        let mut writer = Writer {
            shared: shared.clone(),
            file,
            len,
            writeback_from: len,
            buf: Vec::new(),
            failed_at: None,
        };
        let mut threads = vec![std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| FileError::new(&shared.options.dir, "start the log writer for", e))?];
        if shared.options.fsync == FsyncPolicy::Everysec {
            let syncer = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("wal-syncer".into())
                    .spawn(move || sync_every_second(&syncer))
                    .map_err(|e| {
                        FileError::new(&shared.options.dir, "start the log syncer for", e)
                    })?,
            );
        }
        Ok(Wal {
            shared,
            tx,
            threads: Arc::new(Mutex::new(threads)),
        })
    }

    /// Appends a record made by [`super::encode_record`]; once it is logged as the fsync
    /// policy promises, the writer runs `on_logged` with its lsn, then answers the lsn. If the
    /// record cannot be logged, `on_logged` is dropped unrun. Cancel safety: dropping the
    /// future after the record was queued still logs it and runs `on_logged`, as if the
    /// answer had been awaited.
    pub async fn append(&self, record: Vec<u8>, on_logged: OnLogged) -> Result<u64, WalError> {
        if !self.shared.healthy.load(Ordering::Acquire) {
            return Err(self.shared.unavailable());
        }
        self.refuse_if_stalled()?;
        let (answer, answered) = oneshot::channel();
        let job = Job::Append {
            record,
            on_logged,
            answer: Answer::Channel(answer),
        };
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(WalError::Unavailable {
                    reason: format!("{QUEUE} records are queued for the disk"),
                })
            }
            Err(TrySendError::Disconnected(_)) => return Err(self.shared.unavailable()),
        }
        answered
            .await
            .map_err(|_| self.shared.unavailable())
            .and_then(|(result, record)| {
                super::recycle_record(record);
                result
            })
    }

    /// Hands a record made by [`super::encode_payload`] to the writer without waiting for it:
    /// `done` gets its lsn once it is logged as the fsync policy promises (after the write,
    /// and the fsync under `always`; in lsn order, on the writer thread), or the error that
    /// kept it from the disk. An error here (the log is failing or closed) means `done` is
    /// dropped uncalled. Unlike [`Wal::append`] a full queue is waited out (blocking the
    /// caller until the writer takes the next batch): backpressure rather than a refusal.
    pub fn submit(&self, record: Vec<u8>, done: Done) -> Result<(), WalError> {
        if !self.shared.healthy.load(Ordering::Acquire) {
            return Err(self.shared.unavailable());
        }
        let job = Job::Append {
            record,
            on_logged: Box::new(|_| {}),
            answer: Answer::Call(done),
        };
        self.tx.send(job).map_err(|_| self.shared.unavailable())
    }

    /// How long the oldest write or fsync in progress has waited on the disk (`None`: none
    /// is in progress).
    pub fn disk_wait(&self) -> Option<Duration> {
        self.shared.disk.longest()
    }

    /// [`WalError::Stalled`] (nothing queued) once a disk call has waited [`STALLED`].
    fn refuse_if_stalled(&self) -> Result<(), WalError> {
        match self.disk_wait() {
            Some(waited) if waited >= STALLED => Err(WalError::Stalled {
                waited_secs: waited.as_secs_f64(),
                queued: false,
            }),
            _ => Ok(()),
        }
    }

    /// Views were added to the registry: `views` (indexed by view id, the current ones first)
    /// are named by the segments from now on. The writer closes the current segment and
    /// starts one whose header names them; answers once it has (or, when the log is failing,
    /// once its recovery is sure to start such a segment). Records of the new views must
    /// wait for the answer: a segment's records may only name the views of its header.
    pub async fn set_views(&self, views: Vec<ViewMeta>) -> Result<(), WalError> {
        let (answer, answered) = oneshot::channel();
        self.tx
            .try_send(Job::SetViews { views, answer })
            .map_err(|_| WalError::Unavailable {
                reason: "the log writer is busy or closed; retry shortly".into(),
            })?;
        answered.await.map_err(|_| self.shared.unavailable())
    }

    /// The views records refer to by index now (index = view id).
    pub fn views(&self) -> Vec<ViewMeta> {
        lock(&self.shared.views).clone()
    }

    /// Every record with a smaller lsn is logged and handed on: its rows are queued on the
    /// shards (and in the offline sink) ahead of anything queued after this call.
    pub fn covered_lsn(&self) -> u64 {
        self.shared.covered.load(Ordering::Acquire)
    }

    /// Deletes the segments whose records all have an lsn below `lsn` (never the one being
    /// written), then fsyncs the directory. Blocking: call it off the actor threads.
    ///
    /// Whatever made those records unnecessary may itself be a record of this log (a Raft
    /// purge or restatement), written but under `everysec` or `no` not yet fsynced: so every
    /// record written so far is fsynced first, and nothing is unlinked unless that succeeded.
    /// Deletion thus only ever happens behind durable data, whatever the policy.
    pub fn delete_covered(&self, lsn: u64) -> Result<usize, WalError> {
        {
            let segments = lock(&self.shared.segments);
            if !(segments.len() >= 2 && segments[1].first_lsn <= lsn) {
                return Ok(0);
            }
        }
        if !self.shared.healthy.load(Ordering::Acquire) {
            // A failed write or fsync may have left written records short of the disk.
            return Err(self.shared.unavailable());
        }
        let waiting = self.shared.disk.waiting(Waiter::Deleter);
        self.sync_written()?;
        let mut segments = lock(&self.shared.segments);
        let mut deleted = 0;
        while segments.len() >= 2 && segments[1].first_lsn <= lsn {
            let old = segments.remove(0);
            std::fs::remove_file(&old.path).at(&old.path, "delete the log segment")?;
            deleted += 1;
        }
        drop(segments);
        if deleted > 0 {
            sync_dir(&self.shared.options.dir)?;
        }
        drop(waiting);
        Ok(deleted)
    }

    /// Fsyncs every record written so far. The writer hands records to the OS before it
    /// calls them logged, and fsyncs a segment before it moves on to the next one, so an
    /// fsync of the current segment covers every record logged before this call.
    fn sync_written(&self) -> Result<(), WalError> {
        let current = lock(&self.shared.current).clone();
        if let Some(file) = current {
            let dir = &self.shared.options.dir;
            durable::sync_data(&file)
                .map_err(|e| FileError::new(dir, "fsync the current log segment in", e))?;
            self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The segments on disk, oldest first (the last one is being written).
    pub fn segments(&self) -> Vec<SegmentFile> {
        lock(&self.shared.segments).clone()
    }

    pub fn stats(&self) -> WalStats {
        let s = &self.shared;
        WalStats {
            fsync: s.options.fsync,
            healthy: s.healthy.load(Ordering::Acquire),
            failures: s.failures.load(Ordering::Relaxed),
            last_error: lock(&s.last_error).clone(),
            next_lsn: s.next_lsn.load(Ordering::Acquire),
            segments: lock(&s.segments).len(),
            records: s.records.load(Ordering::Relaxed),
            group_commits: s.group_commits.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
        }
    }

    /// Writes what is queued, fsyncs (whatever the policy) and stops the threads. Blocking.
    pub fn close(&self) {
        let _ = self.tx.send(Job::Close);
        for handle in lock(&self.threads).drain(..) {
            let _ = handle.join();
        }
    }

    /// Test hook: the next `n` writes fail as if the disk had.
    #[doc(hidden)]
    pub fn inject_write_failures(&self, n: u32) {
        self.shared.inject_failures.store(n, Ordering::Release);
    }
}

#[cfg(test)]
mod disk_watch_tests {
    use super::{DiskWatch, Waiter};

    #[test]
    fn the_longest_wait_is_the_oldest_call_in_progress() {
        let watch = DiskWatch::new();
        assert_eq!(watch.longest(), None);
        let writer = watch.waiting(Waiter::Writer);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let syncer = watch.waiting(Waiter::Syncer);
        let longest = watch.longest().expect("a call in progress");
        assert!(longest.as_millis() >= 20, "{longest:?}");
        drop(writer);
        assert!(watch.longest().expect("the syncer's") < longest);
        drop(syncer);
        assert_eq!(watch.longest(), None);
    }
}
