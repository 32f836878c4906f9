//! Reads from any node: a read barrier per group (read index from the leader, then this
//! replica catches up to it) unless the read is `local`, then this node's replicas; keys of
//! groups without a replica here are read from their leader.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::oneshot;

use super::lease::Granted;
use super::local::Found;
use super::network::NetError;
use super::topology::NodeIndex;
use super::types::Raft;
use super::{
    attempt, no_quorum, refusal_error, Cluster, ClusterError, Consistency, Forwarded, GroupKeys,
    Keys, Leader, Refusal, RowsRequest, DEADLINE, LEASE_READ_MS, RETRY_PAUSE,
};
use crate::grid::partition::{ReadBatch, ReadOutput};
use crate::grid::routing::slot;
use crate::persist::codec::Blob;
use crate::persist::wal::RecordView;

/// How long a read waits for this node's replica to apply up to the read index before it
/// reads from the group's leader instead.
const CATCH_UP_WAIT: Duration = Duration::from_millis(2 * super::HEARTBEAT_MS);

/// Whether this node's replica of a group may serve a linearizable read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Barrier {
    /// It has applied up to the read index.
    Passed,
    /// It has not within [`CATCH_UP_WAIT`]: the group's leader serves the read.
    Behind,
}

/// A read-index round of one group on this node: the reads waiting for the next round, and
/// whether one is under way.
#[derive(Default)]
pub(super) struct Rounds {
    under_way: bool,
    waiting: Vec<oneshot::Sender<RoundResult>>,
}

/// What one read-index round came to: the index and whether this node leads the group, or
/// why not (try again, or a final error).
type RoundResult = Result<(u64, bool), Attempt>;

#[derive(Debug, Clone)]
pub(super) enum Attempt {
    Retry(String),
    Fail(ClusterError),
}

impl Cluster {
    /// Waits until this node's replica of `group` may serve a linearizable read: the leader
    /// confirms its leadership with a quorum (read index) and this replica has applied up to
    /// that index. A replica that has not within [`CATCH_UP_WAIT`] (a slow disk, a node
    /// catching up after a restart) is [`Barrier::Behind`]: the read goes to the leader.
    pub async fn read_barrier(
        &self,
        group: usize,
        deadline: Instant,
    ) -> Result<Barrier, ClusterError> {
        let Some(raft) = self.replica(group) else {
            return Err(ClusterError::Internal(format!(
                "no replica of group {group} here"
            )));
        };
        if let Some(barrier) = self.leased_barrier(group, raft, deadline).await {
            return Ok(barrier);
        }
        let mut last = String::from("no leader is known");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(no_quorum(group, last));
            }
            if let Some(reason) = self.cut_off(group) {
                return Err(no_quorum(group, reason));
            }
            match actix_rt::time::timeout(left, self.shared_read_index(group)).await {
                Ok(Ok((index, here))) => {
                    let served = match here {
                        true => &self.served.read_local,
                        false => &self.served.read_forwarded,
                    };
                    served.inc();
                    let applied = raft.metrics().borrow().last_applied.map(|l| l.index);
                    if applied >= Some(index) {
                        return Ok(Barrier::Passed);
                    }
                    // The leader (here) has no one to hand the read to: it waits.
                    let left = deadline.saturating_duration_since(Instant::now());
                    let wait = if here { left } else { left.min(CATCH_UP_WAIT) };
                    let caught_up = raft
                        .wait(Some(wait))
                        .applied_index_at_least(Some(index), "read barrier")
                        .await;
                    return match caught_up {
                        Ok(_) => Ok(Barrier::Passed),
                        Err(e) if here => Err(no_quorum(
                            group,
                            format!("this replica did not catch up: {e}"),
                        )),
                        Err(_) => Ok(Barrier::Behind),
                    };
                }
                Ok(Err(Attempt::Retry(why))) => last = why,
                Ok(Err(Attempt::Fail(e))) => return Err(e),
                Err(_) => last = "no read index within the deadline".into(),
            }
            actix_rt::time::sleep(RETRY_PAUSE.min(left)).await;
        }
    }

    /// A read index of `group`, from a round that starts after this call: every read of the
    /// group that arrives while a round is under way waits for the next one, and they all
    /// share it (one quorum confirmation, and on a follower one call to the leader, for all of
    /// them). Still linearizable: each read's index is confirmed after the read started.
    pub(super) async fn shared_read_index(&self, group: usize) -> RoundResult {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut rounds = self.rounds[group].lock().unwrap_or_else(|p| p.into_inner());
            rounds.waiting.push(answer);
            !std::mem::replace(&mut rounds.under_way, true)
        };
        if start {
            match self.this.upgrade() {
                Some(cluster) => {
                    actix_rt::spawn(async move { cluster.read_index_rounds(group).await });
                }
                None => return Err(Attempt::Retry("the node is stopping".into())),
            }
        }
        answered
            .await
            .unwrap_or_else(|_| Err(Attempt::Retry("the read-index round was dropped".into())))
    }

    /// Runs rounds for `group` until no read waits.
    async fn read_index_rounds(&self, group: usize) {
        loop {
            let waiting = {
                let mut rounds = self.rounds[group].lock().unwrap_or_else(|p| p.into_inner());
                if rounds.waiting.is_empty() {
                    rounds.under_way = false;
                    return;
                }
                std::mem::take(&mut rounds.waiting)
            };
            let result = self.read_index_once(group).await;
            for answer in waiting {
                let _ = answer.send(result.clone());
            }
        }
    }

    /// One read index of `group`: from this node if it leads the group, else from the leader.
    async fn read_index_once(&self, group: usize) -> RoundResult {
        let left = attempt(DEADLINE);
        match self.leader(group) {
            Leader::Here(raft) => match self.read_index_here(group, raft, left).await {
                Ok(index) => Ok((index, true)),
                Err(Refusal::NotLeader { .. }) => Err(Attempt::Retry("the leader changed".into())),
                Err(r) => Err(Attempt::Fail(refusal_error(
                    group,
                    self.internal_addr(self.me),
                    r,
                ))),
            },
            Leader::There(node) => {
                let addr = self.internal_addr(node);
                let asked = Instant::now();
                let call = async {
                    let path = format!("/internal/v1/read-lease/{group}");
                    match self.net.call(addr.clone(), path, &self.me, left).await {
                        // A node of an earlier version grants no leases.
                        Err(NetError::Refused { status: 404, .. }) => self
                            .net
                            .call(addr, format!("/internal/v1/read-index/{group}"), &(), left)
                            .await
                            .map(|answer: Result<u64, Refusal>| {
                                answer.map(|index| Granted {
                                    index,
                                    floor: index,
                                    granted: false,
                                })
                            }),
                        answer => answer,
                    }
                };
                let answer = self
                    .unless_cut_off(group, call)
                    .await
                    .map_err(|reason| Attempt::Fail(no_quorum(group, reason)))?;
                match self.forwarded(group, node, answer).map_err(Attempt::Fail)? {
                    Forwarded::Done(lease) => {
                        if lease.granted {
                            self.held[group].note(asked, lease.floor);
                        }
                        Ok((lease.index, false))
                    }
                    Forwarded::Retry(why) => Err(Attempt::Retry(why)),
                }
            }
            Leader::Unknown => Err(Attempt::Retry("no leader is known".into())),
        }
    }

    /// The read index of `group`, asked of this node by another: from a shared round when
    /// this node leads the group, else where the leader is.
    pub async fn read_index_for_peer(&self, group: usize) -> Result<u64, Refusal> {
        match self.leader(group) {
            Leader::Here(_) => match self.shared_read_index(group).await {
                Ok((index, true)) => Ok(index),
                Ok((_, false)) | Err(Attempt::Retry(_)) => Err(Refusal::NotLeader { leader: None }),
                Err(Attempt::Fail(e)) => Err(Refusal::NoQuorum(e.to_string())),
            },
            Leader::There(node) => Err(Refusal::NotLeader { leader: Some(node) }),
            Leader::Unknown => Err(Refusal::NotLeader { leader: None }),
        }
    }

    /// The read index of `group`, asked of this node by node `from`, with a read lease for
    /// `from` when this node leads the group ([`super::lease`]): noted before the index is
    /// confirmed, and the lease's floor read after that.
    pub async fn read_lease_for_peer(
        &self,
        group: usize,
        from: NodeIndex,
    ) -> Result<Granted, Refusal> {
        // Only to a member that holds everything applied here: a lease holder that lags (a
        // slow disk) would hold every commit of the group for as long as its lease lives.
        let eligible = match self.leader(group) {
            Leader::Here(raft) => {
                let metrics = raft.metrics();
                let m = metrics.borrow();
                let member = m
                    .membership_config
                    .membership()
                    .nodes()
                    .any(|(&n, _)| n == from);
                let index = |l: Option<&openraft::LogId<NodeIndex>>| l.map_or(0, |l| l.index);
                let accepted = m.replication.as_ref().and_then(|r| r.get(&from)?.as_ref());
                member && index(accepted) >= index(m.last_applied.as_ref())
            }
            Leader::There(node) => return Err(Refusal::NotLeader { leader: Some(node) }),
            Leader::Unknown => return Err(Refusal::NotLeader { leader: None }),
        };
        let granted = eligible && from != self.me && self.grants[group].grant(from, Instant::now());
        let index = self.read_index_for_peer(group).await?;
        let floor = self.log.last_index(group).unwrap_or(0).max(index);
        Ok(Granted {
            index,
            floor,
            granted,
        })
    }

    /// Whether this node's replica of `group` serves a linearizable read under its read lease
    /// ([`super::lease`]): once it has applied the lease's floor and every entry in its log
    /// (within [`CATCH_UP_WAIT`], else the leader serves it). `None`: no live lease (or this
    /// node leads the group): ask for a read index. With less than half the lease left, a
    /// round that renews it starts meanwhile.
    async fn leased_barrier(
        &self,
        group: usize,
        raft: &Raft,
        deadline: Instant,
    ) -> Option<Barrier> {
        if matches!(self.leader(group), Leader::Here(_)) {
            return None;
        }
        let (floor, renew) = self.held[group].floor(Instant::now())?;
        if renew {
            if let Some(cluster) = self.this.upgrade() {
                actix_rt::spawn(async move {
                    let _ = cluster.shared_read_index(group).await;
                    cluster.held[group].renewed();
                });
            } else {
                self.held[group].renewed();
            }
        }
        let target = floor.max(self.log.last_index(group).unwrap_or(0));
        let applied = raft.metrics().borrow().last_applied.map_or(0, |l| l.index);
        let passed = applied >= target || {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(CATCH_UP_WAIT);
            raft.wait(Some(wait))
                .applied_index_at_least(Some(target), "leased read")
                .await
                .is_ok()
        };
        if !passed {
            return Some(Barrier::Behind);
        }
        self.served.read_leased.inc();
        Some(Barrier::Passed)
    }

    /// The read index of `group`, this node leading it: under a valid lease at once
    /// ([`Cluster::lease_read_index`]), else confirmed with a quorum.
    pub async fn read_index_here(
        &self,
        group: usize,
        raft: &Raft,
        left: Duration,
    ) -> Result<u64, Refusal> {
        // A leader restarted in the same term starts from a commit index restored from its
        // log's hint, which may lag what was committed before the restart: a read waits for
        // everything its log held at the start too.
        let floor = self.started_at_index.get(group).copied().unwrap_or(0);
        if let Some(index) = self.lease_read_index(group, raft).await {
            return Ok(index.max(floor));
        }
        // A quorum round would renew the followers' leases while a hand-over waits for them to
        // lapse ([`super::balance`]): such reads wait for the hand-over, then route again.
        if self.hand_over_gates[group].held(left).await {
            return Err(Refusal::NotLeader { leader: None });
        }
        let confirmed = raft.get_read_log_id();
        self.as_leader(group, raft, left, "leadership not confirmed", confirmed)
            .await
            .map(|(read, _applied)| read.map_or(0, |l| l.index).max(floor))
    }

    /// The read index of `group` under this node's leader lease, without asking anyone: its
    /// commit index, when a majority of the group's voters (this node included) accepted it as
    /// leader, in its current vote, in appends sent less than [`LEASE_READ_MS`] ago, and
    /// openraft's core still has it leading with that vote, its commit index in its own term
    /// and at its last log entry (so everything committed before, by any leader, is below it). No other leader can have
    /// been elected since: those followers refuse votes for a whole leader lease (openraft's,
    /// the maximum election timeout, counted from when they got the append), and this node
    /// has granted none (its vote is unchanged). `None`: ask a quorum instead.
    async fn lease_read_index(&self, group: usize, raft: &Raft) -> Option<u64> {
        // Read first (metrics lag the core's state, never lead it): the last log index at or
        // before the state below.
        let last = raft.metrics().borrow().last_log_index;
        let (state, vote, committed, voters, joint) = raft
            .with_raft_state(|st| {
                let membership = st.membership_state.effective();
                (
                    st.server_state,
                    *st.vote_ref(),
                    st.committed,
                    membership.voter_ids().collect::<Vec<_>>(),
                    membership.get_joint_config().len() > 1,
                )
            })
            .await
            .ok()?;
        let committed = committed?;
        // Everything in its log committed, too: a leader restarted in the same term starts
        // from a commit index restored from its log's hint, which may lag what was committed
        // before the restart (its own noop is not committed yet then).
        let current = state == openraft::ServerState::Leader
            && vote.is_committed()
            && committed.leader_id.term == vote.leader_id().get_term()
            && last.is_some_and(|last| last <= committed.index);
        if !current || joint {
            return None;
        }
        let now = Instant::now();
        let lease = Duration::from_millis(LEASE_READ_MS);
        let acked = voters
            .iter()
            .filter(|&&n| {
                n == self.me
                    || self.acks[group]
                        .acked(n, &vote)
                        .is_some_and(|sent| now.saturating_duration_since(sent) < lease)
            })
            .count();
        (acked * 2 > voters.len()).then_some(committed.index)
    }

    /// Reads per-shard key batches (index = shard) as the grid does, from this node's
    /// replicas (after a read barrier per group unless `local`) and, for groups without a
    /// replica here, from their leaders.
    pub async fn read(
        &self,
        per_shard: Vec<ReadBatch>,
        consistency: Consistency,
    ) -> Result<Vec<Option<ReadOutput>>, ClusterError> {
        let groups = self.topology().groups.len();
        // Decided once per request: a membership change may add a replica meanwhile.
        let mut here: Vec<bool> = (0..groups).map(|g| self.replica(g).is_some()).collect();
        let mut touched = vec![false; groups];
        for batch in &per_shard {
            for (_, key) in batch.iter() {
                touched[self.topology().group_of_slot(slot(key))] = true;
            }
        }
        let deadline = Instant::now() + DEADLINE;
        if consistency == Consistency::Local {
            let local = (0..groups).filter(|&g| touched[g] && here[g]).count();
            self.served.read_local.inc_by(local as u64);
        }
        if consistency == Consistency::Linearizable {
            let barriers = (0..groups)
                .filter(|&g| touched[g] && here[g])
                .map(|g| async move { (g, self.read_barrier(g, deadline).await) });
            for (g, barrier) in join_all(barriers).await {
                match barrier? {
                    Barrier::Passed => {}
                    // Its leader answers for it, as for a group without a replica here.
                    Barrier::Behind => here[g] = false,
                }
            }
        }
        let mut remote: Vec<Keys> = vec![Vec::new(); groups];
        if (0..groups).any(|g| touched[g] && !here[g]) {
            for batch in &per_shard {
                for (view, key) in batch.iter() {
                    let g = self.topology().group_of_slot(slot(key));
                    if !here[g] {
                        remote[g].push((view as u32, Blob(key.to_vec())));
                    }
                }
            }
        }
        if remote.iter().all(Vec::is_empty) {
            return self
                .local
                .grid
                .read(per_shard)
                .await
                .map_err(|e| ClusterError::Internal(e.to_string()));
        }
        // The keys of groups led by the same node go to it in one call; the others (no
        // leader known) each on their own.
        let mut by_node: BTreeMap<NodeIndex, GroupKeys> = BTreeMap::new();
        let mut alone = Vec::new();
        for (g, keys) in remote.into_iter().enumerate() {
            if keys.is_empty() {
                continue;
            }
            match self.leader(g) {
                Leader::There(node) => by_node.entry(node).or_default().push((g, keys)),
                _ => alone.push((g, keys)),
            }
        }
        let bundled = join_all(
            by_node
                .into_iter()
                .map(|(node, parts)| self.read_from_node(node, parts, consistency, deadline)),
        );
        let alone = join_all(
            alone
                .into_iter()
                .map(|(g, keys)| self.fetch_rows(g, keys, consistency, deadline)),
        );
        let (bundled, alone) = futures_util::future::join(bundled, alone).await;
        let layouts = self.local.grid.layouts();
        let mut found = Found::default();
        for rows in bundled.into_iter().flatten().chain(alone) {
            found
                .add_portable(&rows?, &layouts)
                .map_err(ClusterError::Internal)?;
        }
        let local = self.local.grid.read(per_shard.clone()).await?;
        for (batch, output) in per_shard.iter().zip(&local) {
            let Some(output) = output else { continue };
            for (i, (view, key)) in batch.iter().enumerate() {
                // Rows of groups without a working replica here (never had one, removed, or
                // stopped) may be left over or behind: only their leader's answer counts.
                if !here[self.topology().group_of_slot(slot(key))] {
                    continue;
                }
                if let Some(row) = output.row(&layouts, i) {
                    found.add(view, &layouts[view], key, row);
                }
            }
        }
        per_shard
            .iter()
            .map(|batch| {
                (!batch.is_empty())
                    .then(|| found.answer(layouts.clone(), batch))
                    .transpose()
                    .map_err(|e| ClusterError::Grid(e.into()))
            })
            .collect()
    }

    /// Reads the keys of several groups that `node` leads (no replica here) in one call to it.
    /// A group it did not answer for (it no longer leads it, or the call did not come back)
    /// is read on its own ([`Cluster::fetch_rows`]).
    async fn read_from_node(
        &self,
        node: NodeIndex,
        parts: GroupKeys,
        consistency: Consistency,
        deadline: Instant,
    ) -> Vec<Result<Vec<RecordView>, ClusterError>> {
        let place = (parts[0].0, parts.len());
        let request = (consistency, &parts);
        let answers = match self
            .call_parts(node, "/internal/v1/rows", &request, place, deadline)
            .await
        {
            Ok(answers) => answers,
            Err(failure) => return parts.iter().map(|_| Err(failure.clone())).collect(),
        };
        let addr = self.internal_addr(node);
        let reads = parts.into_iter().zip(answers).map(|((g, keys), answer)| {
            let addr = addr.clone();
            async move {
                match answer {
                    Some(Ok(rows)) => {
                        self.served.read_forwarded.inc();
                        Ok(rows)
                    }
                    Some(Err(Refusal::NotLeader { leader })) => {
                        self.note_leader(g, leader.filter(|&l| l != node));
                        self.fetch_rows(g, keys, consistency, deadline).await
                    }
                    Some(Err(refusal)) => Err(refusal_error(g, addr, refusal)),
                    None => self.fetch_rows(g, keys, consistency, deadline).await,
                }
            }
        });
        join_all(reads).await
    }

    /// Serves reads of several groups' keys on their leader: the internal endpoint's side
    /// of [`Cluster::read_from_node`].
    pub async fn serve_parts(
        &self,
        consistency: Consistency,
        parts: GroupKeys,
    ) -> Vec<Result<Vec<RecordView>, Refusal>> {
        join_all(
            parts
                .into_iter()
                .map(|(g, keys)| self.serve_rows(g, RowsRequest { consistency, keys })),
        )
        .await
    }

    /// Reads keys of `group` (no replica here) from its leader.
    async fn fetch_rows(
        &self,
        group: usize,
        keys: Keys,
        consistency: Consistency,
        deadline: Instant,
    ) -> Result<Vec<RecordView>, ClusterError> {
        let request = RowsRequest { consistency, keys };
        let mut last = String::from("no leader is known");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(no_quorum(group, last));
            }
            let node = match self.leader(group) {
                Leader::There(node) => node,
                _ => self.any_replica(group),
            };
            let addr = self.internal_addr(node);
            let answer = self
                .net
                .call(
                    addr,
                    format!("/internal/v1/rows/{group}"),
                    &request,
                    attempt(left),
                )
                .await;
            match self.forwarded(group, node, answer)? {
                Forwarded::Done(rows) => {
                    self.served.read_forwarded.inc();
                    return Ok(rows);
                }
                Forwarded::Retry(why) => last = why,
            }
            actix_rt::time::sleep(RETRY_PAUSE.min(left)).await;
        }
    }

    /// Serves a forwarded read of `group`'s keys on its leader.
    pub async fn serve_rows(
        &self,
        group: usize,
        request: RowsRequest,
    ) -> Result<Vec<RecordView>, Refusal> {
        let Some(raft) = self.raft(group) else {
            return Err(Refusal::NotLeader { leader: None });
        };
        if request.consistency == Consistency::Linearizable {
            let index = self.read_index_for_peer(group).await?;
            raft.wait(Some(DEADLINE))
                .applied_index_at_least(Some(index), "forwarded read")
                .await
                .map_err(|e| Refusal::NoQuorum(e.to_string()))?;
        }
        self.local
            .read_rows(&request.keys)
            .await
            .map_err(|e| Refusal::Failed {
                status: 503,
                code: "shard_unavailable".into(),
                message: e.to_string(),
            })
    }
}
