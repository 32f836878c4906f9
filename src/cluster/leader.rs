//! Finding a group's leader and calling it: where this node believes the leader is, the
//! answer of a call forwarded to another node sorted into a result, a retry or a final error,
//! an operation run here as the leader for at most what is left of the deadline, and the
//! watch that makes a node cut off from its leader (or a leader cut off from its quorum)
//! refuse at once instead of waiting for the deadline.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};
use openraft::error::{ForwardToLeader, RaftError};
use openraft::{BasicNode, TryAsRef};
use serde::Serialize;

use super::network::NetError;
use super::topology::{Address, NodeIndex};
use super::types::{NodeId, Raft};
use super::{Cluster, ClusterError, Refusal, CUT_OFF_MS, ELECTION_MAX_MS, NO_LEADER, WATCH_EVERY};

/// Where a group's leader is, as far as this node knows.
pub(super) enum Leader<'a> {
    Here(&'a Raft),
    There(NodeIndex),
    Unknown,
}

/// What a call forwarded to a node came to, when it was not a final error.
pub(super) enum Forwarded<T> {
    Done(T),
    /// Try again (the leader changed or did not answer): why, for the final error.
    Retry(String),
}

impl Cluster {
    pub(super) fn leader(&self, group: usize) -> Leader<'_> {
        let known = match self.replica(group) {
            Some(raft) => {
                let metrics = raft.metrics();
                let m = metrics.borrow();
                if m.current_leader == Some(self.me) {
                    return Leader::Here(raft);
                }
                m.current_leader
            }
            None => Some(self.hints[group].load(Ordering::Relaxed)).filter(|&n| n != NO_LEADER),
        };
        match known {
            Some(n) if (n as usize) < self.topology().nodes.len() => Leader::There(n),
            _ => Leader::Unknown,
        }
    }

    /// The replicas of `group` in turn, for a node that holds none and knows no leader.
    pub(super) fn any_replica(&self, group: usize) -> NodeIndex {
        let nodes = &self.topology().groups[group].nodes;
        nodes[self.rotor.fetch_add(1, Ordering::Relaxed) % nodes.len()]
    }

    pub(super) fn note_leader(&self, group: usize, leader: Option<NodeIndex>) {
        self.hints[group].store(leader.unwrap_or(NO_LEADER), Ordering::Relaxed);
    }

    /// Sorts out the answer of a call forwarded to `node` about `group`: a result, a reason
    /// to try again (noting where the leader is, if the node knows), or a final error.
    pub(super) fn forwarded<T>(
        &self,
        group: usize,
        node: NodeIndex,
        answer: Result<Result<T, Refusal>, NetError>,
    ) -> Result<Forwarded<T>, ClusterError> {
        let addr = self.internal_addr(node);
        match answer {
            Ok(Ok(value)) => Ok(Forwarded::Done(value)),
            Ok(Err(Refusal::NotLeader { leader })) => {
                self.note_leader(group, leader.filter(|&l| l != node));
                Ok(Forwarded::Retry(format!(
                    "node {} is not the leader",
                    self.topology().node(node).id
                )))
            }
            Ok(Err(r)) => Err(refusal_error(group, addr, r)),
            Err(NetError::Refused {
                status,
                code,
                message,
                ..
            }) => Err(ClusterError::Peer {
                addr,
                status,
                code,
                message,
            }),
            Err(e) => {
                self.note_leader(group, None);
                Ok(Forwarded::Retry(e.to_string()))
            }
        }
    }

    pub(super) fn internal_addr(&self, node: NodeIndex) -> Address {
        self.topology().node(node).internal.clone()
    }

    /// Runs `op` on this node's Raft node for `group`, as its leader, for at most `left`;
    /// gives up as soon as the leader has not heard from a quorum for [`CUT_OFF_MS`] (the
    /// others may be electing a new leader: a minority refuses within about that).
    pub(super) async fn as_leader<T, E>(
        &self,
        group: usize,
        raft: &Raft,
        left: Duration,
        what: &str,
        op: impl std::future::Future<Output = Result<T, RaftError<NodeId, E>>>,
    ) -> Result<T, Refusal>
    where
        E: std::error::Error + TryAsRef<ForwardToLeader<NodeId, BasicNode>>,
    {
        let lost_quorum = async {
            loop {
                match self.lost_quorum(raft) {
                    Some(reason) => return reason,
                    None => actix_rt::time::sleep(WATCH_EVERY).await,
                }
            }
        };
        let op = std::pin::pin!(actix_rt::time::timeout(left, op));
        let answer = match select(op, std::pin::pin!(lost_quorum)).await {
            Either::Left((answer, _)) => answer,
            Either::Right((reason, _)) => {
                return Err(Refusal::NoQuorum(format!("group {group}: {reason}")))
            }
        };
        match answer {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => match e.forward_to_leader::<BasicNode>() {
                Some(f) => Err(Refusal::NotLeader {
                    leader: f.leader_id,
                }),
                // Stopped here: another replica leads, or soon will.
                None if matches!(e, RaftError::Fatal(_)) => {
                    Err(Refusal::NotLeader { leader: None })
                }
                None => Err(Refusal::NoQuorum(format!("group {group}: {e}"))),
            },
            Err(_) => Err(Refusal::NoQuorum(format!(
                "group {group}: {what} within {} ms",
                left.as_millis()
            ))),
        }
    }

    /// Notes that `group`'s leader was just heard from (an append or heartbeat it sent).
    pub fn heard_from_leader(&self, group: usize) {
        if let Some(heard) = self.heard.get(group) {
            heard.store(
                self.epoch.elapsed().as_millis() as u64 + 1,
                Ordering::Relaxed,
            );
        }
    }

    /// Notes that `group`'s leader is being heard from until the guard is dropped (an append
    /// from it being written), and once more then.
    pub fn hearing(&self, group: usize) -> Hearing<'_> {
        self.heard_from_leader(group);
        self.appending[group].fetch_add(1, Ordering::SeqCst);
        Hearing {
            cluster: self,
            group,
        }
    }

    /// How long this node has not heard from `group`'s leader, in ms (0 while an append from
    /// it is being written), or `None` if it never has since it started.
    pub(super) fn silent_for(&self, group: usize) -> Option<u64> {
        let heard = self.heard.get(group)?.load(Ordering::Relaxed);
        if heard == 0 {
            return None;
        }
        if self.appending[group].load(Ordering::SeqCst) > 0 {
            return Some(0);
        }
        Some((self.epoch.elapsed().as_millis() as u64 + 1).saturating_sub(heard))
    }

    /// Why this node, a follower holding a replica of `group`, cannot reach a leader with a
    /// quorum now: no leader has been heard from for longer than [`CUT_OFF_MS`] (it is cut
    /// off, or an election is taking long). A node so cut off refuses requests about the
    /// group at once (503 `no_quorum`) rather than waiting for the deadline; one that is
    /// merely between leaders hears from the new one within a heartbeat of its election. A
    /// node that has heard from no leader since it started is not judged yet (a leader may
    /// still be backing off from when the node was down): it waits like any request.
    pub(super) fn cut_off(&self, group: usize) -> Option<String> {
        let silent = self.silent_for(group)?;
        let raft = self.replica(group)?;
        if raft.metrics().borrow().current_leader == Some(self.me) {
            return None;
        }
        (silent > CUT_OFF_MS)
            .then(|| format!("this replica has not heard from a leader for {silent} ms"))
    }

    /// Runs `call` (a call forwarded to `group`'s leader) unless this node finds itself cut
    /// off from the group's leader first ([`Cluster::cut_off`]): then why.
    pub(super) async fn unless_cut_off<T>(
        &self,
        group: usize,
        call: impl std::future::Future<Output = T>,
    ) -> Result<T, String> {
        let cut_off = async {
            loop {
                match self.cut_off(group) {
                    Some(reason) => return reason,
                    None => actix_rt::time::sleep(WATCH_EVERY).await,
                }
            }
        };
        match select(std::pin::pin!(call), std::pin::pin!(cut_off)).await {
            Either::Left((answer, _)) => Ok(answer),
            Either::Right((reason, _)) => Err(reason),
        }
    }

    /// Calls `path` on `node` with `request`, which carries the parts of `parts` groups, the
    /// first of them `first`: one answer per part (`None`: the call brought none back, try
    /// that part alone), or the node's refusal of the whole call, final for every part. The
    /// call stops early when this node finds itself cut off ([`Cluster::cut_off`] of
    /// `first`): then every part is tried alone, and refuses at once.
    pub(super) async fn call_parts<Q: Serialize, T: serde::de::DeserializeOwned>(
        &self,
        node: NodeIndex,
        path: &str,
        request: &Q,
        (first, parts): (usize, usize),
        deadline: Instant,
    ) -> Result<Vec<Option<Result<T, Refusal>>>, ClusterError> {
        let addr = self.internal_addr(node);
        let left = deadline.saturating_duration_since(Instant::now());
        let call = self
            .net
            .call(addr.clone(), path.into(), request, attempt(left));
        let answer: Result<Vec<Result<T, Refusal>>, NetError> =
            match self.unless_cut_off(first, call).await {
                Ok(answer) => answer,
                Err(reason) => Err(NetError::Unreachable {
                    addr: addr.clone(),
                    reason,
                }),
            };
        match answer {
            Ok(answers) if answers.len() == parts => Ok(answers.into_iter().map(Some).collect()),
            Err(NetError::Refused {
                status,
                code,
                message,
                ..
            }) => Err(ClusterError::Peer {
                addr,
                status,
                code,
                message,
            }),
            _ => Ok((0..parts).map(|_| None).collect()),
        }
    }

    /// Why this node, leading a group, cannot count on a quorum now: it has not heard from
    /// one for longer than [`CUT_OFF_MS`] (the others may be electing a new leader).
    pub(super) fn lost_quorum(&self, raft: &Raft) -> Option<String> {
        let metrics = raft.metrics();
        let m = metrics.borrow();
        match m.millis_since_quorum_ack {
            Some(ms) if ms > CUT_OFF_MS => Some(format!(
                "the leader has not heard from a quorum for {ms} ms"
            )),
            _ => None,
        }
    }
}

/// The time a forwarded call is given, within what is `left` of the request's deadline: an
/// election timeout. A leader that does not answer by then is likely gone (a kept-alive
/// connection to a cut-off node would otherwise hold the whole deadline); the call is routed
/// again, to the new leader once there is one. A repeated write is harmless.
pub(super) fn attempt(left: Duration) -> Duration {
    left.min(Duration::from_millis(ELECTION_MAX_MS))
}

pub(super) fn no_quorum(group: usize, reason: String) -> ClusterError {
    ClusterError::NoQuorum {
        groups: vec![group],
        reason,
    }
}

pub(super) fn refusal_error(group: usize, addr: Address, refusal: Refusal) -> ClusterError {
    match refusal {
        Refusal::NotLeader { .. } => no_quorum(group, "the leader changed".into()),
        Refusal::NoQuorum(reason) => no_quorum(group, reason),
        Refusal::Failed {
            status,
            code,
            message,
        } => ClusterError::Peer {
            addr,
            status,
            code,
            message,
        },
    }
}

/// An append from a group's leader being written ([`Cluster::hearing`]).
pub struct Hearing<'a> {
    cluster: &'a Cluster,
    group: usize,
}

impl Drop for Hearing<'_> {
    fn drop(&mut self) {
        self.cluster.heard_from_leader(self.group);
        self.cluster.appending[self.group].fetch_sub(1, Ordering::SeqCst);
    }
}
