//! Materialization without Feast: a TOML registry names a Parquet directory under
//! `[[batch_sources]]`, `featgrid materialize` (the command line) loads it, and sources
//! featgrid cannot read are refused with 501. The Parquet files are written here with the
//! `parquet` crate; rows are stamped relative to now.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use parquet::arrow::ArrowWriter;
use serde_json::json;

use crate::support::{Server, BIN};

const HOUR: i64 = 3_600_000_000;

/// A Parquet file of (driver_id, ts, rate_src, tags) rows.
fn write_file(path: &Path, rows: &[(i64, i64, f64, &[&str])]) {
    let mut tags = ListBuilder::new(StringBuilder::new());
    for (_, _, _, t) in rows {
        for tag in *t {
            tags.values().append_value(tag);
        }
        tags.append(true);
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "driver_id",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        ),
        (
            "ts",
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.1))
                    .with_timezone("UTC"),
            ),
        ),
        (
            "rate_src",
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ),
        ("tags", Arc::new(tags.finish())),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn registry(dir: &Path, rate_column: &str) -> std::path::PathBuf {
    let toml = format!(
        r#"
[[entities]]
name = "driver"
join_key = "driver_id"
value_type = "int64"

[[batch_sources]]
name = "trips_files"
path = "trips"
field_mapping = {{ {rate_column} = "rate" }}

[[feature_views]]
name = "trips"
entities = ["driver"]
source = "trips_files"
timestamp_field = "ts"
fields = [{{ name = "rate", dtype = "float64" }}, {{ name = "tags", dtype = "list<string>" }}]
"#
    );
    let path = dir.join("registry.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[test]
fn the_command_line_loads_a_parquet_directory_named_by_a_toml_registry() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp() * 1_000_000;
    std::fs::create_dir_all(dir.path().join("trips/day=1")).unwrap();
    write_file(
        &dir.path().join("trips/day=1/part-0.parquet"),
        &[
            (1, now - 3 * HOUR, 0.25, &["a"]),
            (2, now - 5 * HOUR, 0.5, &[]),
        ],
    );
    write_file(
        &dir.path().join("trips/part-1.parquet"),
        &[
            (1, now - 2 * HOUR, 0.75, &["b", "c"]),
            (3, now + HOUR, 1.0, &["late"]),
        ],
    );
    std::fs::write(dir.path().join("trips/_SUCCESS"), b"").unwrap();
    let registry = registry(dir.path(), "rate_src");
    let server = Server::start_with(&[], &[("FEATGRID_REGISTRY", registry.to_str().unwrap())]);
    let shown = server.get("/registry").json;
    assert_eq!(
        shown["batch_sources"][0]["path"],
        dir.path().join("trips").to_str().unwrap()
    );

    let iso = |micros: i64| featgrid::value::format_timestamp(micros);
    let output = Command::new(BIN)
        .args([
            "materialize",
            &iso(now - 24 * HOUR),
            &iso(now),
            "--url",
            &server.url(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("trips: 3 rows written") && stdout.contains("4 rows read in 2 files"),
        "{stdout}"
    );
    let answer = server.read(
        &["trips:rate", "trips:tags"],
        json!({"driver_id": [1, 2, 3]}),
    );
    let names = answer["metadata"]["feature_names"].as_array().unwrap();
    let col = |n: &str| &answer["results"][names.iter().position(|x| x == n).unwrap()];
    assert_eq!(col("rate")["values"], json!([0.75, 0.5, null]));
    assert_eq!(col("tags")["values"], json!([["b", "c"], [], null]));
    assert_eq!(col("rate")["statuses"][2], "NOT_FOUND");

    // Incremental: from the last end (now) onwards, driver 3's row.
    let output = Command::new(BIN)
        .args([
            "materialize",
            "--incremental",
            &iso(now + 2 * HOUR),
            "--url",
            &server.url(),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer = server.read(&["trips:rate"], json!({"driver_id": [3]}));
    assert_eq!(answer["results"][1]["values"], json!([1.0]));
}

#[test]
fn a_missing_column_is_a_422_naming_it_and_the_mapping() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("trips")).unwrap();
    write_file(&dir.path().join("trips/a.parquet"), &[(1, 0, 0.5, &[])]);
    let registry = registry(dir.path(), "no_such_column");
    let server = Server::start_with(&[], &[("FEATGRID_REGISTRY", registry.to_str().unwrap())]);
    let a = server.post("/materialize", &json!({"disable_event_timestamp": true}));
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (422, Some("offline_source_unreadable"))
    );
    let message = a.json["message"].as_str().unwrap();
    assert!(
        message.contains("no column 'no_such_column'") && message.contains("field_mapping"),
        "{message}"
    );
    let push_only = Server::start();
    let a = push_only.post(
        "/materialize-incremental",
        &json!({"end_ts": "2026-01-01T00:00:00"}),
    );
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (400, Some("nothing_to_materialize"))
    );
}

#[test]
fn a_warehouse_source_is_refused_with_501_naming_its_type() {
    use featgrid::registry::feast::proto;
    use prost::Message as _;
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("data")).unwrap();
    std::fs::write(
        repo.path().join("feature_store.yaml"),
        "project: wh\nregistry: data/registry.db\nprovider: local\n",
    )
    .unwrap();
    let bigquery = proto::DataSource {
        r#type: 2,
        name: "orders_table".into(),
        project: "wh".into(),
        timestamp_field: "ts".into(),
        data_source_class_type: "feast.infra.offline_stores.bigquery_source.BigQuerySource".into(),
        ..Default::default()
    };
    let file = proto::Registry {
        entities: vec![proto::Entity {
            spec: Some(proto::EntitySpec {
                name: "customer".into(),
                join_key: "customer_id".into(),
                value_type: proto::value_type::INT64,
                project: "wh".into(),
                ..Default::default()
            }),
        }],
        feature_views: vec![proto::FeatureView {
            spec: Some(proto::FeatureViewSpec {
                name: "orders".into(),
                project: "wh".into(),
                entities: vec!["customer".into()],
                features: vec![proto::FeatureSpec {
                    name: "total".into(),
                    value_type: proto::value_type::DOUBLE,
                }],
                online: true,
                batch_source: Some(bigquery),
                ..Default::default()
            }),
            meta: None,
        }],
        version_id: "v1".into(),
        ..Default::default()
    };
    std::fs::write(repo.path().join("data/registry.db"), file.encode_to_vec()).unwrap();
    let server = Server::start_with(&["--feast-repo", repo.path().to_str().unwrap()], &[]);
    let a = server.post(
        "/materialize-incremental",
        &json!({"end_ts": "2026-01-01T00:00:00"}),
    );
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (501, Some("materialize_unsupported_source"))
    );
    let message = a.json["message"].as_str().unwrap();
    assert!(
        message.contains("BigQuerySource")
            && message.contains("featgrid_feast.FeatgridOnlineStore"),
        "{message}"
    );
}

/// On a cluster node, materialized rows go through the cluster's write (each group's part
/// committed through its leader): every node reads them.
#[test]
fn a_cluster_node_materializes_through_the_groups() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("trips")).unwrap();
    let now = chrono::Utc::now().timestamp() * 1_000_000;
    let rows: Vec<(i64, i64, f64, &[&str])> = (0..200)
        .map(|i| (i, now - HOUR, i as f64 / 2.0, &["x"][..]))
        .collect();
    write_file(&dir.path().join("trips/a.parquet"), &rows);
    let registry = registry(dir.path(), "rate_src");
    let path: &'static str = Box::leak(registry.to_str().unwrap().to_string().into_boxed_str());
    let cluster = super::cluster::Cluster::start_with(
        3,
        &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]],
        &[("FEATGRID_REGISTRY", path)],
        "127.0.0.1",
    );
    let a = cluster
        .node(0)
        .post("/materialize", &json!({"disable_event_timestamp": true}));
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["feature_views"][0]["rows_written"], 200);
    let ids: Vec<i64> = (0..200).collect();
    let expected: Vec<f64> = ids.iter().map(|&i| i as f64 / 2.0).collect();
    for node in 0..3 {
        super::cluster::eventually("every node reads the materialized rows", || {
            let answer = cluster
                .node(node)
                .read(&["trips:rate"], json!({ "driver_id": ids }));
            answer["results"][1]["values"] == json!(expected)
        });
    }
}
