//! The offline sink: `to: offline` and `online_and_offline` rows land in Parquet files that
//! the parquet crate and pyarrow read, and survive kill -9 through the write-ahead log.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::{json, Value};

use crate::support::{column, data_dir, now_plus, Server};

/// Pushes `ids` stamped `at` (created a second later).
fn push_at(s: &Server, ids: &[i64], to: &str, at: chrono::DateTime<chrono::Utc>) {
    let n = ids.len();
    let event = at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let created = (at + chrono::Duration::seconds(1))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let df = json!({"driver_id": ids, "event_timestamp": vec![event; n], "created": vec![created; n],
                    "conv_rate": vec![0.5; n], "acc_rate": vec![Value::Null; n], "avg_daily_trips": ids});
    let a = s.post(
        "/push",
        &json!({"push_source_name": "driver_stats_push_source", "df": df, "to": to}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
}

/// Pushes `ids` stamped now: the view's TTL is a day.
fn push(s: &Server, ids: &[i64], to: &str) {
    push_at(s, ids, to, now_plus(0));
}

fn parquet_files(data: &Path) -> Vec<PathBuf> {
    let dir = data.join("offline/driver_hourly_stats");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Every driver id in the view's Parquet files (a multiset as a sorted Vec).
fn offline_ids(data: &Path) -> Vec<i64> {
    let mut ids = Vec::new();
    for file in parquet_files(data) {
        let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
        for row in reader.get_row_iter(None).unwrap() {
            let row = row.unwrap();
            let (_, id) = row
                .get_column_iter()
                .find(|(name, _)| *name == "driver_id")
                .unwrap();
            match id {
                Field::Long(id) => ids.push(*id),
                other => panic!("driver_id is {other:?}"),
            }
        }
    }
    ids.sort();
    ids
}

fn flush(s: &Server) {
    let a = s.post("/admin/snapshot", &json!({}));
    assert_eq!(a.status, 200, "{}", a.text);
}

#[test]
fn offline_rows_land_in_parquet_files_that_pyarrow_reads() {
    let (_tmp, data) = data_dir();
    let s = Server::start_in(&data, &[], &[]);
    let at = now_plus(0);
    push_at(&s, &[1, 2], "offline", at);
    push_at(&s, &[3], "online_and_offline", at);
    let a = s.read(
        &["driver_hourly_stats:avg_daily_trips"],
        json!({"driver_id": [1, 3]}),
    );
    assert_eq!(
        column(&a, "avg_daily_trips").1,
        ["NOT_FOUND", "PRESENT"],
        "offline-only rows are not served online"
    );
    flush(&s);
    assert_eq!(offline_ids(&data), [1, 2, 3]);
    assert_eq!(s.get("/admin/snapshot").json["offline"]["rows_written"], 3);

    // pyarrow comes with feast.
    let Some(python) = crate::feast_sdk::feast_python() else {
        return; // feast_python said why
    };
    let dir = data.join("offline/driver_hourly_stats");
    let script = r#"
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
rows = sorted(t.to_pylist(), key=lambda r: r["driver_id"])
print(t.schema.field("event_timestamp").type, t.schema.field("conv_rate").type)
for r in rows:
    print(r["driver_id"], r["event_timestamp"].isoformat(), r["created"].isoformat(), r["conv_rate"], r["acc_rate"], r["avg_daily_trips"])
"#;
    let out = Command::new(python)
        .args(["-c", script])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "timestamp[us, tz=UTC] float");
    assert_eq!(
        lines[1],
        format!(
            "1 {} {} 0.5 None 1",
            at.format("%Y-%m-%dT%H:%M:%S+00:00"),
            (at + chrono::Duration::seconds(1)).format("%Y-%m-%dT%H:%M:%S+00:00")
        )
    );
    assert_eq!(lines.len(), 4, "{stdout}");
}

#[test]
fn acknowledged_offline_rows_survive_kill_9() {
    let (_tmp, data) = data_dir();
    let s = Server::start_in(&data, &["--fsync", "always"], &[]);
    let mut sent = BTreeSet::new();
    for batch in 0..10i64 {
        let ids: Vec<i64> = (batch * 10..batch * 10 + 10).collect();
        push(&s, &ids, "offline");
        sent.extend(ids);
    }
    // Nothing rolled yet (100,000 rows or a minute): only the log holds the rows.
    assert!(parquet_files(&data).is_empty());
    s.kill9();
    let s = Server::start_in(&data, &[], &[]);
    flush(&s);
    let ids = offline_ids(&data);
    let distinct: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(
        distinct, sent,
        "every acknowledged offline row is in Parquet after the restart"
    );
    // Written once: nothing was rolled before the kill, so nothing is replayed twice.
    assert_eq!(ids.len(), sent.len());
    // And a second restart replays nothing again.
    s.kill9();
    let s = Server::start_in(&data, &[], &[]);
    flush(&s);
    assert_eq!(offline_ids(&data).len(), sent.len());
}

#[test]
fn offline_rows_pushed_during_rolls_survive_kill_9() {
    let (_tmp, data) = data_dir();
    // Small rolls, so files are written while pushes are in flight.
    let s = Server::start_in(
        &data,
        &["--fsync", "always"],
        &[("FEATGRID_OFFLINE_ROLL_ROWS", "7")],
    );
    let url = s.url();
    let acknowledged: Vec<i64> = std::thread::scope(|scope| {
        let pushers: Vec<_> = (0..4i64)
            .map(|t| {
                let url = url.clone();
                scope.spawn(move || {
                    let mut ok = Vec::new();
                    for i in 0..25i64 {
                        let id = t * 1000 + i;
                        let df = json!({"driver_id": [id], "event_timestamp": ["2026-11-25T10:00:00Z"], "conv_rate": [0.5],
                                        "acc_rate": [0.5], "avg_daily_trips": [id]});
                        let body = json!({"push_source_name": "driver_stats_push_source", "df": df, "to": "offline"}).to_string();
                        if ureq::post(&format!("{url}/push")).send_string(&body).is_ok() {
                            ok.push(id);
                        }
                    }
                    ok
                })
            })
            .collect();
        let snapshots = scope.spawn(|| {
            for _ in 0..5 {
                let _ = ureq::post(&format!("{url}/admin/snapshot")).send_string("{}");
            }
        });
        snapshots.join().unwrap();
        pushers
            .into_iter()
            .flat_map(|p| p.join().unwrap())
            .collect()
    });
    assert_eq!(acknowledged.len(), 100);
    assert!(
        parquet_files(&data).len() > 3,
        "files were rolled while pushes were in flight"
    );
    s.kill9();
    let s = Server::start_in(&data, &[], &[]);
    flush(&s);
    let written: BTreeSet<i64> = offline_ids(&data).into_iter().collect();
    let missing: Vec<&i64> = acknowledged
        .iter()
        .filter(|id| !written.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged offline rows missing after kill -9: {missing:?}"
    );
}
