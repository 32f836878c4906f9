//! On-demand feature views with the real Feast SDK (`tests/it/feast_ondemand/`): python-mode,
//! pandas-mode (with a request source), singleton and write-time views, `feast apply`,
//! `featgrid serve --feast-repo . --python <the venv's python>`; `check.py` compares featgrid's
//! answers with `feast serve`'s on the same repo and data (raw JSON and through the SDK's
//! remote store), writes a write-time view and reads it back, and checks that a transformation
//! that raises answers a clear error while the server goes on.
//!
//! Also: a worker past its deadline or whose process dies answers 504 / 502 naming the view
//! and is restarted; without `--python` the repo loads, plain reads work and a read of an
//! on-demand view answers 501 saying how to enable it. Each test skips, saying why, when the
//! Feast venv cannot be set up.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::feast_sdk::{feast_apply, feast_python, passes, set_online_store};
use crate::support::Server;

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/feast_ondemand")
}

/// A copy of the repo with `feast apply` run in it; `online_store` is featgrid's remote store
/// (pointed at the server later) or, with `sqlite`, Feast's own SQLite store.
fn applied_repo(python: &Path, sqlite: bool) -> tempfile::TempDir {
    let repo = tempfile::tempdir().expect("temporary repo");
    std::fs::copy(
        source_dir().join("definitions.py"),
        repo.path().join("definitions.py"),
    )
    .expect("copy definitions.py");
    let mut yaml = std::fs::read_to_string(source_dir().join("feature_store.yaml")).unwrap();
    if sqlite {
        yaml = yaml.replace(
            "  type: remote\n  path: http://127.0.0.1:6566\n",
            "  type: sqlite\n  path: data/online.db\n",
        );
        assert!(
            yaml.contains("sqlite"),
            "feature_store.yaml changed:\n{yaml}"
        );
    }
    std::fs::write(repo.path().join("feature_store.yaml"), yaml).unwrap();
    std::fs::create_dir(repo.path().join("data")).unwrap();
    feast_apply(python, repo.path());
    repo
}

fn serve(repo: &Path, python: Option<&Path>, env: &[(&str, &str)]) -> Server {
    let mut args = vec!["--feast-repo", repo.to_str().unwrap()];
    if let Some(python) = python {
        args.extend(["--python", python.to_str().unwrap()]);
    }
    Server::start_with(&args, env)
}

fn push(server: &Server, ids: &[i64]) {
    let n = ids.len();
    let a = server.post(
        "/push",
        &json!({"push_source_name": "driver_stats_push", "df": {
            "driver_id": ids, "conv_rate": vec![0.5; n], "acc_rate": vec![0.25; n],
            "avg_daily_trips": vec![3; n], "city": vec!["Rome"; n],
            "event_timestamp": vec!["2026-11-25T10:00:00"; n]}}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
}

fn read(server: &Server, features: &[&str], ids: &[i64]) -> crate::support::Answer {
    server.post(
        "/get-online-features",
        &json!({"features": features, "entities": {"driver_id": ids}}),
    )
}

#[test]
fn on_demand_views_answer_as_feast_serve_does_through_the_sdk() {
    let Some(python) = feast_python() else {
        return; // feast_python said why
    };
    let repo = applied_repo(&python, false);
    let reference = applied_repo(&python, true);
    let server = serve(repo.path(), Some(&python), &[]);
    let url = server.url();
    set_online_store(repo.path(), &url);
    let registry = server.get("/registry").json;
    let names: Vec<&str> = registry["on_demand_views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for view in [
        "driver_python",
        "transformed_conv_rate",
        "driver_singleton",
        "stored_doubled",
    ] {
        assert!(names.contains(&view), "{names:?}");
    }
    assert_eq!(registry["loaded_from"]["not_served"], json!([]));
    let mut check = Command::new(&python);
    check
        .arg(source_dir().join("check.py"))
        .args(["--featgrid", url.as_str()])
        .arg("--featgrid-repo")
        .arg(repo.path())
        .arg("--feast-repo")
        .arg(reference.path());
    passes(&mut check, "feast ondemand check: OK", &url);
    // The server went on after the transformation that raised.
    push(&server, &[5]);
    let a = read(&server, &["driver_python:conv_plus_acc"], &[5]);
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["results"][1]["values"], json!([0.75]));
    // A read of three on-demand views (python, pandas with request data, singleton) is one
    // round trip to a worker.
    let before = round_trips(&server);
    let a = server.post(
        "/get-online-features",
        &json!({"features": ["driver_python:conv_plus_acc", "transformed_conv_rate:conv_rate_plus_val1", "driver_singleton:trips_doubled"],
                "entities": {"driver_id": [5, 6], "val_to_add": [1, 2], "val_to_add_2": [3, 4]}}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let values: Vec<&Value> = (1..4).map(|i| &a.json["results"][i]["values"]).collect();
    assert_eq!(
        values,
        [&json!([0.75, null]), &json!([1.5, null]), &json!([6, null])],
        "{}",
        a.text
    );
    assert_eq!(round_trips(&server), before + 1);
}

/// `featgrid_ondemand_round_trips_total` from `/metrics`.
fn round_trips(server: &Server) -> u64 {
    counter(server, "featgrid_ondemand_round_trips_total")
}

/// A counter's value from `/metrics`.
fn counter(server: &Server, name: &str) -> u64 {
    let text = server.get("/metrics").text;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// The test repo applied, served by featgrid with the Feast venv's Python and `env`; `None`
/// (after [`feast_python`] said why) when the venv cannot be set up.
fn served_with_python(env: &[(&str, &str)]) -> Option<(tempfile::TempDir, Server)> {
    let python = feast_python()?;
    let repo = applied_repo(&python, false);
    let server = serve(repo.path(), Some(&python), env);
    Some((repo, server))
}

#[test]
fn a_worker_past_its_deadline_or_dead_is_restarted_and_the_read_names_the_view() {
    let Some((_repo, server)) = served_with_python(&[
        ("FEATGRID_PYTHON_TIMEOUT_MS", "3000"),
        ("FEATGRID_PYTHON_WORKERS", "1"),
        ("FEATGRID_PYTHON_QUEUE", "1"),
    ]) else {
        return;
    };
    push(&server, &[1, 777, 888]);
    // The first read waits for the worker to start (Feast's import), then answers.
    let a = read(&server, &["hazards:hazard"], &[1]);
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["results"][1]["values"], json!([1.5]));

    let hung = read(&server, &["hazards:hazard"], &[777]);
    assert_eq!(hung.status, 504, "{}", hung.text);
    assert_eq!(hung.json["code"], "ondemand_timeout");
    assert!(hung.text.contains("'hazards'"), "{}", hung.text);

    let after = read(&server, &["hazards:hazard"], &[1]);
    assert_eq!(after.status, 200, "{}", after.text);

    // One worker, one place in the queue: while a hanging read runs, of two more sent at once
    // one waits in the queue and the other is refused at once with 503.
    let first = hanging_read(&server);
    // Time for the idle worker to take the first read from the queue.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let more = [hanging_read(&server), hanging_read(&server)];
    let answers: Vec<(u16, String)> = std::iter::once(first)
        .chain(more)
        .map(|r| r.join().unwrap())
        .collect();
    let count = |status, code| {
        answers
            .iter()
            .filter(|a| a.0 == status && a.1 == code)
            .count()
    };
    let (busy, timed_out) = (count(503, "ondemand_busy"), count(504, "ondemand_timeout"));
    // The first ran past its deadline; the one queued behind it ran past its own too, or (had
    // it waited longer than the deadline) was refused when its turn came.
    assert_eq!(
        answers[0],
        (504, "ondemand_timeout".to_string()),
        "{answers:?}"
    );
    assert!(busy >= 1 && busy + timed_out == 3, "{answers:?}");

    let died = read(&server, &["hazards:hazard"], &[888]);
    assert_eq!(died.status, 502, "{}", died.text);
    assert_eq!(died.json["code"], "ondemand_worker_failed");
    assert!(died.text.contains("'hazards'"), "{}", died.text);

    let again = read(&server, &["hazards:hazard", "driver_stats:city"], &[1]);
    assert_eq!(again.status, 200, "{}", again.text);
    let names = &again.json["metadata"]["feature_names"];
    assert_eq!(names, &json!(["driver_id", "city", "hazard"]));
}

/// A read of driver 777 from `hazards` (it hangs) on a thread, on a client of its own (a fresh
/// connection): its status and error code.
fn hanging_read(server: &Server) -> std::thread::JoinHandle<(u16, String)> {
    let url = format!("{}/get-online-features", server.url());
    std::thread::spawn(move || {
        let body = r#"{"features": ["hazards:hazard"], "entities": {"driver_id": [777]}}"#;
        let (status, json) = post_json(&url, body);
        (status, json["code"].as_str().unwrap_or("").to_string())
    })
}

/// Posts a JSON body on a fresh client: the status and the answer's JSON.
fn post_json(url: &str, body: &str) -> (u16, Value) {
    let answer = ureq::AgentBuilder::new()
        .build()
        .post(url)
        .set("Content-Type", "application/json")
        .send_string(body);
    let (status, text) = match answer {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    };
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// Reads sent at once share writes to a worker (one worker here, so they queue): every read is
/// still answered from its own rows, and a transformation that raises for one read fails that
/// read only, not the others sent with it.
#[test]
fn concurrent_reads_share_batches_and_each_gets_its_own_answer() {
    let Some((_repo, server)) = served_with_python(&[("FEATGRID_PYTHON_WORKERS", "1")]) else {
        return;
    };
    let ids: Vec<i64> = (1..=40).chain([666]).collect();
    let n = ids.len();
    let a = server.post(
        "/push",
        &json!({"push_source_name": "driver_stats_push", "df": {
            "driver_id": ids, "conv_rate": ids.iter().map(|&i| i as f64).collect::<Vec<_>>(),
            "acc_rate": vec![0.5; n], "avg_daily_trips": vec![3; n], "city": vec!["Rome"; n],
            "event_timestamp": vec!["2026-11-25T10:00:00"; n]}}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    // The worker has started (Feast imported) before the reads race.
    let warm = read(&server, &["driver_python:conv_plus_acc"], &[1]);
    assert_eq!(warm.status, 200, "{}", warm.text);
    let (trips_before, batches_before) = (
        round_trips(&server),
        counter(&server, "featgrid_ondemand_batches_total"),
    );
    let url = format!("{}/get-online-features", server.url());
    let threads: Vec<_> = (0..16i64)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for round in 0..10i64 {
                    // Thread 0 asks for driver 666 through `fragile` every other round.
                    let (view, id) = match (t, round % 2) {
                        (0, 0) => ("fragile:fragile", 666),
                        _ => ("driver_python:conv_plus_acc", 1 + (t * 10 + round) % 40),
                    };
                    let body = json!({"features": [view], "entities": {"driver_id": [id]}});
                    let (status, answer) = post_json(&url, &body.to_string());
                    let fine = match id {
                        666 => status == 500 && answer["code"] == "transformation_failed",
                        _ => {
                            status == 200
                                && answer["results"][1]["values"] == json!([id as f64 + 0.5])
                        }
                    };
                    if !fine {
                        failures.push(format!("driver {id}: {status} {answer}"));
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    let trips = round_trips(&server) - trips_before;
    let shared = counter(&server, "featgrid_ondemand_batches_total") - batches_before;
    assert_eq!(trips, 160);
    assert!(
        shared < trips,
        "{shared} batches for {trips} reads: none shared"
    );
}

#[test]
fn without_python_the_repo_loads_and_on_demand_reads_say_how_to_enable_them_or_why_it_fails() {
    let Some(python) = feast_python() else {
        return;
    };
    let repo = applied_repo(&python, false);
    let server = serve(repo.path(), None, &[]);
    push(&server, &[1]);
    let plain = read(&server, &["driver_stats:conv_rate"], &[1]);
    assert_eq!(plain.status, 200, "{}", plain.text);
    assert_eq!(plain.json["results"][1]["values"], json!([0.5]));
    let a = read(&server, &["driver_python:conv_plus_acc"], &[1]);
    assert_eq!(a.status, 501, "{}", a.text);
    assert_eq!(a.json["code"], "ondemand_not_enabled");
    let message = a.json["message"].as_str().unwrap();
    assert!(
        message.contains("'driver_python'") && message.contains("--python"),
        "{message}"
    );
    let service = server.post(
        "/get-online-features",
        &json!({"feature_service": "driver_service", "entities": {"driver_id": [1], "val_to_add": [1], "val_to_add_2": [2]}}),
    );
    assert_eq!(service.status, 501, "{}", service.text);
    // A write-time view's stored rows are read without Python.
    let stored = server.post(
        "/write-to-online-store",
        &json!({"feature_view_name": "stored_doubled", "df": {"driver_id": [1], "conv_rate_doubled": [3.0]}, "transform_on_write": false}),
    );
    assert_eq!(stored.status, 200, "{}", stored.text);
    let a = read(&server, &["stored_doubled:conv_rate_doubled"], &[1]);
    assert_eq!(a.json["results"][1]["values"], json!([3.0]), "{}", a.text);
    let v: Value = server.get("/registry").json;
    assert!(v["on_demand_views"]
        .as_array()
        .is_some_and(|v| v.len() >= 5));
    // The stored rows pushed above were not touched by the push (no Python to compute them).
    push(&server, &[1]);
    let a = read(&server, &["stored_doubled:conv_rate_doubled"], &[1]);
    assert_eq!(a.json["results"][1]["values"], json!([3.0]), "{}", a.text);

    // A python that cannot start: reads of on-demand views answer 503 at once, naming the view
    // and why; plain reads go on.
    let broken = serve(repo.path(), Some(Path::new("/nonexistent/python")), &[]);
    // A push feeding a write-time view stores its rows, and says the view was not updated.
    let a = broken.post(
        "/push",
        &json!({"push_source_name": "driver_stats_push", "df": {
            "driver_id": [1], "conv_rate": [0.5], "acc_rate": [0.25], "avg_daily_trips": [3],
            "city": ["Rome"], "event_timestamp": ["2026-11-25T10:00:00"]}}),
    );
    assert_eq!(a.status, 503, "{}", a.text);
    assert!(
        a.text.contains("'stored_doubled'") && a.text.contains("the pushed rows were stored"),
        "{}",
        a.text
    );
    let a = read(&broken, &["driver_python:conv_plus_acc"], &[1]);
    assert_eq!(a.status, 503, "{}", a.text);
    assert_eq!(a.json["code"], "ondemand_unavailable", "{}", a.text);
    assert!(
        a.text.contains("'driver_python'") && a.text.contains("/nonexistent/python"),
        "{}",
        a.text
    );
    let plain = read(&broken, &["driver_stats:conv_rate"], &[1]);
    assert_eq!(plain.status, 200, "{}", plain.text);
    assert_eq!(plain.json["results"][1]["values"], json!([0.5]));
}
