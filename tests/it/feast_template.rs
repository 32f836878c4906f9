//! Acceptance: Feast's own starter repo (`feast init`, Feast 0.67) served by featgrid as a new
//! user would: `feast apply`, `featgrid serve --feast-repo .`, `online_store: {type: remote}`.
//!
//! Checked now: featgrid starts on the template's registry, serves its Map, Json and Struct
//! fields, its label view and its on-demand views and services, answers the template's push and the workflow's
//! reads exactly as Feast's own SQLite store answers the same writes
//! (`feast_template/compare.py`), and reloads to zero views after `feast teardown`.
//!
//! The template's own `test_workflow.py`, unchanged, runs to its end against featgrid (the
//! second test below).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::feast_sdk::{feast_apply, feast_python, passes, run};
use crate::support::Server;

const DEADLINE: Duration = Duration::from_secs(180);

/// `feast init demo` in `dir`; answers the feature repo's path.
fn feast_init(python: &Path, dir: &Path) -> std::path::PathBuf {
    let mut init = Command::new(python.with_file_name("feast"));
    init.args(["init", "demo"]).current_dir(dir);
    let output = run(&mut init, DEADLINE).expect("running feast init");
    assert!(
        output.status.success(),
        "feast init failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir.join("demo/feature_repo")
}

/// A copy of `from` at `to` (the template's data files included).
fn copy_repo(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp -r");
    assert!(
        status.success(),
        "cp -r {} {}",
        from.display(),
        to.display()
    );
}

/// Points the template's online store (SQLite) at featgrid.
fn use_featgrid(repo: &Path, url: &str) {
    let file = repo.join("feature_store.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let sqlite = "    type: sqlite\n    path: data/online_store.db\n";
    assert!(text.contains(sqlite), "the template changed:\n{text}");
    let text = text.replace(sqlite, &format!("    type: remote\n    path: {url}\n"));
    std::fs::write(&file, text).unwrap();
}

fn names(items: &Value) -> Vec<String> {
    let mut names: Vec<String> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn feast_init_template_is_served_and_answers_as_feasts_own_store() {
    let Some(python) = feast_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = feast_init(&python, dir.path());
    let reference = dir.path().join("sqlite_repo");
    copy_repo(&repo, &reference);
    feast_apply(&python, &repo);
    feast_apply(&python, &reference);

    let server = Server::start_with(
        &[
            "--feast-repo",
            repo.to_str().unwrap(),
            "--python",
            python.to_str().unwrap(),
        ],
        &[],
    );
    let registry = server.get("/registry").json;
    assert_eq!(
        names(&registry["feature_views"]),
        [
            "driver_hourly_stats",
            "driver_hourly_stats_fresh",
            "driver_quality_labels"
        ],
        "{registry}"
    );
    let view = |name: &str| {
        registry["feature_views"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()
            .clone()
    };
    let stats = view("driver_hourly_stats");
    let types: Vec<String> = stats["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["name"].as_str().unwrap(),
                f["dtype"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            "conv_rate:float32",
            "acc_rate:float32",
            "avg_daily_trips:int64",
            "driver_metadata:map",
            "driver_config:json",
            "driver_profile:struct"
        ]
    );
    assert_eq!(
        (
            &stats["write_rule"],
            &stats["version"],
            &stats["enable_validation"]
        ),
        (
            &Value::from("newest_event"),
            &Value::from("latest"),
            &Value::from(true)
        )
    );
    let labels = view("driver_quality_labels");
    assert_eq!(
        (
            &labels["kind"],
            &labels["write_rule"],
            &labels["labeler_field"],
            &labels["conflict_policy"],
            &labels["source"]
        ),
        (
            &Value::from("label_view"),
            &Value::from("last_write"),
            &Value::from("labeler"),
            &Value::from("last_write_wins"),
            &Value::from("driver_quality_labels_push")
        )
    );
    // Everything is served, the on-demand views too (run with --python; without it their
    // reads say how to enable them).
    assert_eq!(registry["loaded_from"]["not_served"], serde_json::json!([]));
    let mut on_demand: Vec<&str> = registry["on_demand_views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    on_demand.sort();
    assert_eq!(
        on_demand,
        ["transformed_conv_rate", "transformed_conv_rate_fresh"]
    );

    use_featgrid(&repo, &server.url());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/feast_template/compare.py");
    let mut compare = Command::new(&python);
    compare.arg(script).arg(&repo).arg(&reference);
    passes(&mut compare, "template check: OK", &server.url());

    // `feast teardown` empties the registry file: featgrid reloads to zero views.
    let mut teardown = Command::new(python.with_file_name("feast"));
    teardown.arg("teardown").current_dir(&repo);
    let output = run(&mut teardown, DEADLINE).expect("running feast teardown");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    server.hangup();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let registry = server.get("/registry").json;
        if registry["feature_views"]
            .as_array()
            .is_some_and(Vec::is_empty)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never reloaded to zero views: {registry}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let gone = server.post(
        "/get-online-features",
        &serde_json::json!({"features": ["driver_hourly_stats:acc_rate"], "entities": {"driver_id": [1001]}}),
    );
    assert_eq!(gone.status, 404, "{}", gone.text);
}

/// The template's `test_workflow.py`, unchanged, against featgrid (served with `--python`
/// for its on-demand views): historical features (offline, Feast's own), `materialize` and
/// `materialize_incremental` (`POST /materialize*`), online reads of plain and on-demand
/// features with request data, the three feature services, a push, and `feast teardown`.
#[test]
fn feast_init_template_workflow_runs_unchanged() {
    let Some(python) = feast_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = feast_init(&python, dir.path());
    feast_apply(&python, &repo);
    let server = Server::start_with(
        &[
            "--feast-repo",
            repo.to_str().unwrap(),
            "--python",
            python.to_str().unwrap(),
        ],
        &[],
    );
    use_featgrid(&repo, &server.url());
    let bin = python.parent().unwrap().to_str().unwrap().to_string();
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
    let mut workflow = Command::new(&python);
    workflow
        .arg("test_workflow.py")
        .current_dir(&repo)
        .env("PATH", path);
    passes(&mut workflow, "--- Run feast teardown ---", &server.url());
}
