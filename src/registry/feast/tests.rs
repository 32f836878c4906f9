//! Registry files are built here with the same messages featgrid decodes with; that they
//! match what Feast writes is checked against the real SDK in `tests/it/feast_repo.rs`.

use std::time::Duration;

use prost::Message as _;

use super::proto::{self, value_type as vt};
use super::*;

fn repo(dir: &Path) -> FeastRepo {
    FeastRepo {
        dir: dir.to_path_buf(),
        project: "shop".into(),
        registry_path: dir.join("data/registry.db"),
        cache_ttl: Duration::from_secs(600),
    }
}

fn yaml(text: &str) -> Result<FeastRepo, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feature_store.yaml"), text).unwrap();
    FeastRepo::open(dir.path()).map_err(|e| e.to_string())
}

#[test]
fn feature_store_yaml_gives_project_registry_and_ttl() {
    let r = yaml("project: shop\nregistry: data/registry.db\nprovider: local\n").unwrap();
    assert_eq!(r.project, "shop");
    assert!(r.registry_path.ends_with("data/registry.db"));
    assert_eq!(r.cache_ttl, Duration::from_secs(600));

    let r = yaml("project: shop\nregistry:\n  registry_type: file\n  path: /abs/reg.db\n  cache_ttl_seconds: 5\nonline_store:\n  type: remote\n").unwrap();
    assert_eq!(r.registry_path, Path::new("/abs/reg.db"));
    assert_eq!(r.cache_ttl, Duration::from_secs(5));

    std::env::set_var("FEATGRID_TEST_FEAST_PROJECT", "from_env");
    let r = yaml("project: ${FEATGRID_TEST_FEAST_PROJECT}\nregistry: r.db\n").unwrap();
    assert_eq!(r.project, "from_env");
}

#[test]
fn registries_featgrid_cannot_read_are_refused_by_name() {
    let e = yaml("project: shop\nregistry:\n  registry_type: sql\n  path: postgresql://u@h/db\n")
        .unwrap_err();
    assert!(
        e.contains("registry.registry_type: 'sql' registries cannot be read"),
        "{e}"
    );
    let e =
        yaml("project: shop\nregistry:\n  registry_type: remote\n  path: h:6570\n").unwrap_err();
    assert!(e.contains("'remote' registries cannot be read"), "{e}");
    let e = yaml("project: shop\nregistry: s3://bucket/registry.db\n").unwrap_err();
    assert!(e.contains("is a s3:// registry"), "{e}");
    let e = yaml("project: shop\nregistry: gs://bucket/registry.db\n").unwrap_err();
    assert!(e.contains("is a gs:// registry"), "{e}");
    let e = yaml("registry: r.db\n").unwrap_err();
    assert!(e.contains("feature_store.yaml: project: missing"), "{e}");
    let e = yaml("project: shop\n").unwrap_err();
    assert!(e.contains("registry: missing"), "{e}");
    let e = yaml("project: shop\nregistry:\n  path: r.db\n  cache_ttl_seconds: -1\n").unwrap_err();
    assert!(e.contains("cache_ttl_seconds: -1 is negative"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let e = FeastRepo::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("cannot read"), "{e}");
}

fn feature(name: &str, value_type: i32) -> proto::FeatureSpec {
    proto::FeatureSpec {
        name: name.into(),
        value_type,
    }
}

fn entity(name: &str, join_key: &str, value_type: i32, project: &str) -> proto::Entity {
    proto::Entity {
        spec: Some(proto::EntitySpec {
            name: name.into(),
            join_key: join_key.into(),
            value_type,
            project: project.into(),
            ..Default::default()
        }),
    }
}

fn batch_source() -> proto::DataSource {
    proto::DataSource {
        r#type: 1,
        name: "orders_file".into(),
        project: "shop".into(),
        timestamp_field: "ts".into(),
        created_timestamp_column: "".into(),
        ..Default::default()
    }
}

fn push_source(name: &str) -> proto::DataSource {
    proto::DataSource {
        r#type: proto::PUSH_SOURCE,
        name: name.into(),
        project: "shop".into(),
        description: "fresh orders".into(),
        batch_source: Some(Box::new(batch_source())),
        ..Default::default()
    }
}

fn view(name: &str, entities: &[&str], features: Vec<proto::FeatureSpec>) -> proto::FeatureView {
    proto::FeatureView {
        spec: Some(proto::FeatureViewSpec {
            name: name.into(),
            project: "shop".into(),
            entities: entities.iter().map(|e| e.to_string()).collect(),
            features,
            online: true,
            ttl: Some(proto::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            batch_source: Some(batch_source()),
            stream_source: Some(push_source("orders_push")),
            ..Default::default()
        }),
        meta: None,
    }
}

fn named(name: &str) -> proto::Named {
    proto::Named {
        spec: Some(proto::NamedSpec {
            name: name.into(),
            project: "shop".into(),
        }),
    }
}

fn odfv(name: &str, mode: &str, write: bool) -> proto::OnDemandFeatureView {
    let mut sources = std::collections::HashMap::new();
    sources.insert(
        "orders".to_string(),
        proto::OnDemandSource {
            feature_view_projection: Some(projection("orders", &["amount"], "")),
            ..Default::default()
        },
    );
    sources.insert(
        "req".to_string(),
        proto::OnDemandSource {
            request_data_source: Some(proto::RequestSource {
                name: "req".into(),
                request_data_options: Some(proto::RequestDataOptions {
                    schema: vec![feature("bonus", vt::INT64)],
                }),
            }),
            ..Default::default()
        },
    );
    proto::OnDemandFeatureView {
        spec: Some(proto::OnDemandFeatureViewSpec {
            name: name.into(),
            project: "shop".into(),
            features: vec![feature("z", vt::DOUBLE)],
            sources,
            mode: mode.into(),
            write_to_online_store: write,
            entities: vec!["customer".into()],
            entity_columns: vec![feature("customer_id", vt::INT64)],
            ..Default::default()
        }),
    }
}

fn projection(view: &str, columns: &[&str], alias: &str) -> proto::FeatureViewProjection {
    proto::FeatureViewProjection {
        feature_view_name: view.into(),
        feature_columns: columns.iter().map(|c| feature(c, 0)).collect(),
        feature_view_name_alias: alias.into(),
        ..Default::default()
    }
}

fn service(name: &str, features: Vec<proto::FeatureViewProjection>) -> proto::FeatureService {
    proto::FeatureService {
        spec: Some(proto::FeatureServiceSpec {
            name: name.into(),
            project: "shop".into(),
            features,
            ..Default::default()
        }),
    }
}

/// A registry file with one project's worth of objects, plus another project's.
fn shop() -> proto::Registry {
    let mut orders = view(
        "orders",
        &["customer", "store"],
        vec![
            feature("amount", vt::DOUBLE),
            feature("items", vt::INT32),
            feature("note", vt::STRING),
        ],
    );
    let spec = orders.spec.as_mut().unwrap();
    spec.ttl = Some(proto::Duration {
        seconds: 2,
        nanos: 500_000_000,
    });
    let mut customer_stats = view(
        "customer_stats",
        &["customer"],
        vec![feature("vip", vt::BOOL), feature("tags", vt::STRING_LIST)],
    );
    customer_stats.spec.as_mut().unwrap().entity_columns = vec![feature("customer_id", vt::STRING)];
    let mut batch_only = view(
        "store_stats",
        &["store"],
        vec![feature("rating", vt::FLOAT)],
    );
    batch_only.spec.as_mut().unwrap().stream_source = None;
    let mut offline = view("archive", &["store"], vec![feature("x", vt::INT64)]);
    offline.spec.as_mut().unwrap().online = false;
    let mut disabled = view("old", &["store"], vec![feature("x", vt::INT64)]);
    disabled.spec.as_mut().unwrap().disabled = true;
    let entityless = view("totals", &["__dummy"], vec![feature("x", vt::INT64)]);
    let mut elsewhere = view("orders", &["customer"], vec![feature("y", vt::INT64)]);
    elsewhere.spec.as_mut().unwrap().project = "other".into();
    let mut remap = projection("orders", &["amount"], "");
    remap
        .join_key_map
        .insert("customer_id".into(), "buyer_id".into());
    proto::Registry {
        entities: vec![
            // No value type: taken from customer_stats' entity columns.
            entity("customer", "customer_id", 0, "shop"),
            entity("store", "", vt::INT64, "shop"),
            entity("__dummy", "__dummy_id", vt::STRING, "shop"),
            entity("customer", "customer_id", vt::INT64, "other"),
        ],
        feature_views: vec![
            orders,
            customer_stats,
            batch_only,
            offline,
            disabled,
            entityless,
            elsewhere,
        ],
        data_sources: vec![
            batch_source(),
            push_source("orders_push"),
            push_source("unused_push"),
        ],
        on_demand_feature_views: vec![odfv("orders_odfv", "substrait", false)],
        stream_feature_views: vec![named("orders_sfv")],
        feature_services: vec![
            service(
                "checkout",
                vec![
                    projection("orders", &["amount", "note"], ""),
                    projection("customer_stats", &[], "cs"),
                ],
            ),
            service("remapped", vec![remap]),
            service("on_demand", vec![projection("orders_odfv", &["z"], "")]),
        ],
        version_id: "v-1".into(),
        last_updated: Some(proto::Timestamp {
            seconds: 1_795_600_800,
            nanos: 0,
        }),
        ..Default::default()
    }
}

fn decode(file: &proto::Registry) -> Result<Registry, String> {
    repo(Path::new("/repo"))
        .decode(&file.encode_to_vec())
        .map_err(|e| e.to_string())
}

#[test]
fn a_projects_objects_become_the_registry() {
    let r = decode(&shop()).unwrap();
    let from = &r.loaded_from;
    assert_eq!(
        (
            from.kind,
            from.project.as_deref(),
            from.version_id.as_deref()
        ),
        ("feast", Some("shop"), Some("v-1"))
    );
    assert_eq!(from.last_updated.as_deref(), Some("2026-11-25T10:00:00Z"));
    assert_eq!(from.path.as_deref(), Some("/repo/data/registry.db"));

    let names: Vec<_> = r.serving_views().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["orders", "customer_stats", "store_stats"]);
    let orders = r.view("orders").unwrap();
    let keys: Vec<_> = orders
        .join_keys
        .iter()
        .map(|k| format!("{}:{}", k.name, k.value_type))
        .collect();
    assert_eq!(keys, ["customer_id:string", "store:int64"]);
    let fields: Vec<_> = orders
        .fields
        .iter()
        .map(|f| format!("{}:{}", f.name, f.dtype))
        .collect();
    assert_eq!(fields, ["amount:float64", "items:int32", "note:string"]);
    assert_eq!(orders.ttl, Duration::from_millis(2500));
    assert_eq!(orders.source.as_deref(), Some("orders_push"));
    // The batch source names the event time column; it has no created column.
    assert_eq!(orders.timestamp_field, "ts");
    assert_eq!(orders.created_timestamp_column, "created");
    assert_eq!(r.view("store_stats").unwrap().source, None);

    let push = r.push_source("orders_push").unwrap();
    assert_eq!(push.feature_views, ["orders", "customer_stats"]);
    assert_eq!(push.description, "fresh orders");

    let checkout = r.feature_service("checkout").unwrap();
    assert_eq!(
        checkout.features,
        [
            "orders:amount",
            "orders:note",
            "customer_stats:vip",
            "customer_stats:tags"
        ]
    );
    assert_eq!(
        (checkout.alias(0), checkout.alias(2), checkout.alias(3)),
        (None, Some("cs"), Some("cs"))
    );

    let mut not_served = from.not_served.clone();
    not_served.sort();
    assert_eq!(
        not_served,
        [
            "feature service 'on_demand': it reads 'orders_odfv', which featgrid does not serve",
            "feature service 'remapped': its projection of 'orders' remaps join keys (join_key_map)",
            "feature view 'archive': online=False",
            "feature view 'old': disabled",
            "feature view 'totals': entity-less feature views are not served",
            "on-demand feature view 'orders_odfv': mode 'substrait' is not served (modes python and pandas are)",
            "push source 'unused_push': feeds no feature view featgrid serves",
            "stream feature view 'orders_sfv': stream feature views are not served",
        ]
    );
    assert!(r.entities.iter().all(|e| e.name != "__dummy"));
}

#[test]
fn every_feast_type_is_served_and_a_view_featgrid_cannot_serve_is_listed_not_fatal() {
    for (feast, ours) in [
        (vt::DOUBLE, "float64"),
        (vt::UNIX_TIMESTAMP_LIST, "list<unix_timestamp>"),
        (vt::MAP, "map"),
        (vt::JSON_LIST, "list<json>"),
        (vt::STRUCT, "struct"),
        (vt::INT64_SET, "set<int64>"),
        (vt::VALUE_LIST, "value_list"),
        (vt::ZONED_TIMESTAMP, "zoned_timestamp"),
    ] {
        assert_eq!(value_type(feast).unwrap().to_string(), ours);
        let mut file = shop();
        file.feature_views[0].spec.as_mut().unwrap().features[1].value_type = feast;
        let r = decode(&file).unwrap();
        assert_eq!(r.view("orders").unwrap().fields[1].dtype.to_string(), ours);
    }
    for (unsupported, name) in [(0, "INVALID"), (19, "NULL"), (31, "value type 31")] {
        let mut file = shop();
        file.feature_views[0].spec.as_mut().unwrap().features[1].value_type = unsupported;
        let r = decode(&file).unwrap();
        assert!(r.view("orders").is_err());
        assert!(r.view("customer_stats").is_ok() && r.view("store_stats").is_ok());
        let not_served = &r.loaded_from.not_served;
        let expected = format!(
            "feature view 'orders': field 'items': Feast type {name} is not a feature type"
        );
        assert!(not_served.contains(&expected), "{not_served:?}");
        // What reads it is not served either, with its own reason.
        assert!(
            not_served
                .iter()
                .any(|n| n.starts_with("feature service 'checkout': ")),
            "{not_served:?}"
        );
    }
}

#[test]
fn the_toml_registrys_checks_apply_to_feast_registries_object_by_object() {
    let not_served = |file: &proto::Registry| {
        let r = decode(file).unwrap();
        assert!(
            r.view("store_stats").is_ok(),
            "{:?}",
            r.loaded_from.not_served
        );
        r.loaded_from.not_served.join("\n")
    };
    let mut file = shop();
    file.entities[0] = entity("customer", "customer_id", vt::DOUBLE, "shop");
    let e = not_served(&file);
    assert!(
        e.contains("entity 'customer': a join key cannot be float64")
            && e.contains("feature view 'orders': no entity named 'customer'"),
        "{e}"
    );

    let mut file = shop();
    file.feature_views[0].spec.as_mut().unwrap().features[1].name = "customer_id".into();
    let e = not_served(&file);
    assert!(
        e.contains("feature view 'orders': 'customer_id' is already a field, join key"),
        "{e}"
    );

    let mut file = shop();
    file.entities[0] = entity("customer", "customer_id", 0, "shop");
    file.feature_views[1]
        .spec
        .as_mut()
        .unwrap()
        .entity_columns
        .clear();
    let e = not_served(&file);
    assert!(e.contains("entity 'customer': no value type"), "{e}");
}

#[test]
fn label_views_keep_the_last_write_and_versions_are_read() {
    use crate::registry::{ViewKind, WriteRule};
    let mut file = shop();
    let mut labels_push = push_source("labels_push");
    labels_push.batch_source.as_mut().unwrap().timestamp_field = "labeled_at".into();
    file.label_views.push(proto::LabelView {
        spec: Some(proto::LabelViewSpec {
            name: "quality".into(),
            project: "shop".into(),
            entities: vec!["customer".into()],
            features: vec![feature("score", vt::FLOAT), feature("labeler", vt::STRING)],
            source: Some(labels_push),
            online: true,
            labeler_field: "labeler".into(),
            conflict_policy: 1,
            ..Default::default()
        }),
    });
    let spec = file.feature_views[0].spec.as_mut().unwrap();
    spec.version = "latest".into();
    spec.enable_validation = true;
    file.feature_views[0].meta = Some(proto::FeatureViewMeta {
        current_version_number: 3,
    });
    let r = decode(&file).unwrap();
    let quality = r.view("quality").unwrap();
    assert_eq!(
        (quality.kind, quality.write_rule),
        (ViewKind::LabelView, WriteRule::LastWrite)
    );
    assert_eq!(quality.labeler_field.as_deref(), Some("labeler"));
    assert_eq!(quality.conflict_policy.as_deref(), Some("labeler_priority"));
    assert_eq!(quality.timestamp_field, "labeled_at");
    assert_eq!(
        r.push_source("labels_push").unwrap().feature_views,
        ["quality"]
    );
    let orders = r.view("orders").unwrap();
    assert_eq!(orders.write_rule, WriteRule::NewestEvent);
    assert_eq!(
        (
            orders.version.as_deref(),
            orders.version_number,
            orders.enable_validation
        ),
        (Some("latest"), 3, true)
    );
    let shown = serde_json::to_value(quality).unwrap();
    assert_eq!(shown["kind"], "label_view");
    assert_eq!(shown["write_rule"], "last_write");
    assert_eq!(shown["labeler_field"], "labeler");
    assert_eq!(shown["conflict_policy"], "labeler_priority");
    // Versioned references: the current version by name or `@latest`; a pinned one refused.
    assert!(r.resolve_ref("orders@latest:amount").is_ok());
    assert!(r.resolve_ref("orders@:amount").is_ok());
    let e = r.resolve_ref("orders@v2:amount").unwrap_err();
    assert!(matches!(e, RegistryError::VersionedReference { .. }), "{e}");
    assert!(matches!(
        r.resolve_ref("orders@x:amount"),
        Err(RegistryError::UnknownFeatureView { .. })
    ));
}

#[test]
fn other_projects_and_bytes_that_are_not_a_registry() {
    let mut r = repo(Path::new("/repo"));
    r.project = "nothing_here".into();
    let empty = r.decode(&shop().encode_to_vec()).unwrap();
    assert!(empty.feature_views.is_empty() && empty.entities.is_empty());
    let e = r
        .decode(b"\xff\xff\xff not protobuf")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a Feast registry file"), "{e}");
    let e = r.decode(b"").unwrap_err().to_string();
    assert!(e.contains("the file is empty"), "{e}");
}

#[test]
fn on_demand_views_are_read_with_their_sources_and_services() {
    let mut file = shop();
    file.on_demand_feature_views = vec![
        odfv("orders_odfv", "python", false),
        odfv("stored_odfv", "pandas", true),
    ];
    file.feature_services.push(service(
        "mixed",
        vec![
            projection("orders", &["amount"], ""),
            projection("orders_odfv", &[], ""),
        ],
    ));
    let r = decode(&file).unwrap();
    let names: Vec<&str> = r.on_demand_views.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["orders_odfv", "stored_odfv"]);
    let view = &r.on_demand_views[0];
    assert_eq!(view.mode.as_str(), "python");
    assert_eq!(view.sources[0].view, "orders");
    assert_eq!(view.sources[0].features, ["amount"]);
    assert_eq!(view.request_fields[0].name, "bonus");
    // The write-time view is stored like a feature view; the read-time one is not.
    assert!(r.view("stored_odfv").is_ok());
    assert!(r.view("orders_odfv").is_err());
    let on_demand: Vec<&str> = r
        .on_demand_services
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(on_demand, ["on_demand", "mixed"]);
    assert_eq!(
        r.on_demand_service("mixed").unwrap().features,
        ["orders:amount", "orders_odfv:z"]
    );
    assert!(r.feature_service("mixed").is_err());
    assert!(
        !r.loaded_from.not_served.iter().any(|n| n.contains("odfv")),
        "{:?}",
        r.loaded_from.not_served
    );
}
