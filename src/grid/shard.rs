//! The shard actor: one per shard thread (arbiter), owning the partitions of the shards placed
//! on that thread and answering messages about them, one at a time.
//!
//! Why one actor per thread rather than per shard: a request touches several shards, and on a
//! small machine the cost of a request is dominated by the number of messages (each one a
//! queue push, a wake-up and a reply), not by the map work. Grouping the shards of a thread
//! behind one mailbox makes every request one message per thread. The shard stays the unit
//! of partitioning (slot ranges, statistics, snapshots). Measurements are in the README.
//!
//! Handlers do only in-memory work (hash lookups and copies); nothing here blocks, sleeps or
//! touches a file.
//!
//! Every message is a [`Job`]: a piece of [`Work`] and the channel its answer goes back on.
//! The coordinator counts the jobs queued for each host (`queued`) and refuses a new one once
//! the count reaches the mailbox capacity, before anything is queued; the host takes one off
//! the count as it starts each job. A job is always run once queued, whether or not anyone
//! still waits for its answer, so what was queued is what is applied (actix's own `send`
//! would skip a message whose requester went away).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::partition::{
    ApplyStats, FrozenPartition, Partition, PartitionError, PartitionView, ReadBatch, ReadOutput,
    RowBatch, RowLayout,
};

/// The partitions of the shards on one thread, and their actor.
pub struct ShardHost {
    /// (shard id, its partition), for every shard placed on this thread.
    shards: Vec<(usize, Partition)>,
    skipped_older: Vec<u64>,
    /// Jobs queued for this host and not yet started; the coordinator's count.
    queued: Arc<AtomicUsize>,
    mailbox_capacity: usize,
}

impl ShardHost {
    pub fn new(
        shards: Vec<(usize, Partition)>,
        queued: Arc<AtomicUsize>,
        mailbox_capacity: usize,
    ) -> ShardHost {
        ShardHost {
            skipped_older: vec![0; shards.len()],
            shards,
            queued,
            mailbox_capacity,
        }
    }
}

impl Actor for ShardHost {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The coordinator's count keeps the mailbox below this, so actix never parks a sender.
        ctx.set_mailbox_capacity(self.mailbox_capacity + 1);
        let shards: Vec<usize> = self.shards.iter().map(|s| s.0).collect();
        tracing::debug!(?shards, "shard host started");
    }
}

/// What a host can be asked to do: runs on the host's thread, with its partitions.
pub trait Work: Send + 'static {
    type Output: Send + 'static;
    fn run(self, host: &mut ShardHost) -> Self::Output;
}

/// One queued piece of work and where its answer goes.
pub struct Job<W: Work> {
    pub work: W,
    pub answer: oneshot::Sender<W::Output>,
}

impl<W: Work> Message for Job<W> {
    type Result = ();
}

impl<W: Work> Handler<Job<W>> for ShardHost {
    type Result = ();

    fn handle(&mut self, job: Job<W>, _: &mut Self::Context) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
        let output = job.work.run(self);
        // Nobody waiting (a timed-out or cancelled request) is fine: the work is done.
        let _ = job.answer.send(output);
    }
}

/// Rows to apply with newest-event-wins: per local shard (by position in the host), the
/// batches for it (one per view). Empty lists are skipped.
pub struct Write(pub Vec<Vec<RowBatch>>);

impl Work for Write {
    /// The outcome, and the batches themselves: they go back to the thread that built them
    /// and is waiting for the answer, which frees them. Freed here, their buffers would go
    /// back to that thread's malloc arena under its lock, contending with its own
    /// allocations (glibc's arena locks were about 4% of a push's profile).
    type Output = (Result<ApplyStats, PartitionError>, Write);

    fn run(self, host: &mut ShardHost) -> Self::Output {
        let outcome = self.apply(host);
        (outcome, self)
    }
}

impl Write {
    fn apply(&self, host: &mut ShardHost) -> Result<ApplyStats, PartitionError> {
        let mut total = ApplyStats::default();
        for (local, batches) in self.0.iter().enumerate() {
            let Some((_, partition)) = host.shards.get_mut(local) else {
                continue;
            };
            let mut stats = ApplyStats::default();
            for batch in batches {
                stats += partition.apply(batch)?;
            }
            host.skipped_older[local] += stats.skipped_older;
            total += stats;
        }
        Ok(total)
    }
}

/// Keys to look up, per local shard; the answer has one output per local shard (`None`
/// where it had no keys).
pub struct Read(pub Vec<ReadBatch>);

impl Work for Read {
    type Output = Result<Vec<Option<ReadOutput>>, PartitionError>;

    fn run(self, host: &mut ShardHost) -> Self::Output {
        self.0
            .iter()
            .zip(&host.shards)
            .map(|(batch, (_, partition))| {
                (!batch.is_empty())
                    .then(|| partition.read(batch))
                    .transpose()
            })
            .collect()
    }
}

/// What a shard holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShardStats {
    pub shard: usize,
    /// Rows per feature view, in registry order.
    pub rows: Vec<u64>,
    pub memory_bytes: usize,
    pub skipped_older: u64,
}

/// Statistics of every shard on the host.
pub struct Stats;

impl Work for Stats {
    type Output = Vec<ShardStats>;

    fn run(self, host: &mut ShardHost) -> Self::Output {
        host.shards
            .iter()
            .zip(&host.skipped_older)
            .map(|((shard, partition), &skipped_older)| ShardStats {
                shard: *shard,
                rows: partition.row_counts(),
                memory_bytes: partition.memory_bytes(),
                skipped_older,
            })
            .collect()
    }
}

/// One step of copying a shard's rows (by its position on this host), for a snapshot or a
/// digest: about `budget` bytes of records are copied into `into`, which travels back with
/// whether the copy is complete (`None`: no such shard). Steps are small so that reads queued
/// meanwhile wait for one step at most; all the slow work on the copy runs elsewhere.
pub struct Freeze {
    pub local: usize,
    pub into: FrozenPartition,
    pub budget: usize,
}

impl Work for Freeze {
    type Output = Option<(FrozenPartition, bool)>;

    fn run(self, host: &mut ShardHost) -> Self::Output {
        let Freeze {
            local,
            mut into,
            budget,
        } = self;
        let (_, partition) = host.shards.get(local)?;
        let done = partition.freeze_step(&mut into, budget);
        Some((into, done))
    }
}

/// Views were added to the registry: every partition on the host gets the new layouts (the
/// current ones followed by the new views') and an empty table per new view.
pub struct AddViews(pub Arc<[RowLayout]>);

impl Work for AddViews {
    /// Each shard's new [`PartitionView`], by shard id.
    type Output = Vec<(usize, PartitionView)>;

    fn run(self, host: &mut ShardHost) -> Self::Output {
        host.shards
            .iter_mut()
            .map(|(shard, partition)| {
                partition.add_views(self.0.clone());
                (*shard, partition.view())
            })
            .collect()
    }
}

/// Holds the host's thread for a while, to fill its mailbox: for tests (unit tests, and the
/// HTTP tests through `FEATGRID_TEST_HOOKS`), never on a request path.
pub struct Stall(pub std::time::Duration);

impl Work for Stall {
    type Output = ();

    fn run(self, _: &mut ShardHost) {
        std::thread::sleep(self.0);
    }
}
