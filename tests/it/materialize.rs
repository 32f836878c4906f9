//! Materialization from a local Parquet FileSource: the real Feast CLI (`feast
//! materialize-incremental`, `feast materialize`) in the remote topology POSTs to featgrid,
//! which reads the file itself (`tests/it/feast_materialize/`: a view with ttl 1 day, a
//! field_mapping, event and created timestamps). Rows are stamped relative to now.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{json, Value};

use super::feast_sdk::{feast_apply, feast_python, run, set_online_store};
use crate::support::Server;

const VIEW_FEATURES: [&str; 3] = [
    "driver_stats:conv_rate",
    "driver_stats:trips",
    "driver_stats:city",
];

fn fixture(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/feast_materialize")
        .join(file)
}

/// The remote topology: Feast's client posts materialization to featgrid.
const REMOTE: &str = "remote";
/// The plugin: Feast materializes on the client and writes through featgrid_feast.
const PLUGIN: &str = "featgrid_feast.FeatgridOnlineStore";

/// A Feast repo (online store `online_type` at a placeholder URL, file offline store) with
/// `rows` in data/stats.parquet, applied.
fn repo(python: &Path, rows: &Value, online_type: &str) -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path();
    let yaml = format!("project: materialize_it\nregistry: data/registry.db\nprovider: local\noffline_store:\n  type: file\nonline_store:\n  type: {online_type}\n  path: http://127.0.0.1:6566\nentity_key_serialization_version: 3\n");
    std::fs::write(dir.join("feature_store.yaml"), yaml).unwrap();
    std::fs::copy(fixture("definitions.py"), dir.join("definitions.py")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    write_parquet(python, &dir.join("data/stats.parquet"), rows);
    feast_apply(python, dir);
    repo
}

fn write_parquet(python: &Path, out: &Path, rows: &Value) {
    let rows_file = out.with_extension("json");
    std::fs::write(&rows_file, rows.to_string()).unwrap();
    let mut command = Command::new(python);
    command
        .arg(fixture("write_parquet.py"))
        .arg(out)
        .stdin(std::fs::File::open(&rows_file).unwrap());
    let output = command.output().expect("write_parquet.py");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `feast <args>` in `repo`.
fn feast(python: &Path, repo: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(python.with_file_name("feast"));
    command.args(args).current_dir(repo);
    run(&mut command, Duration::from_secs(180)).expect("running feast")
}

fn succeeds(output: &Output) {
    assert!(
        output.status.success(),
        "feast failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn row(
    id: i64,
    event: DateTime<Utc>,
    created: DateTime<Utc>,
    conv: f32,
    trips: i64,
    city: &str,
) -> Value {
    json!({"driver_id": id, "event_timestamp": event.to_rfc3339(), "created": created.to_rfc3339(),
           "conv": conv, "trips": trips, "city": city})
}

/// Per driver: (conv_rate, trips, city, event time), or None when NOT_FOUND (a row older than
/// the ttl is found, OUTSIDE_MAX_AGE).
fn read(server: &Server, ids: &[i64]) -> Vec<Option<(f64, i64, String, String)>> {
    let answer = server.read(&VIEW_FEATURES, json!({"driver_id": ids}));
    let names = answer["metadata"]["feature_names"].as_array().unwrap();
    let column = |name: &str| {
        let i = names.iter().position(|n| n == name).unwrap();
        answer["results"][i].clone()
    };
    let (conv, trips, city) = (column("conv_rate"), column("trips"), column("city"));
    (0..ids.len())
        .map(|j| {
            (conv["statuses"][j] != "NOT_FOUND").then(|| {
                (
                    conv["values"][j].as_f64().unwrap(),
                    trips["values"][j].as_i64().unwrap(),
                    city["values"][j].as_str().unwrap().to_string(),
                    conv["event_timestamps"][j].as_str().unwrap().to_string(),
                )
            })
        })
        .collect()
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[test]
fn feast_materialize_and_materialize_incremental_load_the_newest_rows_of_the_interval() {
    let Some(python) = feast_python() else {
        return;
    };
    let now = Utc::now().trunc_subsecs(0);
    let hours = chrono::Duration::hours;
    let end = now - chrono::Duration::minutes(30);
    let rows = json!([
        // Driver 1: two rows in the first window; the newer one wins. One three days old.
        row(1, now - hours(3), now - hours(3), 0.25, 1, "Paris"),
        row(1, now - hours(2), now - hours(2), 0.5, 2, "Lyon"),
        row(1, now - hours(72), now - hours(72), 0.75, 9, "Old"),
        // Driver 2: the same event time twice; the later created wins.
        row(2, now - hours(2), now - hours(2), 0.125, 3, "Nice"),
        row(2, now - hours(2), now - hours(1), 0.375, 4, "Nice"),
        // Driver 3: after the end; driver 4: older than the ttl (1 day) before the end.
        row(3, now, now, 1.0, 5, "Future"),
        row(4, now - hours(72), now - hours(72), 2.0, 6, "Lille"),
    ]);
    let repo = repo(&python, &rows, REMOTE);
    let server = Server::start_with(&["--feast-repo", repo.path().to_str().unwrap()], &[]);
    set_online_store(repo.path(), &server.url());

    succeeds(&feast(
        &python,
        repo.path(),
        &["materialize-incremental", &iso(end)],
    ));
    let got = read(&server, &[1, 2, 3, 4]);
    assert_eq!(got[0], Some((0.5, 2, "Lyon".into(), rfc(now - hours(2)))));
    assert_eq!(got[1], Some((0.375, 4, "Nice".into(), rfc(now - hours(2)))));
    assert_eq!(got[2], None, "a row after end_ts is not loaded");
    assert_eq!(got[3], None, "a row older than end - ttl is not loaded");
    let status = server.get("/materialize").json;
    let view = &status["views"]["driver_stats"];
    assert_eq!(view["state"], "idle");
    assert_eq!(view["last_end"], rfc(end));
    assert_eq!(view["intervals"][0]["start"], rfc(end - hours(24)));
    assert_eq!(view["intervals"][0]["rows"], 4);

    // An older window: driver 4 appears; driver 1's older row does not overwrite the newer.
    succeeds(&feast(
        &python,
        repo.path(),
        &["materialize", &iso(now - hours(96)), &iso(now - hours(48))],
    ));
    let got = read(&server, &[1, 4]);
    assert_eq!(got[0], Some((0.5, 2, "Lyon".into(), rfc(now - hours(2)))));
    assert_eq!(got[1], Some((2.0, 6, "Lille".into(), rfc(now - hours(72)))));

    // The next incremental run starts at the last end: driver 3's row, now in the interval.
    succeeds(&feast(
        &python,
        repo.path(),
        &["materialize-incremental", &iso(now + hours(1))],
    ));
    assert_eq!(
        read(&server, &[3])[0],
        Some((1.0, 5, "Future".into(), rfc(now)))
    );
    let intervals = &server.get("/materialize").json["views"]["driver_stats"]["intervals"];
    assert_eq!(intervals[2]["start"], rfc(end));
    assert_eq!(intervals[2]["rows"], 1);

    // An unknown view: the CLI fails, printing featgrid's 404.
    let unknown = feast(
        &python,
        repo.path(),
        &["materialize-incremental", "--views", "nope", &iso(now)],
    );
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success());
    assert!(
        stderr.contains("404") && stderr.contains("nope"),
        "{stderr}"
    );
}

#[test]
fn a_bad_request_is_a_clear_4xx_and_async_runs_answer_202_then_409_until_done() {
    let Some(python) = feast_python() else {
        return;
    };
    let now = Utc::now().trunc_subsecs(0);
    let rows = json!([row(
        7,
        now - chrono::Duration::hours(1),
        now,
        0.5,
        1,
        "Paris"
    )]);
    let repo = repo(&python, &rows, REMOTE);
    let server = Server::start_with(
        &["--feast-repo", repo.path().to_str().unwrap()],
        &[("FEATGRID_TEST_HOOKS", "1")],
    );
    let bad = server.post(
        "/materialize",
        &json!({"start_ts": "yesterday", "end_ts": iso(now)}),
    );
    assert_eq!(
        (bad.status, bad.json["code"].as_str()),
        (400, Some("invalid_timestamp"))
    );
    assert!(bad.json["message"].as_str().unwrap().contains("yesterday"));
    let backwards = server.post(
        "/materialize",
        &json!({"start_ts": iso(now), "end_ts": iso(now - chrono::Duration::hours(1))}),
    );
    assert_eq!(
        (backwards.status, backwards.json["code"].as_str()),
        (400, Some("invalid_interval"))
    );
    let unknown = server.post(
        "/materialize-incremental",
        &json!({"end_ts": iso(now), "feature_views": ["nope"]}),
    );
    assert_eq!(
        (unknown.status, unknown.json["code"].as_str()),
        (404, Some("unknown_feature_view"))
    );
    let missing = server.post("/materialize-incremental", &json!({"feature_views": null}));
    assert_eq!(missing.status, 400, "{}", missing.text);

    // Shards held for 2 s: the run cannot finish before the second request.
    assert_eq!(
        server.post("/admin/test/stall?ms=2000", &json!({})).status,
        200
    );
    let body = json!({"end_ts": iso(now), "feature_views": null});
    let accepted = server.post("/materialize-incremental?async=true", &body);
    assert_eq!(accepted.status, 202, "{}", accepted.text);
    assert_eq!(
        accepted.json,
        json!({"status": "accepted", "feature_views": ["driver_stats"]})
    );
    let conflict = server.post("/materialize-incremental?async=true", &body);
    assert_eq!(
        (conflict.status, conflict.json["code"].as_str()),
        (409, Some("materialize_in_progress"))
    );
    assert!(conflict.json["message"]
        .as_str()
        .unwrap()
        .contains("force=true"));
    assert_eq!(
        server.get("/materialize").json["views"]["driver_stats"]["state"],
        "materializing"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.get("/materialize").json["views"]["driver_stats"]["state"] != "idle" {
        assert!(Instant::now() < deadline, "the async run never finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = read(&server, &[7]);
    assert_eq!(
        got[0],
        Some((
            0.5,
            1,
            "Paris".into(),
            rfc(now - chrono::Duration::hours(1))
        ))
    );
    assert_eq!(
        server.get("/materialize").json["views"]["driver_stats"]["intervals"][0]["rows"],
        1
    );
}

/// Installs `python/featgrid-feast` into the venv: without dependencies (feast is there) and
/// without build isolation, so the only download is `wheel`, once, for setuptools' wheel build.
/// (benches/scripts/materialize.sh installs it the same way.)
fn install_plugin(python: &Path) {
    let pip = |args: &[&str]| {
        let mut pip = Command::new(python);
        pip.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(args);
        let output = run(&mut pip, Duration::from_secs(300)).expect("pip install");
        assert!(
            output.status.success(),
            "pip install {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let has_wheel = Command::new(python)
        .args(["-c", "import wheel"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_wheel {
        pip(&["--retries", "1", "--timeout", "20", "wheel"]);
    }
    // From a copy: pip's in-tree build leaves build/ and *.egg-info behind.
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/featgrid-feast");
    let copy = tempfile::tempdir().unwrap();
    let package = copy.path().join("featgrid-feast");
    std::fs::create_dir_all(package.join("featgrid_feast")).unwrap();
    for file in [
        "pyproject.toml",
        "README.md",
        "featgrid_feast/__init__.py",
        "featgrid_feast/online_store.py",
    ] {
        std::fs::copy(sources.join(file), package.join(file)).unwrap();
    }
    pip(&[
        "--no-deps",
        "--no-build-isolation",
        "--force-reinstall",
        package.to_str().unwrap(),
    ]);
}

/// The featgrid_feast plugin: `feast materialize` runs in Feast (its file offline store and
/// dedup), writing through FeatgridOnlineStore.online_write_batch; the SDK reads back through
/// online_read and computes the on-demand view `boosted` in the client.
#[test]
fn the_plugin_lets_feast_materialize_on_the_client_and_compute_on_demand_views() {
    let Some(python) = feast_python() else {
        return;
    };
    install_plugin(&python);
    let now = Utc::now().trunc_subsecs(0);
    let hours = chrono::Duration::hours;
    let rows = json!([
        row(1, now - hours(3), now - hours(3), 0.25, 1, "Paris"),
        row(1, now - hours(2), now - hours(2), 0.5, 2, "Lyon"),
        row(2, now - hours(2), now - hours(2), 0.125, 3, "Nice"),
        row(3, now + hours(1), now, 1.0, 5, "Future"),
    ]);
    let repo = repo(&python, &rows, PLUGIN);
    let server = Server::start_with(&["--feast-repo", repo.path().to_str().unwrap()], &[]);
    set_online_store(repo.path(), &server.url());
    succeeds(&feast(
        &python,
        repo.path(),
        &["materialize", &iso(now - hours(24)), &iso(now)],
    ));
    let got = read(&server, &[1, 2, 3]);
    assert_eq!(got[0], Some((0.5, 2, "Lyon".into(), rfc(now - hours(2)))));
    assert_eq!(got[1], Some((0.125, 3, "Nice".into(), rfc(now - hours(2)))));
    assert_eq!(got[2], None);
    let mut check = Command::new(&python);
    check
        .arg(fixture("plugin_check.py"))
        .arg("--repo")
        .arg(repo.path());
    let output = run(&mut check, Duration::from_secs(180)).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("plugin check: OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
