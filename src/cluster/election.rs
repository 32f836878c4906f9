//! Who stands for election: openraft's election timer runs only on a node that [`may
//! stand`](Cluster::may_stand), and featgrid turns it on and off ([`Cluster::set_election_switch`]).
//!
//! openraft 0.9 has no pre-vote. A follower that was paused (SIGSTOP, a VM stall), cut off for a
//! while, or restarted wakes past its election timeout and stands at once with a higher term;
//! the others refuse it (their leader lease holds) but the leader learns the higher term from
//! the follower's answers and steps down: an election, and a group without a leader for a
//! second or more, caused by a node that could not even win. So a node stands only after a
//! pre-vote ([`Cluster::watch_elections`]): once it has not heard from a leader for
//! [`QUIET_MS`], it asks the other voters whether they have not either
//! (`/internal/v1/pre-vote/{group}`); only with a majority (itself included) does its timer
//! run, and an election follows when openraft's own timeout says so. A leader that is alive
//! for a majority is never unseated by a node that lost touch with it; a dead one is replaced
//! as before (the pre-vote is answered well before openraft's timeout of the lease plus an
//! election timeout expires).
//!
//! A member whose committed membership lacks the asking node answers [`NOT_A_MEMBER`], as it
//! does a vote request: the node learns it was removed ([`super::membership::Removed`]).
//!
//! The other reasons not to stand ([`super::rejoin`], [`super::membership::Removed`], a snapshot
//! being installed) are checked in the same place.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::join_all;

use super::network::{NetError, NOT_A_MEMBER};
use super::topology::NodeIndex;
use super::{Cluster, Refusal, ELECTION_MIN_MS, HEARTBEAT_MS, WATCH_EVERY};

/// How long a node must not have heard from a leader before it asks to stand, and before it
/// grants another's pre-vote.
pub const QUIET_MS: u64 = ELECTION_MIN_MS;

impl Cluster {
    /// Whether this node may stand for election in `group`: a majority granted its pre-vote,
    /// and nothing else keeps it from standing ([`Cluster::kept_from_standing`]).
    fn may_stand(&self, group: usize) -> bool {
        self.pre_voted[group].load(Ordering::SeqCst) && !self.kept_from_standing(group)
    }

    /// Whether this node must not stand in `group` whatever the others say: it is rejoining the
    /// group ([`super::rejoin`]), was told it was removed from it
    /// ([`super::membership::Removed`]), or installs a snapshot of it. It asks for no pre-vote
    /// meanwhile.
    fn kept_from_standing(&self, group: usize) -> bool {
        self.rejoining(group).is_some()
            || self.removed(group).is_some()
            || self.installing[group].load(Ordering::SeqCst) > 0
    }

    /// Turns `group`'s elections on or off here as [`Cluster::may_stand`] says. Each change of
    /// what it depends on is followed by a call, and the calls take turns (`switches`), so the
    /// last one sees every change made before it: the switch never stays off with nothing left
    /// to hold it, nor on while something does.
    pub(super) fn set_election_switch(&self, group: usize) {
        let _turn = self.switches[group]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(raft) = self.raft(group) {
            raft.runtime_config().elect(self.may_stand(group));
        }
    }

    /// How long this node has not heard from `group`'s leader (counted from its start if it
    /// never has), in ms; 0 while it leads the group.
    fn quiet_for(&self, group: usize) -> u64 {
        let Some(raft) = self.raft(group) else {
            return 0;
        };
        if raft.metrics().borrow().current_leader == Some(self.me) {
            return 0;
        }
        // Never heard: counted from the start.
        self.silent_for(group)
            .unwrap_or_else(|| self.epoch.elapsed().as_millis() as u64)
    }

    /// Whether this node grants `group`'s pre-vote: it does not lead the group and has not
    /// heard from a leader for [`QUIET_MS`].
    pub fn grants_pre_vote(&self, group: usize) -> bool {
        self.quiet_for(group) >= QUIET_MS
    }

    /// Runs for the node's life: every [`WATCH_EVERY`], each group whose leader this node has
    /// not heard from for [`QUIET_MS`] gets a pre-vote, and the group's election switch follows
    /// the answer; a group with a leader in touch turns it off again.
    pub(super) async fn watch_elections(self: std::sync::Arc<Cluster>) {
        loop {
            actix_rt::time::sleep(WATCH_EVERY).await;
            let groups = (0..self.pre_voted.len()).map(|group| {
                let this = self.clone();
                async move {
                    let granted = this.grants_pre_vote(group)
                        && !this.kept_from_standing(group)
                        && this.pre_vote(group).await;
                    if this.pre_voted[group].swap(granted, Ordering::SeqCst) != granted {
                        tracing::debug!(group, granted, "pre-vote");
                        this.set_election_switch(group);
                    }
                }
            });
            join_all(groups).await;
        }
    }

    /// Asks the other voters of `group` whether they have lost touch with its leader too:
    /// true with a majority of the voters, this node included.
    async fn pre_vote(&self, group: usize) -> bool {
        let Some(raft) = self.raft(group) else {
            return false;
        };
        let voters: Vec<NodeIndex> = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            m.membership_config.membership().voter_ids().collect()
        };
        if !voters.contains(&self.me) {
            return false;
        }
        let path = format!("/internal/v1/pre-vote/{group}");
        let asks = voters.iter().filter(|&&n| n != self.me).map(|&n| {
            let (addr, path) = (self.internal_addr(n), path.clone());
            async move {
                let answer: Result<Result<bool, Refusal>, _> = self
                    .net
                    .call(addr, path, &self.me, Duration::from_millis(HEARTBEAT_MS))
                    .await;
                match answer {
                    Ok(Ok(granted)) => granted,
                    // A member whose committed membership lacks this node: it was removed.
                    Err(NetError::Refused { code, message, .. }) if code == NOT_A_MEMBER => {
                        self.removed[group].note(message);
                        false
                    }
                    _ => false,
                }
            }
        });
        let granted = 1 + join_all(asks).await.into_iter().filter(|&g| g).count();
        granted * 2 > voters.len()
    }
}
