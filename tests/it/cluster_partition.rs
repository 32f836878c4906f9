//! A network partition, made with Linux network namespaces: three nodes, each in a namespace of
//! its own with two links, one to a "cluster" bridge (internal addresses 10.79.1.x) and one to
//! a "client" bridge (client addresses 10.79.2.x, where the test talks to them). Cutting a
//! node's cluster link isolates it from the other nodes while the test still reaches it: the
//! majority serves, the minority refuses writes and linearizable reads with 503 `no_quorum`,
//! and after healing every replica holds the same rows (equal digests).
//!
//! Needs root and `ip netns` (skipped with a message otherwise). Everything it creates is
//! removed on every exit path (a `Drop` guard), and leftovers of a crashed run at its start.

use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use super::cluster::{eventually, push, read_trips};
use crate::support::{Server, BIN};

const SECRET: &str = "test-cluster-secret-0123456789";
const NODES: usize = 3;

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ns(i: usize) -> String {
    format!("fgp-n{i}")
}

/// The namespaces, links and bridges of the test; removed when dropped.
struct Net;

impl Net {
    fn remove() {
        for i in 1..=NODES {
            ip(&["netns", "del", &ns(i)]);
            for k in 1..=2 {
                ip(&["link", "del", &format!("fgpv{i}{k}")]);
            }
        }
        ip(&["link", "del", "fgpbr1"]);
        ip(&["link", "del", "fgpbr2"]);
    }

    /// Builds the network, or says why it cannot.
    fn build() -> Result<Net, String> {
        Net::remove();
        let net = Net;
        let run = |args: &[&str]| {
            if ip(args) {
                Ok(())
            } else {
                Err(format!("`ip {}` failed", args.join(" ")))
            }
        };
        for k in 1..=2 {
            let br = format!("fgpbr{k}");
            run(&["link", "add", &br, "type", "bridge"])?;
            run(&["link", "set", &br, "up"])?;
        }
        run(&["addr", "add", "10.79.2.254/24", "dev", "fgpbr2"])?;
        for i in 1..=NODES {
            run(&["netns", "add", &ns(i)])?;
            run(&["-n", &ns(i), "link", "set", "lo", "up"])?;
            for k in 1..=2 {
                let (host, inner) = (format!("fgpv{i}{k}"), format!("fgpe{i}{k}"));
                run(&["link", "add", &host, "type", "veth", "peer", "name", &inner])?;
                run(&["link", "set", &inner, "netns", &ns(i)])?;
                run(&["link", "set", &host, "master", &format!("fgpbr{k}")])?;
                run(&["link", "set", &host, "up"])?;
                let addr = format!("10.79.{k}.{i}/24");
                run(&["-n", &ns(i), "addr", "add", &addr, "dev", &inner])?;
                run(&["-n", &ns(i), "link", "set", &inner, "up"])?;
            }
        }
        Ok(net)
    }

    /// Cuts (or heals) node `i`'s link to the other nodes.
    fn cluster_link(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        assert!(ip(&["link", "set", &format!("fgpv{i}1"), state]));
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        Net::remove();
    }
}

fn digest(node: &Server) -> Value {
    node.get("/admin/digest").json
}

#[test]
fn a_partitioned_minority_refuses_and_every_replica_agrees_after_healing() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let net = match Net::build() {
        Ok(net) => net,
        Err(e) => {
            eprintln!("skipped: cannot build test namespaces: {e}");
            Net::remove();
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let mut topology = format!("cluster_secret = \"{SECRET}\"\n");
    for i in 1..=NODES {
        topology += &format!("[[node]]\nid = \"n{i}\"\nclient = \"10.79.2.{i}:7001\"\ninternal = \"10.79.1.{i}:7101\"\n");
    }
    topology += "[[group]]\nslots = \"0-8191\"\nnodes = [\"n1\", \"n2\", \"n3\"]\n";
    topology += "[[group]]\nslots = \"8192-16383\"\nnodes = [\"n2\", \"n3\", \"n1\"]\n";
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, topology).unwrap();
    let nodes: Vec<Server> = (1..=NODES)
        .map(|i| {
            let mut command = Command::new("ip");
            command
                .args(["netns", "exec", &ns(i), BIN, "serve", "--cluster"])
                .arg(&path)
                .args([
                    "--node-id",
                    &format!("n{i}"),
                    "--workers",
                    "1",
                    // The test's own namespaces, reachable from nothing else: no tokens needed.
                    "--insecure",
                    "--data-dir",
                ])
                .arg(dir.path().join(format!("n{i}")))
                .env("FEATGRID_LOG", "warn,openraft=off");
            Server::launch(command, std::process::Stdio::inherit())
        })
        .collect();
    let ids: Vec<i64> = (1..=200).collect();
    eventually("the cluster did not take a first push", || {
        push(&nodes[0], &ids, 1).status == 200
    });

    // n1 (the preferred leader of group 0) is cut off from the others. Meanwhile the
    // majority elects new leaders and serves every slot again.
    net.cluster_link(1, false);
    let cut = Instant::now();
    std::thread::scope(|scope| {
        let majority = scope.spawn(|| {
            eventually("the majority never took writes", || {
                push(&nodes[1], &ids, 3).status == 200
            });
            cut.elapsed()
        });
        let asked = Instant::now();
        let minority = push(&nodes[0], &ids, 2);
        let refused_after = asked.elapsed();
        assert_eq!(minority.status, 503, "{}", minority.text);
        assert_eq!(minority.json["code"], "no_quorum", "{}", minority.text);
        let read = read_trips(&nodes[0].url(), &ids, None).unwrap_err();
        assert_eq!(read.status, 503, "{}", read.text);
        assert_eq!(read.json["code"], "no_quorum", "{}", read.text);
        // The minority still answers local reads, from what it holds.
        let local = read_trips(&nodes[0].url(), &ids, Some("local")).expect("local read");
        assert!(local.iter().all(|v| v == 1), "{local:?}");
        let writable_after = majority.join().expect("majority writer");
        eprintln!(
            "partition: minority refused a push after {} ms; majority acknowledged pushes to every group {} ms after the cut",
            refused_after.as_millis(),
            writable_after.as_millis()
        );
    });
    let values = read_trips(&nodes[2].url(), &ids, None).expect("majority read");
    assert!(values.iter().all(|v| v == 3), "{values:?}");

    // Healed: n1 catches up, and every replica holds the same rows.
    net.cluster_link(1, true);
    eventually("n1 did not catch up after healing", || {
        read_trips(&nodes[0].url(), &ids, None).is_ok_and(|v| v.iter().all(|v| v == 3))
    });
    eventually("replicas differ after healing", || {
        let digests: Vec<Value> = nodes.iter().map(digest).collect();
        digests.iter().all(|d| d == &digests[0] && d["rows"] == 200)
    });
    drop(nodes);
    drop(net);
}
