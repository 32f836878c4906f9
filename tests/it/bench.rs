//! `featgrid bench` against a real server: the preload lands, every workload completes with
//! zero errors, the JSON holds ordered percentiles, the SVG is written, the request cap is
//! exact, and a non-loopback target is refused before anything is sent.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{column, Server, BIN};

fn bench(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("bench")
        .args(args)
        .env("FEATGRID_LOG", "warn")
        .output()
        .expect("run featgrid bench")
}

/// Runs the bench, expects success, returns the JSON it wrote.
fn bench_json(args: &[&str], json: &Path) -> Value {
    let out = bench(&[args, &["--json", json.to_str().unwrap()]].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("p99.9"), "no table on stdout:\n{stdout}");
    serde_json::from_slice(&std::fs::read(json).expect("the JSON was written")).unwrap()
}

fn operation<'a>(report: &'a Value, op: &str) -> &'a Value {
    report["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["op"] == op)
        .unwrap_or_else(|| panic!("no {op} in {report}"))
}

/// Some requests, all successful, percentiles in order.
fn assert_clean(report: &Value, op: &str) -> u64 {
    let o = operation(report, op);
    let requests = o["requests"].as_u64().unwrap();
    assert!(requests > 0, "{o}");
    assert_eq!(o["ok"], requests, "{o}");
    assert_eq!(o["errors"], serde_json::json!({}), "{o}");
    let l = &o["latency_us"];
    let p: Vec<u64> = ["min", "p50", "p90", "p99", "p999", "max"]
        .iter()
        .map(|k| l[k].as_u64().unwrap())
        .collect();
    assert!(p.windows(2).all(|w| w[0] <= w[1]), "{l}");
    assert!(p[0] > 0, "{l}");
    requests
}

fn driver_rows(server: &Server) -> u64 {
    let stats = server.get("/stats").json;
    stats["feature_views"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "driver_hourly_stats")
        .unwrap()["rows"]
        .as_u64()
        .unwrap()
}

#[test]
fn an_open_loop_read_run_preloads_reports_and_plots() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("out.svg");
    let url = server.url();
    let report = bench_json(
        &[
            "--target",
            &url,
            "--entities",
            "2000",
            "--duration",
            "2s",
            "--warmup",
            "0s",
            "--rate",
            "200",
            "--plot",
            svg.to_str().unwrap(),
        ],
        &dir.path().join("out.json"),
    );
    assert_eq!(report["preload"]["rows"], 2000);
    assert_eq!(report["preload"]["errors"], serde_json::json!({}));
    assert_eq!(driver_rows(&server), 2000);
    assert_eq!(report["setup"]["load"], "open");
    let requests = assert_clean(&report, "read");
    // The schedule is fixed: 200/s for 2 s is 400 requests at most, whatever the latency.
    assert!(requests <= 400, "{requests}");
    assert_eq!(report["unsent"], 0);
    let read = operation(&report, "read");
    assert_eq!(read["rows"], requests, "one entity per read");
    assert!(!read["timeline"].as_array().unwrap().is_empty());
    let svg = std::fs::read_to_string(svg).expect("the SVG was written");
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.contains("<polyline"));
}

#[test]
fn a_push_run_writes_batches_of_rows() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let report = bench_json(
        &[
            "--target",
            &url,
            "--workload",
            "push",
            "--no-preload",
            "--entities",
            "500",
            "--batch",
            "10",
            "--warmup",
            "0s",
            "--max-requests",
            "40",
        ],
        &dir.path().join("push.json"),
    );
    assert!(report["preload"].is_null());
    let requests = assert_clean(&report, "push");
    assert_eq!(requests, 40);
    assert_eq!(operation(&report, "push")["rows"], 400);
    assert_eq!(report["operations"].as_array().unwrap().len(), 1);
    let rows = driver_rows(&server);
    assert!(rows > 0 && rows <= 500, "{rows} rows for 500 entities");
}

#[test]
fn a_closed_loop_run_stops_at_the_request_cap() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let report = bench_json(
        &[
            "--target",
            &url,
            "--entities",
            "1000",
            "--preload-batch",
            "300",
            "--connections",
            "4",
            "--threads",
            "2",
            "--batch",
            "5",
            "--features",
            "2",
            "--zipf",
            "0.99",
            "--warmup",
            "0s",
            "--duration",
            "60s",
            "--max-requests",
            "150",
        ],
        &dir.path().join("closed.json"),
    );
    assert_eq!(report["preload"]["rows"], 1000);
    assert_eq!(
        report["preload"]["requests"], 4,
        "1000 rows in batches of 300"
    );
    assert_eq!(assert_clean(&report, "read"), 150);
    assert_eq!(operation(&report, "read")["rows"], 750);
    assert_eq!(report["setup"]["load"], "closed");
}

#[test]
fn a_freshness_run_sees_every_probe_value() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let report = bench_json(
        &[
            "--target",
            &url,
            "--read-target",
            &url,
            "--workload",
            "freshness",
            "--no-preload",
            "--connections",
            "1",
            "--warmup",
            "0s",
            "--max-requests",
            "25",
        ],
        &dir.path().join("fresh.json"),
    );
    assert_eq!(assert_clean(&report, "freshness"), 25);
    assert_eq!(assert_clean(&report, "push"), 25);
    assert!(assert_clean(&report, "read") >= 25);
    // The one probe worker wrote sequence numbers 1..=25 to its own driver id (2^48).
    let answer = server.read(
        &["driver_hourly_stats:avg_daily_trips"],
        serde_json::json!({"driver_id": [1_i64 << 48]}),
    );
    let (values, statuses, _) = column(&answer, "avg_daily_trips");
    assert_eq!(statuses, ["PRESENT"]);
    assert_eq!(values[0], 25);
}

#[test]
fn a_remote_target_is_refused_before_anything_is_sent() {
    // 192.0.2.1 is TEST-NET-1 (documentation only): never routed.
    let out = bench(&[
        "--target",
        "http://192.0.2.1:6566",
        "--no-preload",
        "--max-requests",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to load http://192.0.2.1:6566"),
        "{err}"
    );
    assert!(err.contains("--allow-remote"), "{err}");
    assert!(out.stdout.is_empty());

    let out = bench(&["--target", "ftp://127.0.0.1:6566"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("scheme 'ftp'"));
}

#[test]
fn the_native_protocol_preloads_reads_and_probes_freshness() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let common = [
        "--target",
        &url,
        "--protocol",
        "native",
        "--entities",
        "300",
        "--warmup",
        "0s",
        "--max-requests",
        "30",
    ];
    let report = bench_json(
        &[&common[..], &["--batch", "5"]].concat(),
        &dir.path().join("read.json"),
    );
    assert_eq!(assert_clean(&report, "read"), 30);
    assert_eq!(
        driver_rows(&server),
        300,
        "the native preload pushed every entity"
    );
    let report = bench_json(
        &[&common[..], &["--workload", "freshness", "--no-preload"]].concat(),
        &dir.path().join("fresh.json"),
    );
    assert!(assert_clean(&report, "freshness") > 0);
}

#[test]
fn several_targets_share_the_load() {
    let (a, b) = (Server::start(), Server::start());
    let dir = tempfile::tempdir().unwrap();
    let report = bench_json(
        &[
            "--target",
            &a.url(),
            "--target",
            &b.url(),
            "--entities",
            "100",
            "--workload",
            "push",
            "--no-preload",
            "--warmup",
            "0s",
            "--max-requests",
            "40",
        ],
        &dir.path().join("two.json"),
    );
    assert_eq!(assert_clean(&report, "push"), 40);
    assert_eq!(report["setup"]["targets"].as_array().unwrap().len(), 2);
    assert!(
        driver_rows(&a) > 0 && driver_rows(&b) > 0,
        "both nodes received pushes"
    );
}
