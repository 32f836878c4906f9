//! Growing a running cluster: `[[node]]`s added at the end of the topology file are taken by
//! running nodes without a restart, on SIGHUP or `POST /cluster/reload`
//! ([`Cluster::reload_topology`]). Only nodes may be added: the secret, the groups (slots and
//! first members) and every existing node (its place, id and addresses) must stay as they are;
//! anything else is refused, naming the entry, and the topology in force stays.
//!
//! Nodes check each other's topology on every internal call (its fingerprint). While a new
//! file is being rolled out, nodes that reloaded and nodes that did not yet must still accept
//! each other's calls (or a leader's heartbeats would be refused and elections follow):
//! a node accepts the fingerprints of topologies it ran with before (the groups are the same,
//! so both route every row alike), and a node receiving a fingerprint it does not know reads
//! its own file again (at most every [`FOLLOW_EVERY`]) and takes it if it is that topology and
//! only adds nodes ([`Cluster::follow_topology`]). Reloading one node is therefore enough once
//! every node's file is updated; a node whose file differs keeps refusing, named (409
//! `topology_mismatch`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::network::Credentials;
use super::topology::Topology;
use super::Cluster;

/// How often at most a node reads its topology file because a caller's fingerprint differs.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// The topology after a reload.
#[derive(Debug, Clone, Serialize)]
pub struct Reloaded {
    pub fingerprint: String,
    pub nodes: Vec<String>,
    /// Nodes this reload added (empty: the file had not changed).
    pub added: Vec<String>,
}

/// Checks that `new` only adds nodes to `old`: answers the ids added.
pub fn added_nodes(old: &Topology, new: &Topology) -> Result<Vec<String>, String> {
    if new.secret != old.secret {
        return Err("cluster_secret: differs from the one in force; a running cluster's secret cannot change (restart every node with the new one)".into());
    }
    for (i, before) in old.nodes.iter().enumerate() {
        match new.nodes.get(i) {
            Some(now) if now == before => {}
            Some(now) => {
                return Err(format!(
                    "node[{i}]: is {:?} ({} / {}) but {:?} ({} / {}) is in force: existing nodes keep their place, id and addresses; add nodes at the end",
                    now.id, now.client, now.internal, before.id, before.client, before.internal
                ))
            }
            None => {
                return Err(format!(
                    "node[{i}]: {:?} is missing: nodes are never removed from the list (a retired node stays listed, in no group)",
                    before.id
                ))
            }
        }
    }
    if new.groups.len() != old.groups.len() {
        return Err(format!(
            "group: {} groups, but {} are in force: a running cluster's groups cannot change",
            new.groups.len(),
            old.groups.len()
        ));
    }
    for (g, (now, before)) in new.groups.iter().zip(&old.groups).enumerate() {
        if now != before {
            return Err(format!(
                "group[{g}]: slots {} and nodes differ from the group in force (slots {}): a running cluster's groups cannot change; change members with `featgrid cluster members`",
                now.slots_text(),
                before.slots_text()
            ));
        }
    }
    Ok(new.nodes[old.nodes.len()..]
        .iter()
        .map(|n| n.id.clone())
        .collect())
}

impl Cluster {
    /// Reads the topology file again and takes it if it only adds nodes.
    pub fn reload_topology(&self) -> Result<Reloaded, String> {
        let current = self.topology();
        let new = Topology::load(&current.path).map_err(|e| e.to_string())?;
        self.take(&current, new)
    }

    /// Calls every other node once with the topology in force, so that those whose file holds
    /// it too take it now ([`Cluster::follow_topology`]) rather than when they are next called.
    pub async fn announce_topology(&self) {
        let topology = self.topology();
        let calls = topology
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as u64 != self.me)
            .map(|(_, node)| async move {
                let answer: Result<Vec<super::status::GroupReport>, _> = self
                    .net()
                    .call(
                        node.internal.clone(),
                        "/internal/v1/status".into(),
                        &(),
                        super::status::STATUS_TIMEOUT,
                    )
                    .await;
                if let Err(e) = answer {
                    tracing::info!(node = %node.id, error = %e, "a node did not take the new topology yet");
                }
            });
        futures_util::future::join_all(calls).await;
    }

    /// Whether this node ran with the topology of fingerprint `theirs` before this one.
    pub fn ran_with_topology(&self, theirs: &str) -> bool {
        let earlier = self.earlier.lock().unwrap_or_else(|p| p.into_inner());
        earlier.iter().any(|f| f == theirs)
    }

    /// A caller's topology fingerprint differs from this node's: if this node's file (read
    /// at most every [`FOLLOW_EVERY`]) is that topology and only adds nodes, it is taken.
    /// Answers whether the caller's fingerprint is this node's now.
    pub fn follow_topology(&self, theirs: &str) -> bool {
        {
            let mut last = self.followed_at.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| at.elapsed() < FOLLOW_EVERY) {
                return false;
            }
            *last = Some(Instant::now());
        }
        let current = self.topology();
        match Topology::load(&current.path) {
            Ok(new) if new.fingerprint() == theirs => match self.take(&current, new) {
                Ok(reloaded) => {
                    tracing::info!(added = ?reloaded.added, "a peer's topology is this node's file: taken");
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a peer's topology is this node's file, but not one this node can take");
                    false
                }
            },
            _ => false,
        }
    }

    fn take(&self, current: &Arc<Topology>, new: Topology) -> Result<Reloaded, String> {
        let added = added_nodes(current, &new)?;
        let fingerprint = new.fingerprint();
        let nodes = new.nodes.iter().map(|n| n.id.clone()).collect();
        if !added.is_empty() {
            new.check_node_ids(&self.data_dir)
                .map_err(|e| e.to_string())?;
            self.net().set_credentials(Credentials {
                secret: new.secret.clone(),
                fingerprint: fingerprint.clone(),
            });
            self.earlier
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(current.fingerprint());
            self.topology.store(Arc::new(new));
            tracing::info!(added = ?added, %fingerprint, "topology reloaded: nodes added");
        }
        Ok(Reloaded {
            fingerprint,
            nodes,
            added,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(nodes: &[&str], groups: &[(&str, &[&str])]) -> Topology {
        let mut text = "cluster_secret = \"0123456789abcdef\"\n".to_string();
        for (i, n) in nodes.iter().enumerate() {
            text += &format!(
                "[[node]]\nid = \"{n}\"\nclient = \"127.0.0.1:{}\"\ninternal = \"127.0.0.1:{}\"\n",
                7000 + i,
                8000 + i
            );
        }
        for (slots, members) in groups {
            let names: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
            text += &format!(
                "[[group]]\nslots = \"{slots}\"\nnodes = [{}]\n",
                names.join(", ")
            );
        }
        Topology::parse(&text, std::path::Path::new("cluster.toml")).unwrap()
    }

    #[test]
    fn only_nodes_added_at_the_end_are_taken() {
        let old = topology(&["n1", "n2"], &[("0-16383", &["n1", "n2"])]);
        let grown = topology(&["n1", "n2", "n3"], &[("0-16383", &["n1", "n2"])]);
        assert_eq!(added_nodes(&old, &grown).unwrap(), vec!["n3".to_string()]);
        assert!(added_nodes(&old, &old).unwrap().is_empty());
        let reordered = topology(&["n2", "n1"], &[("0-16383", &["n1", "n2"])]);
        assert!(added_nodes(&old, &reordered)
            .unwrap_err()
            .starts_with("node[0]: is \"n2\""));
        let shrunk = topology(&["n1"], &[("0-16383", &["n1"])]);
        assert!(added_nodes(&old, &shrunk)
            .unwrap_err()
            .starts_with("node[1]: \"n2\" is missing"));
        let regrouped = topology(&["n1", "n2", "n3"], &[("0-16383", &["n1", "n3"])]);
        assert!(added_nodes(&old, &regrouped)
            .unwrap_err()
            .starts_with("group[0]"));
        let split = topology(
            &["n1", "n2"],
            &[("0-8191", &["n1", "n2"]), ("8192-16383", &["n1", "n2"])],
        );
        assert!(added_nodes(&old, &split)
            .unwrap_err()
            .starts_with("group: 2 groups"));
    }
}
