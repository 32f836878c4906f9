//! `GET /cluster`: the nodes and whether they answer, the groups with their slots, leader,
//! term, last log index, applied index per replica and the lag of each follower behind the
//! leader; and the table `featgrid cluster status` prints from it.
//!
//! The node asked gathers every node's own report (`/internal/v1/status`, one call each, with
//! a short timeout): a node that does not answer is shown unhealthy, and a group's leader
//! is the one its replicas name in the highest term.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use futures_util::future::join_all;
use openraft::ServerState;
use serde::{Deserialize, Serialize};

use super::network::NetError;
use super::Cluster;

/// How long `GET /cluster` waits for each node's report.
pub const STATUS_TIMEOUT: Duration = Duration::from_millis(800);

/// One node's view of one of its groups.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupReport {
    pub group: usize,
    pub state: String,
    pub leader: Option<String>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub applied: Option<u64>,
    /// Leader only: the last log index each follower has matched.
    pub matched: BTreeMap<String, Option<u64>>,
    /// The members this node knows of.
    pub voters: Vec<String>,
    pub learners: Vec<String>,
    /// Writes this node proposed as the group's leader since it started, and the entries
    /// they took (several writes share an entry under load).
    pub writes_proposed: u64,
    pub entries_proposed: u64,
    /// What keeps this replica from serving: the group stopped here, the node is rejoining
    /// after it lost its Raft state or was removed, or its Raft log is stalled on the disk.
    #[serde(default)]
    pub problem: Option<String>,
}

/// The whole cluster as one node sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub node: String,
    pub nodes: Vec<NodeStatus>,
    pub groups: Vec<GroupStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: String,
    pub client: String,
    pub internal: String,
    pub healthy: bool,
    #[serde(default)]
    pub error: Option<String>,
    /// How long (whole seconds) the asked node's calls to this one have failed, if its last
    /// call failed ([`super::network::reachability`]).
    #[serde(default)]
    pub unreachable_secs: Option<u64>,
    /// Bytes the node has left under its `max_memory`, as the asked node knows it (its own, or
    /// the node's last report: [`super::memory`]); absent without a ceiling or a fresh report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_headroom: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupStatus {
    pub group: usize,
    pub slots: String,
    /// The voting members (the leader's view; the topology's list while no leader answers).
    pub replicas: Vec<String>,
    /// Members being brought up to date before they vote.
    pub learners: Vec<String>,
    pub leader: Option<String>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    /// Per replica that answered: its applied index.
    pub applied: BTreeMap<String, Option<u64>>,
    /// Per follower: entries it is behind the leader's last log index.
    pub lag: BTreeMap<String, u64>,
    /// The leader's: writes it proposed since it started, and the entries they took.
    pub writes_proposed: u64,
    pub entries_proposed: u64,
    /// Per replica that reported one: what keeps it from serving (see [`GroupReport::problem`]).
    #[serde(default)]
    pub problems: BTreeMap<String, String>,
}

impl Cluster {
    fn name(&self, node: u64) -> String {
        self.topology()
            .nodes
            .get(node as usize)
            .map_or_else(|| format!("#{node}"), |n| n.id.clone())
    }

    /// This node's report on each group it holds a replica of.
    pub fn local_status(&self) -> Vec<GroupReport> {
        let stalled = self
            .log_disk_wait()
            .filter(|waited| *waited >= crate::persist::wal::STALLED)
            .map(|waited| {
                format!(
                    "log_stalled: this node's Raft log has waited {:.1} s on the disk (a write or fsync has not returned)",
                    waited.as_secs_f64()
                )
            });
        (0..self.topology().groups.len())
            .filter_map(|g| {
                let raft = self
                    .member(g)
                    .or_else(|| self.rejoining(g).and(self.raft(g)))?;
                // Before the metrics are borrowed below: `stopped` borrows them too, and a
                // second read borrow behind a waiting writer (the Raft core) deadlocks.
                let problem = self
                    .stopped(g)
                    .map(|e| format!("stopped: {e}"))
                    .or_else(|| self.rejoining(g).map(|e| format!("rejoining: {e}")))
                    .or_else(|| self.removed(g).map(|e| format!("not_a_member: {e}")))
                    .or_else(|| stalled.clone());
                let metrics = raft.metrics();
                let m = metrics.borrow();
                let state = match m.state {
                    ServerState::Leader => "leader",
                    ServerState::Follower => "follower",
                    ServerState::Candidate => "candidate",
                    ServerState::Learner => "learner",
                    ServerState::Shutdown => "shutdown",
                };
                let membership = m.membership_config.membership();
                let matched = m
                    .replication
                    .iter()
                    .flatten()
                    .filter(|(&n, _)| n != self.me)
                    .map(|(&n, id)| (self.name(n), id.map(|l| l.index)))
                    .collect();
                let (writes_proposed, entries_proposed) = self.batchers[g].proposed();
                Some(GroupReport {
                    group: g,
                    writes_proposed,
                    entries_proposed,
                    state: state.into(),
                    leader: m.current_leader.map(|n| self.name(n)),
                    term: m.current_term,
                    last_log_index: m.last_log_index,
                    applied: m.last_applied.map(|l| l.index),
                    matched,
                    voters: membership.voter_ids().map(|n| self.name(n)).collect(),
                    learners: membership.learner_ids().map(|n| self.name(n)).collect(),
                    problem,
                })
            })
            .collect()
    }

    /// Every node's report, gathered into the cluster's status.
    pub async fn status(&self) -> ClusterStatus {
        let topology = self.topology();
        let calls = topology
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| async move {
                if i as u64 == self.me {
                    return Ok(self.local_status());
                }
                let answer: Result<Vec<GroupReport>, NetError> = self
                    .net()
                    .call(
                        node.internal.clone(),
                        "/internal/v1/status".into(),
                        &(),
                        STATUS_TIMEOUT,
                    )
                    .await;
                answer
            });
        let reports = join_all(calls).await;
        let nodes = topology
            .nodes
            .iter()
            .zip(&reports)
            .enumerate()
            .map(|(i, (n, r))| NodeStatus {
                id: n.id.clone(),
                client: n.client.to_string(),
                internal: n.internal.to_string(),
                healthy: r.is_ok(),
                error: r.as_ref().err().map(ToString::to_string),
                unreachable_secs: self.net().unreachable_for(&n.internal).map(|d| d.as_secs()),
                memory_headroom: self.memory_headroom(i as u64),
            })
            .collect();
        let groups = topology
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                let mut status = GroupStatus {
                    group: g,
                    slots: group.slots_text(),
                    replicas: group.nodes.iter().map(|&n| self.name(n)).collect(),
                    learners: Vec::new(),
                    leader: None,
                    term: 0,
                    last_log_index: None,
                    applied: BTreeMap::new(),
                    lag: BTreeMap::new(),
                    writes_proposed: 0,
                    entries_proposed: 0,
                    problems: BTreeMap::new(),
                };
                for (n, report) in reports.iter().enumerate() {
                    let Some(r) = report
                        .as_ref()
                        .ok()
                        .and_then(|rs| rs.iter().find(|r| r.group == g))
                    else {
                        continue;
                    };
                    status.applied.insert(self.name(n as u64), r.applied);
                    if let Some(problem) = &r.problem {
                        status.problems.insert(self.name(n as u64), problem.clone());
                    }
                    if r.state == "leader" && r.term >= status.term {
                        status.term = r.term;
                        status.leader = Some(self.name(n as u64));
                        status.replicas = r.voters.clone();
                        status.learners = r.learners.clone();
                        status.last_log_index = r.last_log_index;
                        status.writes_proposed = r.writes_proposed;
                        status.entries_proposed = r.entries_proposed;
                        let last = r.last_log_index.unwrap_or(0);
                        status.lag = r
                            .matched
                            .iter()
                            .map(|(f, m)| (f.clone(), last.saturating_sub(m.unwrap_or(0))))
                            .collect();
                    } else if status.leader.is_none() {
                        status.term = status.term.max(r.term);
                    }
                }
                status
            })
            .collect();
        ClusterStatus {
            node: self.name(self.me),
            nodes,
            groups,
        }
    }
}

/// The status as the tables `featgrid cluster status` prints.
pub fn table(status: &ClusterStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "asked node: {}", status.node);
    let _ = writeln!(
        out,
        "{:<8} {:<22} {:<22} HEALTHY",
        "NODE", "CLIENT", "INTERNAL"
    );
    for n in &status.nodes {
        let health = match (n.healthy, n.unreachable_secs) {
            (true, _) => "yes".to_string(),
            (false, Some(secs)) => format!("NO (unreachable for {secs} s)"),
            (false, None) => "NO".to_string(),
        };
        let _ = writeln!(
            out,
            "{:<8} {:<22} {:<22} {}",
            n.id, n.client, n.internal, health
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<6} {:<18} {:<8} {:<6} {:<9} {:<28} LAG",
        "GROUP", "SLOTS", "LEADER", "TERM", "LAST LOG", "APPLIED"
    );
    let join = |m: &mut dyn Iterator<Item = String>| m.collect::<Vec<_>>().join(" ");
    for g in &status.groups {
        let applied = join(
            &mut g
                .applied
                .iter()
                .map(|(n, a)| format!("{n}={}", a.map_or("-".into(), |a| a.to_string()))),
        );
        let lag = join(&mut g.lag.iter().map(|(n, l)| format!("{n}={l}")));
        let _ = writeln!(
            out,
            "{:<6} {:<18} {:<8} {:<6} {:<9} {:<28} {}",
            g.group,
            g.slots,
            g.leader.as_deref().unwrap_or("NONE"),
            g.term,
            g.last_log_index.map_or("-".into(), |i| i.to_string()),
            applied,
            lag
        );
    }
    for g in &status.groups {
        for (node, problem) in &g.problems {
            let _ = writeln!(out, "group {} on {node}: {problem}", g.group);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_nodes_groups_and_a_missing_leader() {
        let status = ClusterStatus {
            node: "n1".into(),
            nodes: vec![NodeStatus {
                id: "n1".into(),
                client: "127.0.0.1:7001".into(),
                internal: "127.0.0.1:7101".into(),
                healthy: false,
                error: None,
                unreachable_secs: Some(12),
                memory_headroom: None,
            }],
            groups: vec![GroupStatus {
                group: 0,
                slots: "0-16383".into(),
                replicas: vec!["n1".into()],
                learners: Vec::new(),
                leader: None,
                term: 4,
                last_log_index: None,
                applied: BTreeMap::from([("n1".to_string(), Some(7))]),
                lag: BTreeMap::new(),
                writes_proposed: 0,
                entries_proposed: 0,
                problems: BTreeMap::from([("n1".to_string(), "stopped: disk".to_string())]),
            }],
        };
        let text = table(&status);
        assert!(text.contains("group 0 on n1: stopped: disk"), "{text}");
        assert!(text.contains("n1       127.0.0.1:7001"), "{text}");
        assert!(text.contains("NO (unreachable for 12 s)"), "{text}");
        assert!(
            text.contains("0-16383") && text.contains("NONE") && text.contains("n1=7"),
            "{text}"
        );
    }
}
