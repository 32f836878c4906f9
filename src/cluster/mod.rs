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

pub mod balance;
mod batch;
mod election;
pub mod grow;
pub mod internal;
mod leader;
mod lease;
pub mod local;
pub mod log_store;
pub mod membership;
pub mod memory;
pub mod network;
mod outbox;
mod read;
mod rejoin;
pub mod state_machine;
pub mod status;
pub mod topology;
pub mod types;
mod write;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{BasicNode, Config, SnapshotPolicy};
use serde::{Deserialize, Serialize};

use crate::persist::atomic::write_atomic;
use crate::persist::codec::Blob;
use crate::store::LocalStore;
use crate::test_setting;
use batch::Batcher;
use leader::{attempt, no_quorum, refusal_error, Forwarded, Leader};
use local::Replica;
use log_store::{LogOptions, RaftLog};
use network::{GroupNetwork, Net};
use state_machine::GroupMachine;
use topology::{Address, NodeIndex, Topology};
use types::Raft;

/// How long a request waits for a group to commit a write or confirm a read, elections
/// included, before it answers 503 `no_quorum`.
pub const DEADLINE: Duration = Duration::from_secs(3);
/// Pause between attempts while a group has no reachable leader.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Raft timing (ms). Followers keep a leader's lease for ELECTION_MAX_MS after its last
/// heartbeat (openraft's leader lease) and then wait an election timeout: a lost leader is
/// replaced within about 1.3 to 1.6 s.
const HEARTBEAT_MS: u64 = 150;
const ELECTION_MIN_MS: u64 = 500;
const ELECTION_MAX_MS: u64 = 800;
/// A leader serves read indexes without asking a quorum while a majority accepted it in
/// appends sent within this long: half the followers' lease, the rest a margin for clocks
/// that run at different rates on different machines.
const LEASE_READ_MS: u64 = ELECTION_MAX_MS / 2;
/// A follower that has heard from no leader, or a leader that has heard from no quorum, for
/// this long refuses requests about the group at once (503 `no_quorum`): more than four
/// missed heartbeats, and short of the longest election timeout, so that a node cut off from
/// the others refuses within one election timeout of the cut.
const CUT_OFF_MS: u64 = 700;
/// Entries between Raft snapshots of a group (then the log before them is dropped).
const SNAPSHOT_EVERY: u64 = 20_000;
/// Entries kept in the log after a snapshot, so that a briefly absent node catches up from
/// the log rather than a whole snapshot.
const KEEP_AFTER_SNAPSHOT: u64 = 1_000;
/// How often a waiting request checks whether its node lost touch with the group's quorum.
const WATCH_EVERY: Duration = Duration::from_millis(50);
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

/// How the per-group parts of requests were served (`featgrid_cluster_group_parts_total`).
pub struct Served {
    read_local: prometheus::IntCounter,
    read_forwarded: prometheus::IntCounter,
    /// Served under a follower's read lease ([`lease`]), without asking the leader.
    read_leased: prometheus::IntCounter,
    write_local: prometheus::IntCounter,
    write_forwarded: prometheus::IntCounter,
    /// The calls that carried forwarded write parts ([`outbox`]).
    forward_calls: prometheus::IntCounter,
}

impl Served {
    /// The counters of `parts` (labels op, served), and `forward_calls`.
    pub fn new(parts: &prometheus::IntCounterVec, forward_calls: prometheus::IntCounter) -> Served {
        let counter = |op, served| parts.with_label_values(&[op, served]);
        Served {
            read_local: counter("read", "local"),
            read_forwarded: counter("read", "forwarded"),
            read_leased: counter("read", "leased"),
            write_local: counter("write", "local"),
            write_forwarded: counter("write", "forwarded"),
            forward_calls,
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
        addr: Address,
        status: u16,
        code: String,
        message: String,
    },
    /// This node's own shards refused or failed (overload, timeout, an answer too large).
    #[error(transparent)]
    Grid(#[from] crate::grid::coordinator::GridError),
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

/// Keys to read: (view id, canonical key).
pub type Keys = Vec<(u32, Blob)>;

/// The keys of several groups (group, its keys), read on their leader in one call.
pub type GroupKeys = Vec<(usize, Keys)>;

/// Keys to read on a group's leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowsRequest {
    pub consistency: Consistency,
    pub keys: Keys,
}

/// This node's part of the cluster.
pub struct Cluster {
    /// Replaced by [`Cluster::reload_topology`] when nodes are added.
    topology: arc_swap::ArcSwap<Topology>,
    pub me: NodeIndex,
    /// Index = group: this node's Raft node of each group, member or not.
    rafts: Vec<Raft>,
    /// Index = group: the write queue of each group, used while this node leads it.
    batchers: Vec<Batcher>,
    /// Per group: closed while this node hands its leadership over ([`balance`]).
    hand_over_gates: Vec<balance::Gate>,
    /// Index = group: the leader last heard of ([`NO_LEADER`]: none).
    hints: Vec<AtomicU64>,
    rotor: AtomicUsize,
    net: Net,
    local: Replica,
    /// Every group's Raft log.
    log: RaftLog,
    /// Index = group: when this node last heard from the group's leader (ms since `epoch`,
    /// plus one; 0: not since it started): a replica cut off from it refuses at once instead
    /// of waiting for the deadline.
    heard: Vec<AtomicU64>,
    epoch: Instant,
    served: Served,
    /// Index = group: the read-index rounds of the group on this node.
    rounds: Vec<std::sync::Mutex<read::Rounds>>,
    /// The writes this node forwards, queued per peer ([`outbox`]).
    outboxes: outbox::Outboxes,
    /// This cluster itself, for the tasks it spawns.
    this: std::sync::Weak<Cluster>,
    /// Index = group: when its followers last accepted this node as leader (lease reads).
    acks: Vec<Arc<network::Acks>>,
    /// Index = group: the read leases this node granted while leading it ([`lease`]).
    grants: Vec<Arc<lease::Grants>>,
    /// Index = group: the read lease this node holds as a follower ([`lease`]).
    held: Vec<lease::Held>,
    /// Index = group: this node lost its Raft state for the group and is rejoining it
    /// ([`rejoin`]): it grants no vote until the leader has added it back.
    rejoin: Vec<AtomicBool>,
    /// Index = group: a member told this node it was removed from the group
    /// ([`membership::Removed`]).
    removed: Vec<Arc<membership::Removed>>,
    /// Index = group: snapshots of the leader this node is installing ([`membership`]): it
    /// does not stand for election meanwhile.
    installing: Vec<AtomicU32>,
    /// Index = group: taken to set the group's election switch ([`election`]).
    switches: Vec<std::sync::Mutex<()>>,
    /// Index = group: appends from the leader being written here ([`Cluster::hearing`]).
    appending: Vec<AtomicU32>,
    /// Index = group: a majority granted this node's last pre-vote ([`election`]).
    pre_voted: Vec<AtomicBool>,
    /// The node's data directory (its `raft/node-ids.json` notes nodes added).
    data_dir: std::path::PathBuf,
    /// When this node last read its topology file because a caller's differed.
    followed_at: std::sync::Mutex<Option<Instant>>,
    /// The fingerprints of the topologies this node ran with before (see [`grow`]).
    earlier: std::sync::Mutex<Vec<String>>,
    /// The room under `max_memory` the other nodes last reported ([`memory`]).
    pub memory_reports: memory::Reports,
    /// Index = group: its log's last index when this node started. Every entry committed
    /// before the restart is at or below it, and the commit index a restarted node starts
    /// from may lag it (a hint), so a read index here is never below it ([`read`]).
    started_at_index: Vec<u64>,
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
    /// Opens this node's groups (the Raft log of them all under `data_dir/raft/log`, each
    /// group's vote and Raft snapshots under `data_dir/raft/g<N>`; a group's snapshot rows are
    /// applied to the shards here), starts their Raft nodes, and, with `--bootstrap`, has each
    /// group's preferred leader (its first node) initialize a group that has no Raft state.
    /// Must run inside the actix system, after the shards were started.
    pub async fn start(
        topology: Topology,
        me: NodeIndex,
        data_dir: &Path,
        log: LogOptions,
        local: LocalStore,
        served: Served,
        bootstrap: bool,
    ) -> Result<Arc<Cluster>, ClusterStartError> {
        topology
            .check_node_ids(data_dir)
            .map_err(|e| ClusterStartError::Other(e.to_string()))?;
        let topology = Arc::new(topology);
        let local = Replica::new(local);
        let net = Net::start(network::Credentials {
            secret: topology.secret.clone(),
            fingerprint: topology.fingerprint(),
        });
        let mut rafts = Vec::with_capacity(topology.groups.len());
        let mut acks = Vec::with_capacity(topology.groups.len());
        let mut grants = Vec::with_capacity(topology.groups.len());
        let mut removed = Vec::with_capacity(topology.groups.len());
        let mut to_rejoin = Vec::new();
        let (snapshot_every, keep_after_snapshot) = snapshot_cadence();
        let raft_dir = data_dir.join("raft");
        let log = RaftLog::open(&raft_dir, log, topology.groups.len())?;
        let mut started_at_index = Vec::with_capacity(topology.groups.len());
        // Every node runs every group's Raft node: one that is no member stays idle (never
        // initialized, no elections) until a membership change adds it.
        for (g, group) in topology.groups.iter().enumerate() {
            let dir_of_group = log_store::group_dir(&raft_dir, g);
            let machine = GroupMachine::open(
                g,
                dir_of_group.clone(),
                local.clone(),
                topology.clone(),
                log.store(g),
            )
            .await
            .map_err(|e| ClusterStartError::Other(format!("group {g}: {e}")))?;
            // Entries in neither the log nor a snapshot would leave a hole in the log replayed
            // (or fail inside openraft). Only damage or deleted files get here.
            log.settle(g, machine.applied()).map_err(|e| {
                ClusterStartError::Other(format!(
                    "group {g}: {e} in {}: this node's copy of the group is incomplete. Move {} aside and start the node again: it rejoins the group and the leader sends it a snapshot",
                    dir_of_group.display(),
                    data_dir.display()
                ))
            })?;
            started_at_index.push(log.last_index(g).unwrap_or(0));
            let config = Config {
                cluster_name: format!("featgrid-group-{g}"),
                heartbeat_interval: HEARTBEAT_MS,
                // Off until a pre-vote succeeds ([`election`]).
                enable_elect: false,
                election_timeout_min: ELECTION_MIN_MS,
                election_timeout_max: ELECTION_MAX_MS,
                snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_every),
                max_in_snapshot_log_to_keep: keep_after_snapshot,
                ..Default::default()
            }
            .validate()
            .map_err(|e| ClusterStartError::Other(e.to_string()))?;
            let group_acks = Arc::new(network::Acks::default());
            acks.push(group_acks.clone());
            let group_removed = Arc::new(membership::Removed::default());
            removed.push(group_removed.clone());
            let others = (0..topology.nodes.len() as NodeIndex).filter(|&n| n != me);
            let group_grants = Arc::new(lease::Grants::new(others));
            grants.push(group_grants.clone());
            let network = GroupNetwork {
                net: net.clone(),
                group: g,
                acks: group_acks,
                grants: group_grants,
                removed: group_removed,
            };
            let raft = Raft::new(me, Arc::new(config), network, log.store(g), machine)
                .await
                .map_err(|e| ClusterStartError::Other(format!("group {g}: {e}")))?;
            let listed = group.nodes.contains(&me);
            let marker = dir_of_group.join(rejoin::MARKER);
            let blank = !log.has_state(g);
            let rejoining = listed && (marker.exists() || (blank && !bootstrap));
            if rejoining {
                write_atomic(&marker, b"rejoining\n")
                    .map_err(|e| ClusterStartError::Other(e.to_string()))?;
                tracing::warn!(group = g, "no Raft state for this group here and no --bootstrap: rejoining (no vote until the leader adds this node back)");
                to_rejoin.push((g, marker));
            } else if blank && bootstrap && group.nodes[0] == me {
                let members: BTreeMap<u64, BasicNode> = group
                    .nodes
                    .iter()
                    .map(|&n| (n, BasicNode::new(topology.node(n).internal.to_string())))
                    .collect();
                if let Err(e) = raft.initialize(members).await {
                    tracing::warn!(group = g, error = %e, "group initialization refused");
                } else {
                    tracing::info!(group = g, "group initialized (--bootstrap)");
                }
            }
            rafts.push(raft);
        }
        let batchers = rafts.iter().cloned().map(Batcher::start).collect();
        let rafts_len = rafts.len();
        let hints = topology
            .groups
            .iter()
            .map(|g| AtomicU64::new(g.nodes[0]))
            .collect();
        let cluster = Arc::new_cyclic(|this| Cluster {
            topology: arc_swap::ArcSwap::new(topology),
            me,
            rafts,
            batchers,
            hand_over_gates: (0..rafts_len).map(|_| balance::Gate::default()).collect(),
            hints,
            rotor: AtomicUsize::new(0),
            net,
            local,
            log,
            heard: (0..rafts_len).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
            served,
            rounds: (0..rafts_len).map(|_| Default::default()).collect(),
            outboxes: Default::default(),
            switches: (0..rafts_len).map(|_| Default::default()).collect(),
            pre_voted: (0..rafts_len).map(|_| AtomicBool::new(false)).collect(),
            appending: (0..rafts_len).map(|_| AtomicU32::new(0)).collect(),
            this: this.clone(),
            acks,
            grants,
            held: (0..rafts_len).map(|_| Default::default()).collect(),
            rejoin: (0..rafts_len)
                .map(|g| AtomicBool::new(to_rejoin.iter().any(|(r, _)| *r == g)))
                .collect(),
            removed,
            installing: (0..rafts_len).map(|_| AtomicU32::new(0)).collect(),
            data_dir: data_dir.to_path_buf(),
            followed_at: std::sync::Mutex::new(None),
            earlier: std::sync::Mutex::new(Vec::new()),
            memory_reports: memory::Reports::default(),
            started_at_index,
        });
        if cluster.local.memory.headroom().is_some() {
            actix_rt::spawn(cluster.clone().report_memory());
        }
        actix_rt::spawn(cluster.clone().watch_removals());
        actix_rt::spawn(cluster.clone().watch_elections());
        for (group, marker) in to_rejoin {
            actix_rt::spawn(cluster.clone().rejoin_group(group, marker));
        }
        Ok(cluster)
    }

    /// Stops every group's Raft node (at shutdown, after the HTTP servers).
    pub async fn shutdown(&self) {
        for raft in &self.rafts {
            let _ = raft.shutdown().await;
        }
        self.log.close();
    }

    /// Starts a Raft snapshot of every group this node holds a working replica of; answers
    /// those groups.
    pub async fn snapshot_groups(&self) -> Vec<usize> {
        let mut started = Vec::new();
        for group in 0..self.rafts.len() {
            if let Some(raft) = self.replica(group) {
                if raft.trigger().snapshot().await.is_ok() {
                    started.push(group);
                }
            }
        }
        started
    }

    /// The topology in force (nodes may have been added since the start).
    pub fn topology(&self) -> Arc<Topology> {
        self.topology.load_full()
    }

    /// This node's Raft node of `group`, member or not.
    pub fn raft(&self, group: usize) -> Option<&Raft> {
        self.rafts.get(group)
    }

    /// This node's Raft node of `group` when the node is one of its members (voter or
    /// learner), whether or not the group stopped here.
    pub(super) fn member(&self, group: usize) -> Option<&Raft> {
        let raft = self.raft(group)?;
        let metrics = raft.metrics();
        let member = metrics
            .borrow()
            .membership_config
            .membership()
            .get_node(&self.me)
            .is_some();
        member.then_some(raft)
    }

    /// This node's Raft node of `group` when the node holds a working replica: it is one of
    /// the group's members (voter or learner) and the group has not stopped here
    /// ([`Cluster::stopped`]). A node without one routes the group's requests to its leader.
    pub fn replica(&self, group: usize) -> Option<&Raft> {
        self.member(group)
            .filter(|_| self.stopped(group).is_none() && self.removed(group).is_none())
    }

    /// Why `group` stopped on this node, if it did: its log or state machine failed for good
    /// (a committed entry that cannot be applied here, a log that cannot be written). The
    /// replica then neither votes nor serves; the others carry on, and a restart (once the
    /// cause is mended) re-applies from the last applied entry.
    pub fn stopped(&self, group: usize) -> Option<String> {
        let raft = self.raft(group)?;
        let metrics = raft.metrics();
        let m = metrics.borrow();
        m.running_state
            .as_ref()
            .err()
            .map(|fatal| fatal.to_string())
    }

    pub fn net(&self) -> &Net {
        &self.net
    }

    /// How long the oldest write or fsync of this node's Raft log in progress has waited on
    /// the disk (`GET /health`, `/metrics`).
    pub fn log_disk_wait(&self) -> Option<std::time::Duration> {
        self.log.disk_wait()
    }
}

/// Entries between Raft snapshots, and entries kept in the log after one. Tests
/// (`FEATGRID_TEST_HOOKS=1`) may shorten them with `FEATGRID_TEST_RAFT_SNAPSHOT_EVERY`, so that
/// a restarted node has to catch up from a snapshot.
fn snapshot_cadence() -> (u64, u64) {
    let every = test_setting("FEATGRID_TEST_RAFT_SNAPSHOT_EVERY");
    match every {
        Some(every) => (every, 0),
        None => (SNAPSHOT_EVERY, KEEP_AFTER_SNAPSHOT),
    }
}

/// A running cluster node's Raft side: the groups and the internal endpoint.
pub struct Node {
    pub cluster: Arc<Cluster>,
    internal: internal::Serving,
}

impl Node {
    /// Starts the groups ([`Cluster::start`]), then serves the internal endpoint on this
    /// node's `internal` address.
    pub async fn start(
        topology: Topology,
        me: NodeIndex,
        data_dir: &Path,
        log: LogOptions,
        local: LocalStore,
        served: Served,
        bootstrap: bool,
    ) -> Result<Node, ClusterStartError> {
        let addr = topology.node(me).internal.clone();
        // Bound before anything is written to the data directory: a node whose port is taken
        // fails without touching its groups.
        let listener = std::net::TcpListener::bind(addr.as_str())
            .map_err(|e| ClusterStartError::Other(format!("internal address {addr}: {e}")))?;
        let cluster = Cluster::start(topology, me, data_dir, log, local, served, bootstrap).await?;
        let internal = internal::serve(cluster.clone(), listener)
            .await
            .map_err(|e| ClusterStartError::Other(format!("internal address {addr}: {e}")))?;
        tracing::info!(node = %cluster.topology().node(me).id, %addr, groups = cluster.topology().groups_of(me).count(), "cluster node started");
        Ok(Node { cluster, internal })
    }

    /// Stops the internal endpoint and the groups (after the client HTTP server drained).
    pub async fn stop(self) {
        self.internal.stop();
        self.cluster.shutdown().await;
    }
}
