//! Nothing accepted and silently changed (issue 12): every value is stored as sent or refused
//! with a 400 that names the column, the row and what to send instead.

use serde_json::{json, Value};

use crate::support::{column, refused_start, Answer, Server};

/// A push to the driver quickstart's source with `df` given as raw JSON text, so that number
/// literals reach the server exactly as written.
fn push_text(s: &Server, df: &str) -> Answer {
    s.post_raw(
        "/push",
        &format!(r#"{{"push_source_name": "driver_stats_push_source", "df": {df}}}"#),
        None,
    )
}

/// A driver row stamped now (the quickstart view has a 1-day TTL) with `trips` as the literal
/// text of `avg_daily_trips`.
fn trips_row(id: &str, trips: &str) -> String {
    row_at(id, trips, chrono::Utc::now().timestamp())
}

fn row_at(id: &str, trips: &str, event: i64) -> String {
    format!(
        r#"{{"driver_id": [{id}], "event_timestamp": [{event}], "conv_rate": [0.5], "acc_rate": [0.5], "avg_daily_trips": [{trips}]}}"#
    )
}

fn assert_invalid(a: &Answer, column: &str, row: usize, says: &str) {
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json["code"], "invalid_value", "{}", a.text);
    let message = a.json["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!("column '{column}' row {row}: ")) && message.contains(says),
        "{message}"
    );
}

fn trips_of(s: &Server, id: Value) -> Value {
    let read = s.read(&["driver_hourly_stats:avg_daily_trips"], json!({ "driver_id": [id] }));
    column(&read, "avg_daily_trips").0[0].clone()
}

#[test]
fn integers_never_pass_through_f64() {
    let s = Server::start();
    // Exact integer literals and whole floats within 2^53 are the integers they say.
    for (id, trips, stored) in [
        ("1", "9007199254740993", json!(9007199254740993i64)),
        ("2", "9223372036854775807", json!(i64::MAX)),
        ("3", "-9223372036854775808", json!(i64::MIN)),
        ("4", "12.0", json!(12)),
        ("5", "1.2e3", json!(1200)),
        ("6", "\"12345678901234567\"", json!(12345678901234567i64)),
    ] {
        let a = push_text(&s, &trips_row(id, trips));
        assert_eq!(a.status, 200, "{trips}: {}", a.text);
        assert_eq!(trips_of(&s, json!(id.parse::<i64>().unwrap())), stored, "{trips}");
    }
    // What f64 would change, or what int64 cannot hold, is refused, and nothing is written.
    for trips in [
        "12345678901234567.0",
        "9007199254740994.0",
        "-9223372036854775809",
        "9223372036854775808",
        "1e19",
    ] {
        let a = push_text(&s, &trips_row("7", trips));
        assert_invalid(&a, "avg_daily_trips", 0, "is not an exact int64");
    }
    assert_eq!(trips_of(&s, json!(7)), Value::Null);
    let a = push_text(&s, &trips_row("8", "2.7"));
    assert_invalid(&a, "avg_daily_trips", 0, "expected int64, got 2.7");

    // A join key in a read goes through the same conversion: -2^63-1 is not i64::MIN.
    let a = s.post_raw(
        "/get-online-features",
        r#"{"features": ["driver_hourly_stats:avg_daily_trips"], "entities": {"driver_id": [1, -9223372036854775809]}}"#,
        None,
    );
    assert_invalid(&a, "driver_id", 1, "is not an exact int64");
    let a = s.post_raw(
        "/get-online-features",
        r#"{"features": ["driver_hourly_stats:avg_daily_trips"], "entities": {"driver_id": [1, 4.0]}}"#,
        None,
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(column(&a.json, "driver_id").0, [json!(1), json!(4)]);
    assert_eq!(column(&a.json, "avg_daily_trips").0, [json!(9007199254740993i64), json!(12)]);
}

#[test]
fn numeric_timestamps_in_another_unit_are_refused_with_the_unit() {
    let s = Server::start();
    let now = chrono::Utc::now().timestamp();
    let df = |event: String, created: String| {
        format!(
            r#"{{"driver_id": [1, 1], "event_timestamp": [{now}, {event}], "created": [null, {created}], "conv_rate": [0.5, 0.5], "acc_rate": [0.5, 0.5], "avg_daily_trips": [1, 2]}}"#
        )
    };
    for (event, unit) in [
        (now * 1_000, "milliseconds"),
        (now * 1_000_000, "microseconds"),
        (now * 1_000_000_000, "nanoseconds"),
    ] {
        let a = push_text(&s, &df(event.to_string(), "null".into()));
        assert_invalid(&a, "event_timestamp", 1, &format!("looks like {unit} since the epoch"));
    }
    let a = push_text(&s, &df(now.to_string(), format!("{}.5", now * 1_000)));
    assert_invalid(&a, "created", 1, "looks like milliseconds since the epoch");
    // Nothing of those pushes was stored: a later, correct write is not skipped as older.
    assert_eq!(trips_of(&s, json!(1)), Value::Null);
    let a = push_text(&s, &row_at("1", "2", now));
    assert_eq!(a.status, 200, "{}", a.text);
    let read = s.read(&["driver_hourly_stats:avg_daily_trips"], json!({"driver_id": [1]}));
    let (values, statuses, stamps) = column(&read, "avg_daily_trips");
    assert_eq!((values[0].clone(), statuses[0].as_str()), (json!(2), "PRESENT"));
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(&stamps[0]).unwrap().timestamp(),
        now
    );
    assert_eq!(s.get("/stats").json["skipped_older"], json!(0), "{}", s.get("/stats").text);
}

/// The quickstart's entity and push source, then `views` (TOML), as a registry file.
fn refused_registry(views: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("reg.toml");
    std::fs::write(
        &registry,
        format!("[[entities]]\nname = \"driver\"\njoin_key = \"driver_id\"\nvalue_type = \"int64\"\n[[entities]]\nname = \"customer\"\njoin_key = \"customer_id\"\nvalue_type = \"string\"\n[[push_sources]]\nname = \"stats\"\n{views}"),
    )
    .unwrap();
    let settings = dir.path().join("settings.toml");
    std::fs::write(&settings, "registry = \"reg.toml\"\n").unwrap();
    let (status, stderr) = refused_start(&dir.path().join("data"), &["--config", settings.to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn registry_mistakes_are_refused_at_load_naming_file_table_and_key() {
    let a = "[[feature_views]]\nname = \"a\"\nentities = [\"driver\"]\nsource = \"stats\"\nfields = [{ name = \"x\", dtype = \"int64\" }]\n";
    // Column names are unique in every answer: b's feature may not be named like a's key.
    let b = "[[feature_views]]\nname = \"b\"\nentities = [\"customer\"]\nsource = \"stats\"\nfields = [{ name = \"driver_id\", dtype = \"int64\" }]\n";
    let e = refused_registry(&format!("{a}{b}"));
    assert!(e.contains("reg.toml: feature_views[1].fields[0].name: feature 'driver_id' of view 'b' is named like a join key of view 'a'"), "{e}");
    // A source that is neither a push source nor a declared batch source (a typo).
    let e = refused_registry(&a.replace("source = \"stats\"", "source = \"stat\""));
    assert!(e.contains("reg.toml: feature_views[0].source: feature view 'a' names source 'stat', which is neither a push source nor a batch source"), "{e}");
    // The event time taken from a join key.
    let e = refused_registry(&a.replace("fields", "timestamp_field = \"driver_id\"\nfields"));
    assert!(e.contains("reg.toml: feature_views[0].timestamp_field: 'driver_id' is a join key of feature view 'a'"), "{e}");
    // A feature service listing a feature twice.
    let e = refused_registry(&format!("{a}[[feature_services]]\nname = \"s\"\nfeatures = [\"a\", \"a:x\"]\n"));
    assert!(e.contains("reg.toml: feature_services[0].features[1]: feature service 's' lists 'a:x' twice (also in features[0])"), "{e}");
}
