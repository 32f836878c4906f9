//! `featgrid serve --feast-repo`: a feature repo whose registry file the tests write with the
//! same protobuf messages featgrid decodes (the real Feast SDK writes it in `feast_sdk.rs`),
//! reloaded on SIGHUP or on its `cache_ttl_seconds` timer while serving.

use std::path::Path;
use std::time::{Duration, Instant};

use featgrid::registry::feast::proto::{self, value_type as vt};
use prost::Message as _;
use serde_json::{json, Value};

use crate::support::{column, data_dir, refused_start, Server};

/// `feature_store.yaml` for project `rides`, registry `data/registry.db`.
fn write_repo(dir: &Path, cache_ttl_seconds: u64) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let yaml = format!(
        "project: rides\nregistry:\n  path: data/registry.db\n  cache_ttl_seconds: {cache_ttl_seconds}\nprovider: local\nonline_store:\n  type: remote\n  path: http://127.0.0.1:6566\n"
    );
    std::fs::write(dir.join("feature_store.yaml"), yaml).unwrap();
}

/// A view of entity `rider` (string key `rider_id`) fed by push source `rides_push`.
fn view(name: &str, fields: &[(&str, i32)]) -> proto::FeatureView {
    let batch = proto::DataSource {
        r#type: 1,
        name: "rides_file".into(),
        project: "rides".into(),
        timestamp_field: "event_timestamp".into(),
        created_timestamp_column: "created".into(),
        ..Default::default()
    };
    proto::FeatureView {
        spec: Some(proto::FeatureViewSpec {
            name: name.into(),
            project: "rides".into(),
            entities: vec!["rider".into()],
            features: fields
                .iter()
                .map(|(name, value_type)| proto::FeatureSpec {
                    name: name.to_string(),
                    value_type: *value_type,
                })
                .collect(),
            online: true,
            ttl: Some(proto::Duration {
                seconds: 86_400,
                nanos: 0,
            }),
            stream_source: Some(proto::DataSource {
                r#type: proto::PUSH_SOURCE,
                name: "rides_push".into(),
                project: "rides".into(),
                batch_source: Some(Box::new(batch.clone())),
                ..Default::default()
            }),
            batch_source: Some(batch),
            ..Default::default()
        }),
        meta: None,
    }
}

/// Writes the registry file (in place, as Feast does) with `views` and version `version`.
fn write_registry(dir: &Path, version: &str, views: Vec<proto::FeatureView>) {
    let file = proto::Registry {
        entities: vec![proto::Entity {
            spec: Some(proto::EntitySpec {
                name: "rider".into(),
                join_key: "rider_id".into(),
                value_type: vt::STRING,
                project: "rides".into(),
                ..Default::default()
            }),
        }],
        feature_views: views,
        version_id: version.into(),
        ..Default::default()
    };
    std::fs::write(dir.join("data/registry.db"), file.encode_to_vec()).unwrap();
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// Waits (at most 30 s) until `GET /registry` shows `version`; answers it.
fn wait_for_version(server: &Server, version: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let registry = server.get("/registry").json;
        if registry["loaded_from"]["version_id"] == version {
            return registry;
        }
        assert!(
            Instant::now() < deadline,
            "the registry never reached version {version}: {registry}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn push(server: &Server, df: Value) {
    let a = server.post(
        "/push",
        &json!({"push_source_name": "rides_push", "df": df, "to": "online"}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
}

#[test]
fn a_view_added_by_feast_apply_is_served_without_restart_and_survives_kill_9() {
    let repo = tempfile::tempdir().unwrap();
    write_repo(repo.path(), 0); // 0: reload on SIGHUP only
    write_registry(
        repo.path(),
        "v1",
        vec![view("trips", &[("count", vt::INT64)])],
    );
    let (_keep, dir) = data_dir();
    let args = ["--feast-repo", repo.path().to_str().unwrap()];
    let server = Server::start_in(&dir, &args, &[]);
    let registry = server.get("/registry").json;
    assert_eq!(registry["loaded_from"]["kind"], "feast");
    assert_eq!(registry["loaded_from"]["project"], "rides");
    assert!(registry["loaded_from"]["path"]
        .as_str()
        .unwrap()
        .ends_with("data/registry.db"));
    // Always present, empty here.
    assert_eq!(registry["loaded_from"]["not_served"], json!([]));
    assert_eq!(registry["loaded_from"]["refused"], json!([]));
    push(
        &server,
        json!({"rider_id": ["r1"], "count": [3], "event_timestamp": [now()]}),
    );

    // `feast apply` adds a view fed by the same push source.
    write_registry(
        repo.path(),
        "v2",
        vec![
            view("trips", &[("count", vt::INT64)]),
            view(
                "ratings",
                &[("stars", vt::DOUBLE), ("badges", vt::STRING_LIST)],
            ),
        ],
    );
    server.hangup();
    let registry = wait_for_version(&server, "v2");
    assert_eq!(
        registry["push_sources"][0]["feature_views"],
        json!(["trips", "ratings"])
    );
    push(
        &server,
        json!({"rider_id": ["r2"], "count": [5], "stars": [4.5], "badges": [["early", "kind"]], "event_timestamp": [now()]}),
    );
    let read = |server: &Server| {
        server.read(
            &["trips:count", "ratings:stars", "ratings:badges"],
            json!({"rider_id": ["r1", "r2"]}),
        )
    };
    let check = |answer: &Value| {
        assert_eq!(column(answer, "count").0, [json!(3), json!(5)]);
        let (stars, statuses, _) = column(answer, "stars");
        assert_eq!(
            (stars, statuses),
            (
                vec![Value::Null, json!(4.5)],
                vec!["NOT_FOUND".to_string(), "PRESENT".into()]
            )
        );
        assert_eq!(column(answer, "badges").0[1], json!(["early", "kind"]));
    };
    check(&read(&server));

    // The log names the new view: a crash right now loses nothing.
    server.kill9();
    let server = Server::start_in(&dir, &args, &[]);
    check(&read(&server));
    // And so do snapshots.
    assert_eq!(server.post("/admin/snapshot", &json!({})).status, 200);
    server.kill9();
    let server = Server::start_in(&dir, &args, &[]);
    check(&read(&server));
}

#[test]
fn a_changed_view_is_refused_and_a_removed_one_is_unknown_after_a_timed_reload() {
    let repo = tempfile::tempdir().unwrap();
    write_repo(repo.path(), 1);
    write_registry(
        repo.path(),
        "v1",
        vec![
            view("trips", &[("count", vt::INT64)]),
            view("ratings", &[("stars", vt::DOUBLE)]),
        ],
    );
    let server = Server::start_with(&["--feast-repo", repo.path().to_str().unwrap()], &[]);
    push(
        &server,
        json!({"rider_id": ["r1"], "count": [3], "stars": [4.0], "event_timestamp": [now()]}),
    );

    // `count` becomes a string and `ratings` goes away; no SIGHUP: the 1 s timer finds it.
    write_registry(
        repo.path(),
        "v2",
        vec![view("trips", &[("count", vt::STRING)])],
    );
    let registry = wait_for_version(&server, "v2");
    let refused = registry["loaded_from"]["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{registry}");
    assert!(refused[0]
        .as_str()
        .unwrap()
        .starts_with("feature view 'trips': its join keys or fields changed"));
    assert_eq!(registry["feature_views"][0]["fields"][0]["dtype"], "int64");
    assert_eq!(registry["feature_views"].as_array().unwrap().len(), 1);

    // The loaded definition of trips keeps serving its rows.
    let answer = server.read(&["trips:count"], json!({"rider_id": ["r1"]}));
    assert_eq!(column(&answer, "count").0, [json!(3)]);
    // ratings is unknown, as if it had never been declared.
    let a = server.post(
        "/get-online-features",
        &json!({"features": ["ratings:stars"], "entities": {"rider_id": ["r1"]}}),
    );
    assert_eq!(a.status, 404, "{}", a.text);
    let a = server.post(
        "/write-to-online-store",
        &json!({"feature_view_name": "ratings", "df": {"rider_id": ["r1"], "stars": [1.0], "event_timestamp": [now()]}}),
    );
    assert_eq!(a.status, 404, "{}", a.text);
    // A push to the source now feeds trips alone (stars is an extra column, ignored).
    push(
        &server,
        json!({"rider_id": ["r1"], "count": [4], "stars": [1.0], "event_timestamp": [now()]}),
    );
    let answer = server.read(&["trips:count"], json!({"rider_id": ["r1"]}));
    assert_eq!(column(&answer, "count").0, [json!(4)]);
}

#[test]
fn registries_featgrid_cannot_read_are_refused_and_an_unservable_view_is_listed() {
    let (_keep, dir) = data_dir();
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(
        repo.path().join("feature_store.yaml"),
        "project: rides\nregistry:\n  registry_type: sql\n  path: postgresql://feast@db/feast\n",
    )
    .unwrap();
    let (status, stderr) = refused_start(&dir, &["--feast-repo", repo.path().to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("'sql' registries cannot be read by featgrid"),
        "{stderr}"
    );

    // One view featgrid cannot serve does not stop the others from being served.
    write_repo(repo.path(), 600);
    write_registry(
        repo.path(),
        "v1",
        vec![
            view("trips", &[("where", 19 /* NULL */)]),
            view("fares", &[("where", vt::MAP)]),
        ],
    );
    let server = Server::start_with(&["--feast-repo", repo.path().to_str().unwrap()], &[]);
    let registry = server.get("/registry").json;
    assert_eq!(
        registry["loaded_from"]["not_served"],
        json!(["feature view 'trips': field 'where': Feast type NULL is not a feature type"])
    );
    assert_eq!(registry["feature_views"][0]["name"], "fares");
    assert_eq!(registry["feature_views"][0]["fields"][0]["dtype"], "map");
    drop(server);

    let config = repo.path().join("featgrid.toml");
    std::fs::write(&config, "registry = \"registry.toml\"\n").unwrap();
    let (status, stderr) = refused_start(
        &dir,
        &[
            "--config",
            config.to_str().unwrap(),
            "--feast-repo",
            repo.path().to_str().unwrap(),
        ],
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("give one"), "{stderr}");
}
