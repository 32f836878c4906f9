//! The coordinator: starts the shard hosts, and for each request sends one message to each
//! shard thread that has work in it, then gathers the answers.
//!
//! Topology: `shards` partitions spread round-robin over `shard_threads` arbiters, one
//! [`ShardHost`] actor per arbiter (shard `s` lives on thread `s % shard_threads`). A request's
//! keys are grouped by shard by the caller; the coordinator groups the shards by thread, so a
//! request costs one message per thread it touches, never one per key or per shard.
//!
//! Backpressure: each thread has a count of jobs queued and not yet started. A request first
//! reserves a place on every thread it touches; if one is full it is refused at once with
//! [`GridError::Overloaded`] and nothing is queued anywhere (for a write: nothing is logged
//! either, the caller reserves before it logs). A thread that does not answer within
//! `shard_timeout` gives [`GridError::Timeout`]: the job stays queued and will run, so the
//! outcome is "not known yet", and a retry is safe (newest-event-wins makes a repeated write
//! a no-op). Both become 503 with `Retry-After` at the HTTP layer, with different codes.
//!
//! Cancel safety: dropping a request future (a client that hangs up) after its jobs were
//! queued does not cancel them: every queued job runs. A write is queued by the log writer
//! (see [`WriteDispatch`]), in log order, so the order in which a shard applies writes is the
//! order a replay of the log applies them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use arc_swap::ArcSwap;
use futures_util::future::join_all;
use tokio::sync::oneshot;

use super::partition::{
    ApplyStats, FrozenPartition, Partition, PartitionError, ReadBatch, ReadOutput, RowBatch,
    RowLayout,
};
use super::routing::Router;
use super::shard::{AddViews, Freeze, Job, Read, ShardHost, ShardStats, Stall, Stats, Work, Write};

/// Bytes of records one [`Freeze`] step copies: a few milliseconds of a shard thread.
pub const FREEZE_STEP_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GridError {
    #[error(
        "shard thread {thread} has {capacity} requests queued; nothing was done; retry shortly"
    )]
    Overloaded { thread: usize, capacity: usize },
    #[error("shard thread {thread} did not answer within {timeout_ms} ms; the request is queued and will still be carried out; retrying is safe")]
    Timeout { thread: usize, timeout_ms: u64 },
    #[error("shard thread {thread} has stopped")]
    ShardStopped { thread: usize },
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error("{threads_failed} of {threads_total} shard threads failed; the request may be partly applied and is safe to retry. First error: {first_err}")]
    InconsistentShardFailure {
        threads_total: usize,
        threads_failed: usize,
        first_err: Box<GridError>,
    },
}

/// Options for starting the shards.
#[derive(Debug, Clone)]
pub struct GridOptions {
    pub shards: usize,
    pub shard_threads: usize,
    pub mailbox_capacity: usize,
    pub shard_timeout: Duration,
}

/// Hands requests to the shard hosts. Cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    hosts: Arc<[Addr<ShardHost>]>,
    /// Per thread: jobs queued and not yet started (shared with the host, which counts down).
    queued: Arc<[Arc<AtomicUsize>]>,
    router: Router,
    /// Indexed by view id; only ever grows ([`Coordinator::add_views`]).
    layouts: Arc<ArcSwap<Arc<[RowLayout]>>>,
    capacity: usize,
    timeout: Duration,
}

/// The threads the shards run on; stop them at shutdown.
pub struct ShardThreads(Vec<Arbiter>);

impl ShardThreads {
    pub fn stop(self) {
        for arbiter in self.0 {
            arbiter.stop();
            let _ = arbiter.join();
        }
    }
}

/// A reserved place in a thread's mailbox: given back when dropped, unless a queued job took
/// it (the host gives it back when it starts the job).
struct Place {
    queued: Arc<AtomicUsize>,
    taken: bool,
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
fn queue<W: Work>(host: &Addr<ShardHost>, mut place: Place, job: Job<W>) {
    // The reservation keeps the mailbox below actix's own capacity, so this never parks.
    place.taken = host.try_send(job).is_ok();
    drop(place);
}

/// [`queue`]s `work`; answers where its answer arrives.
fn post<W: Work>(host: &Addr<ShardHost>, place: Place, work: W) -> oneshot::Receiver<W::Output> {
    let (answer, answered) = oneshot::channel();
    queue(host, place, Job { work, answer });
    answered
}

/// Waits for one thread's answer, at most `timeout`.
async fn wait<T>(
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
fn gather<T>(answers: Vec<Result<Option<T>, GridError>>) -> Result<Vec<Option<T>>, GridError> {
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
    hosts: Arc<[Addr<ShardHost>]>,
    jobs: Vec<(
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
    answers: Vec<(usize, oneshot::Receiver<<Write as Work>::Output>)>,
    timeout: Duration,
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
        for answer in gather(answers)?.into_iter().flatten() {
            total += answer?;
        }
        Ok(total)
    }
}

impl Coordinator {
    /// Starts `shard_threads` arbiters, each with one [`ShardHost`] owning its shards'
    /// partitions. Must run inside an actix system; call it once, before the HTTP server starts.
    pub fn start(options: &GridOptions, layouts: Arc<[RowLayout]>) -> (Coordinator, ShardThreads) {
        let partitions = (0..options.shards)
            .map(|_| Partition::new(layouts.clone()))
            .collect();
        Coordinator::start_with(options, layouts, partitions)
    }

    /// [`Coordinator::start`] with the given partitions (index = shard; restored at start).
    pub fn start_with(
        options: &GridOptions,
        layouts: Arc<[RowLayout]>,
        partitions: Vec<Partition>,
    ) -> (Coordinator, ShardThreads) {
        assert_eq!(partitions.len(), options.shards, "one partition per shard");
        let threads = options.shard_threads.clamp(1, options.shards);
        let arbiters: Vec<Arbiter> = (0..threads).map(|_| Arbiter::new()).collect();
        let mut per_thread: Vec<Vec<(usize, Partition)>> =
            (0..threads).map(|_| Vec::new()).collect();
        for (id, partition) in partitions.into_iter().enumerate() {
            per_thread[id % threads].push((id, partition));
        }
        let queued: Arc<[Arc<AtomicUsize>]> = (0..threads)
            .map(|_| Arc::new(AtomicUsize::new(0)))
            .collect();
        let hosts: Arc<[Addr<ShardHost>]> = arbiters
            .iter()
            .zip(per_thread)
            .zip(queued.iter().cloned())
            .map(|((arbiter, shards), queued)| {
                let capacity = options.mailbox_capacity;
                ShardHost::start_in_arbiter(&arbiter.handle(), move |_| {
                    ShardHost::new(shards, queued, capacity)
                })
            })
            .collect();
        let coordinator = Coordinator {
            queued,
            hosts,
            router: Router::new(options.shards),
            layouts: Arc::new(ArcSwap::from_pointee(layouts)),
            capacity: options.mailbox_capacity,
            timeout: options.shard_timeout,
        };
        (coordinator, ShardThreads(arbiters))
    }

    pub fn router(&self) -> Router {
        self.router
    }

    /// The layouts of every view, indexed by view id.
    pub fn layouts(&self) -> Arc<[RowLayout]> {
        Arc::clone(&self.layouts.load())
    }

    /// Makes room for views added to the registry: `layouts` are the current ones followed by
    /// the new views'. Every shard gets an empty table per new view; answers once all have.
    /// Idempotent, so a failed call (some threads did not answer) can simply be repeated.
    pub async fn add_views(&self, layouts: Arc<[RowLayout]>) -> Result<(), GridError> {
        let work = self
            .hosts
            .iter()
            .map(|_| Some(AddViews(layouts.clone())))
            .collect();
        self.fan_out(work).await?;
        self.layouts.store(Arc::new(layouts));
        Ok(())
    }

    fn threads(&self) -> usize {
        self.hosts.len()
    }

    /// Regroups per-shard work (index = shard) into per-thread lists (index = local shard).
    fn by_thread<T>(&self, per_shard: Vec<T>) -> Vec<Vec<T>> {
        let threads = self.threads();
        let mut grouped: Vec<Vec<T>> = (0..threads)
            .map(|_| Vec::with_capacity(per_shard.len() / threads + 1))
            .collect();
        for (shard, work) in per_shard.into_iter().enumerate() {
            grouped[shard % threads].push(work);
        }
        grouped
    }

    /// Reserves a place in thread `thread`'s mailbox, or refuses at once when it is full.
    fn reserve(&self, thread: usize) -> Result<Place, GridError> {
        let queued = &self.queued[thread];
        if queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            queued.fetch_sub(1, Ordering::AcqRel);
            return Err(GridError::Overloaded {
                thread,
                capacity: self.capacity,
            });
        }
        Ok(Place {
            queued: queued.clone(),
            taken: false,
        })
    }

    /// Runs `work` on thread `thread`: refused at once when its mailbox is full, an error after
    /// the timeout.
    async fn ask<W: Work>(&self, thread: usize, work: W) -> Result<W::Output, GridError> {
        let place = self.reserve(thread)?;
        wait(thread, post(&self.hosts[thread], place, work), self.timeout).await
    }

    /// Runs each thread's work (if any) concurrently and gathers the answers in thread order.
    /// Every place is reserved before anything is queued: a full thread refuses the whole
    /// request, and nothing runs.
    async fn fan_out<W: Work>(
        &self,
        work: Vec<Option<W>>,
    ) -> Result<Vec<Option<W::Output>>, GridError> {
        let places = work
            .iter()
            .enumerate()
            .map(|(thread, w)| w.as_ref().map(|_| self.reserve(thread)).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let waits = work
            .into_iter()
            .zip(places)
            .enumerate()
            .map(|(thread, (work, place))| {
                let answered = work
                    .zip(place)
                    .map(|(w, p)| post(&self.hosts[thread], p, w));
                async move {
                    match answered {
                        Some(rx) => wait(thread, rx, self.timeout).await.map(Some),
                        None => Ok(None),
                    }
                }
            });
        gather(join_all(waits).await)
    }

    /// Reserves mailbox places for per-shard batches (index = shard; all rows validated by the
    /// caller): refused at once ([`GridError::Overloaded`]) when a thread is full, before
    /// anything is logged or queued. Answers the write to queue and where its answers arrive.
    pub fn prepare_write(
        &self,
        per_shard: Vec<Vec<RowBatch>>,
    ) -> Result<(WriteDispatch, PendingWrite), GridError> {
        let mut jobs = Vec::new();
        let mut answers = Vec::new();
        for (thread, local) in self.by_thread(per_shard).into_iter().enumerate() {
            if !local.iter().any(|b| !b.is_empty()) {
                continue;
            }
            let place = self.reserve(thread)?;
            let (answer, answered) = oneshot::channel();
            jobs.push((thread, place, Write(local), answer));
            answers.push((thread, answered));
        }
        let dispatch = WriteDispatch {
            hosts: self.hosts.clone(),
            jobs,
        };
        let pending = PendingWrite {
            answers,
            timeout: self.timeout,
        };
        Ok((dispatch, pending))
    }

    /// Applies per-shard batches (index = shard) straight away, without the log: for tests,
    /// benchmarks and restores.
    pub async fn write(&self, per_shard: Vec<Vec<RowBatch>>) -> Result<ApplyStats, GridError> {
        let (dispatch, pending) = self.prepare_write(per_shard)?;
        dispatch.send();
        pending.wait().await
    }

    /// Reads per-shard key batches (index = shard); the answer has one entry per shard,
    /// `None` where the shard had no keys.
    pub async fn read(
        &self,
        per_shard: Vec<ReadBatch>,
    ) -> Result<Vec<Option<ReadOutput>>, GridError> {
        let shards = per_shard.len();
        let work = self
            .by_thread(per_shard)
            .into_iter()
            .map(|local| local.iter().any(|b| !b.is_empty()).then_some(Read(local)))
            .collect();
        let answers = self.fan_out(work).await?;
        let threads = self.threads();
        let mut per_thread = Vec::with_capacity(threads);
        for answer in answers {
            per_thread.push(answer.transpose()?.unwrap_or_default().into_iter());
        }
        Ok((0..shards)
            .map(|shard| per_thread[shard % threads].next().flatten())
            .collect())
    }

    /// A copy of shard `shard`'s rows, taken in steps of about [`FREEZE_STEP_BYTES`] (see
    /// [`Freeze`] and [`FrozenPartition`] for what the copy holds). The first step runs after
    /// every write queued before this call.
    pub async fn freeze_shard(&self, shard: usize) -> Result<FrozenPartition, GridError> {
        let threads = self.threads();
        let (thread, local) = (shard % threads, shard / threads);
        let mut frozen = FrozenPartition::empty(self.layouts());
        loop {
            let step = Freeze {
                local,
                into: frozen,
                budget: FREEZE_STEP_BYTES,
            };
            let (copy, done) = self
                .ask(thread, step)
                .await?
                .ok_or(GridError::ShardStopped { thread })?;
            if done {
                return Ok(copy);
            }
            frozen = copy;
        }
    }

    /// Copies of every shard, one after the other, in shard order.
    pub async fn freeze(&self) -> Result<Vec<FrozenPartition>, GridError> {
        let mut frozen = Vec::with_capacity(self.router.shards());
        for shard in 0..self.router.shards() {
            frozen.push(self.freeze_shard(shard).await?);
        }
        Ok(frozen)
    }

    /// Holds every shard thread for `duration`, without waiting: a test hook (unit tests, and
    /// HTTP tests with `FEATGRID_TEST_HOOKS=1`) to fill mailboxes. A full thread is skipped.
    pub fn stall_all(&self, duration: Duration) {
        for thread in 0..self.threads() {
            if let Ok(place) = self.reserve(thread) {
                drop(post(&self.hosts[thread], place, Stall(duration)));
            }
        }
    }

    /// Every shard's statistics, in shard order.
    pub async fn stats(&self) -> Result<Vec<ShardStats>, GridError> {
        let work = self.hosts.iter().map(|_| Some(Stats)).collect();
        let mut stats: Vec<ShardStats> = self
            .fan_out(work)
            .await?
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        stats.sort_by_key(|s| s.shard);
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn options(capacity: usize, timeout_ms: u64) -> GridOptions {
        GridOptions {
            shards: 3,
            shard_threads: 2,
            mailbox_capacity: capacity,
            shard_timeout: Duration::from_millis(timeout_ms),
        }
    }

    /// A write to thread 0 of 3 shards on 2 threads (driver ids hashing there).
    fn write_to_thread_0(
        grid: &Coordinator,
        layouts: &[RowLayout],
        trips: i64,
    ) -> Vec<Vec<RowBatch>> {
        let router = grid.router();
        let mut per_shard: Vec<Vec<RowBatch>> = vec![Vec::new(); router.shards()];
        let key = 7i64.to_le_bytes();
        let shard = router.shard_of_key(&key);
        assert_eq!(shard % 2, 0, "test key hashes to thread 0");
        let mut batch = RowBatch::new(0);
        batch.start_row(&layouts[0], &key, trips, crate::grid::partition::NO_CREATED);
        per_shard[shard].push(batch);
        per_shard
    }

    #[actix_rt::test]
    async fn a_full_mailbox_refuses_at_once_and_a_timed_out_write_is_still_applied() {
        let layouts = RowLayout::for_registry(&Registry::embedded());
        let (grid, threads) = Coordinator::start(&options(1, 50), layouts.clone());
        // Hold thread 0: the stall is running, so it no longer counts as queued.
        grid.stall_all(Duration::from_millis(400));
        actix_rt::time::sleep(Duration::from_millis(30)).await;
        // A write takes the only place, and times out: outcome unknown, still queued.
        let timed_out = grid.write(write_to_thread_0(&grid, &layouts, 5)).await;
        assert!(
            matches!(timed_out, Err(GridError::Timeout { thread: 0, .. })),
            "{timed_out:?}"
        );
        // The mailbox is full: refused at once, and never queued.
        let refused = grid.prepare_write(write_to_thread_0(&grid, &layouts, 9));
        assert!(
            matches!(
                refused,
                Err(GridError::Overloaded {
                    thread: 0,
                    capacity: 1
                })
            ),
            "{:?}",
            refused.err()
        );
        assert!(matches!(
            grid.ask(0, Stats).await,
            Err(GridError::Overloaded { .. })
        ));
        // Once the stall ends, the timed-out write was applied and the refused one was not.
        actix_rt::time::sleep(Duration::from_millis(500)).await;
        let mut reads = vec![ReadBatch::default(); 3];
        let key = 7i64.to_le_bytes();
        reads[grid.router().shard_of_key(&key)].push(0, &key);
        let out = grid.read(reads).await.unwrap();
        let row = out
            .iter()
            .flatten()
            .next()
            .unwrap()
            .row(&layouts, 0)
            .unwrap();
        assert_eq!(row.event_ts(), 5);
        threads.stop();
    }

    #[actix_rt::test]
    async fn stats_gather_every_shard() {
        let layouts = RowLayout::for_registry(&Registry::embedded());
        let (grid, threads) = Coordinator::start(&options(8, 1000), layouts);
        let stats = grid.stats().await.unwrap();
        assert_eq!(
            stats.iter().map(|s| s.shard).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        threads.stop();
    }

    #[actix_rt::test]
    async fn reads_what_was_written_on_every_shard_and_thread() {
        let registry = Registry::embedded();
        let layouts = RowLayout::for_registry(&registry);
        let (grid, threads) = Coordinator::start(&options(8, 1000), layouts.clone());
        let router = grid.router();
        let mut per_shard: Vec<Vec<RowBatch>> = vec![Vec::new(); router.shards()];
        let mut reads = vec![ReadBatch::default(); router.shards()];
        let mut where_is = Vec::new();
        for id in 0..50i64 {
            let key = id.to_le_bytes();
            let shard = router.shard_of_key(&key);
            let mut batch = RowBatch::new(0);
            batch.start_row(&layouts[0], &key, id, crate::grid::partition::NO_CREATED);
            per_shard[shard].push(batch);
            where_is.push((shard, reads[shard].len()));
            reads[shard].push(0, &key);
        }
        assert_eq!(grid.write(per_shard).await.unwrap().written, 50);
        let outputs = grid.read(reads).await.unwrap();
        for (id, (shard, i)) in where_is.into_iter().enumerate() {
            let row = outputs[shard].as_ref().unwrap().row(&layouts, i).unwrap();
            assert_eq!(row.event_ts(), id as i64);
        }
        threads.stop();
    }
}
