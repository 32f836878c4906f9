//! The coordinator: starts the shard actors, and for each request sends one message to each
//! shard that has work in it, then gathers the answers.
//!
//! Topology: `shard_threads` arbiters (threads) host the shards round-robin. The default is
//! one thread for every shard, measured to be the fastest on small machines (see README).
//!
//! Backpressure: each shard has a count of messages in flight. A send to a shard whose count
//! has reached `mailbox_capacity` fails at once with [`GridError::Overloaded`]; a shard that
//! does not answer within `shard_timeout` gives [`GridError::Timeout`]. Both become 503 with
//! `Retry-After` at the HTTP layer.
//!
//! Cancel safety: dropping a request future (a client that hangs up) cancels the messages not
//! yet queued; messages already queued are still applied. So a cancelled or timed-out write may
//! be applied to some shards and not others; retrying it is safe, because newest-event-wins
//! makes a repeated write a no-op.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::join_all;

use super::partition::{
    ApplyStats, Partition, PartitionError, ReadBatch, ReadOutput, RowBatch, RowLayout,
};
use super::routing::Router;
use super::shard::{Read, Shard, ShardStats, Stats, Write};

#[derive(Debug, Clone, thiserror::Error)]
pub enum GridError {
    #[error("shard {shard} has {capacity} requests queued; retry shortly")]
    Overloaded { shard: usize, capacity: usize },
    #[error("shard {shard} did not answer within {timeout_ms} ms; retry shortly")]
    Timeout { shard: usize, timeout_ms: u64 },
    #[error("shard {shard} has stopped")]
    ShardStopped { shard: usize },
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error("{shards_failed} of {shards_total} shards failed; the request may be partly applied and is safe to retry. First error: {first_err}")]
    InconsistentShardFailure {
        shards_total: usize,
        shards_failed: usize,
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

/// Hands requests to the shard actors. Cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    shards: Arc<[Addr<Shard>]>,
    in_flight: Arc<[AtomicUsize]>,
    router: Router,
    layouts: Arc<[RowLayout]>,
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

/// Decrements a shard's in-flight count when the send ends, however it ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Coordinator {
    /// Starts one actor per shard on `shard_threads` new arbiters. Must run inside an actix
    /// system; call it once, before the HTTP server starts.
    pub fn start(options: &GridOptions, layouts: Arc<[RowLayout]>) -> (Coordinator, ShardThreads) {
        let arbiters: Vec<Arbiter> = (0..options.shard_threads).map(|_| Arbiter::new()).collect();
        let shards: Arc<[Addr<Shard>]> = (0..options.shards)
            .map(|id| {
                let partition = Partition::new(layouts.clone());
                let capacity = options.mailbox_capacity;
                let arbiter = arbiters[id % arbiters.len()].handle();
                Shard::start_in_arbiter(&arbiter, move |_| Shard::new(id, partition, capacity))
            })
            .collect();
        let coordinator = Coordinator {
            in_flight: shards.iter().map(|_| AtomicUsize::new(0)).collect(),
            shards,
            router: Router::new(options.shards),
            layouts,
            capacity: options.mailbox_capacity,
            timeout: options.shard_timeout,
        };
        (coordinator, ShardThreads(arbiters))
    }

    pub fn router(&self) -> Router {
        self.router
    }

    pub fn layouts(&self) -> &[RowLayout] {
        &self.layouts
    }

    /// Sends `msg` to shard `shard`, failing fast when it is full and after the timeout.
    async fn ask<M>(&self, shard: usize, msg: M) -> Result<M::Result, GridError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        Shard: Handler<M>,
    {
        let counter = &self.in_flight[shard];
        if counter.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            counter.fetch_sub(1, Ordering::Relaxed);
            return Err(GridError::Overloaded {
                shard,
                capacity: self.capacity,
            });
        }
        let _guard = InFlight(counter);
        match actix_rt::time::timeout(self.timeout, self.shards[shard].send(msg)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(GridError::ShardStopped { shard }),
            Err(_) => Err(GridError::Timeout {
                shard,
                timeout_ms: self.timeout.as_millis() as u64,
            }),
        }
    }

    /// Sends each shard's work (if any) concurrently and gathers the answers in shard order.
    async fn fan_out<M, T>(&self, work: Vec<Option<M>>) -> Result<Vec<Option<T>>, GridError>
    where
        M: Message<Result = T> + Send + 'static,
        T: Send + 'static,
        Shard: Handler<M>,
    {
        let sends = work.into_iter().enumerate().map(|(shard, msg)| async move {
            match msg {
                Some(msg) => self.ask(shard, msg).await.map(Some),
                None => Ok(None),
            }
        });
        let answers = join_all(sends).await;
        let shards_total = answers.iter().filter(|a| !matches!(a, Ok(None))).count();
        let mut failed = answers.iter().filter_map(|a| a.as_ref().err());
        if let Some(first) = failed.next() {
            let shards_failed = 1 + failed.count();
            return Err(if shards_total <= 1 {
                first.clone()
            } else {
                GridError::InconsistentShardFailure {
                    shards_total,
                    shards_failed,
                    first_err: Box::new(first.clone()),
                }
            });
        }
        Ok(answers.into_iter().map(|a| a.ok().flatten()).collect())
    }

    /// Applies per-shard batches (index = shard). All rows were validated by the caller.
    pub async fn write(&self, per_shard: Vec<Vec<RowBatch>>) -> Result<ApplyStats, GridError> {
        let work = per_shard
            .into_iter()
            .map(|b| (!b.is_empty()).then_some(Write(b)))
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
        let work = per_shard
            .into_iter()
            .map(|b| (!b.is_empty()).then_some(Read(b)))
            .collect();
        self.fan_out(work).await
    }

    /// Every shard's statistics.
    pub async fn stats(&self) -> Result<Vec<ShardStats>, GridError> {
        let work = self.shards.iter().map(|_| Some(Stats)).collect();
        Ok(self.fan_out(work).await?.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::shard::Stall;
    use crate::registry::Registry;

    fn options(capacity: usize, timeout_ms: u64) -> GridOptions {
        GridOptions {
            shards: 2,
            shard_threads: 1,
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
                    shard: 0,
                    capacity: 1
                })
            ),
            "{full:?}"
        );
        assert!(matches!(
            stall.await.unwrap(),
            Err(GridError::Timeout { shard: 0, .. })
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
            vec![0, 1]
        );
        threads.stop();
    }
}
