//! `max_memory` across a group's replicas. Every replica holds the group's rows, so a write
//! must fit under the ceiling of each, not only of the node that received it: every node with a
//! ceiling tells the others, every [`REPORT_EVERY`], how many bytes it has left under it
//! (`POST /internal/v1/memory`), and a group's leader refuses a write larger than what a replica
//! of the group reported (507 `memory_limit`, naming the replica) before proposing it, as it
//! refuses one past its own ceiling. Nothing is logged or applied for a refused write; reads
//! keep working. A report older than [`FRESH_FOR`] (a node down or cut off) is not used: that
//! node is behind anyway and catches up from the log when it returns.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::topology::NodeIndex;
use super::types::{GroupWrite, Raft};
use super::{Cluster, Refusal};

/// How often a node with a ceiling reports what it has left.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
/// How long a report counts.
const FRESH_FOR: Duration = Duration::from_secs(5);

/// The room each node last reported under its ceiling.
#[derive(Default)]
pub struct Reports(std::sync::Mutex<HashMap<NodeIndex, (u64, Instant)>>);

impl Reports {
    pub fn note(&self, node: NodeIndex, headroom: u64) {
        let mut reports = self.0.lock().unwrap_or_else(|p| p.into_inner());
        reports.insert(node, (headroom, Instant::now()));
    }

    fn fresh(&self, node: NodeIndex) -> Option<u64> {
        let reports = self.0.lock().unwrap_or_else(|p| p.into_inner());
        reports
            .get(&node)
            .filter(|(_, at)| at.elapsed() < FRESH_FOR)
            .map(|(headroom, _)| *headroom)
    }
}

impl Cluster {
    /// The room `node` has under its ceiling, as this node knows it.
    pub fn memory_headroom(&self, node: NodeIndex) -> Option<u64> {
        if node == self.me {
            self.local.memory.headroom()
        } else {
            self.memory_reports.fresh(node)
        }
    }

    /// Why `write` may not be proposed in `group`: it would take this node, or a replica that
    /// reported its room, past `max_memory`.
    pub(super) fn memory_refusal(
        &self,
        group: usize,
        raft: &Raft,
        write: &GroupWrite,
    ) -> Option<Refusal> {
        if !write.dest.online {
            return None;
        }
        let incoming: usize = write.views.iter().map(|v| v.data.0.len()).sum();
        if let Err(e) = self.local.memory.check(incoming) {
            return Some(Refusal::Failed {
                status: e.status.as_u16(),
                code: e.code.into(),
                message: format!("node {}: {}", self.topology().node(self.me).id, e.message),
            });
        }
        let replicas: Vec<NodeIndex> = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            m.membership_config
                .membership()
                .nodes()
                .map(|(n, _)| *n)
                .collect()
        };
        replicas
            .into_iter()
            .filter(|&n| n != self.me)
            .find_map(|n| {
                let headroom = self.memory_reports.fresh(n)?;
                (incoming as u64 > headroom).then(|| Refusal::Failed {
                    status: 507,
                    code: "memory_limit".into(),
                    message: format!(
                        "node {}, a replica of group {group}, has about {headroom} bytes left under its max_memory and this write adds about {incoming}. Nothing was written; reads keep working. Raise its --max-memory or write to fewer entities",
                        self.topology().node(n).id
                    ),
                })
            })
    }

    /// Runs for the node's life when it has a ceiling: tells every other node, every
    /// [`REPORT_EVERY`], how many bytes it has left under it.
    pub(super) async fn report_memory(self: Arc<Cluster>) {
        let this = &self;
        loop {
            actix_rt::time::sleep(REPORT_EVERY).await;
            let Some(headroom) = self.local.memory.headroom() else {
                return;
            };
            let topology = self.topology();
            let calls = topology
                .nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| *i as u64 != self.me)
                .map(|(_, node)| {
                    let report = (self.me, headroom);
                    async move {
                        let answer: Result<(), _> = this
                            .net()
                            .call(
                                node.internal.clone(),
                                "/internal/v1/memory".into(),
                                &report,
                                REPORT_EVERY,
                            )
                            .await;
                        if let Err(e) = answer {
                            tracing::debug!(node = %node.id, error = %e, "memory report not delivered");
                        }
                    }
                });
            futures_util::future::join_all(calls).await;
        }
    }
}
