//! Reading a topology file: the TOML as written (`[[node]]`, `[[group]]`, the secret or its
//! file), then every rule checked in turn, each problem a [`TopologyError`] naming the key.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{known, Address, Group, Node, NodeIndex, Topology, TopologyError};
use crate::grid::routing::SLOTS;

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

impl Topology {
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
}

/// `"0-5460,5461"` -> `[(0, 5460), (5461, 5461)]`.
pub(super) fn parse_ranges(text: &str) -> Result<Vec<(u16, u16)>, String> {
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
