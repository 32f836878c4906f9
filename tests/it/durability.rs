//! Durability, proven by killing the real server: `kill -9` under push load with each fsync
//! policy, damaged snapshots and log segments (refusal, then `--recover`), a log cut inside
//! its last record, snapshot + restart (same digest, other shard count), SIGTERM, a disk that
//! stops answering.
//!
//! Every push writes `avg_daily_trips = v` with event time `T0 + v` for a version `v` that
//! grows with each push, so the newest value of an id is its highest version. After a
//! restart, every id must hold at least the highest version acknowledged for it, and at most
//! the highest sent (an unacknowledged write may or may not have been logged).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::cluster::eventually;
use crate::support::{assert_error, column, data_dir, refused_start, FrozenDisk, Server};

const T0: i64 = 1_700_000_000;
const IDS: i64 = 400;

fn push_body(ids: &[i64], version: i64) -> Value {
    let n = ids.len();
    json!({
        "push_source_name": "driver_stats_push_source",
        "df": {
            "driver_id": ids,
            "event_timestamp": vec![T0 + version; n],
            "conv_rate": vec![0.5; n],
            "acc_rate": vec![0.25; n],
            "avg_daily_trips": vec![version; n],
        },
        "to": "online",
    })
}

/// Pushes; `Some(status)` when the server answered, `None` when the connection failed.
fn try_push(url: &str, ids: &[i64], version: i64) -> Option<u16> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    match agent
        .post(&format!("{url}/push"))
        .send_string(&push_body(ids, version).to_string())
    {
        Ok(r) => Some(r.status()),
        Err(ureq::Error::Status(code, _)) => Some(code),
        Err(_) => None,
    }
}

/// The stored version (avg_daily_trips) of every id in `0..IDS`; `None` when not found.
fn versions(s: &Server) -> Vec<Option<i64>> {
    let ids: Vec<i64> = (0..IDS).collect();
    let a = s.read(
        &["driver_hourly_stats:avg_daily_trips"],
        json!({ "driver_id": ids }),
    );
    let (values, statuses, _) = column(&a, "avg_daily_trips");
    values
        .iter()
        .zip(statuses)
        .map(|(v, st)| (st != "NOT_FOUND").then(|| v.as_i64().expect("int64")))
        .collect()
}

/// What the pushers sent and what was acknowledged (and when), per id.
#[derive(Default)]
struct Ledger {
    sent_max: HashMap<i64, i64>,
    /// Per id: (version, time acknowledged) of every acknowledged push.
    acked: HashMap<i64, Vec<(i64, Instant)>>,
}

impl Ledger {
    /// Checks the restarted server against the ledger; `lost_ok(acked_at)` says whether an
    /// acknowledged write may be missing.
    fn check(&self, stored: &[Option<i64>], lost_ok: impl Fn(Instant) -> bool) {
        for id in 0..IDS {
            let got = stored[id as usize];
            let sent = self.sent_max.get(&id).copied();
            if let (Some(got), Some(sent)) = (got, sent) {
                assert!(got <= sent, "id {id}: {got} was never sent (max {sent})");
            }
            for &(version, at) in self.acked.get(&id).into_iter().flatten() {
                if got.is_none_or(|g| g < version) {
                    assert!(
                        lost_ok(at),
                        "id {id}: acknowledged version {version} lost, found {got:?}"
                    );
                }
            }
        }
    }
}

/// Pushes from `threads` threads until `stop`; each push is 20 random ids.
fn push_load(
    url: String,
    threads: usize,
    ledger: Arc<Mutex<Ledger>>,
    version: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..threads)
        .map(|t| {
            let (url, ledger, version, stop) =
                (url.clone(), ledger.clone(), version.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seed = 0x9E37_79B9_u64 ^ ((t as u64 + 1) * 0x1234_5678);
                while !stop.load(Ordering::Relaxed) {
                    let ids: Vec<i64> = (0..20)
                        .map(|_| {
                            seed ^= seed << 13;
                            seed ^= seed >> 7;
                            seed ^= seed << 17;
                            (seed % IDS as u64) as i64
                        })
                        .collect();
                    let v = version.fetch_add(1, Ordering::SeqCst);
                    {
                        let mut l = ledger.lock().unwrap();
                        for &id in &ids {
                            let m = l.sent_max.entry(id).or_insert(v);
                            *m = (*m).max(v);
                        }
                    }
                    match try_push(&url, &ids, v) {
                        Some(200) => {
                            let now = Instant::now();
                            let mut l = ledger.lock().unwrap();
                            for &id in &ids {
                                l.acked.entry(id).or_default().push((v, now));
                            }
                        }
                        Some(503) => {}
                        Some(other) => panic!("push answered {other}"),
                        None => return, // killed
                    }
                }
            })
        })
        .collect()
}

/// `rounds` × (start, check against the ledger, push under load, kill -9 after a random
/// delay). Shard counts vary between runs; snapshots are taken every 250 ms meanwhile.
fn kill_nine_rounds(fsync: &str, rounds: usize, lost_ok: impl Fn(Instant, Instant) -> bool) {
    let (_tmp, dir) = data_dir();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let version = Arc::new(AtomicI64::new(1));
    let mut last_kill: Option<Instant> = None;
    let mut seed = 12345u64;
    for round in 0..=rounds {
        let shards = ["8", "3", "5"][round % 3];
        let s = Server::start_in(
            &dir,
            &[
                "--fsync",
                fsync,
                "--shards",
                shards,
                "--snapshot-interval",
                "250ms",
            ],
            &[],
        );
        if let Some(killed) = last_kill {
            ledger
                .lock()
                .unwrap()
                .check(&versions(&s), |acked| lost_ok(acked, killed));
        }
        if round == rounds {
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let pushers = push_load(s.url(), 3, ledger.clone(), version.clone(), stop.clone());
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(100 + (seed >> 33) % 400));
        last_kill = Some(Instant::now());
        s.kill9();
        stop.store(true, Ordering::Relaxed);
        for p in pushers {
            p.join().unwrap();
        }
    }
    // Periodic snapshots ran meanwhile: restarts went through snapshot + log.
    assert!(dir.join("MANIFEST.json").is_file());
    let acked: usize = ledger.lock().unwrap().acked.values().map(Vec::len).sum();
    // 20 ids a push: at least 5 acknowledged pushes a round on average.
    assert!(
        acked / 20 >= rounds * 5,
        "the load pushed too little to prove anything: {} pushes",
        acked / 20
    );
}

#[test]
fn kill_nine_under_load_loses_nothing_acknowledged_with_fsync_always() {
    kill_nine_rounds("always", 20, |_, _| false);
}

#[test]
fn kill_nine_with_fsync_everysec_loses_at_most_the_last_second() {
    kill_nine_rounds("everysec", 6, |acked, killed| {
        killed.saturating_duration_since(acked) < Duration::from_millis(1500)
    });
}

fn push_versions(s: &Server, from: i64, to: i64) {
    for v in from..to {
        let ids: Vec<i64> = (0..IDS).filter(|id| id % 7 == v % 7).collect();
        assert_eq!(try_push(&s.url(), &ids, v), Some(200));
    }
}

/// The newest version of each id after pushes `1..to` of [`push_versions`].
fn expected(to: i64) -> Vec<Option<i64>> {
    (0..IDS)
        .map(|id| (1..to).filter(|v| id % 7 == v % 7).max())
        .collect()
}

fn newest_file(dir: &Path, sub: &str, ext: &str) -> PathBuf {
    let mut files: Vec<PathBuf> = walk(&dir.join(sub))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
        .pop()
        .unwrap_or_else(|| panic!("no .{ext} file under {sub}"))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x5A;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_snapshot_refuses_to_start_then_recover_falls_back() {
    let (_tmp, dir) = data_dir();
    let s = Server::start_in(&dir, &["--shards", "2"], &[]);
    push_versions(&s, 1, 20);
    assert_eq!(s.post("/admin/snapshot", &json!({})).status, 200);
    push_versions(&s, 20, 40);
    let report = s.post("/admin/snapshot", &json!({}));
    assert_eq!(report.status, 200, "{}", report.text);
    assert!(report.json["rows"].as_u64().unwrap() > 0);
    push_versions(&s, 40, 50);
    s.kill9();
    let file = newest_file(&dir, "snapshots", "snap");
    let len = std::fs::metadata(&file).unwrap().len() as usize;
    flip_byte(&file, len / 2);
    let (status, stderr) = refused_start(&dir, &[]);
    assert!(!status.success());
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(
        stderr.contains(name) && stderr.contains("checksum"),
        "{stderr}"
    );
    assert!(stderr.contains("--recover"), "{stderr}");
    // --recover: the previous set, then the log after it: nothing is lost.
    let s = Server::start_in(&dir, &["--recover"], &[]);
    assert_eq!(versions(&s), expected(50));
    // And the fresh set written after the recovery lets a plain start succeed.
    wait_for_snapshot(&s);
    s.kill9();
    let s = Server::start_in(&dir, &[], &[]);
    assert_eq!(versions(&s), expected(50));
}

fn wait_for_snapshot(s: &Server) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.get("/admin/snapshot").json["last"].is_null() {
        assert!(Instant::now() < deadline, "no snapshot after --recover");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_damaged_log_segment_refuses_to_start_then_recover_keeps_what_precedes() {
    let (_tmp, dir) = data_dir();
    let s = Server::start_in(&dir, &["--fsync", "always"], &[]);
    push_versions(&s, 1, 60);
    s.kill9();
    let segment = newest_file(&dir, "wal", "wal");
    let len = std::fs::metadata(&segment).unwrap().len() as usize;
    flip_byte(&segment, len / 2);
    let (status, stderr) = refused_start(&dir, &[]);
    assert!(!status.success());
    let name = segment.file_name().unwrap().to_str().unwrap();
    assert!(
        stderr.contains(name) && stderr.contains("offset"),
        "{stderr}"
    );
    let s = Server::start_in(&dir, &["--recover"], &[]);
    let stored = versions(&s);
    // Records before the damage are there, in full; those after it are dropped.
    let newest = stored.iter().flatten().max().copied().unwrap();
    assert!((10..59).contains(&newest), "newest kept version {newest}");
    assert_eq!(stored, expected(newest + 1));
    wait_for_snapshot(&s);
}

#[test]
fn a_log_cut_inside_its_last_record_starts_with_every_earlier_record() {
    let (_tmp, dir) = data_dir();
    let s = Server::start_in(&dir, &["--fsync", "always"], &[]);
    push_versions(&s, 1, 10);
    s.kill9();
    let segment = newest_file(&dir, "wal", "wal");
    let len = std::fs::metadata(&segment).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(len - 3).unwrap();
    drop(file);
    let s = Server::start_in(&dir, &[], &[]);
    assert_eq!(versions(&s), expected(9));
}

#[test]
fn snapshot_and_restart_keep_the_digest_whatever_the_shard_count() {
    let (_tmp, dir) = data_dir();
    let s = Server::start_in(&dir, &["--shards", "4"], &[]);
    push_versions(&s, 1, 30);
    let before = s.get("/admin/digest").json;
    assert_eq!(before["rows"], IDS);
    let snap = s.post("/admin/snapshot", &json!({})).json;
    assert_eq!(snap["rows"], IDS);
    assert!(snap["bytes"].as_u64().unwrap() > 0 && snap["duration_ms"].is_u64());
    let last = s.get("/admin/snapshot").json;
    assert_eq!(last["last"]["seq"], snap["seq"]);
    s.kill9();
    let s = Server::start_in(&dir, &["--shards", "7"], &[]);
    assert_eq!(s.get("/admin/digest").json, before);
    let status = s.get("/admin/snapshot").json;
    assert!(status["last"].is_null(), "{status}");
    assert_eq!(status["sets"][0]["seq"], snap["seq"]);
    assert_eq!(status["wal"]["healthy"], true);
    assert_eq!(s.get("/stats").json["shards"], 7);
    // More writes, then kill -9: the snapshot plus the log give the same digest again.
    push_versions(&s, 30, 40);
    let before = s.get("/admin/digest").json;
    assert_ne!(before["digest"], snap["digest"]);
    s.kill9();
    let s = Server::start_in(&dir, &["--shards", "1"], &[]);
    assert_eq!(s.get("/admin/digest").json, before);
}

#[test]
fn sigterm_writes_a_final_snapshot_and_exits_zero() {
    let (_tmp, dir) = data_dir();
    let s = Server::start_in(&dir, &["--snapshot-interval", "0"], &[]);
    push_versions(&s, 1, 25);
    for _ in 0..3 {
        assert_eq!(s.post("/admin/snapshot", &json!({})).status, 200);
    }
    let digest = s.get("/admin/digest").json;
    let status = s.terminate();
    assert!(status.success(), "{status}");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("MANIFEST.json")).unwrap()).unwrap();
    assert_eq!(manifest["sets"][0]["rows"], IDS);
    // Four sets were written; the two newest are kept, the others deleted.
    assert_eq!(manifest["sets"].as_array().unwrap().len(), 2);
    assert_eq!(std::fs::read_dir(dir.join("snapshots")).unwrap().count(), 2);
    // The log holds nothing the final set does not: restart from the set alone.
    std::fs::remove_dir_all(dir.join("wal")).unwrap();
    let s = Server::start_in(&dir, &[], &[]);
    assert_eq!(versions(&s), expected(25));
    assert_eq!(s.get("/admin/digest").json, digest);
}

#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let (_tmp, dir) = data_dir();
    let _s = Server::start_in(&dir, &[], &[]);
    let (status, stderr) = refused_start(&dir, &[]);
    assert!(!status.success());
    assert!(
        stderr.contains("LOCK") && stderr.contains("another featgrid"),
        "{stderr}"
    );
}

#[test]
fn a_view_whose_fields_changed_is_refused_then_dropped_with_recover() {
    let (tmp, dir) = data_dir();
    let s = Server::start_in(&dir, &[], &[]);
    push_versions(&s, 1, 5);
    assert!(s.terminate().success());
    // The same view with one more field: its stored rows no longer fit.
    let registry = include_str!("../../config/driver_registry.toml").replace(
        "{ name = \"avg_daily_trips\", dtype = \"int64\" },",
        "{ name = \"avg_daily_trips\", dtype = \"int64\" },\n    { name = \"rating\", dtype = \"float64\" },",
    );
    std::fs::write(tmp.path().join("reg.toml"), registry).unwrap();
    let config = tmp.path().join("settings.toml");
    std::fs::write(&config, "registry = \"reg.toml\"\n").unwrap();
    let config = config.to_str().unwrap();
    let (status, stderr) = refused_start(&dir, &["--config", config]);
    assert!(!status.success());
    assert!(
        stderr.contains("view 'driver_hourly_stats' was stored as")
            && stderr.contains("rating:float64"),
        "{stderr}"
    );
    let s = Server::start_in(&dir, &["--config", config, "--recover"], &[]);
    assert_eq!(s.get("/admin/digest").json["rows"], 0);
}

#[test]
fn a_damaged_manifest_refuses_then_recover_finds_the_sets_on_disk() {
    let (_tmp, dir) = data_dir();
    let s = Server::start_in(&dir, &["--shards", "3"], &[]);
    push_versions(&s, 1, 15);
    assert!(s.terminate().success());
    let manifest = dir.join("MANIFEST.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replacen("\"rows\"", "\"rowz\"", 1)).unwrap();
    let (status, stderr) = refused_start(&dir, &[]);
    assert!(!status.success());
    assert!(stderr.contains("MANIFEST.json"), "{stderr}");
    let s = Server::start_in(&dir, &["--recover"], &[]);
    assert_eq!(versions(&s), expected(15));
    wait_for_snapshot(&s);
    s.kill9();
    // The fresh set's manifest is whole again.
    let s = Server::start_in(&dir, &[], &[]);
    assert_eq!(versions(&s), expected(15));
}

/// A disk that stops answering (every write and fsync waits: `fsfreeze` on a loop-mounted
/// ext4): a push waits at most the stall limit, then answers 503 `wal_stalled` (its record is
/// queued: the outcome is unknown); once the log counts as stalled, pushes are refused at once
/// (nothing logged), `GET /health` answers 503 and reads are served. Thawed, the queued push is
/// applied, the refused one is not, pushes are taken again, and a `kill -9` loses nothing
/// acknowledged.
#[test]
fn a_disk_that_stops_answering_refuses_pushes_in_time_and_loses_nothing() {
    let (_tmp, dir) = data_dir();
    let Some(disk) = FrozenDisk::mount(&dir) else {
        return;
    };
    let data = dir.join("data");
    let s = Server::start_in(&data, &["--fsync", "everysec"], &[]);
    let ids = |from: i64| (from..from + 100).collect::<Vec<i64>>();
    assert_eq!(try_push(&s.url(), &ids(0), 1), Some(200));
    disk.freeze();
    let queued = s.post("/push", &push_body(&ids(100), 2));
    assert_error(&queued, 503, "wal_stalled");
    assert!(queued.text.contains("is queued"), "{}", queued.text);
    eventually("GET /health answers 503", || s.get("/health").status == 503);
    let health = s.get("/health");
    assert_eq!(health.json["status"], "degraded", "{}", health.text);
    assert!(health.text.contains("write-ahead log"), "{}", health.text);
    let refused = s.post("/push", &push_body(&ids(200), 3));
    assert_error(&refused, 503, "wal_stalled");
    assert!(
        refused.text.contains("nothing of this write was logged"),
        "{}",
        refused.text
    );
    let metrics = s.get("/metrics").text;
    let waited: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("featgrid_log_disk_wait_seconds{log=\"wal\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no wal disk wait in {metrics}"));
    assert!(waited >= 5.0, "{waited}");
    let frozen = versions(&s);
    assert!(frozen[..100].iter().all(|v| *v == Some(1)), "{frozen:?}");
    disk.thaw();
    eventually("GET /health answers 200", || s.get("/health").status == 200);
    assert_eq!(try_push(&s.url(), &ids(300), 4), Some(200));
    let expected: Vec<Option<i64>> = [Some(1), Some(2), None, Some(4)]
        .into_iter()
        .flat_map(|v| std::iter::repeat_n(v, 100))
        .collect();
    eventually("the queued push is applied", || versions(&s) == expected);
    s.kill9();
    let s = Server::start_in(&data, &["--fsync", "everysec"], &[]);
    assert_eq!(versions(&s), expected);
    drop(s);
    drop(disk);
}
