//! What an answer promises, and that a restart keeps it: a 503 `shard_overloaded` was never
//! applied (live or after a replay), a 503 `shard_timeout` still is; the state recovered after
//! `kill -9` is the live state exactly, ties between equal-time pushes included; offline files
//! never make the log reuse an lsn.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{column, data_dir, now_plus, Server};

/// A push of `ids` with `avg_daily_trips = trips`, all stamped `event` (Unix seconds) and
/// created at the same time: rows of equal pushes tie exactly.
fn body(ids: &[i64], trips: i64, event: i64) -> String {
    let n = ids.len();
    json!({"push_source_name": "driver_stats_push_source", "to": "online", "df": {
        "driver_id": ids, "event_timestamp": vec![event; n], "created": vec![event; n],
        "conv_rate": vec![0.5; n], "acc_rate": vec![0.5; n], "avg_daily_trips": vec![trips; n]}})
    .to_string()
}

/// Posts a push; answers status, `Retry-After` and the JSON body.
fn push(url: &str, body: &str) -> (u16, Option<String>, Value) {
    let response = match ureq::post(&format!("{url}/push")).send_string(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let status = response.status();
    let retry = response.header("Retry-After").map(str::to_string);
    (status, retry, response.into_json().unwrap_or(Value::Null))
}

fn trips(s: &Server, ids: &[i64]) -> (Vec<Value>, Vec<String>) {
    let a = s.read(
        &["driver_hourly_stats:avg_daily_trips"],
        json!({ "driver_id": ids }),
    );
    let (values, statuses, _) = column(&a, "avg_daily_trips");
    (values, statuses)
}

fn digest(s: &Server) -> Value {
    let a = s.get("/admin/digest");
    assert_eq!(a.status, 200, "{}", a.text);
    a.json
}

#[test]
fn a_refused_push_is_never_applied_and_a_timed_out_one_still_is() {
    let (_tmp, data) = data_dir();
    let env = [
        ("FEATGRID_TEST_HOOKS", "1"),
        ("FEATGRID_MAILBOX_CAPACITY", "2"),
        ("FEATGRID_SHARD_TIMEOUT_MS", "300"),
    ];
    let args = ["--shards", "1", "--fsync", "always"];
    let s = Server::start_in(&data, &args, &env);
    let url = s.url();
    let now = chrono::Utc::now().timestamp();
    // Hold the shard thread; the two places in its mailbox fill with timed-out pushes.
    assert_eq!(s.post("/admin/test/stall?ms=4000", &json!({})).status, 200);
    std::thread::sleep(Duration::from_millis(100));
    for id in [1, 2] {
        let (status, retry, error) = push(&url, &body(&[id], 10, now));
        assert_eq!(status, 503, "{error}");
        assert_eq!(error["code"], "shard_timeout", "{error}");
        assert_eq!(retry.as_deref(), Some("1"));
    }
    // Now the mailbox is full: refused at once, before anything is logged.
    let (status, retry, error) = push(&url, &body(&[3], 10, now));
    assert_eq!(status, 503, "{error}");
    assert_eq!(error["code"], "shard_overloaded", "{error}");
    assert_eq!(retry.as_deref(), Some("1"));
    // A read is refused the same way while the mailbox is full.
    let a = s.post(
        "/get-online-features",
        &json!({"features": ["driver_hourly_stats:avg_daily_trips"], "entities": {"driver_id": [1]}}),
    );
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (503, Some("shard_overloaded"))
    );
    // Once the stall ends: the timed-out pushes were applied, the refused one was not.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let live = loop {
        let a = s.post(
            "/get-online-features",
            &json!({"features": ["driver_hourly_stats:avg_daily_trips"], "entities": {"driver_id": [1, 2, 3]}}),
        );
        if a.status == 200 {
            break column(&a.json, "avg_daily_trips");
        }
        assert!(std::time::Instant::now() < deadline, "{}", a.text);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(live.0, [json!(10), json!(10), Value::Null]);
    assert_eq!(live.1, ["PRESENT", "PRESENT", "NOT_FOUND"]);
    let before = digest(&s);
    s.kill9();
    let s = Server::start_in(&data, &args, &env);
    assert_eq!(trips(&s, &[1, 2, 3]).1, ["PRESENT", "PRESENT", "NOT_FOUND"]);
    assert_eq!(digest(&s), before, "the replayed state is the live state");
}

#[test]
fn equal_time_pushes_resolve_the_same_live_and_after_kill_9() {
    let (_tmp, data) = data_dir();
    let args = ["--shards", "4", "--workers", "4", "--shard-threads", "2"];
    let s = Server::start_in(&data, &args, &[]);
    let url = s.url();
    const ROUNDS: i64 = 40;
    let ids: Vec<i64> = (0..ROUNDS * 16).collect();
    let event = now_plus(0).timestamp();
    // Each round, sixteen pushers write the same 16 keys at once with the same event and
    // created times: every push ties with every other, and only the order of the writes
    // decides, 40 times over. Snapshots are taken meanwhile, so the restart replays the log
    // on top of a snapshot.
    let barrier = std::sync::Barrier::new(16);
    std::thread::scope(|scope| {
        for t in 0..16i64 {
            let (url, barrier) = (url.clone(), &barrier);
            scope.spawn(move || {
                for round in 0..ROUNDS {
                    let keys: Vec<i64> = (round * 16..round * 16 + 16).collect();
                    barrier.wait();
                    let (status, _, error) = push(&url, &body(&keys, t, event));
                    assert_eq!(status, 200, "{error}");
                }
            });
        }
        scope.spawn(|| {
            for _ in 0..3 {
                std::thread::sleep(Duration::from_millis(30));
                let _ = ureq::post(&format!("{url}/admin/snapshot")).send_string("{}");
            }
        });
    });
    let live = trips(&s, &ids).0;
    let before = digest(&s);
    s.kill9();
    let s = Server::start_in(&data, &args, &[]);
    assert_eq!(trips(&s, &ids).0, live, "each key holds the same winner");
    assert_eq!(digest(&s), before);
}

#[test]
fn after_a_restart_new_offline_records_never_reuse_an_lsn_a_parquet_file_covers() {
    let (_tmp, data) = data_dir();
    let offline = |ids: &[i64]| {
        let event = now_plus(0).timestamp();
        let n = ids.len();
        json!({"push_source_name": "driver_stats_push_source", "to": "offline", "df": {
            "driver_id": ids, "event_timestamp": vec![event; n], "conv_rate": vec![0.5; n],
            "acc_rate": vec![0.5; n], "avg_daily_trips": ids}})
    };
    let s = Server::start_in(&data, &[], &[]);
    for id in 0..20 {
        assert_eq!(s.post("/push", &offline(&[id])).status, 200);
    }
    // The snapshot rolls the offline buffers: the Parquet file covers lsn 20.
    assert_eq!(s.post("/admin/snapshot", &json!({})).status, 200);
    s.kill9();
    // The log and snapshots are lost (the log can be behind a fsynced Parquet file under
    // `everysec`); the offline files remain.
    std::fs::remove_dir_all(data.join("wal")).unwrap();
    std::fs::remove_dir_all(data.join("snapshots")).unwrap();
    std::fs::remove_file(data.join("MANIFEST.json")).unwrap();
    let s = Server::start_in(&data, &[], &[]);
    assert_eq!(s.post("/push", &offline(&[100])).status, 200);
    s.kill9();
    // Row 100 is only in the log: a restart must replay it into the sink.
    let s = Server::start_in(&data, &[], &[]);
    assert_eq!(s.post("/admin/snapshot", &json!({})).status, 200);
    let wal = s.get("/admin/snapshot").json;
    assert!(wal["wal"]["next_lsn"].as_u64().unwrap() > 21, "{wal}");
    assert_eq!(wal["offline"]["rows_written"], 1, "{wal}");
}
