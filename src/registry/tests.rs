//! The registry's own tests: the embedded and example registries, references, TOML errors.

use super::*;

#[test]
fn embedded_registry_is_the_feast_quickstart() {
    let r = Registry::embedded();
    let view = r.view("driver_hourly_stats").unwrap();
    assert_eq!(view.join_keys[0].name, "driver_id");
    assert_eq!(view.join_keys[0].value_type.to_string(), "int64");
    let names: Vec<_> = view
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.dtype.to_string()))
        .collect();
    assert_eq!(
        names,
        [
            ("conv_rate", "float32".into()),
            ("acc_rate", "float32".into()),
            ("avg_daily_trips", "int64".into())
        ]
    );
    assert_eq!(view.ttl, Duration::from_secs(86_400));
    assert_eq!(
        r.push_source("driver_stats_push_source").unwrap().views,
        vec![view.id]
    );
    assert_eq!(r.feature_service("driver_activity").unwrap().refs.len(), 3);
}

#[test]
fn example_registry_is_valid() {
    let text = include_str!("../../config/example_registry.toml");
    let r = Registry::parse(text, "example").unwrap();
    assert!(r.feature_views.iter().any(|v| v.join_keys.len() > 1));
}

#[test]
fn resolves_references() {
    let r = Registry::embedded();
    assert_eq!(
        r.resolve_ref("driver_hourly_stats:acc_rate").unwrap().field,
        1
    );
    assert!(matches!(
        r.resolve_ref("nope:x"),
        Err(RegistryError::UnknownFeatureView { .. })
    ));
    assert!(matches!(
        r.resolve_ref("driver_hourly_stats:x"),
        Err(RegistryError::UnknownFeature { .. })
    ));
    assert!(matches!(
        r.resolve_ref("conv_rate"),
        Err(RegistryError::BadFeatureRef { .. })
    ));
    assert!(matches!(
        r.resolve_ref(":conv_rate"),
        Err(RegistryError::BadFeatureRef { .. })
    ));
}

fn error_of(text: &str) -> String {
    Registry::parse(text, "bad.toml").unwrap_err().to_string()
}

#[test]
fn errors_name_file_key_and_expectation() {
    let e = error_of(
        r#"
        [[entities]]
        name = "d"
        value_type = "int65"
        "#,
    );
    assert!(
        e.starts_with("bad.toml: entities[0].value_type: 'int65' is not a type"),
        "{e}"
    );
    let e = error_of(
        r#"
        [[entities]]
        name = "d"
        value_type = "int64"
        [[feature_views]]
        name = "v"
        entities = ["e"]
        fields = [{ name = "x", dtype = "int64" }]
        "#,
    );
    assert!(
        e.contains("feature_views[0].entities[0]: no entity named 'e'"),
        "{e}"
    );
    let e = error_of("[[entities]]\nname = 3\n");
    assert!(e.starts_with("bad.toml: line 2"), "{e}");
    let e = error_of(&view_with_ttl("forever"));
    assert!(
        e.contains("feature_views[0].ttl: 'forever' is not a duration"),
        "{e}"
    );
}

/// A registry of one int64 entity and one view with the given `ttl`.
fn view_with_ttl(ttl: &str) -> String {
    format!(
        "[[entities]]\nname = \"d\"\nvalue_type = \"int64\"\n[[feature_views]]\nname = \"v\"\nentities = [\"d\"]\nttl = \"{ttl}\"\nfields = [{{ name = \"x\", dtype = \"int64\" }}]\n"
    )
}

#[test]
fn a_ttl_below_a_microsecond_is_refused_not_taken_as_no_ttl() {
    let e = error_of(&view_with_ttl("500ns"));
    assert!(
        e.contains("feature_views[0].ttl") && e.contains("below a microsecond"),
        "{e}"
    );
}

#[test]
fn durations() {
    assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
    assert!(parse_duration("soon").is_err());
}

#[test]
fn toml_label_views_say_their_write_rule_and_check_their_settings() {
    let with = |extra: &str| {
        DEFAULT_REGISTRY.replace(
            "name = \"driver_hourly_stats\"",
            &format!("name = \"driver_hourly_stats\"\n{extra}"),
        )
    };
    let r = Registry::parse(
        &with("kind = \"label_view\"\nlabeler_field = \"conv_rate\""),
        "labels.toml",
    )
    .unwrap();
    let view = r.view("driver_hourly_stats").unwrap();
    assert_eq!(view.write_rule, WriteRule::LastWrite);
    assert_eq!(view.conflict_policy.as_deref(), Some("last_write_wins"));
    let shown = serde_json::to_value(&r).unwrap();
    assert_eq!(shown["feature_views"][0]["write_rule"], "last_write");
    assert_eq!(shown["feature_views"][0]["kind"], "label_view");
    let e = Registry::parse(&with("labeler_field = \"conv_rate\""), "bad.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("only a label view has a labeler_field"), "{e}");
    let e = Registry::parse(
        &with("kind = \"label_view\"\nlabeler_field = \"who\""),
        "bad.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("'who' is not a field of label view"), "{e}");
    let e = Registry::parse(
        &with("kind = \"label_view\"\nconflict_policy = \"first\""),
        "bad.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("expected one of last_write_wins"), "{e}");
    // Plain views keep the newest event.
    let view = Registry::embedded();
    assert_eq!(
        view.view("driver_hourly_stats").unwrap().write_rule,
        WriteRule::NewestEvent
    );
}
