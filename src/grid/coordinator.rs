//! The coordinator: starts the shard hosts, and for each request sends one message to each
//! shard thread that has work in it, then gathers the answers.
//!
//! Topology: `shards` partitions spread round-robin over `shard_threads` arbiters, one
//! [`ShardHost`] actor per arbiter (shard `s` lives on thread `s % shard_threads`). A request's
//! keys are grouped by shard by the caller; the coordinator groups the shards by thread, so a
//! request costs one message per thread it touches, never one per key or per shard.
//!
//! Backpressure: each thread has a count of messages in flight. A send to a thread whose count
//! has reached `mailbox_capacity` fails at once with [`GridError::Overloaded`]; a thread that
//! does not answer within `shard_timeout` gives [`GridError::Timeout`]. Both become 503 with
//! `Retry-After` at the HTTP layer.
//!
//! Cancel safety: dropping a request future (a client that hangs up) cancels the messages not
//! yet queued; messages already queued are still applied. So a cancelled or timed-out write may
//! be applied on some threads and not others; retrying it is safe, because newest-event-wins
//! makes a repeated write a no-op.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use arc_swap::ArcSwap;
use futures_util::future::join_all;

use super::partition::{
    ApplyStats, FrozenPartition, Partition, PartitionError, ReadBatch, ReadOutput, RowBatch,
    RowLayout,
};
use super::routing::Router;
use super::shard::{AddViews, Freeze, Read, ShardHost, ShardStats, Stats, Write};

/// Bytes of records one [`Freeze`] step copies: a few milliseconds of a shard thread.
pub const FREEZE_STEP_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GridError {
    #[error("shard thread {thread} has {capacity} requests queued; retry shortly")]
    Overloaded { thread: usize, capacity: usize },
    #[error("shard thread {thread} did not answer within {timeout_ms} ms; retry shortly")]
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
    in_flight: Arc<[AtomicUsize]>,
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

/// Decrements a thread's in-flight count when the send ends, however it ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
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
        let hosts: Arc<[Addr<ShardHost>]> = arbiters
            .iter()
            .zip(per_thread)
            .map(|(arbiter, shards)| {
                let capacity = options.mailbox_capacity;
                ShardHost::start_in_arbiter(&arbiter.handle(), move |_| {
                    ShardHost::new(shards, capacity)
                })
            })
            .collect();
        let coordinator = Coordinator {
            in_flight: hosts.iter().map(|_| AtomicUsize::new(0)).collect(),
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

    /// Sends `msg` to thread `thread`, failing fast when it is full and after the timeout.
    async fn ask<M>(&self, thread: usize, msg: M) -> Result<M::Result, GridError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        ShardHost: Handler<M>,
    {
        let counter = &self.in_flight[thread];
        if counter.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            counter.fetch_sub(1, Ordering::Relaxed);
            return Err(GridError::Overloaded {
                thread,
                capacity: self.capacity,
            });
        }
        let _guard = InFlight(counter);
        match actix_rt::time::timeout(self.timeout, self.hosts[thread].send(msg)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(GridError::ShardStopped { thread }),
            Err(_) => Err(GridError::Timeout {
                thread,
                timeout_ms: self.timeout.as_millis() as u64,
            }),
        }
    }

    /// Sends each thread's message (if any) concurrently and gathers the answers in thread order.
    async fn fan_out<M, T>(&self, work: Vec<Option<M>>) -> Result<Vec<Option<T>>, GridError>
    where
        M: Message<Result = T> + Send + 'static,
        T: Send + 'static,
        ShardHost: Handler<M>,
    {
        let sends = work
            .into_iter()
            .enumerate()
            .map(|(thread, msg)| async move {
                match msg {
                    Some(msg) => self.ask(thread, msg).await.map(Some),
                    None => Ok(None),
                }
            });
        let answers = join_all(sends).await;
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

    /// Applies per-shard batches (index = shard). All rows were validated by the caller.
    pub async fn write(&self, per_shard: Vec<Vec<RowBatch>>) -> Result<ApplyStats, GridError> {
        let work = self
            .by_thread(per_shard)
            .into_iter()
            .map(|local| local.iter().any(|b| !b.is_empty()).then_some(Write(local)))
            .collect();
        let mut total = ApplyStats::default();
        for answer in self.fan_out(work).await?.into_iter().flatten() {
            total += answer?;
        }
        Ok(total)
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
        let mut per_thread: Vec<std::vec::IntoIter<Option<ReadOutput>>> = answers
            .into_iter()
            .map(|a| a.unwrap_or_default().into_iter())
            .collect();
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
    use crate::grid::shard::Stall;
    use crate::registry::Registry;

    fn options(capacity: usize, timeout_ms: u64) -> GridOptions {
        GridOptions {
            shards: 3,
            shard_threads: 2,
            mailbox_capacity: capacity,
            shard_timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[actix_rt::test]
    async fn full_mailbox_and_timeout_are_errors_not_waits() {
        let layouts = RowLayout::for_registry(&Registry::embedded());
        let (grid, threads) = Coordinator::start(&options(1, 50), layouts);
        // Hold shard 0's thread; the first stall occupies the only mailbox place.
        let stalled = grid.clone();
        let stall =
            actix_rt::spawn(async move { stalled.ask(0, Stall(Duration::from_millis(300))).await });
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        let full = grid.ask(0, Stats).await;
        assert!(
            matches!(
                full,
                Err(GridError::Overloaded {
                    thread: 0,
                    capacity: 1
                })
            ),
            "{full:?}"
        );
        assert!(matches!(
            stall.await.unwrap(),
            Err(GridError::Timeout { thread: 0, .. })
        ));
        // Once the stall ends, the shard answers again.
        actix_rt::time::sleep(Duration::from_millis(400)).await;
        assert!(grid.ask(0, Stats).await.is_ok());
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
