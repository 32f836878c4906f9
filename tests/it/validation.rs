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

/// Now in Unix seconds, and as pandas' text (`YYYY-MM-DD HH:MM:SS`, UTC).
fn now_and_text() -> (i64, String) {
    let now = chrono::Utc::now().timestamp();
    let text = chrono::DateTime::from_timestamp(now, 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    (now, text)
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
    let read = s.read(
        &["driver_hourly_stats:avg_daily_trips"],
        json!({ "driver_id": [id] }),
    );
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
        assert_eq!(
            trips_of(&s, json!(id.parse::<i64>().unwrap())),
            stored,
            "{trips}"
        );
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
    assert_eq!(
        column(&a.json, "avg_daily_trips").0,
        [json!(9007199254740993i64), json!(12)]
    );
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
        assert_invalid(
            &a,
            "event_timestamp",
            1,
            &format!("looks like {unit} since the epoch"),
        );
    }
    let a = push_text(&s, &df(now.to_string(), format!("{}.5", now * 1_000)));
    assert_invalid(&a, "created", 1, "looks like milliseconds since the epoch");
    // Nothing of those pushes was stored: a later, correct write is not skipped as older.
    assert_eq!(trips_of(&s, json!(1)), Value::Null);
    let a = push_text(&s, &row_at("1", "2", now));
    assert_eq!(a.status, 200, "{}", a.text);
    let read = s.read(
        &["driver_hourly_stats:avg_daily_trips"],
        json!({"driver_id": [1]}),
    );
    let (values, statuses, stamps) = column(&read, "avg_daily_trips");
    assert_eq!(
        (values[0].clone(), statuses[0].as_str()),
        (json!(2), "PRESENT")
    );
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(&stamps[0])
            .unwrap()
            .timestamp(),
        now
    );
    assert_eq!(
        s.get("/stats").json["skipped_older"],
        json!(0),
        "{}",
        s.get("/stats").text
    );
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
    let (status, stderr) = refused_start(
        &dir.path().join("data"),
        &["--config", settings.to_str().unwrap()],
    );
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
    let e = refused_registry(&format!(
        "{a}[[feature_services]]\nname = \"s\"\nfeatures = [\"a\", \"a:x\"]\n"
    ));
    assert!(e.contains("reg.toml: feature_services[0].features[1]: feature service 's' lists 'a:x' twice (also in features[0])"), "{e}");
}

/// conv_rate and acc_rate of the drivers `ids`.
fn rates(s: &Server, ids: Value) -> Value {
    s.read(
        &[
            "driver_hourly_stats:conv_rate",
            "driver_hourly_stats:acc_rate",
        ],
        json!({ "driver_id": ids }),
    )
}

/// `get-online-features` with a raw JSON body.
fn read_text(s: &Server, body: &str) -> Answer {
    s.post_raw("/get-online-features", body, None)
}

#[test]
fn an_empty_features_list_beside_a_feature_service_is_not_given() {
    let s = Server::start();
    assert_eq!(push_text(&s, &trips_row("1", "7")).status, 200);
    // Feast's request model defaults `features` to [], so generated clients send both.
    let a = read_text(
        &s,
        r#"{"features": [], "feature_service": "driver_activity", "entities": {"driver_id": [1]}}"#,
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.json["metadata"]["feature_names"],
        json!(["driver_id", "conv_rate", "acc_rate", "avg_daily_trips"])
    );
    assert_eq!(column(&a.json, "avg_daily_trips").0, [json!(7)]);
    // A list that names features beside a service is still ambiguous.
    let a = read_text(
        &s,
        r#"{"features": ["driver_hourly_stats:conv_rate"], "feature_service": "driver_activity", "entities": {"driver_id": [1]}}"#,
    );
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (400, Some("ambiguous_features")),
        "{}",
        a.text
    );
}

#[test]
fn python_nan_and_infinity_are_read_for_float_features_only() {
    let s = Server::start();
    let now = chrono::Utc::now().timestamp();
    // What Python's json.dumps writes for a DataFrame with missing and infinite floats.
    let a = push_text(
        &s,
        &format!(
            r#"{{"driver_id": [1, 2], "event_timestamp": [{now}, {now}], "conv_rate": [NaN, Infinity], "acc_rate": [-Infinity, 0.5], "avg_daily_trips": [1, 2]}}"#
        ),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let read = rates(&s, json!([1, 2]));
    // NaN is pandas' missing float: stored as null, as Feast stores it. Infinities are kept,
    // and answered as Feast answers them: strings of the protobuf JSON mapping.
    let (conv, conv_statuses, _) = column(&read, "conv_rate");
    assert_eq!(conv, [Value::Null, json!("Infinity")]);
    assert_eq!(conv_statuses, ["NULL_VALUE", "PRESENT"]);
    assert_eq!(
        column(&read, "acc_rate").0,
        [json!("-Infinity"), json!(0.5)]
    );
    // The strings an answer carries are read back as the same floats.
    let a = push_text(
        &s,
        &format!(
            r#"{{"driver_id": [3], "event_timestamp": [{now}], "conv_rate": ["Infinity"], "acc_rate": ["NaN"], "avg_daily_trips": [3]}}"#
        ),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let read = rates(&s, json!([3]));
    assert_eq!(column(&read, "conv_rate").0, [json!("Infinity")]);
    assert_eq!(column(&read, "acc_rate").1, ["NULL_VALUE"]);

    // Anywhere a float is not expected, refused like any other wrong value.
    let a = push_text(
        &s,
        &format!(
            r#"{{"driver_id": [4], "event_timestamp": [{now}], "conv_rate": [0.5], "acc_rate": [0.5], "avg_daily_trips": [NaN]}}"#
        ),
    );
    assert_invalid(&a, "avg_daily_trips", 0, "expected int64, got NaN");
    let a = push_text(
        &s,
        r#"{"driver_id": [4], "event_timestamp": [Infinity], "conv_rate": [0.5], "acc_rate": [0.5], "avg_daily_trips": [1]}"#,
    );
    assert_invalid(&a, "event_timestamp", 0, "Infinity");
    let a = read_text(
        &s,
        r#"{"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1, NaN]}}"#,
    );
    assert_invalid(&a, "driver_id", 1, "expected int64, got NaN");
    let a = s.post_raw(
        "/push",
        r#"{"push_source_name": "driver_stats_push_source", "df": {}, "to": NaN}"#,
        None,
    );
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (400, Some("invalid_request")),
        "{}",
        a.text
    );
    assert_eq!(trips_of(&s, json!(4)), Value::Null);
    // Inside strings they are text: a string feature would keep "NaN" as it is.
    let a = push_text(
        &s,
        &format!(
            r#"{{"driver_id": [5], "event_timestamp": [{now}], "conv_rate": [0.5], "acc_rate": [0.5], "avg_daily_trips": ["NaN"]}}"#
        ),
    );
    assert_invalid(&a, "avg_daily_trips", 0, r#"expected int64, got "NaN""#);
}

#[test]
fn entity_names_are_accepted_for_join_keys_with_one_warning() {
    let s = Server::start_logged(&[], &[("FEATGRID_LOG", "info")]);
    assert_eq!(push_text(&s, &trips_row("1", "7")).status, 200);
    for _ in 0..2 {
        // Entity `driver`, join key `driver_id`: Feast accepts it with a deprecation warning.
        let a = read_text(
            &s,
            r#"{"features": ["driver_hourly_stats:avg_daily_trips"], "entities": {"driver": [1, 2]}}"#,
        );
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(
            a.json["metadata"]["feature_names"],
            json!(["driver_id", "avg_daily_trips"])
        );
        assert_eq!(column(&a.json, "driver_id").0, [json!(1), json!(2)]);
        assert_eq!(
            column(&a.json, "avg_daily_trips").0,
            [json!(7), Value::Null]
        );
    }
    let a = read_text(
        &s,
        r#"{"features": ["driver_hourly_stats:avg_daily_trips"], "entities": {"driver": ["x"]}}"#,
    );
    assert_invalid(&a, "driver", 0, "expected int64");
    let a = read_text(
        &s,
        r#"{"features": ["driver_hourly_stats:avg_daily_trips"], "entities": {"driver": [1], "driver_id": [1]}}"#,
    );
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (400, Some("invalid_request")),
        "{}",
        a.text
    );
    // The warning is logged once, however often entity names are used. A snapshot is logged
    // after it: once that line is in, every warning the reads gave is too.
    assert_eq!(s.post("/admin/snapshot", &json!({})).status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !s.log().contains("snapshot written") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        s.log().matches("keyed by entity name").count(),
        1,
        "{}",
        s.log()
    );
}

#[test]
fn a_write_stores_the_same_rows_whatever_form_its_values_take() {
    // Lists of plain numbers and strings are read into light cells; an escaped string, a list
    // or object value, or a bad value anywhere sends the body through the general parse. Both
    // must store the same rows and refuse the same values with the same errors, on both write
    // routes.
    let s = Server::start();
    let (now, stamp) = now_and_text();
    // A digit as a JSON string escape.
    let escaped = |digit: u32| format!("\\u{:04x}", '0' as u32 + digit);
    let escaped_stamp = stamp.replacen('-', "\\u002d", 1);
    let write = |route: &str, df: String| match route {
        "/push" => push_text(&s, &df),
        _ => s.post_raw(
            route,
            &format!(r#"{{"feature_view_name": "driver_hourly_stats", "df": {df}}}"#),
            None,
        ),
    };
    for (route, first) in [("/push", 1), ("/write-to-online-store", 5)] {
        let plain = write(
            route,
            format!(
                r#"{{"driver_id": [{first}, "{}"], "event_timestamp": [{now}, "{stamp}"], "conv_rate": [0.5, "0.25"], "acc_rate": [1, null], "avg_daily_trips": [7, 8]}}"#,
                first + 1
            ),
        );
        assert_eq!(plain.status, 200, "{route}: {}", plain.text);
        // The same rows for the next two entities, with escapes in a key and a timestamp.
        let with_escapes = write(
            route,
            format!(
                r#"{{"driver_id": [{}, "{}"], "event_timestamp": [{now}, "{escaped_stamp}"], "conv_rate": [0.5, "0.25"], "acc_rate": [1, null], "avg_daily_trips": [7, 8]}}"#,
                first + 2,
                escaped(first + 3)
            ),
        );
        assert_eq!(with_escapes.status, 200, "{route}: {}", with_escapes.text);
        let read = rates(&s, json!([first, first + 1, first + 2, first + 3]));
        let (conv, statuses, stamps) = column(&read, "conv_rate");
        assert_eq!(
            conv,
            [json!(0.5), json!(0.25), json!(0.5), json!(0.25)],
            "{route}: {read}"
        );
        assert_eq!(statuses, ["PRESENT"; 4], "{route}: {read}");
        assert!(stamps.iter().all(|t| t == &stamps[0]), "{route}: {read}");
        let (acc, statuses, _) = column(&read, "acc_rate");
        assert_eq!(
            acc,
            [json!(1.0), Value::Null, json!(1.0), Value::Null],
            "{route}: {read}"
        );
        assert_eq!(
            statuses,
            ["PRESENT", "NULL_VALUE", "PRESENT", "NULL_VALUE"],
            "{route}: {read}"
        );
        // A bad value is named alike by both parses.
        for trips in [r#""many""#, r#""m\u0061ny""#] {
            let a = write(
                route,
                format!(
                    r#"{{"driver_id": [9], "event_timestamp": [{now}], "conv_rate": [0.5], "acc_rate": [0.5], "avg_daily_trips": [{trips}]}}"#
                ),
            );
            assert_invalid(&a, "avg_daily_trips", 0, "expected int64, got \"many\"");
        }
    }
}

#[test]
fn a_single_value_in_df_is_repeated_for_every_row() {
    let s = Server::start();
    let (now, stamp) = now_and_text();
    // Feast builds a DataFrame, which repeats a single value beside list columns.
    let a = push_text(
        &s,
        &format!(
            r#"{{"driver_id": [1, 2], "event_timestamp": "{stamp}", "conv_rate": 0.5, "acc_rate": [0.25, 0.75], "avg_daily_trips": [1, 2]}}"#
        ),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let read = rates(&s, json!([1, 2]));
    let (conv, _, stamps) = column(&read, "conv_rate");
    assert_eq!(conv, [json!(0.5), json!(0.5)]);
    assert_eq!(column(&read, "acc_rate").0, [json!(0.25), json!(0.75)]);
    let expected = chrono::DateTime::from_timestamp(now, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    assert_eq!(stamps, [expected.clone(), expected]);
    // With no list at all there is no row count (pandas refuses it too).
    let a = s.post(
        "/write-to-online-store",
        &json!({"feature_view_name": "driver_hourly_stats", "df": {"driver_id": 1, "event_timestamp": now, "conv_rate": 0.5, "acc_rate": 0.5, "avg_daily_trips": 1}}),
    );
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (400, Some("invalid_request")),
        "{}",
        a.text
    );
    assert!(
        a.json["message"]
            .as_str()
            .unwrap()
            .contains("give the columns as lists"),
        "{}",
        a.text
    );
}

#[test]
fn feature_view_metadata_is_answered_when_asked_for() {
    let s = Server::start();
    let body = |include: bool| {
        json!({"features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate"],
               "entities": {"driver_id": [1]}, "include_feature_view_version_metadata": include})
    };
    let a = s.post("/get-online-features", &body(true));
    assert_eq!(a.status, 200, "{}", a.text);
    // As Feast answers a view without a version (version 0 is left out).
    assert_eq!(
        a.json["metadata"]["feature_view_metadata"],
        json!([{"name": "driver_hourly_stats"}])
    );
    let a = s.post("/get-online-features", &body(false));
    assert_eq!(
        a.json["metadata"],
        json!({"feature_names": ["driver_id", "conv_rate", "acc_rate"]})
    );
}

#[test]
fn settings_take_each_source_at_its_word() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.toml");
    // Seconds, as default.toml and the message say; the registry from the environment is
    // relative to the working directory, not to the settings file.
    std::fs::write(&settings, "offline_roll_interval = 60\n").unwrap();
    let s = Server::start_with(
        &["--config", settings.to_str().unwrap()],
        &[("FEATGRID_REGISTRY", "config/example_registry.toml")],
    );
    let registry = s.get("/registry").json;
    assert!(
        registry["feature_views"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "customer_profile"),
        "{registry}"
    );
    drop(s);
    // A bad environment variable is reported as one, not as an error in the settings file.
    let out = std::process::Command::new(crate::support::BIN)
        .args(["serve", "--config", settings.to_str().unwrap()])
        .env("FEATGRID_SHARDS", "-1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "invalid configuration: environment variable FEATGRID_SHARDS: shards: -1 is negative"
        ),
        "{stderr}"
    );
}

/// `featgrid bench` with `args`: (exit code, stdout, stderr).
fn bench(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(crate::support::BIN)
        .arg("bench")
        .args(args)
        .env("FEATGRID_LOG", "warn")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn the_load_generator_refuses_options_it_cannot_honour() {
    let s = Server::start();
    let url = s.url();
    let common = [
        "--target",
        url.as_str(),
        "--entities",
        "10",
        "--warmup",
        "0",
        "--duration",
        "1",
    ];
    // Freshness probes run back to back: a rate would be reported but not kept.
    let (code, stdout, stderr) =
        bench(&[&common[..], &["--workload", "freshness", "--rate", "10"]].concat());
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("--rate: does not apply to the freshness workload"),
        "{stderr}"
    );
    assert!(!stdout.contains("never sent"), "{stdout}");
    // Durations the clock cannot add are refused when parsed, not a panic mid-run.
    for option in ["--duration", "--warmup", "--probe-timeout", "--timeout"] {
        let (code, stdout, stderr) = bench(&[
            "--target",
            url.as_str(),
            "--no-preload",
            "--workload",
            "freshness",
            option,
            "1e19",
        ]);
        assert_eq!(code, Some(2), "{option}: {stdout}{stderr}");
        assert!(
            stderr.contains("longer than the limit of 30 days"),
            "{option}: {stderr}"
        );
    }
}
