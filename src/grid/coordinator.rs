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
    ApplyStats, FrozenPartition, Partition, PartitionError, PartitionView, ReadBatch, ReadOutput,
    RowBatch, RowLayout,
};
use super::routing::Router;
use super::shard::{AddViews, Freeze, Read, ShardHost, ShardStats, Stall, Stats, Work, Write};

mod mailbox;

use mailbox::{gather, post, wait, Place};
pub use mailbox::{PendingWrite, WriteDispatch};

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
    pub read_path: ReadPath,
}

/// How reads reach a shard's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPath {
    /// On the caller's thread, from what the shard publishes ([`PartitionView`]): no message,
    /// no wake-up. Views with variable-length keys or fields still go through the actor.
    Direct,
    /// Every read is a message to the shard actor.
    Actor,
}

impl std::str::FromStr for ReadPath {
    type Err = String;
    fn from_str(s: &str) -> Result<ReadPath, String> {
        match s {
            "direct" => Ok(ReadPath::Direct),
            "actor" => Ok(ReadPath::Actor),
            other => Err(format!(
                "'{other}' is not a read path: expected direct or actor"
            )),
        }
    }
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
    /// Per shard: what readers may read without a message (with [`ReadPath::Direct`]).
    views: Option<Arc<ArcSwap<Vec<PartitionView>>>>,
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
        let views = (options.read_path == ReadPath::Direct).then(|| {
            let views = partitions.iter().map(Partition::view).collect();
            Arc::new(ArcSwap::from_pointee(views))
        });
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
            views,
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
        let added = self.fan_out(work).await?;
        if let Some(views) = &self.views {
            let mut now = views.load().as_ref().clone();
            for (shard, view) in added.into_iter().flatten().flatten() {
                now[shard] = view;
            }
            views.store(Arc::new(now));
        }
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
        mut per_shard: Vec<ReadBatch>,
    ) -> Result<Vec<Option<ReadOutput>>, GridError> {
        let mut direct: Vec<Option<ReadOutput>> = Vec::new();
        if let Some(views) = &self.views {
            let views = views.load();
            direct = per_shard
                .iter_mut()
                .zip(views.iter())
                .map(|(batch, view)| {
                    if batch.is_empty() {
                        return Ok(None);
                    }
                    let read = view.read(batch).transpose()?;
                    if read.is_some() {
                        // Served here: nothing left for the actor.
                        *batch = ReadBatch::default();
                    }
                    Ok(read)
                })
                .collect::<Result<_, PartitionError>>()?;
            if per_shard.iter().all(ReadBatch::is_empty) {
                return Ok(direct);
            }
        }
        let mut through_actor = self.read_through_actor(per_shard).await?;
        for (shard, output) in direct.into_iter().enumerate() {
            if output.is_some() {
                through_actor[shard] = output;
            }
        }
        Ok(through_actor)
    }

    /// [`Coordinator::read`] with one message per shard thread that has keys.
    async fn read_through_actor(
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
mod tests;
