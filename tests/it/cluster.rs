//! The cluster with real processes: three (or five) `featgrid serve --cluster` nodes on
//! loopback ports, a push through one node read through another, `kill -9` of nodes under
//! load with every acknowledged push checked afterwards, a minority refusing writes, the
//! secret on internal calls, `--check`, `GET /cluster` and `featgrid cluster status`.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{column, now_rfc3339, Answer, Server, BIN};

const SECRET: &str = "test-cluster-secret-0123456789";

/// A cluster of `n` nodes on free loopback ports, its topology in a temporary directory.
struct Cluster {
    dir: tempfile::TempDir,
    env: Vec<(&'static str, &'static str)>,
    topology: PathBuf,
    nodes: Vec<Option<Server>>,
    internal: Vec<String>,
}

/// A free loopback port (bound, then released for the node to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Cluster {
    /// `groups`: per group, its replicas (node numbers from 1); the slots are split evenly.
    fn start(n: usize, groups: &[&[usize]]) -> Cluster {
        Cluster::start_with(n, groups, &[], "127.0.0.1")
    }

    /// [`Cluster::start`] with environment variables for every node.
    /// [`Cluster::start`] with environment variables for every node, the nodes' addresses
    /// on `host` (an IP or a name).
    fn start_with(
        n: usize,
        groups: &[&[usize]],
        env: &[(&'static str, &'static str)],
        host: &str,
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("temporary dir");
        let mut text = format!("cluster_secret = \"{SECRET}\"\n");
        let mut internal = Vec::new();
        for i in 1..=n {
            let (client, inner) = (free_port(), free_port());
            internal.push(format!("{host}:{inner}"));
            text += &format!("[[node]]\nid = \"n{i}\"\nclient = \"{host}:{client}\"\ninternal = \"{host}:{inner}\"\n");
        }
        let per = 16384 / groups.len();
        for (g, members) in groups.iter().enumerate() {
            let end = if g + 1 == groups.len() {
                16383
            } else {
                (g + 1) * per - 1
            };
            let names: Vec<String> = members.iter().map(|m| format!("\"n{m}\"")).collect();
            text += &format!(
                "[[group]]\nslots = \"{}-{end}\"\nnodes = [{}]\n",
                g * per,
                names.join(", ")
            );
        }
        let topology = dir.path().join("cluster.toml");
        std::fs::write(&topology, text).expect("write the topology");
        let mut cluster = Cluster {
            dir,
            env: env.to_vec(),
            topology,
            nodes: (0..n).map(|_| None).collect(),
            internal,
        };
        for i in 0..n {
            cluster.restart(i);
        }
        cluster.wait_for_leaders(0);
        cluster
    }

    fn three() -> Cluster {
        Cluster::start(3, &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]])
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("n{}", i + 1))
    }

    /// Starts node `i` (from 0) on its data directory.
    fn restart(&mut self, i: usize) {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--cluster"])
            .arg(&self.topology)
            .args([
                "--node-id",
                &format!("n{}", i + 1),
                "--workers",
                "1",
                "--data-dir",
            ])
            .arg(self.data_dir(i))
            .env("FEATGRID_LOG", "warn,openraft=off")
            .envs(self.env.iter().copied());
        self.nodes[i] = Some(Server::launch(command));
    }

    fn kill9(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.kill9();
        }
    }

    fn node(&self, i: usize) -> &Server {
        self.nodes[i].as_ref().expect("node is running")
    }

    /// `GET /cluster` on node `i`.
    fn status(&self, i: usize) -> Value {
        let a = self.node(i).get("/cluster");
        assert_eq!(a.status, 200, "{}", a.text);
        a.json
    }

    /// Waits (at most 60 s) until node `i` sees a leader for every group.
    fn wait_for_leaders(&self, i: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.status(i);
            let groups = status["groups"].as_array().expect("groups");
            if groups.iter().all(|g| g["leader"].is_string()) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no leader for every group: {status}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Rows of the driver view a node holds (`GET /stats`).
fn stored_rows(node: &Server) -> u64 {
    let stats = node.get("/stats").json;
    stats["feature_views"]
        .as_array()
        .and_then(|views| views.iter().find(|v| v["name"] == "driver_hourly_stats"))
        .and_then(|v| v["rows"].as_u64())
        .unwrap_or_else(|| panic!("no driver_hourly_stats in {stats}"))
}

pub(super) fn push(node: &Server, ids: &[i64], trips: i64) -> Answer {
    let now = now_rfc3339();
    node.post(
        "/push",
        &json!({"push_source_name": "driver_stats_push_source", "df": {
            "driver_id": ids,
            "event_timestamp": vec![now.clone(); ids.len()],
            "conv_rate": vec![0.5; ids.len()],
            "acc_rate": vec![0.25; ids.len()],
            "avg_daily_trips": vec![trips; ids.len()],
        }}),
    )
}

/// Reads `avg_daily_trips` of `ids` through `url` with the given consistency header.
pub(super) fn read_trips(
    url: &str,
    ids: &[i64],
    consistency: Option<&str>,
) -> Result<Vec<Value>, Answer> {
    let mut request = ureq::post(&format!("{url}/get-online-features"));
    if let Some(c) = consistency {
        request = request.set("x-featgrid-consistency", c);
    }
    let body = json!({"features": ["driver_hourly_stats:avg_daily_trips"], "entities": {"driver_id": ids}});
    let response = match request.send_string(&body.to_string()) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    let text = response.into_string().unwrap_or_default();
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status != 200 {
        return Err(Answer {
            status,
            json,
            text,
            request_id: None,
        });
    }
    Ok(column(&json, "avg_daily_trips").0)
}

#[test]
fn a_push_through_one_node_is_read_through_every_other() {
    let cluster = Cluster::three();
    let ids: Vec<i64> = (1..=300).collect();
    let a = push(cluster.node(0), &ids, 7);
    assert_eq!(a.status, 200, "{}", a.text);
    for i in 1..3 {
        let values = read_trips(&cluster.node(i).url(), &ids, None).expect("read");
        assert!(values.iter().all(|v| v == 7), "node {i}: {values:?}");
    }
    // A local read serves the node's replica: it holds the push once applied there.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let values = read_trips(&cluster.node(2).url(), &ids, Some("local")).expect("read");
        if values.iter().all(|v| v == 7) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the local replica never caught up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every node holds every row (each group is on all three), as /stats shows.
    for i in 0..3 {
        assert_eq!(stored_rows(cluster.node(i)), 300, "node {i}");
    }
    let bad = read_trips(&cluster.node(1).url(), &ids, Some("eventually")).unwrap_err();
    assert_eq!(
        (bad.status, bad.json["code"].as_str()),
        (400, Some("invalid_request"))
    );

    let status = cluster.status(1);
    assert_eq!(status["node"], "n2");
    assert_eq!(status["nodes"].as_array().unwrap().len(), 3);
    assert!(
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["healthy"] == true),
        "{status}"
    );
    let groups = status["groups"].as_array().unwrap();
    assert_eq!(groups[0]["slots"], "0-5460");
    assert_eq!(groups[0]["replicas"], json!(["n1", "n2", "n3"]));
    assert!(groups.iter().all(|g| g["term"].as_u64() >= Some(1)));
    let out = Command::new(BIN)
        .args(["cluster", "status", "--node", &cluster.node(2).url()])
        .output()
        .expect("run featgrid cluster status");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(
        table.contains("asked node: n3") && table.contains("5461-10921"),
        "{table}"
    );
}

#[test]
fn internal_calls_without_the_secret_are_refused() {
    let cluster = Cluster::start(1, &[&[1]]);
    let url = format!("http://{}/internal/v1/status", cluster.internal[0]);
    for secret in [None, Some("wrong-secret-0123456789")] {
        let mut request = ureq::post(&url);
        if let Some(s) = secret {
            request = request.set("x-featgrid-cluster-secret", s);
        }
        match request.send_bytes(&[]) {
            Err(ureq::Error::Status(401, r)) => {
                let body: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
                assert_eq!(body["code"], "cluster_secret_required");
            }
            other => panic!("expected 401, got {other:?}"),
        }
    }
    let ok = ureq::post(&url)
        .set("x-featgrid-cluster-secret", SECRET)
        .send_bytes(&[]);
    assert_eq!(ok.map(|r| r.status()).ok(), Some(200));
}

/// Writers push unique ids through random live nodes and record what was acknowledged.
/// A reader checks, Jepsen style, that linearizable reads never miss a push acknowledged
/// before they started: each read asks for the last ids acknowledged so far (each id is
/// pushed once, with its own value), through a node in turn.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<i64>>>,
    reads: Arc<AtomicI64>,
    stale: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What the load saw: acknowledged pushes, reads checked, stale reads found.
struct History {
    acked: Vec<i64>,
    reads: i64,
    stale: Vec<String>,
}

/// One reader: reads the last acknowledged ids through live nodes in turn until stopped.
fn check_reads(
    urls: Arc<Mutex<Vec<Option<String>>>>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<i64>>>,
    reads: Arc<AtomicI64>,
    stale: Arc<Mutex<Vec<String>>>,
) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut turn = 0;
    while !stop.load(Ordering::Relaxed) {
        // Acknowledged before the read starts.
        let ids: Vec<i64> = {
            let acked = acked.lock().unwrap();
            acked[acked.len().saturating_sub(10)..].to_vec()
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
        for (id, v) in ids.iter().zip(values) {
            if v != json!(id) {
                stale
                    .lock()
                    .unwrap()
                    .push(format!("{url}: driver {id} read as {v}"));
            }
        }
    }
}

impl Load {
    fn start(urls: Arc<Mutex<Vec<Option<String>>>>, writers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let reads = Arc::new(AtomicI64::new(0));
        let stale = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(AtomicI64::new(1_000_000));
        let reader = {
            let (urls, stop, acked, reads, stale) = (
                urls.clone(),
                stop.clone(),
                acked.clone(),
                reads.clone(),
                stale.clone(),
            );
            std::thread::spawn(move || check_reads(urls, stop, acked, reads, stale))
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

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn stop(self) -> History {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let acked = self.acked.lock().unwrap().clone();
        let stale = self.stale.lock().unwrap().clone();
        History {
            acked,
            reads: self.reads.load(Ordering::Relaxed),
            stale,
        }
    }
}

/// Checks every id reads back through `url` with its own value as avg_daily_trips.
fn assert_all_readable(url: &str, ids: &[i64], consistency: Option<&str>) {
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
    let mut cluster = Cluster::three();
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
    eprintln!("cluster kill test: killing nodes {kills:?} (0-based) in turn");
    for &victim in &kills {
        cluster.kill9(victim);
        urls.lock().unwrap()[victim] = None;
        // Every group keeps (or gets back) a leader: pushes to all slots are acknowledged.
        let survivor = (victim + 1) % 3;
        cluster.wait_for_leaders(survivor);
        wait_for_acks(&load, 60);
        cluster.restart(victim);
        urls.lock().unwrap()[victim] = Some(cluster.node(victim).url());
        cluster.wait_for_leaders(victim);
        wait_for_acks(&load, 30);
    }
    let History {
        acked,
        reads,
        stale,
    } = load.stop();
    assert!(
        acked.len() > 200,
        "only {} pushes acknowledged",
        acked.len()
    );
    assert!(reads > 50, "only {reads} reads answered");
    assert!(stale.is_empty(), "stale linearizable reads: {stale:?}");
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
    eprintln!(
        "cluster kill test: {} kills; {} acknowledged pushes all read back on 3 nodes; {reads} linearizable reads during the kills, none older than a push acknowledged before it",
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

#[test]
fn a_node_that_missed_more_than_the_log_keeps_catches_up_from_a_raft_snapshot() {
    let env = [
        ("FEATGRID_TEST_HOOKS", "1"),
        ("FEATGRID_TEST_RAFT_SNAPSHOT_EVERY", "20"),
    ];
    let mut cluster = Cluster::start_with(3, &[&[1, 2, 3]], &env, "127.0.0.1");
    cluster.kill9(2);
    // 60 entries: the log is snapshotted and purged past what node 3 has.
    for id in 1..=60 {
        let a = push(cluster.node(id as usize % 2), &[id], id);
        assert_eq!(a.status, 200, "{}", a.text);
    }
    cluster.restart(2);
    let ids: Vec<i64> = (1..=60).collect();
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
        assert!(values.iter().all(|v| v == 4), "node {i}: {values:?}");
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

/// Waits (at most 30 s) until `ok` holds; fails with `what` otherwise.
pub(super) fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_all_readable_eventually(url: &str, ids: &[i64], trips: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if read_trips(url, ids, Some("local")).is_ok_and(|v| v.iter().all(|v| v == trips)) {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never held the rows");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn five_nodes_each_hold_three_fifths_and_serve_every_key() {
    // The addresses are names (as Kubernetes gives them), resolved when used.
    let cluster = Cluster::start_with(
        5,
        &[&[1, 2, 3], &[2, 3, 4], &[3, 4, 5], &[4, 5, 1], &[5, 1, 2]],
        &[],
        "localhost",
    );
    let ids: Vec<i64> = (1..=500).collect();
    let a = push(cluster.node(0), &ids, 9);
    assert_eq!(a.status, 200, "{}", a.text);
    // Every node serves every key: groups it holds no replica of are read from their leader.
    for i in 0..5 {
        for consistency in [None, Some("local")] {
            let values = read_trips(&cluster.node(i).url(), &ids, consistency).expect("read");
            assert!(
                values.iter().all(|v| v == 9),
                "node {i} {consistency:?}: {values:?}"
            );
        }
    }
    let mut total = 0;
    let mut per_node = BTreeMap::new();
    for i in 0..5 {
        let rows = stored_rows(cluster.node(i));
        assert!(rows > 0 && rows < 500, "node {i} holds {rows} of 500 rows");
        per_node.insert(i, rows);
        total += rows;
    }
    assert_eq!(
        total,
        3 * 500,
        "each row on exactly three nodes: {per_node:?}"
    );
}

fn check(args: &[&str], topology: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["serve", "--check", "--cluster"])
        .arg(topology)
        .args(args)
        .output()
        .expect("run featgrid");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn serve_check_validates_the_topology_and_names_the_key() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cluster-3node.toml");
    let (ok, text) = check(&["--node-id", "n2"], &example);
    assert!(ok, "{text}");
    assert!(
        text.contains("node n2 of a cluster of 3 nodes and 3 groups"),
        "{text}"
    );
    let (ok, text) = check(&["--node-id", "n9"], &example);
    assert!(
        !ok && text.contains("--node-id: 'n9' is not a [[node]] id"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let broken = std::fs::read_to_string(&example)
        .unwrap()
        .replace("10923-16383", "10923-16000")
        .replace(
            "cluster_secret_file = \"cluster.secret\"",
            &format!("cluster_secret = \"{SECRET}\""),
        );
    std::fs::write(&bad, broken).unwrap();
    let (ok, text) = check(&["--node-id", "n1"], &bad);
    assert!(
        !ok && text.contains("bad.toml: group: slot 16001 is in no group"),
        "{text}"
    );
    let out = Command::new(BIN)
        .args(["serve", "--check", "--cluster"])
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "--cluster without --node-id is refused"
    );
    // A single node checks its settings and registry the same way.
    let out = Command::new(BIN)
        .args(["serve", "--check", "--shards", "4"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("configuration is valid"),
        "{text}"
    );
    let out = Command::new(BIN)
        .args(["serve", "--check", "--shards", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Runs `featgrid serve` with `args` (the binary left out) plus `--check`, paths replaced.
fn check_args(args: &[String], replace: &[(&str, String)]) -> (bool, String) {
    let mut args: Vec<String> = args
        .iter()
        .map(|a| {
            replace
                .iter()
                .fold(a.clone(), |a, (from, to)| a.replace(from, to))
        })
        .collect();
    assert_eq!(args.first().map(String::as_str), Some("serve"), "{args:?}");
    args.insert(1, "--check".into());
    let out = Command::new(BIN)
        .args(&args)
        .output()
        .expect("run featgrid");
    let text = format!(
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_deploy_examples_pass_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();

    // systemd: ExecStart's arguments, for node n1 of the 3-node example.
    let unit = std::fs::read_to_string(root.join("deploy/systemd/featgrid@.service")).unwrap();
    for key in ["ExecStartPre=", "ExecStart="] {
        let line = unit.lines().find_map(|l| l.strip_prefix(key)).expect(key);
        let mut args: Vec<String> = line.split_whitespace().skip(1).map(String::from).collect();
        args.retain(|a| a != "--check");
        let example = root.join("config/cluster-3node.toml").display().to_string();
        let replace = [
            ("/etc/featgrid/cluster.toml", example),
            ("/var/lib/featgrid/%i", data.clone()),
            ("%i", "n1".to_string()),
        ];
        let (ok, text) = check_args(&args, &replace);
        assert!(ok, "{text}");
    }

    // Kubernetes: the StatefulSet's arguments on the ConfigMap's topology, for featgrid-0.
    let yaml = std::fs::read_to_string(root.join("deploy/kubernetes/featgrid.yaml")).unwrap();
    let docs: Vec<Value> = yaml
        .split("\n---\n")
        .map(|d| serde_norway::from_str(d).expect("a YAML document"))
        .collect();
    let kind = |k: &str| docs.iter().find(|d| d["kind"] == k).expect(k).clone();
    let topology = kind("ConfigMap")["data"]["cluster.toml"]
        .as_str()
        .unwrap()
        .to_string();
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("cluster.toml"), topology).unwrap();
    std::fs::write(
        etc.join("cluster.secret"),
        "0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    let set = kind("StatefulSet");
    let args: Vec<String> = set["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let replace = [
        ("/etc/featgrid", etc.display().to_string()),
        ("$(POD_NAME)", "featgrid-0".to_string()),
        ("/data", data.clone()),
    ];
    let (ok, text) = check_args(&args, &replace);
    assert!(
        ok && text.contains("node featgrid-0 of a cluster of 3 nodes"),
        "{text}"
    );
}

#[test]
fn a_single_node_has_no_cluster_routes() {
    let server = Server::start();
    let a = server.get("/cluster");
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (404, Some("not_a_cluster")),
        "{}",
        a.text
    );
    let a = server.post("/cluster/groups/0/members", &json!({"add": ["n1"]}));
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (404, Some("not_a_cluster")),
        "{}",
        a.text
    );
}
