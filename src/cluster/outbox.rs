//! Many forwarded writes, one call: the parts of pushes that go to the same leader share a
//! call to it. Each peer has an outbox on this node; a part is queued there, and while fewer
//! than [`CALLS`] calls to the peer are under way one starts with everything queued, so under
//! load the parts of every push that arrived during the last call travel together (one HTTP
//! exchange, and on the leader one batch for its [`super::batch`] queue), and a lone push is
//! sent at once. The bounded number of calls bounds the queue: a call carries at most
//! [`MAX_PARTS`] parts, and a part waits for at most one call before its own.
//!
//! What the call brings back for each part is handed to the push that queued it, with the part
//! itself, which is then tried alone if it must be ([`Cluster::write_to_node`]).

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::oneshot;

use super::topology::NodeIndex;
use super::types::GroupWrite;
use super::{Cluster, ClusterError, Refusal};

/// Calls to one peer under way at once.
const CALLS: usize = 2;
/// Most parts in one call.
const MAX_PARTS: usize = 256;

/// What a forwarded part came to: the peer's answer for it (`None`: the call brought none
/// back), or the peer's refusal of the whole call; with the part, to try again.
pub(super) type Delivery = (
    GroupWrite,
    Result<Option<Result<(), Refusal>>, ClusterError>,
);

struct Parcel {
    group: usize,
    write: GroupWrite,
    deadline: Instant,
    answer: oneshot::Sender<Delivery>,
}

/// The outboxes of this node's peers.
#[derive(Default)]
pub(super) struct Outboxes {
    by_node: std::sync::Mutex<HashMap<NodeIndex, Outbox>>,
}

impl Outboxes {
    /// Runs `f` on `node`'s outbox.
    fn with<T>(&self, node: NodeIndex, f: impl FnOnce(&mut Outbox) -> T) -> T {
        let mut by_node = self.by_node.lock().unwrap_or_else(|p| p.into_inner());
        f(by_node.entry(node).or_default())
    }
}

#[derive(Default)]
struct Outbox {
    calls: usize,
    waiting: Vec<Parcel>,
}

impl Cluster {
    /// Queues the parts `writes` for `node`, the leader of their groups; answers what became
    /// of each, in order, with its group. `None`: the part was not delivered and is lost to
    /// this push (the node is stopping).
    pub(super) async fn forward_parts(
        &self,
        node: NodeIndex,
        writes: Vec<(usize, GroupWrite)>,
        deadline: Instant,
    ) -> Vec<(usize, Option<Delivery>)> {
        let mut answers = Vec::with_capacity(writes.len());
        let mut parcels = Vec::with_capacity(writes.len());
        for (group, write) in writes {
            let (answer, answered) = oneshot::channel();
            parcels.push(Parcel {
                group,
                write,
                deadline,
                answer,
            });
            answers.push((group, answered));
        }
        let start = self.outboxes.with(node, |outbox| {
            outbox.waiting.append(&mut parcels);
            let start = outbox.calls < CALLS;
            outbox.calls += usize::from(start);
            start
        });
        if start {
            if let Some(cluster) = self.this.upgrade() {
                actix_rt::spawn(async move { cluster.deliver(node).await });
            } else {
                // Stopping: what waits is dropped, and its pushes are told so.
                let dropped = self.outboxes.with(node, |outbox| {
                    outbox.calls -= 1;
                    std::mem::take(&mut outbox.waiting)
                });
                drop(dropped);
            }
        }
        // A part's call ends within its deadline (each call is bounded by the earliest
        // deadline of what it carries); the bound here only guards against a delivering task
        // that died with its worker.
        let until = tokio::time::Instant::from_std(deadline) + std::time::Duration::from_secs(1);
        let mut delivered = Vec::with_capacity(answers.len());
        for (group, answered) in answers {
            let answer = tokio::time::timeout_at(until, answered).await;
            delivered.push((group, answer.ok().and_then(Result::ok)));
        }
        delivered
    }

    /// Sends what waits in `node`'s outbox, one call at a time, until nothing waits.
    async fn deliver(&self, node: NodeIndex) {
        let mut delivering = Delivering {
            outboxes: &self.outboxes,
            node,
            ended: false,
        };
        loop {
            let parcels: Vec<Parcel> = self.outboxes.with(node, |outbox| {
                let take = outbox.waiting.len().min(MAX_PARTS);
                // Ended in the same turn as nothing was found waiting: a part queued right
                // after starts a call of its own.
                if take == 0 {
                    outbox.calls -= 1;
                    delivering.ended = true;
                }
                outbox.waiting.drain(..take).collect()
            });
            if parcels.is_empty() {
                return;
            }
            let deadline = parcels.iter().map(|p| p.deadline).min();
            let deadline = deadline.unwrap_or_else(Instant::now);
            let request: Vec<(usize, &GroupWrite)> =
                parcels.iter().map(|p| (p.group, &p.write)).collect();
            let place = (parcels[0].group, parcels.len());
            self.served.forward_calls.inc();
            let answers = self
                .call_parts(node, "/internal/v1/writes", &request, place, deadline)
                .await;
            drop(request);
            match answers {
                Ok(answers) => {
                    for (parcel, answer) in parcels.into_iter().zip(answers) {
                        let _ = parcel.answer.send((parcel.write, Ok(answer)));
                    }
                }
                Err(failure) => {
                    for parcel in parcels {
                        let _ = parcel.answer.send((parcel.write, Err(failure.clone())));
                    }
                }
            }
        }
    }
}

/// A call under way to a peer, counted in its outbox until it ends, or until the task making it
/// is dropped (its worker stopped).
struct Delivering<'a> {
    outboxes: &'a Outboxes,
    node: NodeIndex,
    ended: bool,
}

impl Drop for Delivering<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.outboxes.with(self.node, |outbox| outbox.calls -= 1);
        }
    }
}
