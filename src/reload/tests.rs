use super::*;

fn registry(views: &str) -> Registry {
    let text = format!(
        r#"
        [[entities]]
        name = "driver"
        join_key = "driver_id"
        value_type = "int64"

        [[push_sources]]
        name = "stats_push"

        {views}
        "#
    );
    Registry::parse(&text, "test").unwrap()
}

const A: &str = r#"
    [[feature_views]]
    name = "a"
    entities = ["driver"]
    source = "stats_push"
    ttl = 60
    fields = [{ name = "x", dtype = "int64" }]

    [[feature_services]]
    name = "activity"
    features = ["a:x"]
"#;
const B: &str = r#"
    [[feature_views]]
    name = "b"
    entities = ["driver"]
    source = "stats_push"
    fields = [{ name = "y", dtype = "float64" }]
"#;

#[test]
fn an_unchanged_registry_merges_to_itself() {
    let current = registry(&format!("{A}{B}"));
    let (merged, changes) = merge(&current, registry(&format!("{A}{B}")));
    assert_eq!(changes, Changes::default());
    assert_eq!(merged.view("b").unwrap().id, 1);
    assert_eq!(merged.push_source("stats_push").unwrap().views, [0, 1]);
}

#[test]
fn ids_stay_stable_new_views_come_last_removed_ones_retire() {
    let current = registry(&format!("{A}{B}"));
    // The file lists b first and no longer has a; c is new.
    let c = B.replace("\"b\"", "\"c\"");
    let (merged, changes) = merge(&current, registry(&format!("{B}{c}")));
    assert_eq!(changes.added, ["feature view 'c'"]);
    assert_eq!(
        changes.retired,
        ["feature view 'a'", "feature service 'activity'"]
    );
    assert_eq!(merged.feature_views.len(), 3);
    assert_eq!(merged.view("b").unwrap().id, 1);
    assert_eq!(merged.view("c").unwrap().id, 2);
    assert!(matches!(
        merged.view("a"),
        Err(crate::registry::RegistryError::UnknownFeatureView { .. })
    ));
    assert!(merged.feature_views[0].retired);
    assert_eq!(merged.push_source("stats_push").unwrap().views, [1, 2]);
    let shown = serde_json::to_value(&merged).unwrap();
    assert_eq!(shown["feature_views"].as_array().unwrap().len(), 2);

    // Back again with the same fields: the old id, serving again.
    let (again, changes) = merge(&merged, registry(&format!("{A}{B}{c}")));
    assert_eq!(
        changes.added,
        ["feature view 'a'", "feature service 'activity'"]
    );
    assert_eq!(again.view("a").unwrap().id, 0);
    assert_eq!(again.feature_service("activity").unwrap().refs[0].view, 0);
}

#[test]
fn a_view_whose_fields_changed_is_refused_and_keeps_its_definition() {
    let current = registry(&format!("{A}{B}"));
    let changed = A
        .replace(
            "\"int64\" }]",
            "\"string\" }, { name = \"z\", dtype = \"int64\" }]",
        )
        .replace("ttl = 60", "ttl = 120");
    let mut fresh = registry(&format!("{changed}{B}"));
    // The service now reads z, which the kept definition of a does not have.
    fresh.feature_services[0].features = vec!["a:z".into()];
    let (merged, changes) = merge(&current, fresh);
    assert_eq!(changes.refused.len(), 2, "{:?}", changes.refused);
    assert!(
        changes.refused[0].starts_with("feature view 'a': its join keys or fields changed from keys(driver_id:int64) fields(x:int64) to keys(driver_id:int64) fields(x:string,z:int64)"),
        "{}",
        changes.refused[0]
    );
    assert!(changes.refused[1].starts_with("feature service 'activity'"));
    let a = merged.view("a").unwrap();
    assert_eq!((a.fields.len(), a.ttl.as_secs()), (1, 60));
    assert_eq!(
        merged.feature_service("activity").unwrap().features,
        ["a:x"]
    );
    assert_eq!(merged.loaded_from.refused, changes.refused);
}

#[test]
fn a_view_whose_fields_did_not_change_takes_its_new_settings() {
    let current = registry(&format!("{A}{B}"));
    let (merged, changes) = merge(
        &current,
        registry(&format!("{}{B}", A.replace("ttl = 60", "ttl = 5"))),
    );
    assert!(changes.refused.is_empty());
    assert_eq!(merged.view("a").unwrap().ttl.as_secs(), 5);
}
