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
//! touches a file. The mailbox is bounded (`set_mailbox_capacity`); the coordinator keeps its
//! own count of messages in flight so that a full mailbox answers 503 at once.

use actix::prelude::*;

use std::sync::Arc;

use super::partition::{
    ApplyStats, FrozenPartition, Partition, PartitionError, ReadBatch, ReadOutput, RowBatch,
    RowLayout,
};

/// The partitions of the shards on one thread, and their actor.
pub struct ShardHost {
    /// (shard id, its partition), for every shard placed on this thread.
    shards: Vec<(usize, Partition)>,
    skipped_older: Vec<u64>,
    mailbox_capacity: usize,
}

impl ShardHost {
    pub fn new(shards: Vec<(usize, Partition)>, mailbox_capacity: usize) -> ShardHost {
        ShardHost {
            skipped_older: vec![0; shards.len()],
            shards,
            mailbox_capacity,
        }
    }
}

impl Actor for ShardHost {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        let shards: Vec<usize> = self.shards.iter().map(|s| s.0).collect();
        tracing::debug!(?shards, "shard host started");
    }
}

/// Rows to apply with newest-event-wins: per local shard (by position in the host), the
/// batches for it (one per view). Empty lists are skipped.
#[derive(Message)]
#[rtype(result = "Result<ApplyStats, PartitionError>")]
pub struct Write(pub Vec<Vec<RowBatch>>);

impl Handler<Write> for ShardHost {
    type Result = Result<ApplyStats, PartitionError>;

    fn handle(&mut self, msg: Write, _: &mut Self::Context) -> Self::Result {
        let mut total = ApplyStats::default();
        for (local, batches) in msg.0.iter().enumerate() {
            let Some((_, partition)) = self.shards.get_mut(local) else {
                continue;
            };
            let mut stats = ApplyStats::default();
            for batch in batches {
                stats += partition.apply(batch)?;
            }
            self.skipped_older[local] += stats.skipped_older;
            total += stats;
        }
        Ok(total)
    }
}

/// Keys to look up, per local shard; the answer has one output per local shard (`None`
/// where it had no keys).
#[derive(Message)]
#[rtype(result = "Vec<Option<ReadOutput>>")]
pub struct Read(pub Vec<ReadBatch>);

impl Handler<Read> for ShardHost {
    type Result = MessageResult<Read>;

    fn handle(&mut self, msg: Read, _: &mut Self::Context) -> Self::Result {
        let outputs = msg
            .0
            .iter()
            .zip(&self.shards)
            .map(|(batch, (_, partition))| (!batch.is_empty()).then(|| partition.read(batch)))
            .collect();
        MessageResult(outputs)
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
#[derive(Message)]
#[rtype(result = "Vec<ShardStats>")]
pub struct Stats;

impl Handler<Stats> for ShardHost {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Self::Context) -> Self::Result {
        let stats = self
            .shards
            .iter()
            .zip(&self.skipped_older)
            .map(|((shard, partition), &skipped_older)| ShardStats {
                shard: *shard,
                rows: partition.row_counts(),
                memory_bytes: partition.memory_bytes(),
                skipped_older,
            })
            .collect();
        MessageResult(stats)
    }
}

/// One step of copying a shard's rows (by its position on this host), for a snapshot or a
/// digest: about `budget` bytes of records are copied into `into`, which travels back with
/// whether the copy is complete (`None`: no such shard). Steps are small so that reads queued
/// meanwhile wait for one step at most; all the slow work on the copy runs elsewhere.
#[derive(Message)]
#[rtype(result = "Option<(FrozenPartition, bool)>")]
pub struct Freeze {
    pub local: usize,
    pub into: FrozenPartition,
    pub budget: usize,
}

impl Handler<Freeze> for ShardHost {
    type Result = MessageResult<Freeze>;

    fn handle(&mut self, msg: Freeze, _: &mut Self::Context) -> Self::Result {
        let Freeze {
            local,
            mut into,
            budget,
        } = msg;
        let Some((_, partition)) = self.shards.get(local) else {
            return MessageResult(None);
        };
        let done = partition.freeze_step(&mut into, budget);
        MessageResult(Some((into, done)))
    }
}

/// Views were added to the registry: every partition on the host gets the new layouts (the
/// current ones followed by the new views') and an empty table per new view.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddViews(pub Arc<[RowLayout]>);

impl Handler<AddViews> for ShardHost {
    type Result = ();

    fn handle(&mut self, msg: AddViews, _: &mut Self::Context) {
        for (_, partition) in &mut self.shards {
            partition.add_views(msg.0.clone());
        }
    }
}

/// Test only: hold the host's thread, to fill its mailbox.
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stall(pub std::time::Duration);

#[cfg(test)]
impl Handler<Stall> for ShardHost {
    type Result = ();

    fn handle(&mut self, msg: Stall, _: &mut Self::Context) {
        std::thread::sleep(msg.0);
    }
}
