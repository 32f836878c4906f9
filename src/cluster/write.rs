//! Writes from any node: a push's rows are split by group, and each group's part is committed by
//! the group's leader (here, or forwarded to it), following leader changes until a deadline.
//! On the leader, writes share entries ([`super::batch`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::batch::QUEUE;
use super::local::batches_by_group;
use super::topology::NodeIndex;
use super::types::{GroupWrite, Raft};
use super::{
    no_quorum, refusal_error, Cluster, ClusterError, Forwarded, Leader, Refusal, DEADLINE,
    RETRY_PAUSE,
};
use crate::grid::partition::{RowBatch, RowLayout};
use crate::persist::wal::Destination;

impl Cluster {
    /// Writes per-shard batches: split by group, each group's part committed by its leader.
    /// The rows written are counted by each replica's store as it applies them.
    pub async fn write(
        &self,
        per_shard: Vec<Vec<RowBatch>>,
        layouts: &[RowLayout],
        dest: Destination,
    ) -> Result<(), ClusterError> {
        let topology = self.topology();
        let per_group = batches_by_group(&per_shard, layouts, topology.groups.len(), |s| {
            topology.group_of_slot(s)
        });
        // Encoded into the groups' parts: this thread's next push reuses the batches' buffers
        // (a push waits milliseconds for its commit, and a worker holds dozens meanwhile).
        per_shard.into_iter().flatten().for_each(RowBatch::recycle);
        let deadline = Instant::now() + DEADLINE;
        // The parts of groups led by another node go to it in one call per node; the others
        // (led here, or no leader known) each on their own.
        let mut by_node: BTreeMap<NodeIndex, Vec<(usize, GroupWrite)>> = BTreeMap::new();
        let mut alone = Vec::new();
        for (g, views) in per_group.into_iter().enumerate() {
            let Some(views) = views else { continue };
            let write = GroupWrite { dest, views };
            match self.leader(g) {
                Leader::There(node) if self.cut_off(g).is_none() => {
                    by_node.entry(node).or_default().push((g, write))
                }
                _ => alone.push((g, write)),
            }
        }
        let bundled = join_all(
            by_node
                .into_iter()
                .map(|(node, writes)| self.write_to_node(node, writes, deadline)),
        );
        let alone = join_all(
            alone
                .into_iter()
                .map(|(g, write)| async move { (g, self.propose(g, write, deadline).await) }),
        );
        let (bundled, alone) = futures_util::future::join(bundled, alone).await;
        let answers = bundled.into_iter().flatten().chain(alone);
        let (mut ok, mut failed, mut first) = (Vec::new(), Vec::new(), None);
        for (g, answer) in answers {
            match answer {
                Ok(()) => ok.push(g),
                Err(e) => {
                    failed.push(g);
                    first.get_or_insert(e);
                }
            }
        }
        match first {
            None => Ok(()),
            Some(e) if ok.is_empty() => Err(merge_no_quorum(e, failed)),
            Some(e) => Err(ClusterError::PartialFailure {
                ok,
                failed,
                first: Box::new(e),
            }),
        }
    }

    /// Commits the parts of several groups that `node` leads, through its outbox (one call
    /// for them and the parts of other pushes queued meanwhile, [`super::outbox`]). A part it
    /// did not commit because it no longer leads the group, or that the call did not bring
    /// back, goes on alone ([`Cluster::propose`]); repeating a write is harmless.
    async fn write_to_node(
        &self,
        node: NodeIndex,
        writes: Vec<(usize, GroupWrite)>,
        deadline: Instant,
    ) -> Vec<(usize, Result<(), ClusterError>)> {
        let addr = self.internal_addr(node);
        let delivered = self.forward_parts(node, writes, deadline).await;
        let parts = delivered.into_iter().map(|(g, delivery)| {
            let addr = addr.clone();
            async move {
                let Some((write, answer)) = delivery else {
                    let unknown = "the forwarded write was not answered (the node is stopping)";
                    return (g, Err(no_quorum(g, unknown.into())));
                };
                match answer {
                    Ok(Some(Ok(()))) => {
                        self.served.write_forwarded.inc();
                        (g, Ok(()))
                    }
                    Ok(Some(Err(Refusal::NotLeader { leader }))) => {
                        self.note_leader(g, leader.filter(|&l| l != node));
                        (g, self.propose(g, write, deadline).await)
                    }
                    Ok(Some(Err(refusal))) => (g, Err(refusal_error(g, addr, refusal))),
                    Ok(None) => (g, self.propose(g, write, deadline).await),
                    Err(failure) => (g, Err(failure)),
                }
            }
        });
        join_all(parts).await
    }

    /// Commits parts of several groups on this node, as their leader: the internal endpoint's
    /// side of [`Cluster::write_to_node`].
    pub async fn commit_parts_here(
        &self,
        writes: Vec<(usize, GroupWrite)>,
    ) -> Vec<Result<(), Refusal>> {
        join_all(writes.into_iter().map(|(g, write)| async move {
            match self.raft(g) {
                Some(raft) => self.commit_here(g, raft, write, DEADLINE).await,
                None => Err(Refusal::NotLeader { leader: None }),
            }
        }))
        .await
    }

    /// Commits `write` in `group`: here if this node leads it, else on its leader, following
    /// leader changes until `deadline`.
    pub async fn propose(
        &self,
        group: usize,
        write: GroupWrite,
        deadline: Instant,
    ) -> Result<(), ClusterError> {
        let path = format!("/internal/v1/write/{group}");
        let counter = Some((&self.served.write_local, &self.served.write_forwarded));
        self.on_leader(group, counter, path, &write, deadline, |raft, left| {
            let write = write.clone();
            async move { self.commit_here(group, &raft, write, left).await }
        })
        .await
    }

    /// Runs an operation on `group`'s leader: `here` when this node leads it, else a call of
    /// `path` with `request` on the leader's internal endpoint (served there by the same
    /// operation); follows leader changes until `deadline`. Counts a success in `counter`, if
    /// given: (served here, forwarded). A forwarded call is given an election timeout.
    pub(super) async fn on_leader<Q, A, F, Fut>(
        &self,
        group: usize,
        counter: Option<(&prometheus::IntCounter, &prometheus::IntCounter)>,
        path: String,
        request: &Q,
        deadline: Instant,
        here: F,
    ) -> Result<A, ClusterError>
    where
        Q: Serialize,
        A: DeserializeOwned,
        F: Fn(Raft, Duration) -> Fut,
        Fut: std::future::Future<Output = Result<A, Refusal>>,
    {
        let per_call = Duration::from_millis(super::ELECTION_MAX_MS);
        self.on_leader_within(group, counter, path, request, deadline, per_call, here)
            .await
    }

    /// [`Cluster::on_leader`] for an operation that may take longer than an election timeout
    /// on the leader: a forwarded call is given `per_call` (within the deadline), so it is not
    /// cut off, and repeated, while the leader is still at it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn on_leader_within<Q, A, F, Fut>(
        &self,
        group: usize,
        counter: Option<(&prometheus::IntCounter, &prometheus::IntCounter)>,
        path: String,
        request: &Q,
        deadline: Instant,
        per_call: Duration,
        here: F,
    ) -> Result<A, ClusterError>
    where
        Q: Serialize,
        A: DeserializeOwned,
        F: Fn(Raft, Duration) -> Fut,
        Fut: std::future::Future<Output = Result<A, Refusal>>,
    {
        let mut last = String::from("no leader is known");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(no_quorum(group, last));
            }
            if let Some(reason) = self.cut_off(group) {
                return Err(no_quorum(group, reason));
            }
            match self.leader(group) {
                Leader::Here(raft) => match here(raft.clone(), left).await {
                    Err(Refusal::NotLeader { leader }) => {
                        self.note_leader(group, leader);
                        last = "the leader changed".into();
                    }
                    other => {
                        if let (Ok(_), Some((here, _))) = (&other, counter) {
                            here.inc();
                        }
                        return other
                            .map_err(|r| refusal_error(group, self.internal_addr(self.me), r));
                    }
                },
                Leader::There(node) => {
                    let addr = self.internal_addr(node);
                    let call = self
                        .net
                        .call(addr, path.clone(), request, left.min(per_call));
                    let answer = self
                        .unless_cut_off(group, call)
                        .await
                        .map_err(|reason| no_quorum(group, reason))?;
                    match self.forwarded(group, node, answer)? {
                        Forwarded::Done(value) => {
                            if let Some((_, forwarded)) = counter {
                                forwarded.inc();
                            }
                            return Ok(value);
                        }
                        Forwarded::Retry(why) => last = why,
                    }
                }
                Leader::Unknown => {
                    if self.replica(group).is_none() {
                        // No replica here and no hint: try the replicas in turn.
                        self.note_leader(group, Some(self.any_replica(group)));
                    }
                }
            }
            actix_rt::time::sleep(
                RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now())),
            )
            .await;
        }
    }

    /// Commits `write` through this node's Raft node for `group` (its leader), in the group's
    /// next entry.
    pub async fn commit_here(
        &self,
        group: usize,
        raft: &Raft,
        write: GroupWrite,
        left: Duration,
    ) -> Result<(), Refusal> {
        if let Some(refusal) = self.memory_refusal(group, raft, &write) {
            return Err(refusal);
        }
        if self.hand_over_gates[group].held(left).await {
            // Leadership may have moved meanwhile: route again.
            return Err(Refusal::NotLeader { leader: None });
        }
        let Ok(committed) = self.batchers[group].propose(write) else {
            return Err(Refusal::Failed {
                status: 503,
                code: "cluster_overloaded".into(),
                message: format!(
                    "group {group}: {QUEUE} writes already wait for the leader to commit them; retry later"
                ),
            });
        };
        self.as_leader(group, raft, left, "not committed", committed)
            .await
    }
}

/// One error for several groups that all failed.
fn merge_no_quorum(first: ClusterError, failed: Vec<usize>) -> ClusterError {
    match first {
        ClusterError::NoQuorum { reason, .. } => ClusterError::NoQuorum {
            groups: failed,
            reason,
        },
        other => other,
    }
}
