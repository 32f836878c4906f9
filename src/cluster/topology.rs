//! The cluster topology: which nodes exist, where they listen, and which nodes replicate
//! which slots. One TOML file, the same for every node, validated whole at start:
//!
//! ```toml
//! cluster_secret_file = "cluster.secret"   # or cluster_secret = "..."; shared by the nodes
//! [[node]]
//! id = "n1"
//! client = "127.0.0.1:7001"     # the Feast HTTP API (what --bind would be); HOST:PORT works too
//! internal = "127.0.0.1:7101"   # node to node: Raft and forwarding
//! [[group]]
//! slots = "0-5460"              # inclusive ranges, "a-b,c-d" allowed
//! nodes = ["n1", "n2", "n3"]    # its replicas; the first is the preferred leader
//! ```
//!
//! Every slot must be in exactly one group, every group's nodes known, no address used twice.
//! A node's place in the `[[node]]` list is its Raft id: entries are only ever added at the
//! end, never reordered or removed (a node that is gone stays listed, in no group).
//! A problem is a [`TopologyError`] naming the file and the key (`group[1].slots`).
//!
//! This file is the validated model and its lookups; reading and checking the file is in
//! [`parse`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod parse;

/// A node's index in the topology's `[[node]]` list: its Raft node id.
pub type NodeIndex = u64;

/// Why a topology file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {key}: {problem}")]
pub struct TopologyError {
    pub path: String,
    pub key: String,
    pub problem: String,
}

/// A node's address: `IP:PORT`, or `HOST:PORT` with a DNS name resolved when it is used
/// (binding at start, each new connection to it), as Kubernetes' stable pod names need.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address(Arc<str>);

impl Address {
    /// Checks the form; the name is not resolved here.
    pub fn parse(text: &str) -> Result<Address, String> {
        let bad = || {
            format!("'{text}' is not an address (expected HOST:PORT, e.g. 127.0.0.1:7001 or featgrid-0.featgrid:7001)")
        };
        if let Ok(addr) = text.parse::<SocketAddr>() {
            if addr.port() == 0 {
                return Err("port 0: give every node a fixed port".into());
            }
            return Ok(Address(text.into()));
        }
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let name = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        match port.parse::<u16>() {
            Ok(0) => Err("port 0: give every node a fixed port".into()),
            Ok(_) if name => Ok(Address(text.to_ascii_lowercase().into())),
            _ => Err(bad()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    /// The Feast HTTP API.
    pub client: Address,
    /// Node-to-node calls: Raft and forwarded requests.
    pub internal: Address,
}

/// One slot group: a Raft group replicating the rows of its slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Inclusive slot ranges, as written.
    pub ranges: Vec<(u16, u16)>,
    /// The replicas (indexes into [`Topology::nodes`]); the first is the preferred leader.
    pub nodes: Vec<NodeIndex>,
}

impl Group {
    /// The ranges as the file writes them: `0-5460,10000-10010`.
    pub fn slots_text(&self) -> String {
        self.ranges
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A validated topology.
#[derive(Debug, Clone)]
pub struct Topology {
    pub path: PathBuf,
    pub secret: String,
    pub nodes: Vec<Node>,
    pub groups: Vec<Group>,
    /// The group of every slot.
    group_of_slot: Vec<u16>,
}

impl Topology {
    /// A fingerprint of what the nodes must agree on: every node's id and addresses, every
    /// group's slots and first members (the secret is left out). Every internal call carries
    /// it; a node whose own differs refuses the call (409 `topology_mismatch`), so two nodes
    /// with different files never route rows to each other by different maps.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut text = String::new();
        for n in &self.nodes {
            text += &format!("node {} {} {}\n", n.id, n.client, n.internal);
        }
        for g in &self.groups {
            text += &format!("group {} {:?}\n", g.slots_text(), g.nodes);
        }
        hex::encode(&sha2::Sha256::digest(text.as_bytes())[..8])
    }

    /// Checks that the `[[node]]` list only grew since this data directory's last start (a
    /// node's place in it is its Raft id: reordered or removed entries would give votes and log
    /// entries to the wrong node), then notes the list (`raft/node-ids.json`) for the next start.
    pub fn check_node_ids(&self, data_dir: &Path) -> Result<(), TopologyError> {
        let file = data_dir.join("raft").join("node-ids.json");
        let problem = |key: String, problem: String| TopologyError {
            path: self.path.display().to_string(),
            key,
            problem,
        };
        let ids: Vec<&str> = self.nodes.iter().map(|n| n.id.as_str()).collect();
        match std::fs::read(&file) {
            Ok(bytes) => {
                let before: Vec<String> = serde_json::from_slice(&bytes).map_err(|e| {
                    problem(
                        "(data dir)".into(),
                        format!("{}: does not parse: {e}", file.display()),
                    )
                })?;
                for (i, old) in before.iter().enumerate() {
                    match ids.get(i) {
                        Some(&now) if now == old => {}
                        now => {
                            return Err(problem(
                                format!("node[{i}]"),
                                format!(
                                    "is {} but was {old:?} when {} was last started: a node's place in the [[node]] list is its Raft id; add nodes at the end only, never reorder or remove them (a retired node stays listed, in no group)",
                                    now.map_or("missing".into(), |n| format!("{n:?}")),
                                    data_dir.display()
                                ),
                            ))
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(problem(
                    "(data dir)".into(),
                    format!("{}: cannot read: {e}", file.display()),
                ))
            }
        }
        let write = std::fs::create_dir_all(data_dir.join("raft"))
            .map_err(|e| e.to_string())
            .and_then(|_| serde_json::to_vec(&ids).map_err(|e| e.to_string()))
            .and_then(|bytes| {
                crate::persist::atomic::write_atomic(&file, &bytes).map_err(|e| e.to_string())
            });
        write.map_err(|e| problem("(data dir)".into(), format!("{}: {e}", file.display())))
    }

    /// The index of node `id`, or an error listing the known ids.
    pub fn node_index(&self, id: &str) -> Result<NodeIndex, TopologyError> {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .map(|i| i as NodeIndex)
            .ok_or_else(|| TopologyError {
                path: self.path.display().to_string(),
                key: "--node-id".into(),
                problem: format!("'{id}' is not a [[node]] id; known: {}", known(&self.nodes)),
            })
    }

    pub fn node(&self, index: NodeIndex) -> &Node {
        &self.nodes[index as usize]
    }

    /// The group owning `slot`.
    pub fn group_of_slot(&self, slot: u16) -> usize {
        self.group_of_slot[slot as usize] as usize
    }

    /// The groups `node` replicates.
    pub fn groups_of(&self, node: NodeIndex) -> impl Iterator<Item = usize> + '_ {
        (0..self.groups.len()).filter(move |&g| self.groups[g].nodes.contains(&node))
    }
}

fn known(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(|n| n.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
