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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::grid::routing::SLOTS;

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    cluster_secret: Option<String>,
    #[serde(default)]
    cluster_secret_file: Option<String>,
    #[serde(default)]
    node: Vec<NodeEntry>,
    #[serde(default)]
    group: Vec<GroupEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeEntry {
    id: String,
    client: String,
    internal: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupEntry {
    slots: String,
    nodes: Vec<String>,
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

    /// Reads and validates a topology file.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|e| TopologyError {
            path: path.display().to_string(),
            key: "(file)".into(),
            problem: format!("cannot read: {e}"),
        })?;
        Topology::parse(&text, path)
    }

    /// Validates topology text; `path` names it in errors and anchors `cluster_secret_file`.
    pub fn parse(text: &str, path: &Path) -> Result<Topology, TopologyError> {
        let err = |key: &str, problem: String| TopologyError {
            path: path.display().to_string(),
            key: key.to_string(),
            problem,
        };
        let file: File =
            toml::from_str(text).map_err(|e| err("(document)", e.message().trim().to_string()))?;
        let secret = match (file.cluster_secret, file.cluster_secret_file) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "cluster_secret",
                    "give cluster_secret or cluster_secret_file, not both".into(),
                ))
            }
            (None, None) => {
                return Err(err(
                    "cluster_secret",
                    "missing: give cluster_secret = \"...\" or cluster_secret_file = \"FILE\" (the nodes share it; node-to-node calls without it are refused)".into(),
                ))
            }
            (Some(secret), None) => (secret, "cluster_secret"),
            (None, Some(file)) => {
                let at = path.parent().unwrap_or(Path::new(".")).join(&file);
                let secret = std::fs::read_to_string(&at).map_err(|e| {
                    err(
                        "cluster_secret_file",
                        format!("cannot read {}: {e}", at.display()),
                    )
                })?;
                (secret.trim().to_string(), "cluster_secret_file")
            }
        };
        let (secret, secret_key) = secret;
        if secret.len() < 16 || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err(
                secret_key,
                "the secret must be at least 16 printable characters without spaces".into(),
            ));
        }
        if file.node.is_empty() {
            return Err(err(
                "node",
                "no [[node]]: the cluster needs at least one".into(),
            ));
        }
        let mut nodes = Vec::with_capacity(file.node.len());
        let mut index_of: HashMap<String, NodeIndex> = HashMap::new();
        let mut used: HashMap<Address, String> = HashMap::new();
        for (i, n) in file.node.iter().enumerate() {
            if n.id.is_empty()
                || !n
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(err(
                    &format!("node[{i}].id"),
                    format!(
                        "'{}' is not a node id: use letters, digits, '-', '_' or '.'",
                        n.id
                    ),
                ));
            }
            if index_of.insert(n.id.clone(), i as NodeIndex).is_some() {
                return Err(err(
                    &format!("node[{i}].id"),
                    format!("'{}' is used by two nodes", n.id),
                ));
            }
            let mut addr = |key: &str, text: &str| -> Result<Address, TopologyError> {
                let key = format!("node[{i}].{key}");
                let addr = Address::parse(text).map_err(|p| err(&key, p))?;
                if let Some(other) = used.insert(addr.clone(), key.clone()) {
                    return Err(err(&key, format!("{addr} is also {other}")));
                }
                Ok(addr)
            };
            let client = addr("client", &n.client)?;
            let internal = addr("internal", &n.internal)?;
            nodes.push(Node {
                id: n.id.clone(),
                client,
                internal,
            });
        }
        if file.group.is_empty() {
            return Err(err(
                "group",
                "no [[group]]: every slot 0-16383 must be in a group".into(),
            ));
        }
        let mut group_of_slot: Vec<Option<u16>> = vec![None; SLOTS];
        let mut groups = Vec::with_capacity(file.group.len());
        for (g, entry) in file.group.iter().enumerate() {
            let key = format!("group[{g}].slots");
            let ranges = parse_ranges(&entry.slots).map_err(|p| err(&key, p))?;
            for &(a, b) in &ranges {
                for slot in a..=b {
                    if let Some(other) = group_of_slot[slot as usize].replace(g as u16) {
                        return Err(err(
                            &key,
                            format!("slot {slot} is also in group[{other}]: every slot belongs to exactly one group"),
                        ));
                    }
                }
            }
            let key = format!("group[{g}].nodes");
            if entry.nodes.is_empty() {
                return Err(err(&key, "a group needs at least one node".into()));
            }
            let mut members = Vec::with_capacity(entry.nodes.len());
            for id in &entry.nodes {
                let Some(&n) = index_of.get(id) else {
                    return Err(err(
                        &key,
                        format!("'{id}' is not a [[node]] id; known: {}", known(&nodes)),
                    ));
                };
                if members.contains(&n) {
                    return Err(err(&key, format!("'{id}' is listed twice")));
                }
                members.push(n);
            }
            groups.push(Group {
                ranges,
                nodes: members,
            });
        }
        let group_of_slot = group_of_slot
            .iter()
            .enumerate()
            .map(|(slot, g)| {
                g.ok_or_else(|| {
                    err(
                        "group",
                        format!(
                            "slot {slot} is in no group: every slot 0-16383 must be in exactly one"
                        ),
                    )
                })
            })
            .collect::<Result<Vec<u16>, _>>()?;
        Ok(Topology {
            path: path.to_path_buf(),
            secret,
            nodes,
            groups,
            group_of_slot,
        })
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

/// `"0-5460,5461"` -> `[(0, 5460), (5461, 5461)]`.
fn parse_ranges(text: &str) -> Result<Vec<(u16, u16)>, String> {
    let slot = |s: &str| -> Result<u16, String> {
        let s = s.trim();
        match s.parse::<u32>() {
            Ok(n) if (n as usize) < SLOTS => Ok(n as u16),
            Ok(n) => Err(format!("slot {n} is out of range 0-16383")),
            Err(_) => Err(format!(
                "'{s}' is not a slot number (expected ranges like \"0-5460,10000-10010\")"
            )),
        }
    };
    let mut ranges = Vec::new();
    for part in text.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (slot(a)?, slot(b)?),
            None => {
                let a = slot(part)?;
                (a, a)
            }
        };
        if a > b {
            return Err(format!("range {a}-{b} runs backwards"));
        }
        ranges.push((a, b));
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "cluster_secret = \"0123456789abcdef\"\n";

    fn nodes(n: usize) -> String {
        (1..=n)
            .map(|i| {
                format!("[[node]]\nid = \"n{i}\"\nclient = \"127.0.0.1:70{i:02}\"\ninternal = \"127.0.0.1:71{i:02}\"\n")
            })
            .collect()
    }

    fn parse(text: &str) -> Result<Topology, TopologyError> {
        Topology::parse(text, Path::new("c.toml"))
    }

    fn problem(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn the_node_list_may_grow_but_not_be_reordered_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let groups = "[[group]]\nslots = \"0-16383\"\nnodes = [\"n1\"]\n";
        let two = parse(&format!("{SECRET}{}{groups}", nodes(2))).unwrap();
        two.check_node_ids(dir.path()).unwrap();
        two.check_node_ids(dir.path()).unwrap();
        let three = parse(&format!("{SECRET}{}{groups}", nodes(3))).unwrap();
        three.check_node_ids(dir.path()).unwrap();
        let swapped = nodes(3)
            .replace("\"n2\"", "\"tmp\"")
            .replace("\"n3\"", "\"n2\"");
        let swapped = parse(&format!("{SECRET}{swapped}{groups}")).unwrap();
        let e = swapped.check_node_ids(dir.path()).unwrap_err().to_string();
        assert!(e.contains("node[1]: is \"tmp\" but was \"n2\""), "{e}");
        let e = two.check_node_ids(dir.path()).unwrap_err().to_string();
        assert!(e.contains("node[2]: is missing but was \"n3\""), "{e}");
    }

    #[test]
    fn the_shipped_examples_are_valid() {
        for (file, nodes, groups) in [("cluster-3node.toml", 3, 3), ("cluster-5node.toml", 5, 5)] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config")
                .join(file);
            let t = Topology::load(&path).unwrap();
            assert_eq!((t.nodes.len(), t.groups.len()), (nodes, groups), "{file}");
            // Preferred leaders are spread: every node leads one group first.
            let mut firsts: Vec<_> = t.groups.iter().map(|g| g.nodes[0]).collect();
            firsts.sort();
            firsts.dedup();
            assert_eq!(firsts.len(), groups, "{file}");
        }
    }

    #[test]
    fn every_slot_maps_to_its_group() {
        let text = format!("{SECRET}{}[[group]]\nslots = \"0-99,200-16383\"\nnodes = [\"n1\"]\n[[group]]\nslots = \"100-199\"\nnodes = [\"n2\", \"n1\"]\n", nodes(2));
        let t = parse(&text).unwrap();
        assert_eq!(t.group_of_slot(0), 0);
        assert_eq!(t.group_of_slot(150), 1);
        assert_eq!(t.group_of_slot(16383), 0);
        assert_eq!(t.groups[0].slots_text(), "0-99,200-16383");
        assert_eq!(t.groups_of(1).collect::<Vec<_>>(), vec![1]);
        assert_eq!(t.groups_of(0).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(t.node_index("n2").unwrap(), 1);
        assert!(t
            .node_index("n9")
            .unwrap_err()
            .to_string()
            .contains("--node-id: 'n9' is not a [[node]] id; known: n1, n2"));
    }

    #[test]
    fn mistakes_name_the_key() {
        let all = "[[group]]\nslots = \"0-16383\"\nnodes = [\"n1\"]\n";
        let cases = [
            (format!("{}{all}", nodes(1)), "c.toml: cluster_secret: missing"),
            (format!("cluster_secret = \"short\"\n{}{all}", nodes(1)), "cluster_secret: the secret must be at least 16"),
            (format!("{SECRET}{all}"), "node: no [[node]]"),
            (format!("{SECRET}{}", nodes(1)), "group: no [[group]]"),
            (format!("{SECRET}{}[[group]]\nslots = \"0-100\"\nnodes = [\"n1\"]\n", nodes(1)), "group: slot 101 is in no group"),
            (format!("{SECRET}{}{all}[[group]]\nslots = \"5\"\nnodes = [\"n1\"]\n", nodes(1)), "group[1].slots: slot 5 is also in group[0]"),
            (format!("{SECRET}{}[[group]]\nslots = \"0-16384\"\nnodes = [\"n1\"]\n", nodes(1)), "group[0].slots: slot 16384 is out of range"),
            (format!("{SECRET}{}[[group]]\nslots = \"9-3\"\nnodes = [\"n1\"]\n", nodes(1)), "group[0].slots: range 9-3 runs backwards"),
            (format!("{SECRET}{}[[group]]\nslots = \"all\"\nnodes = [\"n1\"]\n", nodes(1)), "group[0].slots: 'all' is not a slot number"),
            (format!("{SECRET}{}[[group]]\nslots = \"0-16383\"\nnodes = [\"n7\"]\n", nodes(1)), "group[0].nodes: 'n7' is not a [[node]] id; known: n1"),
            (format!("{SECRET}{}[[group]]\nslots = \"0-16383\"\nnodes = [\"n1\", \"n1\"]\n", nodes(1)), "group[0].nodes: 'n1' is listed twice"),
            (format!("{SECRET}{}[[group]]\nslots = \"0-16383\"\nnodes = []\n", nodes(1)), "group[0].nodes: a group needs at least one node"),
            (format!("{SECRET}{}{}{all}", nodes(1), nodes(1)), "node[1].id: 'n1' is used by two nodes"),
            (format!("{SECRET}[[node]]\nid = \"a\"\nclient = \"127.0.0.1:1\"\ninternal = \"127.0.0.1:1\"\n{all}"), "node[0].internal: 127.0.0.1:1 is also node[0].client"),
            (format!("{SECRET}[[node]]\nid = \"a\"\nclient = \"localhost\"\ninternal = \"127.0.0.1:1\"\n{all}"), "node[0].client: 'localhost' is not an address"),
            (format!("{SECRET}[[node]]\nid = \"a\"\nclient = \"a..b:1\"\ninternal = \"127.0.0.1:1\"\n{all}"), "node[0].client: 'a..b:1' is not an address"),
            (format!("{SECRET}[[node]]\nid = \"a\"\nclient = \"h.svc:0\"\ninternal = \"127.0.0.1:1\"\n{all}"), "node[0].client: port 0"),
            (format!("{SECRET}[[node]]\nid = \"a\"\nclient = \"H.svc:1\"\ninternal = \"h.svc:1\"\n{all}"), "node[0].internal: h.svc:1 is also node[0].client"),
            (format!("{SECRET}[[node]]\nid = \"a b\"\nclient = \"127.0.0.1:2\"\ninternal = \"127.0.0.1:1\"\n{all}"), "node[0].id: 'a b' is not a node id"),
            (format!("{SECRET}{}{all}colour = 1\n", nodes(1)), "(document): unknown field `colour`"),
        ];
        for (text, expected) in cases {
            let got = problem(&text);
            assert!(got.contains(expected), "expected {expected:?} in {got:?}");
        }
    }

    #[test]
    fn the_secret_may_come_from_a_file_beside_the_topology() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s"), "abcdefghijklmnopq\n").unwrap();
        let text = format!(
            "cluster_secret_file = \"s\"\n{}[[group]]\nslots = \"0-16383\"\nnodes = [\"n1\"]\n",
            nodes(1)
        );
        let t = Topology::parse(&text, &dir.path().join("c.toml")).unwrap();
        assert_eq!(t.secret, "abcdefghijklmnopq");
        let text = text.replace("\"s\"", "\"missing\"");
        let e = Topology::parse(&text, &dir.path().join("c.toml")).unwrap_err();
        assert_eq!(e.key, "cluster_secret_file");
    }
}
