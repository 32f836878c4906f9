//! The cluster: several featgrid nodes serve one key space. The 16,384 slots are split into
//! groups ([`topology`]); each group is one Raft group (openraft) replicated on its nodes, and
//! its state machine is those nodes' own shards ([`state_machine`]). Consensus stays in this
//! module: the grid applies committed entries exactly as it applies local writes and knows
//! nothing of terms or votes.
//!
//! Any node takes any request ([`Cluster::write`], [`Cluster::read`]): it splits it by group;
//! a write goes to each group's leader (locally, or over the internal endpoint) and is
//! answered once every group it touches has committed and applied it. A read is served from
//! this node's replica after a read-index barrier (the leader confirms its leadership with a
//! quorum and names the index the replica must have applied), or from the local replica at
//! once with `x-featgrid-consistency: local`; keys of groups this node holds no replica of are
//! read from their leader. Calls between nodes have deadlines ([`DEADLINE`]): a group
//! without a leader that has a quorum answers 503 `no_quorum`, never a wait without end.

pub mod internal;
pub mod local;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod status;
pub mod topology;
pub mod types;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use openraft::{BasicNode, Config, SnapshotPolicy};
use serde::{Deserialize, Serialize};

use crate::grid::partition::{ApplyStats, ReadBatch, ReadOutput, RowBatch, RowLayout};
use crate::grid::routing::slot;
use crate::persist::codec::Blob;
use crate::persist::wal::{self, Destination, FsyncPolicy, RecordView};
use local::{split_by_group, Found, LocalStore};
use log_store::LogStore;
use network::{GroupNetwork, Net, NetError};
use state_machine::GroupMachine;
use topology::{NodeIndex, Topology};
use types::{Applied, GroupWrite, Raft};

/// How long a request waits for a group to commit a write or confirm a read, elections
/// included, before it answers 503 `no_quorum`.
pub const DEADLINE: Duration = Duration::from_secs(3);
/// Pause between attempts while a group has no reachable leader.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Raft timing (ms): a lost leader is replaced within about a second.
const HEARTBEAT_MS: u64 = 150;
const ELECTION_MIN_MS: u64 = 600;
const ELECTION_MAX_MS: u64 = 1000;
/// Entries between Raft snapshots of a group (then the log before them is dropped).
const SNAPSHOT_EVERY: u64 = 20_000;
/// Entries kept in the log after a snapshot, so that a briefly absent node catches up from
/// the log rather than a whole snapshot.
const KEEP_AFTER_SNAPSHOT: u64 = 1_000;
/// No hint about a group's leader.
const NO_LEADER: u64 = u64::MAX;

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consistency {
    /// Never older than a push acknowledged before the read started (the default).
    Linearizable,
    /// This node's replica as it is: may miss pushes its group committed but it has not yet
    /// applied (in practice a heartbeat, more while it is cut off).
    Local,
}

impl Consistency {
    /// The request header that asks for a consistency.
    pub const HEADER: &'static str = "x-featgrid-consistency";

    /// The consistency a request asks for: linearizable unless its header says `local`.
    pub fn of(req: &actix_web::HttpRequest) -> Result<Consistency, crate::error::ApiError> {
        let Some(value) = req.headers().get(Self::HEADER) else {
            return Ok(Consistency::Linearizable);
        };
        match value.to_str().map(str::trim) {
            Ok("linearizable") => Ok(Consistency::Linearizable),
            Ok("local") => Ok(Consistency::Local),
            _ => Err(crate::error::ApiError::bad_request(
                "invalid_request",
                format!(
                    "{} is {value:?}: expected \"linearizable\" (the default) or \"local\"",
                    Self::HEADER
                ),
            )),
        }
    }
}

/// Why the cluster could not serve a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    #[error("group(s) {groups:?} have no leader with a quorum ({reason}); nothing is known of the outcome of a write: retrying it is safe")]
    NoQuorum { groups: Vec<usize>, reason: String },
    #[error("the push reached groups {ok:?} but not groups {failed:?} ({first}); retrying the whole push is safe (newest event wins)")]
    PartialFailure {
        ok: Vec<usize>,
        failed: Vec<usize>,
        first: Box<ClusterError>,
    },
    #[error("node at {addr} answered {status} {code}: {message}")]
    Peer {
        addr: SocketAddr,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{0}")]
    Internal(String),
}

/// How a node refuses a forwarded call (the body of its answer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Refusal {
    /// Not the group's leader; the leader it knows of, if any.
    NotLeader {
        leader: Option<NodeIndex>,
    },
    NoQuorum(String),
    Failed {
        status: u16,
        code: String,
        message: String,
    },
}

/// Keys to read on a group's leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowsRequest {
    pub consistency: Consistency,
    pub keys: Vec<(u32, Blob)>,
}

/// Where a group's leader is, as far as this node knows.
enum Leader<'a> {
    Here(&'a Raft),
    There(NodeIndex),
    Unknown,
}

/// This node's part of the cluster.
pub struct Cluster {
    pub topology: Arc<Topology>,
    pub me: NodeIndex,
    /// Index = group; `None` where this node holds no replica.
    rafts: Vec<Option<Raft>>,
    /// Index = group: the leader last heard of ([`NO_LEADER`]: none).
    hints: Vec<AtomicU64>,
    rotor: AtomicUsize,
    net: Net,
    local: LocalStore,
}

/// Why the cluster side could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterStartError {
    #[error(transparent)]
    Log(#[from] log_store::LogOpenError),
    #[error("{0}")]
    Other(String),
}

impl Cluster {
    /// Opens this node's groups (log, vote, applied marker under `data_dir/raft/g<N>`), starts
    /// their Raft nodes, and has each group's preferred leader (its first node) initialize a
    /// group that was never initialized. Must run inside the actix system, after the shards
    /// were restored.
    pub async fn start(
        topology: Topology,
        me: NodeIndex,
        data_dir: &Path,
        fsync: FsyncPolicy,
        local: LocalStore,
    ) -> Result<(Arc<Cluster>, actix::Arbiter), ClusterStartError> {
        let topology = Arc::new(topology);
        let (net, net_thread) = Net::start(&topology.secret);
        let mut rafts = Vec::with_capacity(topology.groups.len());
        let (snapshot_every, keep_after_snapshot) = snapshot_cadence();
        for (g, group) in topology.groups.iter().enumerate() {
            if !group.nodes.contains(&me) {
                rafts.push(None);
                continue;
            }
            let dir = data_dir.join("raft").join(format!("g{g}"));
            let log = LogStore::open(&dir, fsync)?;
            let machine = GroupMachine::open(g, dir, local.clone(), topology.clone())
                .map_err(ClusterStartError::Other)?;
            let config = Config {
                cluster_name: format!("featgrid-group-{g}"),
                heartbeat_interval: HEARTBEAT_MS,
                election_timeout_min: ELECTION_MIN_MS,
                election_timeout_max: ELECTION_MAX_MS,
                snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_every),
                max_in_snapshot_log_to_keep: keep_after_snapshot,
                ..Default::default()
            }
            .validate()
            .map_err(|e| ClusterStartError::Other(e.to_string()))?;
            let network = GroupNetwork {
                net: net.clone(),
                group: g,
            };
            let raft = Raft::new(me, Arc::new(config), network, log, machine)
                .await
                .map_err(|e| ClusterStartError::Other(format!("group {g}: {e}")))?;
            let initialized = raft
                .is_initialized()
                .await
                .map_err(|e| ClusterStartError::Other(e.to_string()))?;
            if !initialized && group.nodes[0] == me {
                let members: BTreeMap<u64, BasicNode> = group
                    .nodes
                    .iter()
                    .map(|&n| (n, BasicNode::new(topology.node(n).internal.to_string())))
                    .collect();
                if let Err(e) = raft.initialize(members).await {
                    tracing::warn!(group = g, error = %e, "group initialization refused");
                }
                tracing::info!(group = g, "group initialized");
            }
            rafts.push(Some(raft));
        }
        let hints = topology
            .groups
            .iter()
            .map(|g| AtomicU64::new(g.nodes[0]))
            .collect();
        let cluster = Cluster {
            topology,
            me,
            rafts,
            hints,
            rotor: AtomicUsize::new(0),
            net,
            local,
        };
        Ok((Arc::new(cluster), net_thread))
    }

    /// Stops every group's Raft node (at shutdown, after the HTTP servers).
    pub async fn shutdown(&self) {
        for raft in self.rafts.iter().flatten() {
            let _ = raft.shutdown().await;
        }
    }

    pub fn raft(&self, group: usize) -> Option<&Raft> {
        self.rafts.get(group).and_then(Option::as_ref)
    }

    pub fn net(&self) -> &Net {
        &self.net
    }

    fn leader(&self, group: usize) -> Leader<'_> {
        let known = match self.raft(group) {
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
            Some(n) if (n as usize) < self.topology.nodes.len() => Leader::There(n),
            _ => Leader::Unknown,
        }
    }

    /// The replicas of `group` in turn, for a node that holds none and knows no leader.
    fn any_replica(&self, group: usize) -> NodeIndex {
        let nodes = &self.topology.groups[group].nodes;
        nodes[self.rotor.fetch_add(1, Ordering::Relaxed) % nodes.len()]
    }

    fn note_leader(&self, group: usize, leader: Option<NodeIndex>) {
        self.hints[group].store(leader.unwrap_or(NO_LEADER), Ordering::Relaxed);
    }

    fn internal_addr(&self, node: NodeIndex) -> SocketAddr {
        self.topology.node(node).internal
    }

    /// Writes per-shard batches: split by group, each group's part committed by its leader.
    pub async fn write(
        &self,
        per_shard: Vec<Vec<RowBatch>>,
        layouts: &[RowLayout],
        dest: Destination,
    ) -> Result<ApplyStats, ClusterError> {
        let views = wal::portable_views(&per_shard, layouts);
        let topology = &self.topology;
        let per_group = split_by_group(&views, layouts, topology.groups.len(), |s| {
            topology.group_of_slot(s)
        })
        .map_err(ClusterError::Internal)?;
        let writes = per_group
            .into_iter()
            .enumerate()
            .filter_map(|(g, views)| views.map(|views| (g, GroupWrite { dest, views })))
            .map(|(g, write)| async move {
                (g, self.propose(g, write, Instant::now() + DEADLINE).await)
            });
        let answers = join_all(writes).await;
        let mut stats = ApplyStats::default();
        let (mut ok, mut failed, mut first) = (Vec::new(), Vec::new(), None);
        for (g, answer) in answers {
            match answer {
                Ok(a) => {
                    stats.written += a.written;
                    stats.skipped_older += a.skipped_older;
                    ok.push(g);
                }
                Err(e) => {
                    failed.push(g);
                    first.get_or_insert(e);
                }
            }
        }
        match first {
            None => Ok(stats),
            Some(e) if ok.is_empty() => Err(merge_no_quorum(e, failed)),
            Some(e) => Err(ClusterError::PartialFailure {
                ok,
                failed,
                first: Box::new(e),
            }),
        }
    }

    /// Commits `write` in `group`: here if this node leads it, else on its leader, following
    /// leader changes until `deadline`.
    pub async fn propose(
        &self,
        group: usize,
        write: GroupWrite,
        deadline: Instant,
    ) -> Result<Applied, ClusterError> {
        let mut last = String::from("no leader is known");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(no_quorum(group, last));
            }
            match self.leader(group) {
                Leader::Here(raft) => {
                    return match self.commit_here(group, raft, write.clone(), left).await {
                        Err(Refusal::NotLeader { leader }) => {
                            self.note_leader(group, leader);
                            last = "the leader changed".into();
                            actix_rt::time::sleep(RETRY_PAUSE.min(left)).await;
                            continue;
                        }
                        other => {
                            other.map_err(|r| refusal_error(group, self.internal_addr(self.me), r))
                        }
                    };
                }
                Leader::There(node) => {
                    let addr = self.internal_addr(node);
                    let answer: Result<Result<Applied, Refusal>, NetError> = self
                        .net
                        .call(addr, format!("/internal/v1/write/{group}"), &write, left)
                        .await;
                    match answer {
                        Ok(Ok(applied)) => return Ok(applied),
                        Ok(Err(Refusal::NotLeader { leader })) => {
                            self.note_leader(group, leader.filter(|&l| l != node));
                            last = format!(
                                "node {} is no longer the leader",
                                self.topology.node(node).id
                            );
                        }
                        Ok(Err(r)) => return Err(refusal_error(group, addr, r)),
                        Err(NetError::Refused {
                            status,
                            code,
                            message,
                            ..
                        }) => {
                            return Err(ClusterError::Peer {
                                addr,
                                status,
                                code,
                                message,
                            })
                        }
                        Err(e) => {
                            self.note_leader(group, None);
                            last = e.to_string();
                        }
                    }
                }
                Leader::Unknown => {
                    if self.raft(group).is_none() {
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

    /// Commits `write` through this node's Raft node for `group` (its leader).
    pub async fn commit_here(
        &self,
        group: usize,
        raft: &Raft,
        write: GroupWrite,
        left: Duration,
    ) -> Result<Applied, Refusal> {
        if let Some(reason) = self.lost_quorum(raft) {
            return Err(Refusal::NoQuorum(reason));
        }
        match actix_rt::time::timeout(left, raft.client_write(write)).await {
            Ok(Ok(response)) => Ok(response.data),
            Ok(Err(e)) => match e.forward_to_leader::<BasicNode>() {
                Some(f) => Err(Refusal::NotLeader {
                    leader: f.leader_id,
                }),
                None => Err(Refusal::NoQuorum(format!("group {group}: {e}"))),
            },
            Err(_) => Err(Refusal::NoQuorum(format!(
                "group {group}: not committed within {} ms",
                left.as_millis()
            ))),
        }
    }

    /// Why this node, leading a group, cannot count on a quorum now: it has not heard from
    /// one for longer than an election timeout (the others may have elected a new leader).
    fn lost_quorum(&self, raft: &Raft) -> Option<String> {
        let metrics = raft.metrics();
        let m = metrics.borrow();
        match m.millis_since_quorum_ack {
            Some(ms) if ms > ELECTION_MAX_MS => Some(format!(
                "the leader has not heard from a quorum for {ms} ms"
            )),
            _ => None,
        }
    }

    /// Waits until this node's replica of `group` may serve a linearizable read: the leader
    /// confirms its leadership with a quorum (read index) and this replica has applied up to
    /// that index.
    pub async fn read_barrier(&self, group: usize, deadline: Instant) -> Result<(), ClusterError> {
        let Some(raft) = self.raft(group) else {
            return Err(ClusterError::Internal(format!(
                "no replica of group {group} here"
            )));
        };
        let mut last = String::from("no leader is known");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(no_quorum(group, last));
            }
            let index = match self.leader(group) {
                Leader::Here(raft) => match self.read_index_here(group, raft, left).await {
                    Ok(index) => Some(index),
                    Err(Refusal::NotLeader { .. }) => {
                        last = "the leader changed".into();
                        None
                    }
                    Err(r) => return Err(refusal_error(group, self.internal_addr(self.me), r)),
                },
                Leader::There(node) => {
                    let addr = self.internal_addr(node);
                    let answer: Result<Result<u64, Refusal>, NetError> = self
                        .net
                        .call(addr, format!("/internal/v1/read-index/{group}"), &(), left)
                        .await;
                    match answer {
                        Ok(Ok(index)) => Some(index),
                        Ok(Err(Refusal::NotLeader { .. })) => {
                            last = format!(
                                "node {} is no longer the leader",
                                self.topology.node(node).id
                            );
                            None
                        }
                        Ok(Err(r)) => return Err(refusal_error(group, addr, r)),
                        Err(e) => {
                            last = e.to_string();
                            None
                        }
                    }
                }
                Leader::Unknown => None,
            };
            if let Some(index) = index {
                let left = deadline.saturating_duration_since(Instant::now());
                return raft
                    .wait(Some(left))
                    .applied_index_at_least(Some(index), "read barrier")
                    .await
                    .map(|_| ())
                    .map_err(|e| no_quorum(group, format!("this replica did not catch up: {e}")));
            }
            actix_rt::time::sleep(RETRY_PAUSE.min(left)).await;
        }
    }

    /// The read index of `group`, this node leading it: confirmed with a quorum.
    pub async fn read_index_here(
        &self,
        group: usize,
        raft: &Raft,
        left: Duration,
    ) -> Result<u64, Refusal> {
        if let Some(reason) = self.lost_quorum(raft) {
            return Err(Refusal::NoQuorum(reason));
        }
        match actix_rt::time::timeout(left, raft.get_read_log_id()).await {
            Ok(Ok((read, _applied))) => Ok(read.map_or(0, |l| l.index)),
            Ok(Err(e)) => match e.forward_to_leader::<BasicNode>() {
                Some(f) => Err(Refusal::NotLeader {
                    leader: f.leader_id,
                }),
                None => Err(Refusal::NoQuorum(format!("group {group}: {e}"))),
            },
            Err(_) => Err(Refusal::NoQuorum(format!(
                "group {group}: leadership not confirmed within {} ms",
                left.as_millis()
            ))),
        }
    }

    /// Reads per-shard key batches (index = shard) as the grid does, from this node's
    /// replicas (after a read barrier per group unless `local`) and, for groups without a
    /// replica here, from their leaders.
    pub async fn read(
        &self,
        per_shard: Vec<ReadBatch>,
        consistency: Consistency,
    ) -> Result<Vec<Option<ReadOutput>>, ClusterError> {
        let groups = self.topology.groups.len();
        let mut touched = vec![false; groups];
        let mut remote: Vec<Vec<(u32, Blob)>> = vec![Vec::new(); groups];
        for batch in &per_shard {
            for (view, key) in batch.iter() {
                let g = self.topology.group_of_slot(slot(key));
                touched[g] = true;
                if self.raft(g).is_none() {
                    remote[g].push((view as u32, Blob(key.to_vec())));
                }
            }
        }
        let deadline = Instant::now() + DEADLINE;
        if consistency == Consistency::Linearizable {
            let barriers = (0..groups)
                .filter(|&g| touched[g] && self.raft(g).is_some())
                .map(|g| self.read_barrier(g, deadline));
            let failed: Vec<ClusterError> = join_all(barriers)
                .await
                .into_iter()
                .filter_map(Result::err)
                .collect();
            if let Some(first) = failed.into_iter().next() {
                return Err(first);
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
        let fetches = remote
            .into_iter()
            .enumerate()
            .filter(|(_, keys)| !keys.is_empty())
            .map(|(g, keys)| self.fetch_rows(g, keys, consistency, deadline));
        let layouts = self.local.grid.layouts();
        let mut found = Found::default();
        for rows in join_all(fetches).await {
            found
                .add_portable(&rows?, &layouts)
                .map_err(ClusterError::Internal)?;
        }
        let local = self
            .local
            .grid
            .read(per_shard.clone())
            .await
            .map_err(|e| ClusterError::Internal(e.to_string()))?;
        for (batch, output) in per_shard.iter().zip(&local) {
            let Some(output) = output else { continue };
            for (i, (view, key)) in batch.iter().enumerate() {
                if let Some(row) = output.row(&layouts, i) {
                    found.add(view, &layouts[view], key, row);
                }
            }
        }
        Ok(per_shard
            .iter()
            .map(|batch| (!batch.is_empty()).then(|| found.answer(layouts.clone(), batch)))
            .collect())
    }

    /// Reads keys of `group` (no replica here) from its leader.
    async fn fetch_rows(
        &self,
        group: usize,
        keys: Vec<(u32, Blob)>,
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
            let answer: Result<Result<Vec<RecordView>, Refusal>, NetError> = self
                .net
                .call(addr, format!("/internal/v1/rows/{group}"), &request, left)
                .await;
            match answer {
                Ok(Ok(rows)) => return Ok(rows),
                Ok(Err(Refusal::NotLeader { leader })) => {
                    self.note_leader(group, leader.filter(|&l| l != node));
                    last = format!("node {} is not the leader", self.topology.node(node).id);
                }
                Ok(Err(r)) => return Err(refusal_error(group, addr, r)),
                Err(NetError::Refused {
                    status,
                    code,
                    message,
                    ..
                }) => {
                    return Err(ClusterError::Peer {
                        addr,
                        status,
                        code,
                        message,
                    })
                }
                Err(e) => {
                    self.note_leader(group, None);
                    last = e.to_string();
                }
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
            let index = self.read_index_here(group, raft, DEADLINE).await?;
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

/// Entries between Raft snapshots, and entries kept in the log after one. Tests
/// (`FEATGRID_TEST_HOOKS=1`) may shorten them with `FEATGRID_TEST_RAFT_SNAPSHOT_EVERY`, so that
/// a restarted node has to catch up from a snapshot.
fn snapshot_cadence() -> (u64, u64) {
    let hooks = std::env::var("FEATGRID_TEST_HOOKS").is_ok_and(|v| v == "1");
    let every = std::env::var("FEATGRID_TEST_RAFT_SNAPSHOT_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|_| hooks);
    match every {
        Some(every) => (every, 0),
        None => (SNAPSHOT_EVERY, KEEP_AFTER_SNAPSHOT),
    }
}

fn no_quorum(group: usize, reason: String) -> ClusterError {
    ClusterError::NoQuorum {
        groups: vec![group],
        reason,
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

fn refusal_error(group: usize, addr: SocketAddr, refusal: Refusal) -> ClusterError {
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

/// A running cluster node's Raft side: the groups, the internal endpoint and the thread of
/// the node-to-node client.
pub struct Node {
    pub cluster: Arc<Cluster>,
    internal: actix_web::dev::ServerHandle,
    net_thread: actix::Arbiter,
}

impl Node {
    /// Starts the groups ([`Cluster::start`]), then serves the internal endpoint on this
    /// node's `internal` address.
    pub async fn start(
        topology: Topology,
        me: NodeIndex,
        data_dir: &Path,
        fsync: FsyncPolicy,
        local: LocalStore,
    ) -> Result<Node, ClusterStartError> {
        let addr = topology.node(me).internal;
        let (cluster, net_thread) = Cluster::start(topology, me, data_dir, fsync, local).await?;
        let server = internal::serve(cluster.clone(), addr)
            .map_err(|e| ClusterStartError::Other(format!("internal address {addr}: {e}")))?;
        let internal = server.handle();
        actix_rt::spawn(server);
        tracing::info!(node = %cluster.topology.node(me).id, %addr, groups = cluster.rafts.iter().flatten().count(), "cluster node started");
        Ok(Node {
            cluster,
            internal,
            net_thread,
        })
    }

    /// Stops the internal endpoint and the groups (after the client HTTP server drained).
    pub async fn stop(self) {
        self.internal.stop(true).await;
        self.cluster.shutdown().await;
        self.net_thread.stop();
    }
}
