//! Many pushes, one Raft entry: each group has a batcher on every node, used when the node
//! leads the group. A write is queued; the batcher proposes what is queued as one entry
//! ([`GroupBatch`]) as soon as fewer than [`IN_FLIGHT`] entries are being committed, so under
//! load every push that arrived while earlier entries were on their way shares the next one
//! (one log append, one replication round, one apply), and a lone push is proposed at once.
//! When the last entry held [`LINGER_FROM`] writes or more, the batcher first waits
//! [`LINGER`] for more.
//!
//! The queue is bounded: when [`QUEUE`] writes already wait, a new one is refused at once
//! (503 `cluster_overloaded`, nothing proposed) rather than growing without limit. A write
//! whose requester gave up is still proposed (a retry of it is harmless: newest event wins).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::error::{ClientWriteError, Fatal, RaftError};
use openraft::BasicNode;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::types::{GroupBatch, GroupWrite, NodeId, Raft};

/// Entries of a group being committed at once; writes arriving meanwhile wait for a place.
/// One: every push that arrives while an entry is on its way shares the next entry. Measured
/// (BENCHMARKS.md, 2026-12-03 19:40): push 100 through a 3-node cluster 2,369 and 2,637/s with
/// one against 1,911 and 2,101/s with four (and lower p50 and p99): fewer, larger entries are
/// fewer replication rounds and fewer wake-ups of every thread on the way, and Raft commits
/// a group's entries in order anyway.
const IN_FLIGHT: usize = 1;
/// How long the batcher waits for more writes before it proposes an entry, when the group's
/// last entry held at least [`LINGER_FROM`] writes (many writes arrive at once: the load, not
/// one client, sets the pace). tokio's timer rounds it up to its next millisecond tick.
/// Measured (BENCHMARKS.md, 2026-12-04), push 100 through a 3-node cluster at 32 connections:
/// 4,889 and 4,772/s without, 5,343 and 5,305/s with it (15 writes per entry instead of 8-9,
/// 15-22% less CPU per push, lower p50 and p99); three times as long was too long (4,380/s).
const LINGER: std::time::Duration = std::time::Duration::from_micros(500);
/// The writes of the last entry from which the batcher lingers. Lingering after entries of
/// two (2 connections) cost a fifth of their throughput and 0.5 ms of p50.
const LINGER_FROM: usize = 4;
/// Writes waiting for an entry before new ones are refused.
pub const QUEUE: usize = 4096;
/// Most writes, and about the most row bytes, in one entry.
const MAX_WRITES: usize = 512;
const MAX_BYTES: usize = 8 << 20;

/// Why a batched write was not committed: the error of its entry.
pub type WriteError = RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>;

type Answer = oneshot::Sender<Result<(), WriteError>>;

/// The write queue of one group on this node.
pub struct Batcher {
    queue: mpsc::Sender<(GroupWrite, Answer)>,
    counts: Arc<Counts>,
}

/// Writes proposed through a batcher, and the entries they took.
#[derive(Debug, Default)]
struct Counts {
    writes: AtomicU64,
    entries: AtomicU64,
}

/// The queue is full.
#[derive(Debug)]
pub struct Full;

impl Batcher {
    /// Starts the batcher of `raft`'s group on the current arbiter; it stops when dropped.
    pub fn start(raft: Raft) -> Batcher {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let counts = Arc::new(Counts::default());
        actix_rt::spawn(propose_batches(raft, waiting, counts.clone()));
        Batcher { queue, counts }
    }

    /// Writes proposed so far, and the entries they took.
    pub fn proposed(&self) -> (u64, u64) {
        (
            self.counts.writes.load(Ordering::Relaxed),
            self.counts.entries.load(Ordering::Relaxed),
        )
    }

    /// Queues `write` for the group's next entry. The future answers once that entry is
    /// committed and applied on this node (or why not: not the leader, no quorum, stopped).
    pub fn propose(
        &self,
        write: GroupWrite,
    ) -> Result<impl std::future::Future<Output = Result<(), WriteError>>, Full> {
        let (answer, answered) = oneshot::channel();
        self.queue.try_send((write, answer)).map_err(|_| Full)?;
        Ok(async move {
            answered
                .await
                .unwrap_or(Err(RaftError::Fatal(Fatal::Stopped)))
        })
    }
}

fn size(write: &GroupWrite) -> usize {
    write.views.iter().map(|v| v.data.0.len()).sum()
}

/// Takes the waiting writes into entries, at most [`IN_FLIGHT`] being committed at once.
async fn propose_batches(
    raft: Raft,
    mut waiting: mpsc::Receiver<(GroupWrite, Answer)>,
    counts: Arc<Counts>,
) {
    let places = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut last_writes = 1;
    while let Some(first) = waiting.recv().await {
        // While every place is taken, more writes queue up: they all go in the next entry.
        let Ok(place) = places.clone().acquire_owned().await else {
            return;
        };
        if last_writes >= LINGER_FROM {
            actix_rt::time::sleep(LINGER).await;
        }
        let mut bytes = size(&first.0);
        let mut batch = vec![first];
        while batch.len() < MAX_WRITES && bytes < MAX_BYTES {
            match waiting.try_recv() {
                Ok(next) => {
                    bytes += size(&next.0);
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        last_writes = batch.len();
        counts
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        counts.entries.fetch_add(1, Ordering::Relaxed);
        let raft = raft.clone();
        actix_rt::spawn(async move {
            let (writes, answers): (Vec<GroupWrite>, Vec<Answer>) = batch.into_iter().unzip();
            let result = raft
                .client_write(GroupBatch {
                    writes: writes.into(),
                })
                .await
                .map(|_| ());
            for answer in answers {
                let _ = answer.send(result.clone());
            }
            drop(place);
        });
    }
}
