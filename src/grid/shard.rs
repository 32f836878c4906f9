//! The shard actor: owns one [`Partition`] and answers messages about it, one at a time.
//!
//! Handlers do only in-memory work (hash lookups and copies); nothing here blocks, sleeps or
//! touches a file. The mailbox is bounded (`set_mailbox_capacity`); the coordinator keeps its
//! own count of messages in flight so that a full shard answers 503 at once.

use actix::prelude::*;

use super::partition::{ApplyStats, Partition, PartitionError, ReadBatch, ReadOutput, RowBatch};

pub struct Shard {
    id: usize,
    partition: Partition,
    mailbox_capacity: usize,
    skipped_older: u64,
}

impl Shard {
    pub fn new(id: usize, partition: Partition, mailbox_capacity: usize) -> Shard {
        Shard {
            id,
            partition,
            mailbox_capacity,
            skipped_older: 0,
        }
    }
}

impl Actor for Shard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        tracing::debug!(shard = self.id, "shard started");
    }
}

/// Apply rows (one batch per view) with newest-event-wins.
#[derive(Message)]
#[rtype(result = "Result<ApplyStats, PartitionError>")]
pub struct Write(pub Vec<RowBatch>);

impl Handler<Write> for Shard {
    type Result = Result<ApplyStats, PartitionError>;

    fn handle(&mut self, msg: Write, _: &mut Self::Context) -> Self::Result {
        let mut total = ApplyStats::default();
        for batch in &msg.0 {
            total += self.partition.apply(batch)?;
        }
        self.skipped_older += total.skipped_older;
        Ok(total)
    }
}

/// Look keys up and copy the rows found.
#[derive(Message)]
#[rtype(result = "ReadOutput")]
pub struct Read(pub ReadBatch);

impl Handler<Read> for Shard {
    type Result = MessageResult<Read>;

    fn handle(&mut self, msg: Read, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.partition.read(&msg.0))
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

#[derive(Message)]
#[rtype(result = "ShardStats")]
pub struct Stats;

impl Handler<Stats> for Shard {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Self::Context) -> Self::Result {
        MessageResult(ShardStats {
            shard: self.id,
            rows: self.partition.row_counts(),
            memory_bytes: self.partition.memory_bytes(),
            skipped_older: self.skipped_older,
        })
    }
}

/// Test only: hold the shard's thread, to fill its mailbox.
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stall(pub std::time::Duration);

#[cfg(test)]
impl Handler<Stall> for Shard {
    type Result = ();

    fn handle(&mut self, msg: Stall, _: &mut Self::Context) {
        std::thread::sleep(msg.0);
    }
}
