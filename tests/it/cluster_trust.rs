//! Acknowledged writes survive what a disk can do to one replica, with real processes: a node
//! restarted on a wiped data directory never votes (it rejoins as a learner, is caught up and
//! made a voter again), and a replica whose offline sink's disk is full still applies every
//! committed entry to its online store (fail-stop applies: nothing is skipped), and one whose Raft
//! log disk fills up stops the group there and catches up once it has room and is restarted;
//! one whose Raft log disk stops answering hands its leadership over and catches up once it
//! answers again.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::cluster::{eventually, push, read_trips, Cluster};
use super::cluster_failures::node_3_behind_a_snapshot;
use crate::support::{now_rfc3339, FrozenDisk};

/// Every value read through `url` (linearizable) is `trips`, or the read is refused with a
/// 503: never an answer without the acknowledged rows.
fn never_without(url: &str, ids: &[i64], trips: i64) {
    match read_trips(url, ids, None) {
        Ok(values) => {
            let missing = values.iter().filter(|v| **v != json!(trips)).count();
            assert_eq!(
                missing, 0,
                "{url} answered without {missing} acknowledged rows"
            );
        }
        Err(a) => assert_eq!(a.status, 503, "{url}: {}", a.text),
    }
}

fn group_problems(cluster: &Cluster, i: usize) -> Value {
    cluster.status(i)["groups"][0]["problems"].clone()
}

#[test]
fn a_node_restarted_on_a_wiped_data_directory_never_votes_and_rejoins() {
    let mut cluster = Cluster::start(3, &[&[1, 2, 3]]);
    let a: Vec<i64> = (1..=100).collect();
    let pushed = push(cluster.node(0), &a, 1);
    assert_eq!(pushed.status, 200, "{}", pushed.text);
    // n3 misses B; n1 and n2 acknowledge it.
    cluster.signal(2, libc::SIGSTOP);
    let b: Vec<i64> = (1001..=1300).collect();
    let pushed = push(cluster.node(0), &b, 2);
    assert_eq!(pushed.status, 200, "{}", pushed.text);
    let through_n2 = read_trips(&cluster.node(1).url(), &b, None).expect("read B through n2");
    assert!(through_n2.iter().all(|v| *v == json!(2)), "{through_n2:?}");
    // n1 pauses; n2 loses its disk and comes back; n3 resumes. n2 and n3 are a majority by
    // count, but n2 must not vote: a leader elected by them would not have B.
    cluster.signal(0, libc::SIGSTOP);
    cluster.kill9(1);
    std::fs::remove_dir_all(cluster.data_dir(1)).expect("wipe n2's data directory");
    cluster.restart(1);
    cluster.signal(2, libc::SIGCONT);
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        never_without(&cluster.node(1).url(), &b, 2);
        never_without(&cluster.node(2).url(), &b, 2);
    }
    let problems = group_problems(&cluster, 1);
    assert!(
        problems["n2"]
            .as_str()
            .is_some_and(|p| p.starts_with("rejoining")),
        "n2 should report it is rejoining: {problems}"
    );
    let metrics = cluster.node(1).get("/metrics").text;
    let line = "featgrid_cluster_group_replica_problem{group=\"0\",problem=\"rejoining\"} 1";
    assert!(metrics.contains(line), "{metrics}");
    // n1 is back: it leads, adds n2 back (learner, caught up, voter) and every acknowledged
    // row reads back through every node.
    cluster.signal(0, libc::SIGCONT);
    for node in 0..3 {
        eventually(&format!("B through node {node}"), || {
            read_trips(&cluster.node(node).url(), &b, None)
                .is_ok_and(|v| v.iter().all(|v| *v == json!(2)))
        });
        let values = read_trips(&cluster.node(node).url(), &a, None).expect("read A");
        assert!(values.iter().all(|v| *v == json!(1)), "{values:?}");
    }
    eventually("n2 voting again", || {
        let status = cluster.status(0);
        let group = &status["groups"][0];
        group["problems"] == json!({}) && group["replicas"] == json!(["n1", "n2", "n3"])
    });
    assert!(
        !cluster.data_dir(1).join("raft/g0/rejoining").exists(),
        "the rejoin marker is removed once the node votes again"
    );
    // n2 now holds B itself: with n3 gone, n1 and n2 still serve it.
    cluster.kill9(2);
    eventually("B through n2 with n3 gone", || {
        read_trips(&cluster.node(1).url(), &b, None).is_ok_and(|v| v.iter().all(|v| *v == json!(2)))
    });
}

/// Moves node `i`'s (stopped) Raft directory onto the file system `mount` mounts on it;
/// `None` (the directory left where it was) where mounting is not allowed.
fn raft_dir_onto<D>(
    cluster: &Cluster,
    i: usize,
    mount: impl FnOnce(&Path) -> Option<D>,
) -> Option<D> {
    let raft = cluster.data_dir(i).join("raft");
    let saved = cluster.data_dir(i).join("raft.saved");
    std::fs::rename(&raft, &saved).expect("move the raft directory");
    let Some(disk) = mount(&raft) else {
        std::fs::remove_dir(&raft).expect("remove the mount point");
        std::fs::rename(&saved, &raft).expect("move the raft directory back");
        return None;
    };
    let copied = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", saved.display()))
        .arg(&raft)
        .status()
        .expect("copy the raft directory");
    assert!(copied.success());
    Some(disk)
}

/// A tmpfs mounted on a directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` on `dir`; `None` (after saying why) where mounting is not
    /// allowed (not root).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(out) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }

    /// Moves node `i`'s (stopped) Raft directory onto a tmpfs of `size`; `None` (the
    /// directory left where it was) where mounting is not allowed.
    fn raft_dir_of(cluster: &Cluster, i: usize, size: &str) -> Option<Tmpfs> {
        raft_dir_onto(cluster, i, |dir| Tmpfs::mount(dir, size))
    }

    /// Fills the file system until it refuses another byte.
    fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.0.join("filler")).expect("filler");
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_replica_with_a_full_offline_disk_still_applies_every_committed_entry() {
    let env = [("FEATGRID_OFFLINE_ROLL_ROWS", "10")];
    let mut cluster = Cluster::start_with(3, &[&[1, 2, 3]], &env, "127.0.0.1");
    // n3's offline sink writes to a full disk.
    cluster.kill9(2);
    let Some(disk) = Tmpfs::mount(&cluster.data_dir(2).join("offline"), "64k") else {
        return;
    };
    disk.fill();
    cluster.restart(2);
    cluster.wait_for_leaders(2);
    // More rows than the sink's backlog limit (100,000), to both stores, through n1.
    let now = now_rfc3339();
    let mut last = Vec::new();
    for batch in 0..12i64 {
        let ids: Vec<i64> = (batch * 10_000 + 1..=(batch + 1) * 10_000).collect();
        let body = json!({"push_source_name": "driver_stats_push_source", "to": "online_and_offline", "df": {
            "driver_id": ids,
            "event_timestamp": now,
            "conv_rate": 0.5,
            "acc_rate": 0.25,
            "avg_daily_trips": batch,
        }});
        let a = cluster.node(0).post("/push", &body);
        assert_eq!(a.status, 200, "{}", a.text);
        last = ids;
    }
    // Every replica holds every row, n3 included: read from its own store.
    for node in 0..3 {
        eventually(&format!("node {node} holds the last push"), || {
            read_trips(&cluster.node(node).url(), &last, Some("local"))
                .is_ok_and(|v| v.iter().all(|v| *v == json!(11)))
        });
    }
    let first: Vec<i64> = (1..=10_000).collect();
    let values = read_trips(&cluster.node(2).url(), &first, Some("local")).expect("read");
    assert!(values.iter().all(|v| *v == json!(0)), "{values:?}");
    let digests: Vec<Value> = (0..3)
        .map(|i| cluster.node(i).get("/admin/digest").json["digest"].clone())
        .collect();
    assert!(
        digests.iter().all(|d| *d == digests[0]),
        "replicas differ: {digests:?}"
    );
    // The sink says what it could not write; the group did not stop on n3.
    let snapshot = cluster.node(2).get("/admin/snapshot").json;
    assert!(
        snapshot["offline"]["failures"].as_u64() > Some(0),
        "{snapshot}"
    );
    assert_eq!(group_problems(&cluster, 2), json!({}));
}

/// A replica whose Raft log disk is full stops the group there (its log cannot take the
/// entries: it must not count them stored) while the other two carry on and lose nothing; once
/// the disk has room and the node is restarted, it catches up and holds every acknowledged row.
#[test]
fn a_replica_whose_raft_log_disk_fills_up_stops_and_catches_up_after_a_restart() {
    let mut cluster = Cluster::start(3, &[&[1, 2, 3]]);
    let first: Vec<i64> = (1..=100).collect();
    let a = push(cluster.node(0), &first, 1);
    assert_eq!(a.status, 200, "{}", a.text);
    cluster.kill9(2);
    let Some(disk) = Tmpfs::raft_dir_of(&cluster, 2, "512k") else {
        return;
    };
    let raft = cluster.data_dir(2).join("raft");
    cluster.restart(2);
    cluster.wait_for_leaders(2);
    // Pushes through n1 until n3's log is full and the group stops there.
    let mut acked = Vec::new();
    let mut batch = 0i64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while group_problems(&cluster, 0)["n3"].is_null() {
        assert!(Instant::now() < deadline, "n3's group never stopped");
        let ids: Vec<i64> = (1_000 + batch * 500..1_000 + (batch + 1) * 500).collect();
        let a = push(cluster.node(0), &ids, 2);
        assert_eq!(a.status, 200, "{}", a.text);
        acked.extend(ids);
        batch += 1;
    }
    let problem = group_problems(&cluster, 0)["n3"].to_string();
    eprintln!("n3 stopped after {batch} pushes of 500 rows: {problem}");
    assert!(problem.contains("stopped"), "{problem}");
    // The other two carry on.
    let more: Vec<i64> = (900_000..900_100).collect();
    let b = push(cluster.node(1), &more, 3);
    assert_eq!(b.status, 200, "{}", b.text);
    // Room again, and a restart: n3 catches up and holds everything acknowledged.
    let grown = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&raft)
        .status()
        .expect("remount");
    assert!(grown.success());
    cluster.kill9(2);
    cluster.restart(2);
    cluster.wait_for_leaders(2);
    // (A `local` read is answered by the leader until n3 serves the group again: wait until
    // n3's own replica has applied the whole log.)
    eventually("n3 applied the whole log", || cluster.applied_all(2, 0));
    for (ids, trips) in [(&first, 1), (&acked, 2), (&more, 3)] {
        for chunk in ids.chunks(500) {
            let values = read_trips(&cluster.node(2).url(), chunk, Some("local")).expect("read");
            assert!(values.iter().all(|v| *v == json!(trips)), "{values:?}");
        }
    }
    assert_eq!(group_problems(&cluster, 2), json!({}));
    cluster.kill9(2);
    drop(disk);
}

/// A follower whose disk fills up while it installs its leader's snapshot (the purge openraft
/// asked for waits for a whole snapshot): the install fails, the group stops there and the
/// other two carry on; with room again and a restart, the node starts from the log it had,
/// installs the snapshot and holds every acknowledged row.
#[test]
fn a_disk_that_fills_up_during_a_snapshot_install_loses_nothing() {
    let env = [
        ("FEATGRID_TEST_HOOKS", "1"),
        ("FEATGRID_TEST_RAFT_SNAPSHOT_EVERY", "20"),
        ("FEATGRID_TEST_SNAPSHOT_INSTALL_PAUSE_MS", "1500"),
    ];
    let (mut cluster, ids) = node_3_behind_a_snapshot(&env);
    let Some(disk) = Tmpfs::raft_dir_of(&cluster, 2, "4m") else {
        return;
    };
    let raft = cluster.data_dir(2).join("raft");
    cluster.restart(2);
    eventually("n3 started to install a snapshot", || {
        cluster.node(2).log().contains("installing a raft snapshot")
    });
    // The install is held before the snapshot is kept: the disk fills up meanwhile.
    disk.fill();
    eventually("the group stopped on n3", || {
        group_problems(&cluster, 0)["n3"]
            .as_str()
            .is_some_and(|p| p.contains("stopped"))
    });
    eprintln!("n3: {}", group_problems(&cluster, 0)["n3"]);
    let more: Vec<i64> = (1_000..1_100).collect();
    let b = push(cluster.node(0), &more, 7);
    assert_eq!(b.status, 200, "{}", b.text);
    // Room again, and a restart.
    std::fs::remove_file(raft.join("filler")).expect("remove the filler");
    let before_restart = cluster.node(2).log();
    cluster.kill9(2);
    cluster.restart(2);
    cluster.wait_for_leaders(2);
    // Caught up by its applied index, not by rows read back: just after the restart a `local`
    // read through n3 can be answered by the leader (n3 is not yet a member in its own view).
    eventually("n3 caught up", || cluster.applied_all(2, 0));
    let got = read_trips(&cluster.node(2).url(), &more, Some("local")).expect("read");
    assert!(got.iter().all(|v| *v == json!(7)), "{got:?}");
    let got = read_trips(&cluster.node(2).url(), &ids, Some("local")).expect("read");
    assert!(
        got.iter().zip(&ids).all(|(v, id)| v == id),
        "n3 lost rows: {got:?}\n--- GET /cluster on n1: {}\n--- on n3: {}\n--- n3 before its restart:\n{before_restart}\n--- n3 after:\n{}\n--- n1:\n{}\n--- n2:\n{}",
        cluster.status(0),
        cluster.status(2),
        cluster.node(2).log(),
        cluster.node(0).log(),
        cluster.node(1).log()
    );
    assert_eq!(group_problems(&cluster, 2), json!({}));
    cluster.kill9(2);
    drop(disk);
}

/// A replica whose Raft log disk stops answering (every write and fsync waits: `fsfreeze`):
/// the group's leadership moves away from it, the other two acknowledge pushes, no read
/// through it answers without them, and it says what is wrong (`GET /health` 503, the
/// group's problem in `GET /cluster`). Thawed, it catches up and serves them itself.
#[test]
fn a_replica_whose_raft_log_disk_stops_answering_hands_over_and_loses_nothing() {
    let mut cluster = Cluster::start(3, &[&[1, 2, 3]]);
    let first: Vec<i64> = (1..=100).collect();
    let a = push(cluster.node(1), &first, 1);
    assert_eq!(a.status, 200, "{}", a.text);
    cluster.kill9(0);
    let Some(disk) = raft_dir_onto(&cluster, 0, FrozenDisk::mount) else {
        return;
    };
    cluster.restart(0);
    cluster.wait_for_leaders(0);
    // n1, the group's preferred leader, leads it again before its disk stops answering.
    eventually("n1 leads the group", || {
        cluster.status(1)["groups"][0]["leader"] == "n1"
    });
    disk.freeze();
    let more: Vec<i64> = (1_001..=1_100).collect();
    eventually("a push through n2 is acknowledged", || {
        push(cluster.node(1), &more, 2).status == 200
    });
    eventually("n1's GET /health answers 503", || {
        cluster.node(0).get("/health").status == 503
    });
    assert!(cluster.node(0).get("/health").text.contains("Raft log"));
    eventually("GET /cluster names n1's stalled log", || {
        group_problems(&cluster, 1)["n1"]
            .as_str()
            .is_some_and(|p| p.starts_with("log_stalled"))
    });
    never_without(&cluster.node(0).url(), &more, 2);
    disk.thaw();
    eventually("n1 holds the pushes itself", || {
        read_trips(&cluster.node(0).url(), &more, Some("local"))
            .is_ok_and(|v| v.iter().all(|v| *v == json!(2)))
    });
    eventually("n1's GET /health answers 200", || {
        cluster.node(0).get("/health").status == 200
    });
    let values = read_trips(&cluster.node(0).url(), &first, Some("local")).expect("read");
    assert!(values.iter().all(|v| *v == json!(1)), "{values:?}");
    cluster.kill9(0);
    drop(disk);
}
