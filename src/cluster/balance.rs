//! Leadership back to each group's preferred leader (the first of its nodes in the topology
//! that is a voter), for `POST /cluster/balance` and `featgrid cluster balance`: after a node
//! restarts, the groups it led are led by others, and one node may lead them all.
//!
//! openraft 0.9 has no leadership transfer, so a hand-over is an election the preferred node
//! starts (`trigger().elect()`) once the leader has checked that it holds the leader's whole
//! log. The followers refuse the vote (their leader lease holds while the leader's appends
//! reach them); the leader grants it, its own vote being older than a lease, and steps down in
//! the same step (so its lease reads stop before the new leader can commit anything). The
//! leader and the candidate are a majority of a group of up to three voters; in a larger group
//! the candidate needs followers' votes too, so the leader first goes quiet: no heartbeat, no
//! append and no quorum read reaches the followers for a leader lease, after which they grant
//! an up-to-date candidate's vote (its own lease reads stay safe: they count acknowledgements
//! younger than half a lease). The leader holds new writes of the group (its [`Gate`]), and
//! its reads that would ask a quorum, from before its check until the election is decided,
//! then they are routed again (to the new leader): a write proposed meanwhile would make the
//! leader refuse the vote (the candidate's log shorter), and the candidate's higher term would
//! end that leadership anyway (an ordinary election: about a second without a leader for that
//! group, nothing lost).
//!
//! Writes are held for at most [`HOLD_WRITES`] in all, well within a write's deadline: a
//! candidate that does not catch up, or does not answer (paused, cut off), ends the hand-over
//! with the group still led where it was. One hand-over per group at a time; the candidate
//! ignores a request to stand that reaches it after the hand-over ended (a paused node
//! resumed), which would only cost an ordinary election.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::{join_all, select, Either};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::types::Raft;
use super::{Cluster, NodeIndex, Refusal, ELECTION_MAX_MS, HEARTBEAT_MS};

/// How long one hand-over may take, waits for the candidate to catch up included.
const HAND_OVER_DEADLINE: Duration = Duration::from_secs(10);

/// How long at most the leader holds new writes: the candidate's catching up and its election
/// together. Under a write's deadline ([`super::DEADLINE`]), so a held write is still
/// committed, here or on the new leader.
const HOLD_WRITES: Duration = Duration::from_secs(2);

/// How long the leader's log must stay unchanged (and wholly on the candidate) before the vote.
const STILL: Duration = Duration::from_millis(50);

/// How long a quiet leader waits before its followers' leases have lapsed (openraft's leader
/// lease is the maximum election timeout), in a group of more than three voters. Their own
/// election timers fire no sooner than a lease plus the minimum election timeout after the
/// last heartbeat: the candidate stands first.
const QUIET: Duration = Duration::from_millis(ELECTION_MAX_MS + 100);

/// The part of the hold kept for the vote itself.
const VOTE: Duration = Duration::from_millis(300);

/// How long a candidate waits to win its election.
const ELECTION_WAIT: Duration = Duration::from_secs(3);

/// New writes of a group on its leader, held while it hands leadership over.
#[derive(Default)]
pub struct Gate {
    closed: AtomicBool,
    opened: Notify,
}

/// Turns a leader's heartbeats back on when dropped.
struct Quiet<'a>(&'a Raft);

impl Drop for Quiet<'_> {
    fn drop(&mut self) {
        self.0.runtime_config().heartbeat(true);
    }
}

/// Opens its gate when dropped.
struct Closed<'a>(&'a Gate);

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        self.0.closed.store(false, Ordering::SeqCst);
        self.0.opened.notify_waiters();
    }
}

impl Gate {
    /// Closes the gate, unless it is closed already (a hand-over under way).
    fn try_close(&self) -> Option<Closed<'_>> {
        self.closed
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| Closed(self))
    }

    /// Waits (at most `left`) while the gate is closed; answers whether it was.
    pub(super) async fn held(&self, left: Duration) -> bool {
        // Registered before the check: an opening in between is not missed.
        let opened = self.opened.notified();
        if !self.closed.load(Ordering::SeqCst) {
            return false;
        }
        let _ = tokio::time::timeout(left, opened).await;
        true
    }
}

/// The request to stand for election: until when (the leader's wall clock, milliseconds since
/// the Unix epoch) it holds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Elect {
    pub not_after_ms: u64,
}

fn unix_ms(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What balancing did to one group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupBalance {
    pub group: usize,
    /// The node that should lead the group.
    pub preferred: String,
    /// The leader before, and after.
    pub leader_before: Option<String>,
    pub leader: Option<String>,
    /// Whether leadership moved.
    pub moved: bool,
    /// Why the group is not led by its preferred node, if it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The answer of `POST /cluster/balance`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Balance {
    /// Every group is led by its preferred node.
    pub balanced: bool,
    pub groups: Vec<GroupBalance>,
}

impl Cluster {
    /// The node that should lead `group`: the first of its topology nodes among `voters`.
    fn preferred_leader(&self, group: usize, voters: &[NodeIndex]) -> Option<NodeIndex> {
        let topology = self.topology();
        topology.groups[group]
            .nodes
            .iter()
            .copied()
            .find(|n| voters.contains(n))
    }

    /// Moves every group's leadership to its preferred leader, one group after the other.
    pub async fn balance(&self) -> Balance {
        let groups = self.topology().groups.len();
        let mut out = Vec::with_capacity(groups);
        for group in 0..groups {
            out.push(self.balance_group(group).await);
        }
        Balance {
            balanced: out.iter().all(|g| g.problem.is_none()),
            groups: out,
        }
    }

    async fn balance_group(&self, group: usize) -> GroupBalance {
        let name = |n: NodeIndex| self.topology().node(n).id.clone();
        let leader_before = self.known_leader(group);
        let mut balance = GroupBalance {
            group,
            preferred: name(self.topology().groups[group].nodes[0]),
            leader_before: leader_before.map(name),
            leader: leader_before.map(name),
            moved: false,
            problem: None,
        };
        let path = format!("/internal/v1/hand-over/{group}");
        let deadline = Instant::now() + HAND_OVER_DEADLINE;
        // A forwarded call is given the whole hand-over: cut off earlier, it would be repeated
        // while the leader is still at the first one.
        let handed = self
            .on_leader_within(
                group,
                None,
                path,
                &(),
                deadline,
                HAND_OVER_DEADLINE,
                |raft, left| async move { self.hand_over_here(group, &raft, left).await },
            )
            .await;
        match handed {
            Ok((preferred, moved)) => {
                balance.preferred = name(preferred);
                balance.leader = Some(name(preferred));
                balance.moved = moved;
                if !moved {
                    // The preferred node answered as the leader: it led already (whatever this
                    // node last heard).
                    balance.leader_before = Some(name(preferred));
                }
            }
            Err(e) => {
                balance.leader = self.known_leader(group).map(name);
                balance.problem = Some(e.to_string());
            }
        }
        balance
    }

    /// The leader of `group` this node knows of.
    fn known_leader(&self, group: usize) -> Option<NodeIndex> {
        match self.leader(group) {
            super::leader::Leader::Here(_) => Some(self.me),
            super::leader::Leader::There(n) => Some(n),
            super::leader::Leader::Unknown => None,
        }
    }

    /// On `group`'s leader: hands leadership to the preferred leader. Answers it, and whether
    /// leadership moved (it does not when this node is the preferred one).
    pub(super) async fn hand_over_here(
        &self,
        group: usize,
        raft: &Raft,
        left: Duration,
    ) -> Result<(NodeIndex, bool), Refusal> {
        let deadline = Instant::now() + left;
        let refused = |code: &str, message: String| Refusal::Failed {
            status: 409,
            code: code.into(),
            message,
        };
        let name = |n: NodeIndex| self.topology().node(n).id.clone();
        let (leading, voters) = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            let voters: Vec<NodeIndex> = m.membership_config.membership().voter_ids().collect();
            (m.current_leader == Some(self.me), voters)
        };
        if !leading {
            return Err(Refusal::NotLeader { leader: None });
        }
        let Some(preferred) = self.preferred_leader(group, &voters) else {
            return Err(refused(
                "cannot_hand_over",
                format!("none of group {group}'s topology nodes is a voter"),
            ));
        };
        if preferred == self.me {
            return Ok((preferred, false));
        }
        // The leader grants a vote only once its own vote is older than a leader lease.
        let since = raft
            .with_raft_state(|st| st.vote_last_modified())
            .await
            .map_err(|e| refused("cannot_hand_over", e.to_string()))?;
        if let Some(since) = since {
            let lease = Duration::from_millis(ELECTION_MAX_MS + 50);
            tokio::time::sleep_until(since + lease).await;
        }
        // The candidate must hold the whole log, or the leader refuses its vote: no new writes
        // from now on, and those under way replicated to it (the log still for a moment).
        let Some(_held) = self.hand_over_gates[group].try_close() else {
            return Err(refused(
                "hand_over_under_way",
                format!("group {group} is being handed over already"),
            ));
        };
        let held_until = Instant::now() + HOLD_WRITES;
        // The leader votes for the candidate at once, followers' leader leases or not: the
        // read leases it granted must end first ([`super::lease`]).
        let _no_leases = self.grants[group].close().await;
        // With more than three voters, the candidate needs followers' votes: a lease of quiet
        // comes before the vote, within the hold.
        let quiet = voters.len() > 3;
        let deadline = match quiet {
            true => deadline.min(held_until - QUIET - VOTE),
            false => deadline.min(held_until - VOTE),
        };
        let mut still_since: Option<(Option<u64>, Instant)> = None;
        loop {
            let (caught_up, last) = {
                let metrics = raft.metrics();
                let m = metrics.borrow();
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&preferred).copied().flatten());
                (
                    matched.map(|l| l.index) >= m.last_log_index,
                    m.last_log_index,
                )
            };
            match still_since {
                Some((at, since)) if at == last => {
                    if caught_up && since.elapsed() >= STILL {
                        break;
                    }
                }
                _ => still_since = Some((last, Instant::now())),
            }
            if Instant::now() >= deadline {
                return Err(refused(
                    "not_caught_up",
                    format!(
                        "node {} does not hold group {group}'s whole log yet",
                        name(preferred)
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _quiet = quiet.then(|| {
            raft.runtime_config().heartbeat(false);
            Quiet(raft)
        });
        if quiet {
            let vote = async {
                tokio::time::sleep(QUIET).await;
                self.stand(group, preferred, held_until).await
            };
            // Meanwhile the followers are told the leader is still there (through featgrid, not
            // openraft, which would renew their leases): they do not take themselves for cut off
            // and refuse requests.
            let told = async {
                loop {
                    self.still_leading(group, &voters).await;
                    tokio::time::sleep(Duration::from_millis(HEARTBEAT_MS)).await;
                }
            };
            match select(std::pin::pin!(vote), std::pin::pin!(told)).await {
                Either::Left((answer, _)) => answer?,
                Either::Right((never, _)) => never,
            }
        } else {
            self.stand(group, preferred, held_until).await?;
        }
        tracing::info!(group, to = %name(preferred), "leadership handed over");
        Ok((preferred, true))
    }

    /// Tells the other voters of `group` that this node, its leader, is still there.
    async fn still_leading(&self, group: usize, voters: &[NodeIndex]) {
        let path = format!("/internal/v1/still-leading/{group}");
        let calls = voters.iter().filter(|&&n| n != self.me).map(|&n| {
            let (addr, path) = (self.internal_addr(n), path.clone());
            async move {
                let _: Result<Result<(), Refusal>, _> = self
                    .net
                    .call(addr, path, &self.me, Duration::from_millis(HEARTBEAT_MS))
                    .await;
            }
        });
        join_all(calls).await;
    }

    /// Asks `preferred` to stand for `group`'s election, which must be decided by
    /// `held_until`; answers once it won.
    async fn stand(
        &self,
        group: usize,
        preferred: NodeIndex,
        held_until: Instant,
    ) -> Result<(), Refusal> {
        let name = |n: NodeIndex| self.topology().node(n).id.clone();
        // The election is decided, or given up, before the held writes' deadline.
        let left = held_until.saturating_duration_since(Instant::now());
        let request = Elect {
            not_after_ms: unix_ms(std::time::SystemTime::now() + left),
        };
        let path = format!("/internal/v1/elect/{group}");
        let addr = self.internal_addr(preferred);
        let answer: Result<(), Refusal> = self
            .net
            .call(addr, path, &request, left)
            .await
            .map_err(|e| Refusal::Failed {
                status: 503,
                code: "election_lost".into(),
                message: format!(
                    "node {} did not win group {group}'s election within {} ms ({e}); it stays with {} unless an ordinary election follows",
                    name(preferred),
                    HOLD_WRITES.as_millis(),
                    name(self.me)
                ),
            })?;
        answer
    }

    /// On the candidate: starts an election of `group` and waits until this node leads it;
    /// refuses once the leader no longer holds writes for it (`request.not_after_ms`).
    pub(super) async fn elect_here(&self, group: usize, request: Elect) -> Result<(), Refusal> {
        let lost = |message: String| Refusal::Failed {
            status: 503,
            code: "election_lost".into(),
            message,
        };
        let now = std::time::SystemTime::now();
        if unix_ms(now) > request.not_after_ms {
            return Err(lost(format!(
                "the request to stand for group {group}'s election came {} ms after the leader gave up on it",
                unix_ms(now) - request.not_after_ms
            )));
        }
        let Some(raft) = self.replica(group) else {
            return Err(lost(format!(
                "node {} holds no working replica of group {group}",
                self.topology().node(self.me).id
            )));
        };
        raft.trigger()
            .elect()
            .await
            .map_err(|e| lost(e.to_string()))?;
        let mut metrics = raft.metrics();
        let won = tokio::time::timeout(
            ELECTION_WAIT,
            metrics.wait_for(|m| m.current_leader == Some(self.me)),
        )
        .await;
        match won {
            Ok(Ok(_)) => Ok(()),
            _ => Err(lost(format!(
                "node {} did not win group {group}'s election (the leader's log grew meanwhile, or it was refused): an ordinary election follows",
                self.topology().node(self.me).id
            ))),
        }
    }
}
