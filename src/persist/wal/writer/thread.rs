//! The writer thread and the syncer: group commit (take what is queued, stamp the lsns, one
//! `write`, one `fdatasync` under `always`, run each record's `on_logged` in lsn order, then
//! answer), rolling to a new segment, marking the log unhealthy on a failed write and
//! recovering once a second, and the `everysec` fsync. [`super::Wal`] is the handle the
//! rest of the process holds.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError};

use super::{lock, Answer, Job, OnLogged, Shared, Waiter, MAX_GROUP, RECOVER_EVERY};
use crate::persist::atomic::{sync_dir, Context};
use crate::persist::durable;
use crate::persist::wal::{
    encode_segment_header, seal, segment_name, FsyncPolicy, SegmentFile, SegmentMeta, WalError,
};

/// Creates the next segment (named by the next lsn), durable before any record goes in.
pub(super) fn new_segment(shared: &Shared) -> Result<(Arc<File>, u64), WalError> {
    let first_lsn = shared.next_lsn.load(Ordering::Acquire);
    let dir = &shared.options.dir;
    let path = dir.join(segment_name(first_lsn));
    let header = encode_segment_header(&SegmentMeta {
        first_lsn,
        views: lock(&shared.views).clone(),
    })?;
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .at(&path, "create the log segment")?;
    file.write_all(&header).at(&path, "write")?;
    durable::sync_all(&file).at(&path, "fsync")?;
    sync_dir(dir)?;
    let file = Arc::new(file);
    let mut segments = lock(&shared.segments);
    segments.retain(|s| s.path != path);
    segments.push(SegmentFile { path, first_lsn });
    *lock(&shared.current) = Some(file.clone());
    Ok((file, header.len() as u64))
}

/// Bytes written to a segment between two [`durable::start_writeback`] calls.
const WRITEBACK_EVERY: u64 = 1 << 20;

pub(super) struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) file: Arc<File>,
    /// Bytes of the segment known to be whole records.
    pub(super) len: u64,
    /// Where the bytes whose writeback was not started yet begin.
    pub(super) writeback_from: u64,
    pub(super) buf: Vec<u8>,
    pub(super) failed_at: Option<Instant>,
}

impl Writer {
    pub(super) fn run(&mut self, rx: Receiver<Job>) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        loop {
            let first = match rx.recv_timeout(RECOVER_EVERY / 4) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    let shared = self.shared.clone();
                    let _waiting = shared.disk.waiting(Waiter::Writer);
                    self.try_recover();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut closing = false;
            let mut set_views = None;
            for job in std::iter::once(first).chain(rx.try_iter()) {
                match job {
                    Job::Append {
                        record,
                        on_logged,
                        answer,
                    } => group.push((record, on_logged, answer)),
                    Job::SetViews { views, answer } => set_views = Some((views, answer)),
                    Job::Close => closing = true,
                }
                if closing || set_views.is_some() || group.len() == MAX_GROUP {
                    break;
                }
            }
            let shared = self.shared.clone();
            let waiting = shared.disk.waiting(Waiter::Writer);
            self.try_recover();
            self.commit(&mut group);
            if let Some((views, answer)) = set_views {
                *lock(&self.shared.views) = views;
                // A failing log starts its next segment (with these views) when it recovers.
                if self.shared.healthy.load(Ordering::Acquire) {
                    self.roll();
                }
                let _ = answer.send(());
            }
            drop(waiting);
            if closing {
                break;
            }
        }
        if self.shared.healthy.load(Ordering::Acquire) {
            let _waiting = self.shared.disk.waiting(Waiter::Writer);
            if let Err(e) = durable::sync_data(&self.file) {
                self.shared.fail("fsync at close", &e);
            }
        }
        *lock(&self.shared.current) = None;
        self.shared.healthy.store(false, Ordering::Release);
    }

    fn commit(&mut self, group: &mut Vec<(Vec<u8>, OnLogged, Answer)>) {
        if group.is_empty() {
            return;
        }
        let shared = self.shared.clone();
        if !shared.healthy.load(Ordering::Acquire) {
            for (record, _, answer) in group.drain(..) {
                answer.send(Err(shared.unavailable()), record);
            }
            return;
        }
        let n = group.len() as u64;
        let first = shared.next_lsn.load(Ordering::Acquire);
        self.buf.clear();
        for (i, (record, _, _)) in group.iter_mut().enumerate() {
            seal(record, first + i as u64);
            self.buf.extend_from_slice(record);
        }
        let always = shared.options.fsync == FsyncPolicy::Always;
        if let Err(e) = self.write_batch(always) {
            shared.fail(e.0, &e.1);
            self.failed_at = Some(Instant::now());
            // Unlogged: the hooks are dropped unrun, the lsns are not used.
            for (record, _, answer) in group.drain(..) {
                answer.send(Err(shared.unavailable()), record);
            }
            return;
        }
        self.len += self.buf.len() as u64;
        // Under `no` and `everysec` the page cache holds what was written: its writeback
        // starts every megabyte, so rolling the segment (an fsync) is not a wait of a whole
        // segment's writes (tens of MB: 20-40 ms p99 of pushes at 3,000-5,000/s, measured).
        if !always && self.len - self.writeback_from >= WRITEBACK_EVERY {
            durable::start_writeback(
                &self.file,
                self.writeback_from,
                self.len - self.writeback_from,
            );
            self.writeback_from = self.len;
        }
        shared.next_lsn.store(first + n, Ordering::Release);
        shared.records.fetch_add(n, Ordering::Relaxed);
        shared.group_commits.fetch_add(1, Ordering::Relaxed);
        if always {
            shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        let mut answers = Vec::with_capacity(group.len());
        for (i, (record, on_logged, answer)) in group.drain(..).enumerate() {
            let lsn = first + i as u64;
            on_logged(lsn);
            answers.push((lsn, answer, record));
        }
        shared.covered.store(first + n, Ordering::Release);
        for (lsn, answer, record) in answers {
            answer.send(Ok(lsn), record);
        }
        if self.len >= shared.options.segment_bytes {
            self.roll();
        }
    }

    fn write_batch(&mut self, fsync: bool) -> Result<(), (&'static str, std::io::Error)> {
        let injected = self.shared.inject_failures.load(Ordering::Acquire);
        if injected > 0 {
            self.shared
                .inject_failures
                .store(injected - 1, Ordering::Release);
            // Half a batch reaches the file, as a failing disk might leave it.
            let _ = (&*self.file).write_all(&self.buf[..self.buf.len() / 2]);
            return Err(("write", std::io::Error::other("injected failure")));
        }
        (&*self.file)
            .write_all(&self.buf)
            .map_err(|e| ("write", e))?;
        if fsync {
            durable::sync_data(&self.file).map_err(|e| ("fsync", e))?;
        }
        Ok(())
    }

    /// Closes the current segment, fsynced whatever the policy (once per segment: only the
    /// newest segment may ever hold a torn tail after a power cut), and starts a new one.
    fn roll(&mut self) {
        if let Err(e) = durable::sync_data(&self.file) {
            self.shared.fail("fsync before rolling the segment", &e);
            self.failed_at = Some(Instant::now());
            return;
        }
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        match new_segment(&self.shared) {
            Ok((file, len)) => {
                self.file = file;
                self.len = len;
                self.writeback_from = len;
            }
            Err(e) => {
                self.shared.fail("start a new segment", &e);
                self.failed_at = Some(Instant::now());
            }
        }
    }

    /// After a failure (here or in the syncer), at most once a second: cut the segment back
    /// to its whole records, fsync it, and continue in a new segment.
    fn try_recover(&mut self) {
        if self.shared.healthy.load(Ordering::Acquire) {
            return;
        }
        if self
            .failed_at
            .is_some_and(|at| at.elapsed() < RECOVER_EVERY)
        {
            return;
        }
        self.failed_at = Some(Instant::now());
        let repaired = self
            .file
            .set_len(self.len)
            .and_then(|()| durable::sync_all(&self.file));
        if let Err(e) = repaired {
            tracing::warn!(error = %e, "write-ahead log still failing");
            return;
        }
        match new_segment(&self.shared) {
            Ok((file, len)) => {
                self.file = file;
                self.len = len;
                self.writeback_from = len;
                self.shared.healthy.store(true, Ordering::Release);
                tracing::info!("write-ahead log recovered; accepting writes again");
            }
            Err(e) => tracing::warn!(error = %e, "write-ahead log still failing"),
        }
    }
}

/// The `everysec` syncer: fsyncs the current segment once a second until the log closes.
pub(super) fn sync_every_second(shared: &Shared) {
    let mut next = Instant::now() + Duration::from_secs(1);
    loop {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += Duration::from_secs(1);
        let Some(file) = lock(&shared.current).clone() else {
            return;
        };
        if !shared.healthy.load(Ordering::Acquire) {
            continue;
        }
        let _waiting = shared.disk.waiting(Waiter::Syncer);
        match durable::sync_data(&file) {
            Ok(()) => {
                shared.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => shared.fail("background fsync", &e),
        }
    }
}
