//! Feast 0.67's whole type system over HTTP (issue 21): every type pushed in the JSON forms
//! Feast's server takes (and the strings the SDK's remote store sends), answered as Feast's
//! server answers, the same after a replay; bad values refused naming column, row and type;
//! label views keeping the last write live, after a replay and on every cluster replica;
//! versioned references.

use serde_json::{json, Value};

use crate::support::{assert_error, column, data_dir, now_plus, now_rfc3339, Server};

const REGISTRY: &str = r#"
[[entities]]
name = "item"
join_key = "item_id"
value_type = "int64"

[[push_sources]]
name = "items_push"

[[push_sources]]
name = "labels_push"

[[feature_views]]
name = "items"
entities = ["item"]
source = "items_push"
fields = [
  { name = "meta", dtype = "map" },
  { name = "profile", dtype = "Struct({name: String})" },
  { name = "config", dtype = "json" },
  { name = "configs", dtype = "list<json>" },
  { name = "metas", dtype = "Array(Map)" },
  { name = "tags", dtype = "set<string>" },
  { name = "codes", dtype = "INT64_SET" },
  { name = "id", dtype = "uuid" },
  { name = "tid", dtype = "time_uuid" },
  { name = "price", dtype = "decimal" },
  { name = "seen_at", dtype = "zoned_timestamp" },
  { name = "scan", dtype = "pdf_bytes" },
  { name = "grid", dtype = "Array(Array(Int64))" },
  { name = "lookup", dtype = "scalar_map" },
]

[[feature_views]]
name = "labels"
kind = "label_view"
labeler_field = "labeler"
entities = ["item"]
source = "labels_push"
fields = [{ name = "score", dtype = "float64" }, { name = "labeler", dtype = "string" }]
"#;

/// The registry file, in `dir`; its path.
fn registry_in(dir: &std::path::Path) -> String {
    let path = dir.join("types.toml");
    std::fs::write(&path, REGISTRY).unwrap();
    path.to_str().unwrap().to_string()
}

const FIELDS: [&str; 14] = [
    "meta", "profile", "config", "configs", "metas", "tags", "codes", "id", "tid", "price",
    "seen_at", "scan", "grid", "lookup",
];

/// Row 0 in Feast's JSON forms, row 1 as the SDK's remote store sends a write (maps and
/// structs as JSON text).
fn rows() -> Value {
    let now = now_rfc3339();
    json!({
        "item_id": [1, 2],
        "event_timestamp": [now, now],
        "meta": [{"a": 1, "b": [1.5], "c": {"d": "x"}}, "{\"a\": 2}"],
        "profile": [{"name": "n"}, "{\"name\": \"m\"}"],
        "config": [{"k": [1, 2.0]}, "{\"max_distance_km\": 500}"],
        "configs": [[{"a": 1}, "[1]"], []],
        "metas": [[{"a": 1}], ["{\"a\": 2}"]],
        "tags": [["b", "a", "b"], []],
        "codes": [[3, 1, 3], [7]],
        "id": ["A0B1C2D3-E4F5-4789-8ABC-DEF012345678", null],
        "tid": ["a0b1c2d3-e4f5-1789-8abc-def012345678", null],
        "price": ["12.50", "-0.001"],
        "seen_at": ["2026-11-25T02:00:00-08:00", "2026-11-25T10:00:00Z"],
        "scan": ["aGk=", null],
        "grid": [[[1, 2], [], null], [[["a"]]]],
        "lookup": [null, null],
    })
}

/// What Feast's server answers for [`rows`] (feast/feature_server_utils.py `_value_to_native`).
fn expected() -> Vec<(&'static str, Value)> {
    vec![
        (
            "meta",
            json!([{"a": 1, "b": [1.5], "c": {"d": "x"}}, {"a": 2}]),
        ),
        ("profile", json!([{"name": "n"}, {"name": "m"}])),
        (
            "config",
            json!(["{\"k\": [1, 2.0]}", "{\"max_distance_km\": 500}"]),
        ),
        ("configs", json!([["{\"a\": 1}", "[1]"], []])),
        ("metas", json!([[{"a": 1}], [{"a": 2}]])),
        ("tags", json!([["b", "a"], []])),
        ("codes", json!([[3, 1], [7]])),
        ("id", json!(["a0b1c2d3-e4f5-4789-8abc-def012345678", null])),
        ("tid", json!(["a0b1c2d3-e4f5-1789-8abc-def012345678", null])),
        ("price", json!(["12.50", "-0.001"])),
        (
            "seen_at",
            json!(["2026-11-25T02:00:00-08:00", "2026-11-25T10:00:00+00:00"]),
        ),
        ("scan", json!(["aGk=", null])),
        ("grid", json!([[[1, 2], null, null], [[["a"]]]])),
        ("lookup", json!([null, null])),
    ]
}

fn read_items(server: &Server) -> Value {
    let features: Vec<String> = FIELDS.iter().map(|f| format!("items:{f}")).collect();
    let features: Vec<&str> = features.iter().map(String::as_str).collect();
    server.read(&features, json!({"item_id": [1, 2]}))
}

fn assert_feasts_answers(answer: &Value) {
    for (name, values) in expected() {
        assert_eq!(Value::from(column(answer, name).0), values, "{name}");
    }
}

#[test]
fn every_feast_type_is_answered_as_feast_answers_and_after_a_replay() {
    let (keep, dir) = data_dir();
    let registry = registry_in(keep.path());
    let env = [("FEATGRID_REGISTRY", registry.as_str())];
    let server = Server::start_in(&dir, &[], &env);
    let a = server.post(
        "/push",
        &json!({"push_source_name": "items_push", "df": rows(), "to": "online"}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_feasts_answers(&read_items(&server));
    // The SDK's write path: the same values through /write-to-online-store.
    let a = server.post(
        "/write-to-online-store",
        &json!({"feature_view_name": "items", "df": rows()}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_feasts_answers(&read_items(&server));
    let shown = server.get("/registry").json;
    assert_eq!(
        shown["feature_views"][0]["fields"][12]["dtype"],
        "value_list"
    );
    assert_eq!(shown["feature_views"][0]["write_rule"], "newest_event");
    server.kill9();

    let server = Server::start_in(&dir, &[], &env);
    assert_feasts_answers(&read_items(&server));
}

#[test]
fn a_bad_value_is_refused_naming_column_row_and_type() {
    let (keep, dir) = data_dir();
    let registry = registry_in(keep.path());
    let server = Server::start_in(&dir, &[], &[("FEATGRID_REGISTRY", registry.as_str())]);
    for (column, bad, says) in [
        (
            "id",
            json!("not-a-uuid"),
            "expected uuid: \"not-a-uuid\" is not a UUID",
        ),
        (
            "tid",
            json!("a0b1c2d3-e4f5-4789-8abc-def012345678"),
            "not a time-based (version 1) one",
        ),
        (
            "price",
            json!(12.5),
            "expected decimal: got 12.5: send a decimal as a string",
        ),
        (
            "meta",
            json!({"a": []}),
            "expected map: key 'a': an empty list has no type",
        ),
        ("meta", json!([1]), "expected map: got [1]: a JSON object"),
        (
            "config",
            json!("{oops"),
            "expected json: a string that is not JSON",
        ),
        ("codes", json!([1, "x"]), "expected int64, got \"x\""),
        (
            "seen_at",
            json!("2026-11-25T02:00:00 America/Los_Angeles"),
            "expected zoned_timestamp",
        ),
        (
            "lookup",
            json!({"1": 2}),
            "expected scalar_map: JSON object keys are strings",
        ),
    ] {
        let mut df = rows();
        df[column][1] = bad;
        let a = server.post(
            "/push",
            &json!({"push_source_name": "items_push", "df": df, "to": "online"}),
        );
        assert_error(&a, 400, "invalid_value");
        let message = a.json["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("column '{column}' row 1: ")) && message.contains(says),
            "{column}: {message}"
        );
    }
    // Nothing of a refused push was stored.
    let answer = server.read(&["items:price"], json!({"item_id": [1]}));
    assert_eq!(column(&answer, "price").1, ["NOT_FOUND"]);
}

/// Two pushes of item 1's label, the second one an hour older.
fn push_labels(server: &Server) {
    for (when, score, who) in [(now_plus(0), 0.9, "ann"), (now_plus(-3600), 0.2, "bob")] {
        let a = server.post(
            "/push",
            &json!({
                "push_source_name": "labels_push",
                "df": {"item_id": [1], "event_timestamp": [when.to_rfc3339()], "score": [score], "labeler": [who]},
                "to": "online",
            }),
        );
        assert_eq!(a.status, 200, "{}", a.text);
    }
}

fn labeler(server: &Server) -> Value {
    let answer = server.read(&["labels:labeler"], json!({"item_id": [1]}));
    column(&answer, "labeler").0[0].clone()
}

#[test]
fn a_label_view_keeps_the_last_write_live_and_after_a_replay() {
    let (keep, dir) = data_dir();
    let registry = registry_in(keep.path());
    let env = [("FEATGRID_REGISTRY", registry.as_str())];
    let server = Server::start_in(&dir, &[], &env);
    push_labels(&server);
    assert_eq!(labeler(&server), "bob");
    let shown = server.get("/registry").json;
    let labels = &shown["feature_views"][1];
    assert_eq!(
        (
            &labels["kind"],
            &labels["write_rule"],
            &labels["labeler_field"],
            &labels["conflict_policy"]
        ),
        (
            &json!("label_view"),
            &json!("last_write"),
            &json!("labeler"),
            &json!("last_write_wins")
        )
    );
    server.kill9();
    let server = Server::start_in(&dir, &[], &env);
    assert_eq!(labeler(&server), "bob");
}

#[test]
fn a_label_view_keeps_the_last_write_on_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let registry: &'static str = Box::leak(registry_in(dir.path()).into_boxed_str());
    let cluster = super::cluster::Cluster::start_with(
        3,
        &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]],
        &[("FEATGRID_REGISTRY", registry)],
        "127.0.0.1",
    );
    push_labels(cluster.node(1));
    // Each node's own replica (a follower applies the log a moment later).
    for i in 0..3 {
        let url = format!("{}/get-online-features", cluster.node(i).url());
        let body = json!({"features": ["labels:labeler"], "entities": {"item_id": [1]}});
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let answer: Value = ureq::post(&url)
                .set("x-featgrid-consistency", "local")
                .send_string(&body.to_string())
                .expect("read")
                .into_json()
                .unwrap();
            let value = column(&answer, "labeler").0[0].clone();
            if value == "bob" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {}: {value}",
                i + 1
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

#[test]
fn versioned_references_are_served_at_latest_and_refused_when_pinned() {
    let server = Server::start();
    let read = |feature: &str| {
        server.post(
            "/get-online-features",
            &json!({"features": [feature], "entities": {"driver_id": [1001]}, "include_feature_view_version_metadata": true}),
        )
    };
    let a = read("driver_hourly_stats@latest:conv_rate");
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.json["metadata"]["feature_view_metadata"],
        json!([{"name": "driver_hourly_stats"}])
    );
    let a = read("driver_hourly_stats@v2:conv_rate");
    assert_error(&a, 400, "versioned_reference_unsupported");
    assert!(
        a.json["message"]
            .as_str()
            .unwrap()
            .contains("use 'driver_hourly_stats:conv_rate'"),
        "{}",
        a.text
    );
}
