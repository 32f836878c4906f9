//! A request's way through the shard threads' mailboxes: a place reserved before anything is
//! queued ([`Place`]), the job queued without waiting, its answer awaited at most the shard
//! timeout, the per-thread answers gathered (a partial failure with its counts), and a write
//! split into what the log writer queues ([`WriteDispatch`]) and what the request awaits
//! ([`PendingWrite`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::join_all;
use tokio::sync::oneshot;

use super::GridError;
use crate::grid::partition::{ApplyStats, RowBatch};
use crate::grid::shard::{Job, ShardHost, Work, Write};

/// A reserved place in a thread's mailbox: given back when dropped, unless a queued job took
/// it (the host gives it back when it starts the job).
pub(super) struct Place {
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) taken: bool,
}

impl Drop for Place {
    fn drop(&mut self) {
        if !self.taken {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Queues `job` on `host` in the reserved `place`; never waits. If the host has stopped, the
/// job is dropped and its answer channel closes (read as [`GridError::ShardStopped`]).
pub(super) fn queue<W: Work>(host: &Addr<ShardHost>, mut place: Place, job: Job<W>) {
    // The reservation keeps the mailbox below actix's own capacity, so this never parks.
    place.taken = host.try_send(job).is_ok();
    drop(place);
}

/// [`queue`]s `work`; answers where its answer arrives.
pub(super) fn post<W: Work>(
    host: &Addr<ShardHost>,
    place: Place,
    work: W,
) -> oneshot::Receiver<W::Output> {
    let (answer, answered) = oneshot::channel();
    queue(host, place, Job { work, answer });
    answered
}

/// Waits for one thread's answer, at most `timeout`.
pub(super) async fn wait<T>(
    thread: usize,
    answered: oneshot::Receiver<T>,
    timeout: Duration,
) -> Result<T, GridError> {
    match actix_rt::time::timeout(timeout, answered).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(_)) => Err(GridError::ShardStopped { thread }),
        Err(_) => Err(GridError::Timeout {
            thread,
            timeout_ms: timeout.as_millis() as u64,
        }),
    }
}

/// Gathers per-thread answers (`None`: no work there): the first error, as such when one
/// thread was involved, else as a partial failure with the counts.
pub(super) fn gather<T>(
    answers: Vec<Result<Option<T>, GridError>>,
) -> Result<Vec<Option<T>>, GridError> {
    let threads_total = answers.iter().filter(|a| !matches!(a, Ok(None))).count();
    let mut failed = answers.iter().filter_map(|a| a.as_ref().err());
    if let Some(first) = failed.next() {
        let threads_failed = 1 + failed.count();
        return Err(if threads_total <= 1 {
            first.clone()
        } else {
            GridError::InconsistentShardFailure {
                threads_total,
                threads_failed,
                first_err: Box::new(first.clone()),
            }
        });
    }
    Ok(answers.into_iter().map(|a| a.ok().flatten()).collect())
}

/// A write with its mailbox places reserved, ready to be queued: [`WriteDispatch::send`]
/// queues it without waiting. The log writer calls it right after the write's record is
/// logged, in log order, so shards apply writes in the order a replay would. Dropped unsent,
/// it gives its places back.
pub struct WriteDispatch {
    pub(super) hosts: Arc<[Addr<ShardHost>]>,
    pub(super) jobs: Vec<(
        usize,
        Place,
        Write,
        oneshot::Sender<<Write as Work>::Output>,
    )>,
}

impl WriteDispatch {
    pub fn send(self) {
        for (thread, place, work, answer) in self.jobs {
            queue(&self.hosts[thread], place, Job { work, answer });
        }
    }
}

/// The answers of a dispatched write.
pub struct PendingWrite {
    pub(super) answers: Vec<(usize, oneshot::Receiver<<Write as Work>::Output>)>,
    pub(super) timeout: Duration,
}

impl PendingWrite {
    /// Waits for every thread's answer, at most the shard timeout.
    pub async fn wait(self) -> Result<ApplyStats, GridError> {
        let timeout = self.timeout;
        let answers = join_all(
            self.answers
                .into_iter()
                .map(|(thread, rx)| async move { wait(thread, rx, timeout).await.map(Some) }),
        )
        .await;
        let mut total = ApplyStats::default();
        for (outcome, Write(batches)) in gather(answers)?.into_iter().flatten() {
            batches.into_iter().flatten().for_each(RowBatch::recycle);
            total += outcome?;
        }
        Ok(total)
    }
}
