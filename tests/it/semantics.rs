//! Where featgrid does better than Feast, each rule proven over HTTP: newest event wins, TTL,
//! null values, whole-request validation, timestamp forms, read-your-writes, composite keys
//! and every type.

use serde_json::{json, Value};

use crate::support::{column, Server, CUSTOMER_PROFILE_FIELDS};

fn row(id: i64, event: Value, created: Value, conv: Value) -> Value {
    json!({"driver_id": [id], "event_timestamp": [event], "created": [created], "conv_rate": [conv], "acc_rate": [0.5], "avg_daily_trips": [1]})
}

fn conv_of(s: &Server, id: i64) -> (Value, String, String) {
    let a = s.read(
        &["driver_hourly_stats:conv_rate"],
        json!({"driver_id": [id]}),
    );
    let (v, st, ts) = column(&a, "conv_rate");
    (v[0].clone(), st[0].clone(), ts[0].clone())
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

#[test]
fn newest_event_wins_whatever_the_arrival_order() {
    let s = Server::start();
    let t = now();
    let newer = (t - chrono::Duration::minutes(1)).to_rfc3339();
    let older = (t - chrono::Duration::minutes(5)).to_rfc3339();
    s.push_driver(row(1, json!(newer), Value::Null, json!(0.5)));
    s.push_driver(row(1, json!(older), Value::Null, json!(0.25)));
    assert_eq!(conv_of(&s, 1).0, json!(0.5));
    // Equal event times: the later `created` wins, whatever the arrival order.
    s.push_driver(row(
        2,
        json!(newer),
        json!("2026-01-01 00:00:02"),
        json!(0.75),
    ));
    s.push_driver(row(
        2,
        json!(newer),
        json!("2026-01-01 00:00:01"),
        json!(0.125),
    ));
    assert_eq!(conv_of(&s, 2).0, json!(0.75));
    // Equal event and created: the later arrival wins.
    s.push_driver(row(
        2,
        json!(newer),
        json!("2026-01-01 00:00:02"),
        json!(1.0),
    ));
    assert_eq!(conv_of(&s, 2).0, json!(1.0));
    // The skipped row was counted, not an error.
    assert_eq!(s.get("/stats").json["skipped_older"], 2);
}

#[test]
fn ttl_gives_outside_max_age_with_the_value() {
    let s = Server::start();
    let stale = (now() - chrono::Duration::days(2)).to_rfc3339();
    s.push_driver(row(3, json!(stale), Value::Null, json!(0.5)));
    let (value, status, _) = conv_of(&s, 3);
    assert_eq!((value, status.as_str()), (json!(0.5), "OUTSIDE_MAX_AGE"));
    let fresh = (now() - chrono::Duration::hours(1)).to_rfc3339();
    s.push_driver(row(3, json!(fresh), Value::Null, json!(0.75)));
    assert_eq!(conv_of(&s, 3).1, "PRESENT");
}

#[test]
fn null_is_null_value_and_unknown_is_not_found() {
    let s = Server::start();
    s.push_driver(row(
        4,
        json!("2026-11-25T10:00:00Z"),
        Value::Null,
        Value::Null,
    ));
    assert_eq!(
        conv_of(&s, 4),
        (
            Value::Null,
            "NULL_VALUE".into(),
            "2026-11-25T10:00:00Z".into()
        )
    );
    assert_eq!(
        conv_of(&s, 5),
        (
            Value::Null,
            "NOT_FOUND".into(),
            "1970-01-01T00:00:00Z".into()
        )
    );
}

#[test]
fn one_bad_row_rejects_the_whole_push() {
    let s = Server::start();
    let df = json!({"driver_id": [10, 11], "event_timestamp": ["2026-11-25 10:00:00", "2026-11-25 10:00:00"],
                    "conv_rate": [0.5, "high"], "acc_rate": [0.5, 0.5], "avg_daily_trips": [1, 2]});
    let a = s.post(
        "/push",
        &json!({"push_source_name": "driver_stats_push_source", "df": df}),
    );
    assert_eq!(a.status, 400);
    assert_eq!(
        a.json["message"],
        "column 'conv_rate' row 1: expected float32, got \"high\""
    );
    assert_eq!(conv_of(&s, 10).1, "NOT_FOUND");
}

#[test]
fn timestamps_in_every_documented_form() {
    let s = Server::start();
    let cases = [
        (20, json!("2026-11-25T10:00:00Z"), "2026-11-25T10:00:00Z"),
        (
            21,
            json!("2026-11-25T12:00:00+02:00"),
            "2026-11-25T10:00:00Z",
        ),
        (22, json!("2026-11-25 10:00:00"), "2026-11-25T10:00:00Z"),
        (
            23,
            json!("2026-11-25 10:00:00.250000"),
            "2026-11-25T10:00:00.250Z",
        ),
        (
            24,
            json!("2026-11-25T10:00:00.123456"),
            "2026-11-25T10:00:00.123456Z",
        ),
        (25, json!(1_795_600_800), "2026-11-25T10:00:00Z"),
        (26, json!(1_795_600_800.5), "2026-11-25T10:00:00.500Z"),
    ];
    for (id, ts, _) in &cases {
        s.push_driver(row(*id, ts.clone(), Value::Null, json!(0.5)));
    }
    for (id, _, expected) in &cases {
        assert_eq!(conv_of(&s, *id).2, *expected, "driver {id}");
    }
}

#[test]
fn every_acknowledged_push_is_read_back_at_once() {
    let s = Server::start_with(&["--shards", "16"], &[]);
    for i in 0..200i64 {
        let ts = chrono::DateTime::from_timestamp(1_795_600_800 + i, 0)
            .unwrap()
            .to_rfc3339();
        s.push_driver(row(i % 7, json!(ts), Value::Null, json!(i as f64)));
        assert_eq!(
            conv_of(&s, i % 7).0,
            json!(i as f64),
            "push {i} was not visible to the next read"
        );
    }
}

#[test]
fn a_hundred_entities_across_shards() {
    let s = Server::start();
    let ids: Vec<i64> = (0..100).collect();
    let df = json!({"driver_id": ids, "event_timestamp": vec!["2026-11-25 10:00:00"; 100],
                    "conv_rate": ids.iter().map(|i| *i as f64 / 128.0).collect::<Vec<_>>(),
                    "acc_rate": vec![0.5; 100], "avg_daily_trips": ids});
    s.push_driver(df);
    let mut wanted: Vec<i64> = (0..100).rev().collect();
    wanted.push(1000);
    let a = s.read(
        &[
            "driver_hourly_stats:avg_daily_trips",
            "driver_hourly_stats:conv_rate",
        ],
        json!({"driver_id": wanted}),
    );
    let (trips, statuses, _) = column(&a, "avg_daily_trips");
    let (conv, _, _) = column(&a, "conv_rate");
    for (j, id) in wanted.iter().enumerate().take(100) {
        assert_eq!(trips[j], json!(id));
        assert_eq!(conv[j], json!(*id as f64 / 128.0));
    }
    assert_eq!(statuses[100], "NOT_FOUND");
    let stats = s.get("/stats").json;
    assert_eq!(stats["feature_views"][0]["rows"], 100);
    let shards_used = stats["per_shard"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["rows"][0] != 0)
        .count();
    assert!(
        shards_used > 4,
        "100 keys should spread over the shards: {stats}"
    );
}

#[test]
fn composite_keys_every_type_and_one_push_feeding_two_views() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");
    let s = Server::start_with(&["--config", config], &[]);
    let recent = (now() - chrono::Duration::minutes(1)).to_rfc3339();
    let df = json!({
        "driver_id": [1001, 1001], "customer_id": ["alice", "bob"],
        "event_timestamp": [recent, recent],
        "trips_together": [3, 1], "total_fare": [42.5, 7.25], "rating": [4.5, 3.0],
        "age": [30, 41], "lifetime_trips": [120, 3], "avg_rating": [4.75, null], "lifetime_spend": [1234.5, 0.0],
        "name": ["Alice", "Bob \u{1F600}"], "avatar": ["aGk=", ""], "is_premium": [true, false],
        "signup_time": ["2024-01-02T03:04:05Z", 1_700_000_000], "recent_ages": [[29, 30], []],
        "recent_trip_ids": [[1, 2, 3], [9]], "recent_ratings": [[4.5], [3.0]], "recent_fares": [[10.5, 12.25], []],
        "favourite_places": [["home", "work"], ["gym"]], "recent_receipts": [["AAE="], []], "recent_flags": [[true, false], [false]],
        "recent_logins": [["2026-11-24T10:00:00Z"], []]
    });
    let a = s.post(
        "/push",
        &json!({"push_source_name": "trips_push_source", "df": df}),
    );
    assert_eq!(a.status, 200, "{}", a.text);

    let pair = s.read(
        &[
            "driver_customer_stats:trips_together",
            "driver_customer_stats:total_fare",
            "driver_customer_stats:rating",
        ],
        json!({"driver_id": [1001, 1001, 1002], "customer_id": ["bob", "alice", "alice"]}),
    );
    // Join keys first (in the order the request gave them), then the features as requested.
    let names = &pair["metadata"]["feature_names"];
    assert_eq!(
        names.as_array().unwrap()[2..],
        [
            json!("trips_together"),
            json!("total_fare"),
            json!("rating")
        ]
    );
    assert_eq!(
        column(&pair, "driver_id").0,
        [json!(1001), json!(1001), json!(1002)]
    );
    assert_eq!(
        column(&pair, "customer_id").0,
        [json!("bob"), json!("alice"), json!("alice")]
    );
    assert_eq!(
        column(&pair, "trips_together").0,
        vec![json!(1), json!(3), Value::Null]
    );
    assert_eq!(
        column(&pair, "total_fare").0,
        vec![json!(7.25), json!(42.5), Value::Null]
    );
    assert_eq!(
        column(&pair, "rating").1,
        ["PRESENT", "PRESENT", "NOT_FOUND"]
    );

    let fields = crate::support::CUSTOMER_PROFILE_FIELDS;
    let refs: Vec<String> = fields
        .iter()
        .map(|f| format!("customer_profile:{f}"))
        .collect();
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    let profile = s.read(&refs, json!({"customer_id": ["alice", "bob"]}));
    let values = |f: &str| column(&profile, f).0;
    assert_eq!(values("age"), [json!(30), json!(41)]);
    assert_eq!(values("avg_rating"), [json!(4.75), Value::Null]);
    assert_eq!(column(&profile, "avg_rating").1, ["PRESENT", "NULL_VALUE"]);
    assert_eq!(values("name"), [json!("Alice"), json!("Bob \u{1F600}")]);
    assert_eq!(values("avatar"), [json!("aGk="), json!("")]);
    assert_eq!(values("is_premium"), [json!(true), json!(false)]);
    assert_eq!(
        values("signup_time"),
        [json!("2024-01-02T03:04:05Z"), json!("2023-11-14T22:13:20Z")]
    );
    assert_eq!(values("recent_ages"), [json!([29, 30]), json!([])]);
    assert_eq!(values("recent_trip_ids"), [json!([1, 2, 3]), json!([9])]);
    assert_eq!(values("recent_ratings"), [json!([4.5]), json!([3.0])]);
    assert_eq!(values("recent_fares"), [json!([10.5, 12.25]), json!([])]);
    assert_eq!(
        values("favourite_places"),
        [json!(["home", "work"]), json!(["gym"])]
    );
    assert_eq!(values("recent_receipts"), [json!(["AAE="]), json!([])]);
    assert_eq!(
        values("recent_flags"),
        [json!([true, false]), json!([false])]
    );
    assert_eq!(
        values("recent_logins"),
        [json!(["2026-11-24T10:00:00Z"]), json!([])]
    );
    // ttl = 0: never outside max age, however old.
    assert!(column(&profile, "age").1.iter().all(|s| s == "PRESENT"));
}

#[test]
fn timestamps_that_cannot_be_printed_are_refused_naming_column_and_row() {
    let s = Server::start();
    let t = now().to_rfc3339();
    for (event, created, column) in [
        (json!(9e12), json!(t), "event_timestamp"),
        (json!(253_402_300_800i64), json!(t), "event_timestamp"),
        (json!(-62_135_596_801i64), json!(t), "event_timestamp"),
        (json!(t), json!(9_000_000_000_000i64), "created"),
    ] {
        let mut df = row(1, json!(t), json!(t), json!(0.5));
        df["driver_id"] = json!([1, 2]);
        for (name, v) in [("event_timestamp", &event), ("created", &created)] {
            df[name] = json!([t, v]);
        }
        for name in ["conv_rate", "acc_rate", "avg_daily_trips"] {
            df[name] = json!([1, 1]);
        }
        let a = s.post(
            "/push",
            &json!({"push_source_name": "driver_stats_push_source", "df": df}),
        );
        assert_eq!(a.status, 400, "{event} {created}: {}", a.text);
        assert_eq!(a.json["code"], "invalid_value");
        let message = a.json["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("column '{column}' row 1"))
                && message.contains("years 1 to 9999"),
            "{message}"
        );
    }
    // Nothing was stored: the whole push is refused.
    assert_eq!(conv_of(&s, 1).1, "NOT_FOUND");
    // The first and last printable instants are fine.
    for (id, event) in [
        (5, "0001-01-01T00:00:00Z"),
        (6, "9999-12-31T23:59:59.999999Z"),
    ] {
        s.push_driver(row(id, json!(event), json!(null), json!(0.5)));
        assert_eq!(conv_of(&s, id).2, event);
    }
}

#[test]
fn an_answer_over_max_answer_bytes_is_a_413_never_truncated() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");
    let s = Server::start_with(
        &["--config", config],
        &[("FEATGRID_MAX_ANSWER_BYTES", "1048576")],
    );
    // A 300 KiB name whose every byte position is recognisable.
    let name: String = (0..300 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let mut df = json!({"customer_id": ["alice"], "event_timestamp": [now().to_rfc3339()]});
    for f in CUSTOMER_PROFILE_FIELDS {
        df[f] = json!([null]);
    }
    df["name"] = json!([name]);
    let a = s.post(
        "/write-to-online-store",
        &json!({"feature_view_name": "customer_profile", "df": df}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    // Once: 300 KiB, under the 1 MiB limit, every byte intact.
    let one = s.read(
        &["customer_profile:name"],
        json!({"customer_id": ["alice"]}),
    );
    assert_eq!(column(&one, "name").0, [json!(name)]);
    // Listed ten times: 3 MiB of values, refused whole.
    let a = s.post(
        "/get-online-features",
        &json!({"features": ["customer_profile:name"], "entities": {"customer_id": vec!["alice"; 10]}}),
    );
    assert_eq!(a.status, 413, "{}", &a.text[..a.text.len().min(200)]);
    assert_eq!(a.json["code"], "answer_too_large");
    assert!(a.json["message"]
        .as_str()
        .unwrap()
        .contains("max_answer_bytes"));
}
