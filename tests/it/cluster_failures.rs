//! The cluster under failures, with real processes: `kill -9` of random nodes under push load
//! with a Jepsen-style check of every read and every acknowledged push, a minority refusing
//! writes, a node catching up from a Raft snapshot or from nothing, the whole cluster
//! restarting, a dead node replaced through a membership change.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::cluster::{
    assert_all_readable_eventually, counter, eventually, push, read_trips, Cluster,
};
use crate::support::{column, now_rfc3339, BIN};

/// Writers push unique ids through random live nodes and record what was acknowledged.
/// A reader checks, Jepsen style, that linearizable reads never miss a push acknowledged
/// before they started, nor one an earlier read returned: each read asks for the last ids
/// acknowledged so far and the last ones handed to writers, maybe still in flight (each id is
/// pushed once, with its own value), through a node in turn.
pub(super) struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<i64>>>,
    reads: Arc<AtomicI64>,
    stale: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What the load saw: acknowledged pushes, and reads checked (none of them stale).
pub(super) struct History {
    pub(super) acked: Vec<i64>,
    pub(super) reads: i64,
}

/// One reader: reads the last acknowledged ids through live nodes in turn until stopped.
fn check_reads(
    urls: Arc<Mutex<Vec<Option<String>>>>,
    stop: Arc<AtomicBool>,
    (acked, next): (Arc<Mutex<Vec<i64>>>, Arc<AtomicI64>),
    reads: Arc<AtomicI64>,
    stale: Arc<Mutex<Vec<String>>>,
) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut turn = 0;
    // Ids an earlier read returned: every later read must return them too.
    let mut seen = std::collections::HashSet::new();
    while !stop.load(Ordering::Relaxed) {
        // Acknowledged before the read starts, and pushes maybe in flight.
        let (must, ids): (usize, Vec<i64>) = {
            let acked = acked.lock().unwrap();
            let mut ids = acked[acked.len().saturating_sub(10)..].to_vec();
            let must = ids.len();
            let handed = next.load(Ordering::Relaxed);
            let flying: Vec<i64> = (handed.saturating_sub(6)..handed)
                .filter(|id| !ids.contains(id))
                .collect();
            ids.extend(flying);
            (must, ids)
        };
        turn += 1;
        let url = {
            let urls = urls.lock().unwrap();
            let live: Vec<&String> = urls.iter().flatten().collect();
            live[turn % live.len()].clone()
        };
        if ids.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let body = json!({"features": ["driver_hourly_stats:avg_daily_trips"], "entities": {"driver_id": ids}});
        let Ok(response) = agent
            .post(&format!("{url}/get-online-features"))
            .send_string(&body.to_string())
        else {
            continue; // refused (503) or the node is down: nothing was read
        };
        let Ok(answer) = response.into_json::<Value>() else {
            continue;
        };
        let values = column(&answer, "avg_daily_trips").0;
        reads.fetch_add(1, Ordering::Relaxed);
        for (i, (id, v)) in ids.iter().zip(values).enumerate() {
            if v == json!(id) {
                seen.insert(*id);
            } else if i < must || seen.contains(id) {
                stale
                    .lock()
                    .unwrap()
                    .push(format!("{url}: driver {id} read as {v}"));
            }
        }
    }
}

impl Load {
    pub(super) fn start(urls: Arc<Mutex<Vec<Option<String>>>>, writers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let reads = Arc::new(AtomicI64::new(0));
        let stale = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(AtomicI64::new(1_000_000));
        let reader = {
            let (urls, stop, pushed, reads, stale) = (
                urls.clone(),
                stop.clone(),
                (acked.clone(), next.clone()),
                reads.clone(),
                stale.clone(),
            );
            std::thread::spawn(move || check_reads(urls, stop, pushed, reads, stale))
        };
        let mut threads: Vec<_> = (0..writers)
            .map(|w| {
                let (stop, acked, next, urls) =
                    (stop.clone(), acked.clone(), next.clone(), urls.clone());
                std::thread::spawn(move || {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(10))
                        .build();
                    let mut turn = w;
                    while !stop.load(Ordering::Relaxed) {
                        let id = next.fetch_add(1, Ordering::Relaxed);
                        turn += 1;
                        let url = {
                            let urls = urls.lock().unwrap();
                            let live: Vec<&String> = urls.iter().flatten().collect();
                            live[turn % live.len()].clone()
                        };
                        let now = now_rfc3339();
                        let body = json!({"push_source_name": "driver_stats_push_source", "df": {
                            "driver_id": [id], "event_timestamp": [now], "conv_rate": [0.5],
                            "acc_rate": [0.5], "avg_daily_trips": [id]}});
                        let answer = agent
                            .post(&format!("{url}/push"))
                            .send_string(&body.to_string());
                        if matches!(answer, Ok(ref r) if r.status() == 200) {
                            acked.lock().unwrap().push(id);
                        }
                    }
                })
            })
            .collect();
        threads.push(reader);
        Load {
            stop,
            acked,
            reads,
            stale,
            threads,
        }
    }

    pub(super) fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Stops the load; asserts that no read was stale.
    pub(super) fn stop(self) -> History {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let stale = self.stale.lock().unwrap();
        assert!(stale.is_empty(), "stale linearizable reads: {stale:?}");
        History {
            acked: self.acked.lock().unwrap().clone(),
            reads: self.reads.load(Ordering::Relaxed),
        }
    }
}

/// The per-group parts of reads `node` served under a follower's read lease.
pub(super) fn leased_reads(node: &crate::support::Server) -> u64 {
    counter(
        node,
        r#"featgrid_cluster_group_parts_total{op="read",served="leased"}"#,
    )
}

/// Checks every id reads back through `url` with its own value as avg_daily_trips.
pub(super) fn assert_all_readable(url: &str, ids: &[i64], consistency: Option<&str>) {
    for chunk in ids.chunks(500) {
        let values = read_trips(url, chunk, consistency)
            .unwrap_or_else(|a| panic!("read through {url}: {}", a.text));
        for (id, v) in chunk.iter().zip(values) {
            assert_eq!(
                v,
                json!(id),
                "acknowledged push of driver {id} lost (read through {url})"
            );
        }
    }
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_push_and_restarted_nodes_catch_up() {
    // A Raft snapshot every 50 entries: restarts recover from a snapshot and the log after it,
    // and wiped nodes catch up from a snapshot.
    let env = [
        ("FEATGRID_TEST_HOOKS", "1"),
        ("FEATGRID_TEST_RAFT_SNAPSHOT_EVERY", "50"),
    ];
    let mut cluster =
        Cluster::start_with(3, &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]], &env, "127.0.0.1");
    let urls: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(
        (0..3).map(|i| Some(cluster.node(i).url())).collect(),
    ));
    let load = Load::start(urls.clone(), 3);
    let wait_for_acks = |load: &Load, more: usize| {
        let target = load.acked() + more;
        let deadline = Instant::now() + Duration::from_secs(60);
        while load.acked() < target {
            assert!(
                Instant::now() < deadline,
                "pushes stopped being acknowledged"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for_acks(&load, 30);
    // 5 kills of random nodes here; benches/cluster_history.sh asks for more.
    let count = std::env::var("FEATGRID_TEST_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let kills: Vec<usize> = (0..count)
        .map(|_| {
            // xorshift: a random victim each round, printed on failure with the kills list.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 3) as usize
        })
        .collect();
    let wipes = std::env::var("FEATGRID_TEST_WIPES").map_or(true, |v| v != "0");
    eprintln!("cluster kill test: killing nodes {kills:?} (0-based) in turn, wipes: {wipes}");
    for (round, &victim) in kills.iter().enumerate() {
        cluster.kill9(victim);
        urls.lock().unwrap()[victim] = None;
        // Every group keeps (or gets back) a leader: pushes to all slots are acknowledged.
        let survivor = (victim + 1) % 3;
        cluster.wait_for_leaders(survivor);
        wait_for_acks(&load, 60);
        // Every other round the victim also loses its disk (unless FEATGRID_TEST_WIPES=0): it
        // comes back with no Raft state and rejoins (no vote until the leaders have caught it
        // up and made it a voter).
        let wiped = wipes && round % 2 == 1;
        if wiped {
            std::fs::remove_dir_all(cluster.data_dir(victim)).expect("wipe the data directory");
        }
        cluster.restart(victim);
        urls.lock().unwrap()[victim] = Some(cluster.node(victim).url());
        cluster.wait_for_leaders(victim);
        if wiped {
            // Asked of the wiped node itself: its own report is always in its answer.
            let me = json!(format!("n{}", victim + 1));
            let rejoined = |status: &Value| {
                status["groups"].as_array().is_some_and(|gs| {
                    gs.iter().all(|g| {
                        g["problems"] == json!({})
                            && g["learners"] == json!([])
                            && g["replicas"].as_array().is_some_and(|r| r.contains(&me))
                    })
                })
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let status = cluster.status(victim);
                if rejoined(&status) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the wiped node {victim} did not rejoin every group (kills {kills:?}, round {round}); its status: {status}; a peer's: {}",
                    cluster.status(survivor)
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        wait_for_acks(&load, 30);
    }
    let History { acked, reads } = load.stop();
    assert!(
        acked.len() > 200,
        "only {} pushes acknowledged",
        acked.len()
    );
    assert!(reads > 50, "only {reads} reads answered");
    // No acknowledged push is lost, read linearizably through every node...
    for i in 0..3 {
        assert_all_readable(&cluster.node(i).url(), &acked, None);
    }
    // ...and each replica holds them all once it has caught up (local reads, no barrier).
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..3 {
        loop {
            let values = read_trips(
                &cluster.node(i).url(),
                &acked[acked.len() - 1..],
                Some("local"),
            );
            if values.is_ok_and(|v| v[0] != Value::Null) {
                break;
            }
            assert!(Instant::now() < deadline, "node {i} did not catch up");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_all_readable(&cluster.node(i).url(), &acked, Some("local"));
    }
    let leased: u64 = (0..3).map(|i| leased_reads(cluster.node(i))).sum();
    eprintln!(
        "cluster kill test: {} kills (every other one wiping the data directory unless FEATGRID_TEST_WIPES=0); {} acknowledged pushes all read back on 3 nodes; {reads} linearizable reads during the kills, none older than a push acknowledged before it or than an earlier read; {leased} group parts of reads served under a follower's lease since the nodes' last starts",
        kills.len(),
        acked.len()
    );
}

#[test]
fn a_minority_refuses_writes_and_linearizable_reads_with_no_quorum() {
    let mut cluster = Cluster::three();
    let a = push(cluster.node(0), &[1, 2, 3], 5);
    assert_eq!(a.status, 200, "{}", a.text);
    // Let node 3 apply the push before it is cut off.
    assert_all_readable_eventually(&cluster.node(2).url(), &[1, 2, 3], 5);
    cluster.kill9(0);
    cluster.kill9(1);
    let lonely = cluster.node(2);
    let refused = push(lonely, &[4, 5, 6], 6);
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.json["code"], "no_quorum", "{}", refused.text);
    let read = read_trips(&lonely.url(), &[1, 2, 3], None).unwrap_err();
    assert_eq!(
        (read.status, read.json["code"].as_str()),
        (503, Some("no_quorum")),
        "{}",
        read.text
    );
    // A local read still answers, from what this replica holds.
    let values = read_trips(&lonely.url(), &[1, 2, 3], Some("local")).expect("local read");
    assert!(values.iter().all(|v| v == 5), "{values:?}");
    // With a second node back, the majority serves again.
    cluster.restart(1);
    cluster.wait_for_leaders(2);
    eventually("writes did not come back", || {
        push(cluster.node(2), &[4, 5, 6], 6).status == 200
    });
    assert_all_readable_eventually(&cluster.node(1).url(), &[4, 5, 6], 6);
}

/// Also: a node killed in the middle of installing the leader's snapshot (openraft purges its
/// log before the snapshot is on disk) starts again and catches up.
#[test]
fn a_node_that_missed_more_than_the_log_keeps_catches_up_from_a_raft_snapshot() {
    let env = [
        ("FEATGRID_TEST_HOOKS", "1"),
        ("FEATGRID_TEST_RAFT_SNAPSHOT_EVERY", "20"),
        ("FEATGRID_TEST_SNAPSHOT_INSTALL_PAUSE_MS", "1500"),
    ];
    let (mut cluster, ids) = node_3_behind_a_snapshot(&env);
    cluster.restart(2);
    eventually("node 3 started to install a snapshot", || {
        cluster.node(2).log().contains("installing a raft snapshot")
    });
    // The install is held 1.5 s before the snapshot is kept; openraft purges the log now.
    std::thread::sleep(Duration::from_millis(500));
    cluster.kill9(2);
    cluster.restart(2);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = read_trips(&cluster.node(2).url(), &ids, Some("local")).expect("read");
        if got.iter().zip(&ids).all(|(v, id)| v == id) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 3 did not catch up: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The snapshot it installed is kept as a snapshot file of the group's rows, which a
    // restart finds again.
    let dir = cluster.data_dir(2).join("raft/g0");
    let kept = || {
        std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("snapshot-") && n.ends_with(".snap"))
            })
    };
    // The pair is whole once its metadata file is there too.
    let whole = || kept().is_some_and(|snap| snap.with_extension("meta").exists());
    // (A `local` read may be answered by the leader while node 3 is still starting its
    // groups: wait for the install itself.)
    super::cluster::eventually("node 3 installed a snapshot", whole);
    let file = kept().unwrap();
    let (header, body) = featgrid::persist::snapshot::read_shard(&file).expect("snapshot file");
    assert_eq!(header.shard, 0);
    assert!(header.rows >= 20 && header.seq >= 20, "{header:?}");
    assert_eq!(body.views[0].view.name, "driver_hourly_stats");
    cluster.kill9(2);
    cluster.restart(2);
    // Restored from the snapshot (the log before it is purged) and the log after it; entries
    // committed after the last commit index the log noted are applied once the leader says so
    // (a `local` read may miss them until then, as documented).
    // A `local` read is answered by the leader until node 3 serves the group, then by node
    // 3's replica, which may still be applying: wait until it has applied the whole log.
    cluster.wait_for_leaders(2);
    eventually("node 3 applied the whole log again", || {
        cluster.applied_all(2, 0)
    });
    assert_all_readable(&cluster.node(2).url(), &ids, Some("local"));
}

#[test]
fn the_whole_cluster_restarts_with_its_data_and_stops_cleanly() {
    let mut cluster = Cluster::three();
    let ids: Vec<i64> = (1..=100).collect();
    let a = push(cluster.node(1), &ids, 4);
    assert_eq!(a.status, 200, "{}", a.text);
    // Two nodes stop with SIGTERM (drain, final snapshot), one is killed.
    for i in [0, 1] {
        let status = cluster.nodes[i].take().unwrap().terminate();
        assert!(status.success(), "node {i} exited with {status}");
    }
    cluster.kill9(2);
    for i in 0..3 {
        cluster.restart(i);
    }
    cluster.wait_for_leaders(0);
    for i in 0..3 {
        let values = read_trips(&cluster.node(i).url(), &ids, None).expect("read");
        assert!(
            values.iter().all(|v| v == 4),
            "node {i}: {values:?} {}",
            cluster.status(i)
        );
    }
    let b = push(cluster.node(2), &ids, 8);
    assert_eq!(b.status, 200, "{}", b.text);
    let values = read_trips(&cluster.node(0).url(), &ids, None).expect("read");
    assert!(values.iter().all(|v| v == 8), "{values:?}");
}

#[test]
fn a_dead_node_is_replaced_by_a_learner_made_voter() {
    // n4 is in the topology but in no group: the spare.
    let mut cluster = Cluster::start(4, &[&[1, 2, 3]]);
    let ids: Vec<i64> = (1..=100).collect();
    let a = push(cluster.node(0), &ids, 5);
    assert_eq!(a.status, 200, "{}", a.text);
    cluster.kill9(2);
    let out = Command::new(BIN)
        .args(["cluster", "members", "--node", &cluster.node(3).url()])
        .args(["--group", "0", "--add", "n4", "--remove", "n3"])
        .output()
        .expect("run featgrid cluster members");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let members: Value = serde_json::from_str(&text).expect("members as JSON");
    assert_eq!(members["voters"], json!(["n1", "n2", "n4"]), "{members}");
    // n4 holds the group's rows, and votes: with n1 gone too, n2 and n4 are a majority.
    assert_all_readable_eventually(&cluster.node(3).url(), &ids, 5);
    cluster.kill9(0);
    eventually("no majority of n2 and n4", || {
        push(cluster.node(3), &ids, 6).status == 200
    });
    let values = read_trips(&cluster.node(1).url(), &ids, None).expect("read");
    assert!(values.iter().all(|v| v == 6), "{values:?}");
    let status = cluster.status(3);
    assert_eq!(
        status["groups"][0]["replicas"],
        json!(["n1", "n2", "n4"]),
        "{status}"
    );
    // Bad changes are refused with the key named.
    let bad = cluster
        .node(1)
        .post("/cluster/groups/0/members", &json!({"add": ["n9"]}));
    assert_eq!(
        (bad.status, bad.json["code"].as_str()),
        (400, Some("unknown_node")),
        "{}",
        bad.text
    );
    let bad = cluster
        .node(1)
        .post("/cluster/groups/7/members", &json!({"add": ["n1"]}));
    assert_eq!(
        (bad.status, bad.json["code"].as_str()),
        (404, Some("unknown_group")),
        "{}",
        bad.text
    );
}

/// A voter removed from its group while it runs (it may never receive the membership that
/// removed it) stops serving and electing in the group but not routing: once a member has
/// refused its vote, `GET /cluster` shows `not_a_member` for it, pushes and reads through it
/// reach the group's members (a `local` read too: it holds no replica any more), and no
/// election disturbs the group.
#[test]
fn a_removed_voter_left_running_routes_to_the_members() {
    let cluster = Cluster::start(4, &[&[1, 2, 3]]);
    let ids: Vec<i64> = (1..=50).collect();
    let a = push(cluster.node(0), &ids, 5);
    assert_eq!(a.status, 200, "{}", a.text);
    let changed = cluster.node(0).post(
        "/cluster/groups/0/members",
        &json!({"add": ["n4"], "remove": ["n3"]}),
    );
    assert_eq!(changed.status, 200, "{}", changed.text);
    let b = push(cluster.node(2), &ids, 7);
    assert_eq!(b.status, 200, "{}", b.text);
    eventually("n3 knows it was removed", || {
        let status = cluster.status(2);
        status["groups"][0]["problems"]["n3"]
            .as_str()
            .is_some_and(|p| p.starts_with("not_a_member: node n3 is not a member of group 0"))
    });
    for consistency in [None, Some("local")] {
        let got = read_trips(&cluster.node(2).url(), &ids, consistency).expect("read");
        assert!(got.iter().all(|v| *v == 7), "{consistency:?}: {got:?}");
    }
    let term = cluster.status(0)["groups"][0]["term"].clone();
    std::thread::sleep(Duration::from_secs(3));
    let c = push(cluster.node(2), &ids, 9);
    assert_eq!(c.status, 200, "{}", c.text);
    // No election was started by the removed node.
    assert_eq!(cluster.status(0)["groups"][0]["term"], term);
}

/// A node added at the end of the topology file is taken by the running nodes without a
/// restart: one reload (SIGHUP here) is enough, the others follow when its calls carry the new
/// topology; the new node then joins a group and serves its rows. A file that changes more
/// than the node list is refused, named, and the topology in force stays.
#[test]
fn nodes_added_to_the_topology_are_taken_without_a_restart() {
    let mut cluster = Cluster::start(3, &[&[1, 2, 3]]);
    let ids: Vec<i64> = (1..=40).collect();
    let a = push(cluster.node(0), &ids, 3);
    assert_eq!(a.status, 200, "{}", a.text);
    let n4 = cluster.grow("127.0.0.1");
    // The running nodes still have three nodes; n4 (four) is refused by them for now.
    assert_eq!(cluster.status(0)["nodes"].as_array().unwrap().len(), 3);
    cluster.signal(0, libc::SIGHUP);
    eventually("n1 took the new topology", || {
        cluster.status(0)["nodes"].as_array().unwrap().len() == 4
    });
    // The group keeps serving while n2 and n3 follow (n1's calls carry the new topology).
    let b = push(cluster.node(1), &ids, 4);
    assert_eq!(b.status, 200, "{}", b.text);
    eventually("n2 and n3 followed", || {
        (1..3).all(|i| cluster.status(i)["nodes"].as_array().unwrap().len() == 4)
    });
    let changed = cluster
        .node(2)
        .post("/cluster/groups/0/members", &json!({"add": ["n4"]}));
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.json["voters"], json!(["n1", "n2", "n3", "n4"]));
    assert_all_readable_eventually(&cluster.node(n4).url(), &ids, 4);
    let values = read_trips(&cluster.node(n4).url(), &ids, Some("local")).expect("read");
    assert!(values.iter().all(|v| *v == 4), "{values:?}");

    // A file that changes a node's address is refused by a reload, naming the entry; the
    // topology in force stays.
    let text = std::fs::read_to_string(cluster.topology_file()).unwrap();
    let moved = text.replacen("client = \"127.0.0.1:", "client = \"127.0.0.2:", 1);
    std::fs::write(cluster.topology_file(), moved).unwrap();
    let refused = cluster.node(0).post("/cluster/reload", &json!({}));
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(refused.json["code"], "topology_not_reloaded");
    let message = refused.json["message"].as_str().unwrap();
    assert!(
        message.starts_with("node[0]: is \"n1\" (127.0.0.2:"),
        "{message}"
    );
    // The same through the command line.
    let cli = Command::new(BIN)
        .args(["cluster", "reload", "--node", &cluster.node(1).url()])
        .output()
        .expect("run featgrid cluster reload");
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(
        !cli.status.success() && stderr.contains("409") && stderr.contains("topology_not_reloaded"),
        "{stderr}"
    );
    let c = push(cluster.node(n4), &ids, 5);
    assert_eq!(c.status, 200, "{}", c.text);
}

/// `max_memory` holds on every replica of a group, not only on the node a push reaches: a
/// replica with a small ceiling reports the room it has left, and the group's leader refuses a
/// write it would not fit (507 `memory_limit`, naming it) before proposing it; nothing of it is
/// written, smaller writes and reads go on.
#[test]
fn a_write_past_a_replicas_max_memory_is_refused_by_the_leader() {
    let mut cluster = Cluster::start(3, &[&[1, 2, 3]]);
    let small: Vec<i64> = (1..=100).collect();
    let a = push(cluster.node(0), &small, 1);
    assert_eq!(a.status, 200, "{}", a.text);
    cluster.kill9(2);
    cluster.restart_with(2, &["--max-memory", "2MiB"]);
    cluster.wait_for_leaders(2);
    eventually("n1 and n2 know n3's room", || {
        (0..2).all(|i| cluster.status(i)["nodes"][2]["memory_headroom"].is_u64())
    });
    // Through n1 and n2, which have no ceiling: about 3 MB of rows.
    let big: Vec<i64> = (10_000..70_000).collect();
    let b = push(cluster.node(1), &big, 2);
    assert_eq!(b.status, 507, "{}", b.text);
    assert_eq!(b.json["code"], "memory_limit");
    assert!(b.text.contains("node n3"), "{}", b.text);
    let values = read_trips(&cluster.node(0).url(), &big[..500], None).expect("read");
    assert!(values.iter().all(Value::is_null), "{values:?}");
    let c = push(cluster.node(0), &small, 3);
    assert_eq!(c.status, 200, "{}", c.text);
    let values = read_trips(&cluster.node(2).url(), &small, None).expect("read");
    assert!(values.iter().all(|v| *v == json!(3)), "{values:?}");
}

/// After a restart, leadership is with other nodes; `featgrid cluster balance` (through any
/// node) hands each group back to its preferred leader (its first node) while its data stays,
/// and writes and linearizable reads go on.
#[test]
fn balance_hands_each_group_back_to_its_preferred_leader() {
    let mut cluster = Cluster::three();
    let ids: Vec<i64> = (1..=50).collect();
    let a = push(cluster.node(0), &ids, 3);
    assert_eq!(a.status, 200, "{}", a.text);
    // n1 leads group 0 from the start; killed, the others take it over.
    restart_n1(&mut cluster);
    let leaders = |cluster: &Cluster| -> Vec<String> {
        let status = cluster.wait_for_leaders(1);
        status["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .map(|g| g["leader"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_ne!(
        leaders(&cluster)[0],
        "n1",
        "n1 leads group 0 again on its own"
    );
    // Pushes go on through n3 while leadership moves: the leader holds them, then they are
    // routed to the new one. Meanwhile the history check pushes and reads through every node
    // (the followers' reads under their read leases, which the old leader waits out before the
    // new one is elected).
    let pusher = Pusher::start(cluster.node(2).url());
    let urls = Arc::new(Mutex::new(
        (0..3).map(|i| Some(cluster.node(i).url())).collect(),
    ));
    let load = Load::start(urls, 2);
    std::thread::sleep(Duration::from_millis(500));
    let out = Command::new(BIN)
        .args(["cluster", "balance", "--node", &cluster.node(1).url()])
        .output()
        .expect("run featgrid cluster balance");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    let History { acked, reads } = load.stop();
    assert!(reads > 10, "only {reads} reads answered");
    assert_all_readable(&cluster.node(0).url(), &acked, None);
    let last = pusher.stop();
    assert_eq!(
        read_trips(&cluster.node(0).url(), &Pusher::IDS, None).unwrap(),
        vec![last; Pusher::IDS.len()]
    );
    let answer: Value = serde_json::from_str(&text).expect("balance prints JSON");
    assert_eq!(answer["balanced"], true, "{answer}");
    // Moved by the call, unless n1 had already won an election of its own since its restart.
    let group0 = &answer["groups"][0];
    assert!(
        group0["moved"] == true || group0["leader_before"] == "n1",
        "{answer}"
    );
    assert_eq!(group0["leader"], "n1", "{answer}");
    let want = vec!["n1".to_string(), "n2".to_string(), "n3".to_string()];
    eventually("every group led by its preferred leader", || {
        leaders(&cluster) == want
    });
    // Balanced already: nothing moves.
    let again = cluster.node(2).post("/cluster/balance", &json!({}));
    assert_eq!(again.status, 200, "{}", again.text);
    assert!(
        again.json["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["moved"] == false && g["problem"].is_null()),
        "{}",
        again.text
    );
    assert_eq!(
        read_trips(&cluster.node(2).url(), &ids, None).unwrap(),
        vec![3; 50]
    );
    let b = push(cluster.node(2), &ids, 4);
    assert_eq!(b.status, 200, "{}", b.text);
    assert_eq!(
        read_trips(&cluster.node(0).url(), &ids, None).unwrap(),
        vec![4; 50]
    );
}

/// A balance whose candidate is paused (SIGSTOP) once it holds the whole log: the leader holds
/// the group's new writes only briefly (every push through the cluster meanwhile is answered
/// 200 and read back), balance answers with the group's problem instead of hanging, and once
/// the candidate resumes a second balance moves the group.
#[test]
fn balance_with_a_paused_candidate_keeps_the_group_writable() {
    let mut cluster = Cluster::start(3, &[&[1, 2, 3]]);
    let ids: Vec<i64> = (1..=20).collect();
    let a = push(cluster.node(0), &ids, 1);
    assert_eq!(a.status, 200, "{}", a.text);
    restart_n1(&mut cluster);
    let status = cluster.wait_for_leaders(1);
    let leader = status["groups"][0]["leader"].as_str().unwrap().to_string();
    assert_ne!(leader, "n1", "n1 leads again on its own: {status}");
    // Balance is asked of the follower, so it reaches the leader through a forwarded call.
    let asked = if leader == "n2" { 2 } else { 1 };
    // n1 holds the whole log (nothing is written now) and stops answering.
    eventually("n1 applied the whole log", || {
        let g = &cluster.status(1)["groups"][0];
        g["applied"]["n1"] == g["last_log_index"]
    });
    cluster.signal(0, libc::SIGSTOP);
    let balance = {
        let url = cluster.node(asked).url();
        std::thread::spawn(move || {
            let answer = ureq::post(&format!("{url}/cluster/balance"))
                .timeout(Duration::from_secs(30))
                .send_string("{}");
            match answer {
                Ok(r) | Err(ureq::Error::Status(_, r)) => {
                    (r.status(), r.into_string().unwrap_or_default())
                }
                Err(e) => panic!("balance failed: {e}"),
            }
        })
    };
    // Pushes through the other two nodes while the leader tries to hand over.
    std::thread::sleep(Duration::from_millis(300));
    let mut answers = Vec::new();
    let mut trips = 100;
    while !balance.is_finished() || answers.len() < 5 {
        trips += 1;
        let a = push(cluster.node(1 + trips as usize % 2), &ids, trips);
        answers.push((trips, a.status, a.text));
    }
    let (status, text) = balance.join().unwrap();
    let failed: Vec<_> = answers.iter().filter(|(_, s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} pushes failed while the candidate was paused: {failed:?}",
        failed.len(),
        answers.len()
    );
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).expect("balance answers JSON");
    assert_eq!(answer["balanced"], false, "{answer}");
    assert!(answer["groups"][0]["problem"].is_string(), "{answer}");
    assert_eq!(
        read_trips(&cluster.node(1).url(), &ids, None).unwrap(),
        vec![json!(trips); ids.len()]
    );
    cluster.signal(0, libc::SIGCONT);
    cluster.wait_for_replicas();
    eventually("a second balance moves the group to n1", || {
        let again = cluster.node(asked).post("/cluster/balance", &json!({}));
        again.status == 200 && again.json["balanced"] == true
    });
    assert_eq!(cluster.wait_for_leaders(2)["groups"][0]["leader"], "n1");
    assert_eq!(
        read_trips(&cluster.node(0).url(), &ids, None).unwrap(),
        vec![json!(trips); ids.len()]
    );
}

/// A follower whose install of the leader's snapshot is slow (held 3 s before the snapshot is
/// kept, as a slow disk would; longer than an election timeout) causes no election: the
/// group's term is unchanged, every push meanwhile is answered 200, and the follower catches up.
#[test]
fn a_slow_snapshot_install_on_a_follower_causes_no_election() {
    let env = [
        ("FEATGRID_TEST_HOOKS", "1"),
        ("FEATGRID_TEST_RAFT_SNAPSHOT_EVERY", "20"),
        ("FEATGRID_TEST_SNAPSHOT_INSTALL_PAUSE_MS", "3000"),
    ];
    let (mut cluster, _) = node_3_behind_a_snapshot(&env);
    let term = |cluster: &Cluster, i: usize| cluster.status(i)["groups"][0]["term"].clone();
    let before = term(&cluster, 0);
    cluster.restart(2);
    eventually("node 3 started to install a snapshot", || {
        cluster.node(2).log().contains("installing a raft snapshot")
    });
    // Pushes go on while the install is held.
    let until = Instant::now() + Duration::from_millis(3500);
    let mut id = 60;
    while Instant::now() < until {
        id += 1;
        let a = push(cluster.node(id as usize % 2), &[id], id);
        assert_eq!(a.status, 200, "push {id} during the install: {}", a.text);
    }
    let ids: Vec<i64> = (1..=id).collect();
    eventually("node 3 caught up", || {
        read_trips(&cluster.node(2).url(), &ids, Some("local"))
            .is_ok_and(|v| v.iter().zip(&ids).all(|(v, id)| v == id))
    });
    for i in 0..3 {
        assert_eq!(term(&cluster, i), before, "node {i}: an election happened");
    }
}

/// A slow disk on every node (each fsync 200 ms longer: the log's, the votes', the Raft
/// snapshots' every 20 entries) slows writes down but causes no election and no refusal:
/// fsyncs, snapshot encoding and keeping run off the thread that drives the heartbeats. And
/// elections still succeed (on main before the one-fsync votes, none ever did: two fsyncs per
/// vote saved made each round outlast the election timeout, term 96 after 60 s).
#[test]
fn slow_fsyncs_and_snapshots_cause_no_election() {
    let env = [
        ("FEATGRID_TEST_HOOKS", "1"),
        ("FEATGRID_TEST_RAFT_SNAPSHOT_EVERY", "20"),
        ("FEATGRID_TEST_FSYNC_DELAY_MS", "200"),
    ];
    let mut cluster = Cluster::prepare(3, &[&[1, 2, 3]], &env, "127.0.0.1", None).logged();
    for i in 0..3 {
        cluster.restart(i);
    }
    cluster.wait_for_replicas();
    let term = |cluster: &Cluster, i: usize| cluster.status(i)["groups"][0]["term"].clone();
    let before = term(&cluster, 0);
    let id = push_one_by_one(&cluster, 3, Duration::from_secs(6));
    assert!(id > 20, "only {id} pushes: no Raft snapshot was taken");
    let ids: Vec<i64> = (1..=id).collect();
    for i in 0..3 {
        let got = read_trips(&cluster.node(i).url(), &ids, None).expect("read");
        assert!(got.iter().zip(&ids).all(|(v, id)| v == id), "node {i}");
        assert_eq!(term(&cluster, i), before, "node {i}: an election happened");
    }
    // An election still succeeds on these disks (each vote saved with one slow fsync): the
    // leader is killed, the others elect one of them and take pushes again.
    let leader = cluster.status(0)["groups"][0]["leader"]
        .as_str()
        .unwrap()
        .to_string();
    let killed = leader[1..].parse::<usize>().unwrap() - 1;
    cluster.kill9(killed);
    let survivor = (killed + 1) % 3;
    eventually("the survivors elected a leader and take pushes", || {
        push(cluster.node(survivor), &[id + 1], id + 1).status == 200
    });
    let ids: Vec<i64> = (1..=id + 1).collect();
    let got = read_trips(&cluster.node((killed + 2) % 3).url(), &ids, None).expect("read");
    assert!(got.iter().zip(&ids).all(|(v, id)| v == id));
}

/// One follower's disk turns slow (every fsync 1.5 s, longer than an election timeout, and
/// `--fsync always`, so each append it takes waits for one) while the others are healthy: the
/// leader commits with the healthy follower, and the slow one, whose appends answer late,
/// unseats nobody: every push 200, no election; reads through the slow node, which is behind,
/// are served by the leader.
#[test]
fn one_follower_with_a_slow_disk_unseats_no_leader() {
    let hooks = [("FEATGRID_TEST_HOOKS", "1")];
    let mut cluster = Cluster::prepare(3, &[&[1, 2, 3]], &hooks, "127.0.0.1", None).logged();
    for i in 0..2 {
        cluster.restart(i);
    }
    let slow = [("FEATGRID_TEST_FSYNC_DELAY_MS", "1500")];
    cluster.restart_with_env(2, &slow, &["--fsync", "always"]);
    cluster.wait_for_replicas();
    let term = |cluster: &Cluster, i: usize| cluster.status(i)["groups"][0]["term"].clone();
    let before = term(&cluster, 0);
    let id = push_one_by_one(&cluster, 2, Duration::from_secs(8));
    // The slow node is behind: a read through it is served by the leader, not refused.
    let lag = cluster.status(0)["groups"][0]["lag"]["n3"].as_u64();
    assert!(lag > Some(0), "n3 kept up: {lag:?}");
    let ids: Vec<i64> = (1..=id).collect();
    for i in 0..3 {
        let got = read_trips(&cluster.node(i).url(), &ids, None).expect("read");
        assert!(got.iter().zip(&ids).all(|(v, id)| v == id), "node {i}");
    }
    // While it writes one slow append after another, it still hears the leader (it does not
    // take itself for cut off): reads through it keep being answered.
    let pusher = Pusher::start(cluster.node(0).url());
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        read_trips(&cluster.node(2).url(), &Pusher::IDS, None)
            .unwrap_or_else(|a| panic!("read through the slow node: {}", a.text));
        std::thread::sleep(Duration::from_millis(50));
    }
    pusher.stop();
    for i in 0..3 {
        assert_eq!(term(&cluster, i), before, "node {i}: an election happened");
    }
}

/// Follower read leases: a follower serves linearizable reads without asking the leader
/// while it holds a lease. A lease holder paused (SIGSTOP) right after a read renewed its
/// lease, a push acknowledged meanwhile, and the holder resumed at once: a read through it
/// still returns the push (the leader committed it only once the holder had it, or its lease
/// had ended). Without that rule the resumed holder, its lease still live, reads stale.
#[test]
fn a_paused_lease_holder_misses_no_push_acknowledged_meanwhile() {
    let cluster = Cluster::start(3, &[&[1, 2, 3]]);
    cluster.wait_for_leaders(0);
    assert_eq!(push(cluster.node(0), &[1], 1).status, 200);
    let (holder, other) = (cluster.node(2), cluster.node(1));
    let before = leased_reads(holder);
    for _ in 0..20 {
        assert_eq!(
            read_trips(&holder.url(), &[1], None).unwrap(),
            vec![json!(1)]
        );
    }
    assert!(
        leased_reads(holder) - before >= 10,
        "reads through a follower were not served under a lease"
    );
    for id in 2..14 {
        // Reads through both followers renew their leases.
        for node in [holder, other] {
            assert_eq!(
                read_trips(&node.url(), &[id - 1], None).unwrap(),
                vec![json!(id - 1)]
            );
        }
        cluster.signal(2, libc::SIGSTOP);
        let answer = push(cluster.node(0), &[id], id);
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(
            read_trips(&other.url(), &[id], None).unwrap(),
            vec![json!(id)]
        );
        cluster.signal(2, libc::SIGCONT);
        assert_eq!(
            read_trips(&holder.url(), &[id], None).unwrap(),
            vec![json!(id)],
            "round {id}: a push acknowledged while the lease holder was paused"
        );
    }
}

/// A follower paused (SIGSTOP) for longer than an election timeout and resumed: it wakes past
/// its election timeout with no heartbeat heard, but a healthy leader stays: no election, and
/// pushes through the others go on meanwhile.
#[test]
fn a_follower_paused_and_resumed_unseats_no_leader() {
    let cluster = Cluster::start(3, &[&[1, 2, 3]]);
    let term = |cluster: &Cluster, i: usize| cluster.status(i)["groups"][0]["term"].clone();
    let before = term(&cluster, 0);
    for round in 0..3 {
        cluster.signal(2, libc::SIGSTOP);
        let pusher = Pusher::start(cluster.node(1).url());
        std::thread::sleep(Duration::from_secs(2));
        cluster.signal(2, libc::SIGCONT);
        std::thread::sleep(Duration::from_secs(2));
        let last = pusher.stop();
        assert_eq!(
            read_trips(&cluster.node(2).url(), &Pusher::IDS, None).unwrap(),
            vec![json!(last); Pusher::IDS.len()]
        );
        for i in 0..3 {
            assert_eq!(
                term(&cluster, i),
                before,
                "round {round}, node {i}: an election happened"
            );
        }
    }
}

/// In a group of five voters the leader and the candidate are no majority: the leader goes
/// quiet for a lease so that followers grant the candidate's vote. Balance moves the group back
/// to its preferred leader while a client pushes through another node: every push answered
/// 200 and read back.
#[test]
fn balance_hands_a_group_of_five_voters_back_to_its_preferred_leader() {
    let mut cluster = Cluster::start(5, &[&[1, 2, 3, 4, 5]]);
    let ids: Vec<i64> = (1..=20).collect();
    let a = push(cluster.node(0), &ids, 1);
    assert_eq!(a.status, 200, "{}", a.text);
    restart_n1(&mut cluster);
    let leader = |cluster: &Cluster| cluster.wait_for_leaders(1)["groups"][0]["leader"].clone();
    assert_ne!(leader(&cluster), "n1");
    let pusher = Pusher::start(cluster.node(2).url());
    let answer = cluster.node(3).post("/cluster/balance", &json!({}));
    let last = pusher.stop();
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["balanced"], true, "{}", answer.text);
    assert_eq!(answer.json["groups"][0]["leader"], "n1", "{}", answer.text);
    assert_eq!(leader(&cluster), "n1");
    assert_eq!(
        read_trips(&cluster.node(4).url(), &Pusher::IDS, None).unwrap(),
        vec![json!(last); Pusher::IDS.len()]
    );
    assert_eq!(
        read_trips(&cluster.node(0).url(), &ids, None).unwrap(),
        vec![json!(1); ids.len()]
    );
}

/// A client pushing through one node, back to back, until stopped: ten rows (ids
/// [`Pusher::IDS`]) with `avg_daily_trips` counting up from 11.
struct Pusher {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(i64, u16)>>,
}

impl Pusher {
    const IDS: [i64; 10] = [1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009];

    fn start(url: String) -> Pusher {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(10))
                .build();
            let mut answers = Vec::new();
            let mut trips = 10;
            while !stopped.load(Ordering::SeqCst) {
                trips += 1;
                let n = Pusher::IDS.len();
                let body = json!({"push_source_name": "driver_stats_push_source", "df": {
                    "driver_id": Pusher::IDS, "event_timestamp": vec![now_rfc3339(); n],
                    "conv_rate": vec![0.5; n], "acc_rate": vec![0.5; n],
                    "avg_daily_trips": vec![trips; n]}});
                let status = match agent
                    .post(&format!("{url}/push"))
                    .send_string(&body.to_string())
                {
                    Ok(r) => r.status(),
                    Err(ureq::Error::Status(code, _)) => code,
                    Err(_) => 0,
                };
                answers.push((trips, status));
            }
            answers
        });
        Pusher { stop, thread }
    }

    /// Stops it; asserts every push was answered 200; answers the last value pushed.
    fn stop(self) -> i64 {
        self.stop.store(true, Ordering::SeqCst);
        let answers = self.thread.join().unwrap();
        let failed: Vec<_> = answers.iter().filter(|(_, s)| *s != 200).collect();
        assert!(
            failed.is_empty(),
            "{} of {} pushes failed: {failed:?}",
            failed.len(),
            answers.len()
        );
        answers.last().map(|(t, _)| *t).expect("no push was made")
    }
}

/// Pushes ids 1, 2, ... (`avg_daily_trips` = id) one at a time through the first `nodes` nodes
/// in turn for `time`, asserting each is answered 200; answers the last id.
fn push_one_by_one(cluster: &Cluster, nodes: usize, time: Duration) -> i64 {
    let until = Instant::now() + time;
    let mut id = 0;
    while Instant::now() < until {
        id += 1;
        let a = push(cluster.node(id as usize % nodes), &[id], id);
        assert_eq!(a.status, 200, "push {id}: {}", a.text);
    }
    id
}

/// Kills n1 (`kill -9`) and restarts it once the others lead: the groups it led are led by
/// others now (until a balance).
fn restart_n1(cluster: &mut Cluster) {
    cluster.kill9(0);
    cluster.wait_for_leaders(1);
    cluster.restart(0);
    cluster.wait_for_replicas();
}

/// A 3-node cluster of one group with test hooks `env` (Raft snapshots every 20 entries among
/// them), whose node 3 is down while 60 entries are pushed through the others (id i with
/// `avg_daily_trips` i): the leader's log is purged past what node 3 holds, so it will catch up
/// from a snapshot. Answers the ids pushed.
pub(super) fn node_3_behind_a_snapshot(
    env: &[(&'static str, &'static str)],
) -> (Cluster, Vec<i64>) {
    let mut cluster = Cluster::prepare(3, &[&[1, 2, 3]], env, "127.0.0.1", None).logged();
    for i in 0..3 {
        cluster.restart(i);
    }
    cluster.wait_for_replicas();
    cluster.kill9(2);
    let ids: Vec<i64> = (1..=60).collect();
    for &id in &ids {
        let a = push(cluster.node(id as usize % 2), &[id], id);
        assert_eq!(a.status, 200, "{}", a.text);
    }
    (cluster, ids)
}
