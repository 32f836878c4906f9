//! Changing a group's members, e.g. replacing a dead node: `POST /cluster/groups/{group}/members`
//! with `{"add": ["n4"], "remove": ["n3"]}` on any node (`featgrid cluster members`). The
//! group's leader first adds each new node as a learner and waits until it has caught up (log
//! or snapshot), then changes the voters through openraft's joint consensus (old and new
//! majorities both agree on the change), so the group keeps a quorum throughout.
//!
//! Nodes named must be `[[node]]`s of the topology (their addresses come from it); the
//! topology's `nodes` list of a group is only its first membership. Every node runs every
//! group's Raft node, so a node added later needs no restart.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use super::topology::NodeIndex;
use super::types::Raft;
use super::{Cluster, Refusal};

/// How long a membership change may take, a learner's catching up included.
pub const CHANGE_DEADLINE: Duration = Duration::from_secs(120);

/// Nodes to add to and remove from a group's voters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberChange {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A group's members after a change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Members {
    pub group: usize,
    pub voters: Vec<String>,
    pub learners: Vec<String>,
}

impl Cluster {
    fn members(&self, group: usize, raft: &Raft) -> Members {
        let metrics = raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        let name = |n: NodeIndex| self.topology.node(n).id.clone();
        Members {
            group,
            voters: membership.voter_ids().map(name).collect(),
            learners: membership.learner_ids().map(name).collect(),
        }
    }

    fn node_indexes(&self, ids: &[String]) -> Result<Vec<NodeIndex>, Refusal> {
        ids.iter()
            .map(|id| {
                self.topology.node_index(id).map_err(|e| Refusal::Failed {
                    status: 400,
                    code: "unknown_node".into(),
                    message: e.problem,
                })
            })
            .collect()
    }

    /// Changes `group`'s voters on this node, its leader: learners first, then the voters.
    pub async fn change_members_here(
        &self,
        group: usize,
        raft: &Raft,
        change: &MemberChange,
        left: Duration,
    ) -> Result<Members, Refusal> {
        let deadline = Instant::now() + left;
        let add = self.node_indexes(&change.add)?;
        let remove = self.node_indexes(&change.remove)?;
        let voters: BTreeSet<NodeIndex> = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            m.membership_config.membership().voter_ids().collect()
        };
        let wanted: BTreeSet<NodeIndex> = voters
            .iter()
            .chain(&add)
            .copied()
            .filter(|n| !remove.contains(n))
            .collect();
        if wanted.is_empty() {
            return Err(Refusal::Failed {
                status: 400,
                code: "invalid_member_change".into(),
                message: "the change would leave the group without voters".into(),
            });
        }
        for &node in add.iter().filter(|n| !voters.contains(n)) {
            let addr = BasicNode::new(self.topology.node(node).internal.to_string());
            let left = deadline.saturating_duration_since(Instant::now());
            let added = raft.add_learner(node, addr, true);
            self.as_leader(group, raft, left, "the learner did not catch up", added)
                .await?;
            tracing::info!(group, node = %self.topology.node(node).id, "learner caught up");
        }
        if wanted != voters {
            let left = deadline.saturating_duration_since(Instant::now());
            let changed = raft.change_membership(wanted, false);
            self.as_leader(group, raft, left, "membership not changed", changed)
                .await?;
            tracing::info!(group, "group members changed");
        }
        Ok(self.members(group, raft))
    }

    /// Changes `group`'s voters through its leader, from any node.
    pub async fn change_members(
        &self,
        group: usize,
        change: MemberChange,
    ) -> Result<Members, super::ClusterError> {
        let path = format!("/internal/v1/members/{group}");
        let deadline = Instant::now() + CHANGE_DEADLINE;
        self.on_leader(group, None, path, &change, deadline, |raft, left| {
            let change = change.clone();
            async move { self.change_members_here(group, &raft, &change, left).await }
        })
        .await
    }
}
