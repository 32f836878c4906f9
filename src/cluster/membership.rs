//! Changing a group's members, e.g. replacing a dead node: `POST /cluster/groups/{group}/members`
//! with `{"add": ["n4"], "remove": ["n3"]}` on any node (`featgrid cluster members`). The
//! group's leader first adds each new node as a learner and waits until it has caught up (log
//! or snapshot), then changes the voters through openraft's joint consensus (old and new
//! majorities both agree on the change), so the group keeps a quorum throughout.
//!
//! Nodes named must be `[[node]]`s of the topology (their addresses come from it); the
//! topology's `nodes` list of a group is only its first membership. Every node runs every
//! group's Raft node, so a node added later needs no restart.
//!
//! Also here: when a node does not stand for a group's elections (removed from it, or
//! installing its leader's snapshot; rejoining ones are in [`super::rejoin`]).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{InstallSnapshotRequest, InstallSnapshotResponse};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use super::topology::NodeIndex;
use super::types::{NodeId, Raft, TypeConfig};
use super::{Cluster, Refusal, HEARTBEAT_MS};

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
        let name = |n: NodeIndex| self.topology().node(n).id.clone();
        Members {
            group,
            voters: membership.voter_ids().map(name).collect(),
            learners: membership.learner_ids().map(name).collect(),
        }
    }

    fn node_indexes(&self, ids: &[String]) -> Result<Vec<NodeIndex>, Refusal> {
        ids.iter()
            .map(|id| {
                self.topology().node_index(id).map_err(|e| Refusal::Failed {
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
            let addr = BasicNode::new(self.topology().node(node).internal.to_string());
            let left = deadline.saturating_duration_since(Instant::now());
            let added = raft.add_learner(node, addr, true);
            self.as_leader(group, raft, left, "the learner did not catch up", added)
                .await?;
            tracing::info!(group, node = %self.topology().node(node).id, "learner caught up");
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

/// What a node learned when a member refused its vote because the group's committed membership
/// no longer has it.
struct Removal {
    reason: String,
    /// The membership this node held when it noticed (`None`: not looked at yet): a newer one
    /// reaching it means it was added back.
    seen_at: Option<Option<u64>>,
}

/// A voter removed from a group while it runs may never receive the membership that removed it
/// (the leader stops replicating to it once the change is committed): it would believe it is
/// still a voter, ask to stand for election forever and refuse reads (`no_quorum`). A member
/// whose committed membership lacks the candidate answers its pre-vote ([`super::election`])
/// or vote request `not_a_member`
/// ([`Cluster::refuses_candidate`]); the candidate notes it here and, through
/// [`Cluster::watch_removals`], stands for no more elections, serves none of the group's
/// requests (it routes them to the members, as a node without a replica does) and shows
/// `not_a_member` in `GET /cluster`, until a membership change reaches it again (it was added
/// back).
#[derive(Default)]
pub struct Removed(std::sync::Mutex<Option<Removal>>);

impl Removed {
    /// A member refused this node's pre-vote or vote request: `reason` says why.
    pub fn note(&self, reason: String) {
        let mut removal = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if removal.is_none() {
            *removal = Some(Removal {
                reason,
                seen_at: None,
            });
        }
    }

    fn reason(&self) -> Option<String> {
        let removal = self.0.lock().unwrap_or_else(|p| p.into_inner());
        removal.as_ref().map(|r| r.reason.clone())
    }
}

/// How often a node looks whether it was removed from or added back to a group.
const WATCH_REMOVALS_EVERY: Duration = Duration::from_millis(200);

impl Cluster {
    /// Why this node no longer serves `group`, if a member told it it was removed.
    pub fn removed(&self, group: usize) -> Option<String> {
        self.removed.get(group)?.reason()
    }

    /// Why `candidate` may not stand for election in `group`, as this node sees it: the
    /// group's membership, committed here, has neither it as a voter nor as a learner. (A
    /// refused vote is always safe; an uncommitted membership proves nothing.)
    pub fn refuses_candidate(&self, group: usize, candidate: NodeIndex) -> Option<String> {
        let raft = self.member(group)?;
        let metrics = raft.metrics();
        let m = metrics.borrow();
        let config = &m.membership_config;
        let at = (*config.log_id())?;
        let committed = m
            .last_applied
            .is_some_and(|applied| applied.index >= at.index);
        let membership = config.membership();
        if !committed || membership.get_node(&candidate).is_some() {
            return None;
        }
        let name = |n: NodeIndex| self.topology().node(n).id.clone();
        Some(format!(
            "node {} is not a member of group {group}: its committed membership (log index {}) is voters {:?}, learners {:?}; add it back with `featgrid cluster members --add`",
            name(candidate),
            at.index,
            membership.voter_ids().map(name).collect::<Vec<_>>(),
            membership.learner_ids().map(name).collect::<Vec<_>>(),
        ))
    }

    /// Runs for the node's life: a group this node was told it was removed from stops
    /// standing for election here; one whose membership changed since (it was added back)
    /// serves and stands again.
    pub(super) async fn watch_removals(self: Arc<Cluster>) {
        loop {
            actix_rt::time::sleep(WATCH_REMOVALS_EVERY).await;
            for (group, removed) in self.removed.iter().enumerate() {
                let Some(raft) = self.raft(group) else {
                    continue;
                };
                let noticed = {
                    let mut removal = removed.0.lock().unwrap_or_else(|p| p.into_inner());
                    let Some(r) = removal.as_mut() else {
                        continue;
                    };
                    let now = raft
                        .metrics()
                        .borrow()
                        .membership_config
                        .log_id()
                        .map(|l| l.index);
                    match r.seen_at {
                        None => {
                            r.seen_at = Some(now);
                            tracing::warn!(group, reason = %r.reason, "removed from the group: no longer standing for election or serving it");
                            true
                        }
                        Some(seen) if seen != now => {
                            *removal = None;
                            tracing::info!(
                                group,
                                "a membership change reached this node: serving the group again"
                            );
                            true
                        }
                        Some(_) => false,
                    }
                };
                if noticed {
                    self.set_election_switch(group);
                }
            }
        }
    }

    /// Installs the leader's snapshot of `group` (`rpc`, its last chunk), not standing for
    /// election meanwhile. openraft sends heartbeats through the same stream as the snapshot,
    /// so none reaches this node until the install is done: a slow install (a big snapshot, a
    /// slow disk) would time this follower out, and its election (it cannot win it: its log is
    /// behind) would unseat the leader. It stands again two heartbeats after the install, once
    /// the leader was heard from since.
    pub(super) async fn install_snapshot(
        self: Arc<Self>,
        group: usize,
        raft: &Raft,
        rpc: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        if !rpc.done {
            return raft.install_snapshot(rpc).await;
        }
        self.installing[group].fetch_add(1, Ordering::SeqCst);
        self.set_election_switch(group);
        let answer = raft.install_snapshot(rpc).await;
        actix_rt::spawn(async move {
            actix_rt::time::sleep(Duration::from_millis(2 * HEARTBEAT_MS)).await;
            self.installing[group].fetch_sub(1, Ordering::SeqCst);
            self.set_election_switch(group);
        });
        answer
    }
}
