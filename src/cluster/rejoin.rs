//! Nodes that lost their disk rejoin; they never vote with a blank state.
//!
//! A replica's vote and log are what make Raft safe: a node that acknowledged entries and then
//! lost them (a wiped or replaced data directory) would otherwise vote for a candidate that
//! lacks them, and acknowledged writes would be lost. So a node that starts with no Raft state
//! for a group it is listed in (no vote, no log) is *rejoining* that group unless it was started
//! with `--bootstrap` (a brand-new cluster):
//!
//! - it grants no vote ([`Cluster::rejoining`] is checked by the vote RPC) and starts no
//!   election; a `raft/g<N>/rejoining` file keeps it so across restarts until it is done;
//! - it asks the group's leader, every [`ASK_EVERY`], to add it back: the leader turns it into a
//!   learner (its acknowledgements stop counting), waits until its log has caught up with the
//!   leader's (log or snapshot), then makes it a voter again, each step through openraft's joint
//!   consensus ([`Cluster::rejoin_here`]);
//! - once the leader answers, the file is removed and the node votes and stands for election
//!   like any other.
//!
//! The leader needs a quorum of the other voters for each step: a group that lost a majority of
//! its disks cannot bring a node back, and stays unavailable rather than losing writes.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::BasicNode;

use super::membership::CHANGE_DEADLINE;
use super::topology::NodeIndex;
use super::types::Raft;
use super::{Cluster, Refusal};

/// How often a rejoining node asks the leader to add it back.
pub const ASK_EVERY: Duration = Duration::from_millis(500);
/// The file that marks a group this node is rejoining, in the group's directory.
pub const MARKER: &str = "rejoining";

/// Why a rejoining node does not vote, as `GET /cluster` shows it.
const WAITING: &str = "this node started without Raft state for the group (a new or wiped data directory, no --bootstrap): it votes in no election until the leader has added it back as a learner, caught it up and made it a voter again";

impl Cluster {
    /// Why this node does not vote in `group`'s elections yet, if it is rejoining it.
    pub fn rejoining(&self, group: usize) -> Option<String> {
        self.rejoin
            .get(group)?
            .load(Ordering::Relaxed)
            .then(|| WAITING.to_string())
    }

    /// Asks `group`'s leader to add this node back until it has, then lets it vote again. Runs
    /// in the background from the start of a node that is rejoining the group.
    pub(super) async fn rejoin_group(self: Arc<Cluster>, group: usize, marker: PathBuf) {
        let me = self.me;
        let mut refusals = 0u32;
        loop {
            let path = format!("/internal/v1/rejoin/{group}");
            let deadline = Instant::now() + CHANGE_DEADLINE;
            let answer = self
                .on_leader(group, None, path, &me, deadline, |raft, left| {
                    let this = self.clone();
                    async move { this.rejoin_here(group, &raft, me, left).await }
                })
                .await;
            match answer {
                Ok(()) => break,
                Err(e) => {
                    refusals += 1;
                    // A peer not up yet, or no leader yet, is normal at first.
                    if refusals % 20 == 1 {
                        tracing::info!(group, error = %e, "rejoining: the leader has not added this node back yet");
                    }
                }
            }
            actix_rt::time::sleep(ASK_EVERY).await;
        }
        let removed = actix_rt::task::spawn_blocking(move || {
            std::fs::remove_file(&marker).map_err(|e| e.to_string())?;
            let dir = marker.parent().unwrap_or(std::path::Path::new("."));
            crate::persist::atomic::sync_dir(dir).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(e) = removed {
            tracing::error!(group, error = %e, "rejoined, but the rejoin marker could not be removed: the node will ask again after a restart");
        }
        self.rejoin[group].store(false, Ordering::Relaxed);
        self.set_election_switch(group);
        tracing::info!(group, "rejoined the group: voting again");
    }

    /// On `group`'s leader: adds `node` back after it lost its Raft state. A voter is first
    /// made a learner (retained), so that its acknowledgements stop counting; then it is
    /// caught up (openraft's blocking `add_learner`) and made a voter again.
    pub(super) async fn rejoin_here(
        &self,
        group: usize,
        raft: &Raft,
        node: NodeIndex,
        left: Duration,
    ) -> Result<(), Refusal> {
        let deadline = Instant::now() + left;
        let (voters, learners) = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            let voters: BTreeSet<NodeIndex> = membership.voter_ids().collect();
            let learners: BTreeSet<NodeIndex> = membership.learner_ids().collect();
            (voters, learners)
        };
        if !voters.contains(&node) && !learners.contains(&node) {
            return Err(Refusal::Failed {
                status: 409,
                code: "not_a_member".into(),
                message: format!(
                    "node {} is not a member of group {group}: add it with `featgrid cluster members --add`",
                    self.topology().node(node).id
                ),
            });
        }
        let others: BTreeSet<NodeIndex> = voters.iter().copied().filter(|&n| n != node).collect();
        if others.is_empty() {
            return Err(Refusal::Failed {
                status: 409,
                code: "cannot_rejoin".into(),
                message: format!("node {} is group {group}'s only voter: its data is gone; start the group anew with --bootstrap", self.topology().node(node).id),
            });
        }
        let remaining = || deadline.saturating_duration_since(Instant::now());
        if voters.contains(&node) {
            let demoted = raft.change_membership(others.clone(), true);
            self.as_leader(group, raft, remaining(), "not made a learner", demoted)
                .await?;
            tracing::info!(group, node = %self.topology().node(node).id, "rejoining node made a learner");
        }
        let addr = BasicNode::new(self.topology().node(node).internal.to_string());
        let caught_up = raft.add_learner(node, addr, true);
        self.as_leader(
            group,
            raft,
            remaining(),
            "the learner did not catch up",
            caught_up,
        )
        .await?;
        let mut wanted = others;
        wanted.insert(node);
        let promoted = raft.change_membership(wanted, false);
        self.as_leader(group, raft, remaining(), "not made a voter", promoted)
            .await?;
        tracing::info!(group, node = %self.topology().node(node).id, "rejoining node caught up and voting again");
        Ok(())
    }
}
