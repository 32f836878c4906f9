//! The Feast-compatible routes: request and answer shapes, and one JSON error shape for every bad input.

use serde_json::{json, Value};

use crate::support::{assert_error, column, now_plus, now_rfc3339, Server};

/// A driver row stamped now (the view's TTL is a day), in pandas' space-separated form.
fn driver_row(id: i64, conv: f64) -> Value {
    let now = now_plus(0).format("%Y-%m-%d %H:%M:%S").to_string();
    json!({"driver_id": [id], "event_timestamp": [now], "created": [now],
           "conv_rate": [conv], "acc_rate": [0.9], "avg_daily_trips": [12]})
}

#[test]
fn the_readme_curl_lines_work_as_shown() {
    let s = Server::start();
    // The README stamps the row with `now=$(date -u +%Y-%m-%dT%H:%M:%SZ)`: the view's TTL is a day.
    let now = now_rfc3339();
    // curl -d sends a form Content-Type; Feast rejects it, featgrid reads the body as JSON.
    let pushed = s.post_raw(
        "/push",
        &format!(r#"{{"push_source_name":"driver_stats_push_source","df":{{"driver_id":[1001],"event_timestamp":["{now}"],"created":["{now}"],"conv_rate":[0.5],"acc_rate":[0.9],"avg_daily_trips":[12]}},"to":"online"}}"#),
        Some("application/x-www-form-urlencoded"),
    );
    assert_eq!((pushed.status, pushed.text.as_str()), (200, ""));
    let read = s.post_raw(
        "/get-online-features",
        r#"{"features":["driver_hourly_stats:conv_rate","driver_hourly_stats:avg_daily_trips"],"entities":{"driver_id":[1001,1002]}}"#,
        None,
    );
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(
        read.json,
        json!({"metadata": {"feature_names": ["driver_id", "conv_rate", "avg_daily_trips"]},
               "results": [
                 {"values": [1001, 1002], "statuses": ["PRESENT", "PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
                 {"values": [0.5, null], "statuses": ["PRESENT", "NOT_FOUND"], "event_timestamps": [now, "1970-01-01T00:00:00Z"]},
                 {"values": [12, null], "statuses": ["PRESENT", "NOT_FOUND"], "event_timestamps": [now, "1970-01-01T00:00:00Z"]}]})
    );
}

#[test]
fn write_to_online_store_answers_null_and_feature_services_resolve() {
    let s = Server::start();
    let a = s.post("/write-to-online-store", &json!({"feature_view_name": "driver_hourly_stats", "df": driver_row(7, 0.25), "allow_registry_cache": false}));
    assert_eq!((a.status, a.text.as_str()), (200, "null"));
    let a = s.post("/get-online-features", &json!({"feature_service": "driver_activity", "entities": {"driver_id": [7]}, "full_feature_names": true}));
    assert_eq!(a.status, 200, "{}", a.text);
    let names: Vec<&str> = a.json["metadata"]["feature_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "driver_id",
            "driver_hourly_stats__conv_rate",
            "driver_hourly_stats__acc_rate",
            "driver_hourly_stats__avg_daily_trips"
        ]
    );
    // float32 comes back widened to double, as in Feast.
    assert_eq!(
        column(&a.json, "driver_hourly_stats__acc_rate").0,
        vec![json!(0.8999999761581421)]
    );
    assert_eq!(
        column(&a.json, "driver_hourly_stats__conv_rate").0,
        vec![json!(0.25)]
    );
}

#[test]
fn features_come_back_in_the_order_requested() {
    let s = Server::start();
    s.push_driver(driver_row(1, 0.5));
    let a = s.read(
        &[
            "driver_hourly_stats:avg_daily_trips",
            "driver_hourly_stats:conv_rate",
        ],
        json!({"driver_id": ["1"]}),
    );
    assert_eq!(
        a["metadata"]["feature_names"],
        json!(["driver_id", "avg_daily_trips", "conv_rate"])
    );
    // Entity values are coerced to the join key's type: "1" is 1.
    assert_eq!(a["results"][0]["values"], json!([1]));
    assert_eq!(a["results"][1]["values"], json!([12]));
}

#[test]
fn health_and_registry() {
    let s = Server::start();
    let h = s.get("/health");
    assert_eq!(h.status, 200);
    let r = s.get("/registry");
    assert_eq!(r.status, 200);
    assert_eq!(r.json["entities"][0]["join_key"], "driver_id");
    assert_eq!(r.json["feature_views"][0]["ttl_seconds"], 86400);
    assert_eq!(
        r.json["feature_views"][0]["fields"][0],
        json!({"name": "conv_rate", "dtype": "float32"})
    );
    assert_eq!(
        r.json["push_sources"][0]["feature_views"],
        json!(["driver_hourly_stats"])
    );
    assert_eq!(
        r.json["feature_services"][0]["features"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let stats = s.get("/stats");
    assert_eq!(stats.json["shards"], 8);
}

#[test]
fn metrics_count_requests_and_every_answer_has_a_request_id() {
    let s = Server::start();
    s.push_driver(driver_row(1, 0.5));
    let bad = s.post("/push", &json!({"push_source_name": "nope", "df": {}}));
    let (first, second) = (
        bad.request_id.clone().unwrap(),
        s.get("/health").request_id.unwrap(),
    );
    assert_ne!(first, second);
    s.get("/no-such-route");
    let metrics = s.get("/metrics").text;
    // Each request is counted under its route's pattern once answered (`/metrics` itself is
    // counted after it renders).
    for line in [
        r#"featgrid_requests_total{route="/health",status="200"} 1"#,
        r#"featgrid_requests_total{route="unmatched",status="404"} 1"#,
        r#"featgrid_request_duration_seconds_count{route="/push"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    assert!(
        metrics.contains(r#"featgrid_requests_total{route="/push",status="200"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"featgrid_requests_total{route="/push",status="422"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("featgrid_rows_written_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("featgrid_process_resident_memory_bytes"),
        "{metrics}"
    );
}

#[test]
fn every_bad_input_gets_a_json_error_with_a_stable_code() {
    let s = Server::start();
    let push = |df: Value| json!({"push_source_name": "driver_stats_push_source", "df": df});
    assert_error(
        &s.post_raw("/push", "{\"push_source_name\": ", None),
        400,
        "malformed_json",
    );
    assert_error(&s.post_raw("/push", "", None), 400, "malformed_json");
    assert_error(&s.post("/push", &json!({"df": {}})), 400, "invalid_request");
    assert_error(&s.post("/push", &json!([1, 2])), 400, "invalid_request");
    assert_error(
        &s.post("/push", &json!({"push_source_name": "nope", "df": {}})),
        422,
        "unknown_push_source",
    );
    assert_error(
        &s.post(
            "/write-to-online-store",
            &json!({"feature_view_name": "nope", "df": {}}),
        ),
        404,
        "unknown_feature_view",
    );
    let mut bad_to = push(driver_row(1, 0.5));
    bad_to["to"] = json!("sideways");
    assert_error(&s.post("/push", &bad_to), 400, "invalid_push_mode");
    let mut missing = driver_row(1, 0.5);
    missing.as_object_mut().unwrap().remove("acc_rate");
    let a = s.post("/push", &push(missing));
    assert_error(&a, 400, "missing_column");
    assert!(a.json["message"].as_str().unwrap().contains("acc_rate"));
    let mut ragged = driver_row(1, 0.5);
    ragged["conv_rate"] = json!([0.5, 0.6]);
    assert_error(
        &s.post("/push", &push(ragged)),
        400,
        "column_length_mismatch",
    );
    let mut truncating = driver_row(1, 0.5);
    truncating["avg_daily_trips"] = json!([2.7]);
    let a = s.post("/push", &push(truncating));
    assert_error(&a, 400, "invalid_value");
    assert_eq!(
        a.json["message"],
        "column 'avg_daily_trips' row 0: expected int64, got 2.7"
    );
    let mut bad_ts = driver_row(1, 0.5);
    bad_ts["event_timestamp"] = json!(["yesterday"]);
    assert_error(&s.post("/push", &push(bad_ts)), 400, "invalid_value");

    let read = |body: Value| s.post("/get-online-features", &body);
    assert_error(
        &read(json!({"features": ["nope:x"], "entities": {"driver_id": [1]}})),
        404,
        "unknown_feature_view",
    );
    assert_error(
        &read(json!({"features": ["driver_hourly_stats:x"], "entities": {"driver_id": [1]}})),
        404,
        "unknown_feature",
    );
    assert_error(
        &read(json!({"feature_service": "nope", "entities": {"driver_id": [1]}})),
        404,
        "unknown_feature_service",
    );
    assert_error(
        &read(json!({"features": ["conv_rate"], "entities": {"driver_id": [1]}})),
        400,
        "bad_feature_reference",
    );
    assert_error(
        &read(json!({"entities": {"driver_id": [1]}})),
        400,
        "missing_features",
    );
    assert_error(
        &read(
            json!({"features": ["driver_hourly_stats:conv_rate"], "feature_service": "driver_activity", "entities": {"driver_id": [1]}}),
        ),
        400,
        "ambiguous_features",
    );
    assert_error(
        &read(
            json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"customer": [1]}}),
        ),
        400,
        "missing_join_key",
    );
    assert_error(
        &read(
            json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": ["abc"]}}),
        ),
        400,
        "invalid_value",
    );
    assert_error(
        &read(
            json!({"features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1]}}),
        ),
        400,
        "feature_name_collision",
    );
    assert_error(&s.get("/nope"), 404, "not_found");
    assert_error(&s.get("/push"), 405, "method_not_allowed");
}

#[test]
fn limits_answer_413() {
    let s = Server::start_with(
        &[],
        &[
            ("FEATGRID_MAX_READ_BODY_BYTES", "2000"),
            ("FEATGRID_MAX_ENTITIES_PER_REQUEST", "3"),
            ("FEATGRID_MAX_ROWS_PER_PUSH", "2"),
        ],
    );
    let big = json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": vec![1; 1000]}});
    assert_error(&s.post("/get-online-features", &big), 413, "body_too_large");
    let many = json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1, 2, 3, 4]}});
    assert_error(
        &s.post("/get-online-features", &many),
        413,
        "too_many_entities",
    );
    let rows = json!({"driver_id": [1, 2, 3], "event_timestamp": [0, 0, 0], "conv_rate": [0.1, 0.2, 0.3], "acc_rate": [0.1, 0.2, 0.3], "avg_daily_trips": [1, 2, 3]});
    let a = s.post(
        "/push",
        &json!({"push_source_name": "driver_stats_push_source", "df": rows}),
    );
    assert_error(&a, 413, "too_many_rows");
}

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn value(&mut self, depth: u32) -> Value {
        match self.below(if depth > 2 { 9 } else { 11 }) {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => json!(self.next() as i64),
            3 => json!(f64::from_bits(self.next()).clamp(-1e300, 1e300)),
            4 => json!(
                [
                    "",
                    "NaT",
                    "1001",
                    "2026-11-25 10:00:00",
                    "aGk=",
                    "x\u{0}y",
                    "9999-99-99"
                ][self.below(7) as usize]
            ),
            5 => json!(1_795_600_800),
            6 => json!(2.5),
            7 => json!(u64::MAX),
            8 => json!("driver_hourly_stats:conv_rate"),
            9 => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
            _ => {
                let keys = [
                    "driver_id",
                    "event_timestamp",
                    "created",
                    "conv_rate",
                    "acc_rate",
                    "avg_daily_trips",
                    "zzz",
                ];
                Value::Object(
                    (0..self.below(4))
                        .map(|_| {
                            (
                                keys[self.below(7) as usize].to_string(),
                                self.value(depth + 1),
                            )
                        })
                        .collect(),
                )
            }
        }
    }
}

/// Replaces one random node of `body` with a random value.
fn mutate(rng: &mut Rng, body: &mut Value) {
    let mut node = body;
    loop {
        let children = match node {
            Value::Object(map) if !map.is_empty() => map.len(),
            Value::Array(items) if !items.is_empty() => items.len(),
            _ => 0,
        };
        if children == 0 || rng.below(3) == 0 {
            *node = rng.value(0);
            return;
        }
        let i = rng.below(children as u64) as usize;
        node = match node {
            Value::Object(map) => map.values_mut().nth(i).unwrap(),
            Value::Array(items) => &mut items[i],
            _ => unreachable!(),
        };
    }
}

#[test]
fn no_input_makes_the_server_answer_500() {
    let s = Server::start();
    let valid = [
        (
            "/push",
            json!({"push_source_name": "driver_stats_push_source", "df": driver_row(1, 0.5), "to": "online"}),
        ),
        (
            "/write-to-online-store",
            json!({"feature_view_name": "driver_hourly_stats", "df": driver_row(2, 0.5)}),
        ),
        (
            "/get-online-features",
            json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1, 2]}, "full_feature_names": true}),
        ),
        (
            "/get-online-features",
            json!({"feature_service": "driver_activity", "entities": {"driver_id": [1]}}),
        ),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..400 {
        let (path, mut body) = valid[round % valid.len()].clone();
        for _ in 0..=rng.below(3) {
            mutate(&mut rng, &mut body);
        }
        let mut text = body.to_string();
        if rng.below(10) == 0 {
            text.truncate(rng.below(text.len() as u64 + 1) as usize);
        }
        let a = s.post_raw(path, &text, None);
        assert!(a.status < 500, "{path} {text} -> {} {}", a.status, a.text);
        if a.status != 200 {
            assert!(
                a.json["code"].is_string() && a.json["message"].is_string(),
                "{path} {text} -> {}",
                a.text
            );
        }
    }
    assert_eq!(s.get("/health").status, 200, "the server survived");
}

#[test]
fn a_full_mailbox_answers_503_with_retry_after_and_loses_nothing_acknowledged() {
    // One place in the shard thread's mailbox: concurrent pushes must overflow it.
    let s = Server::start_with(&["--shards", "1"], &[("FEATGRID_MAILBOX_CAPACITY", "1")]);
    let url = s.url();
    let mut overloaded = 0;
    let mut acknowledged = Vec::new();
    for round in 0..50i64 {
        let answers: Vec<(i64, u16, Option<String>, Value)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8i64)
                .map(|t| {
                    let url = url.clone();
                    scope.spawn(move || {
                        let id = round * 100 + t;
                        let ids: Vec<i64> = (0..2000).map(|i| id * 10_000 + i).collect();
                        let df = json!({"driver_id": ids, "event_timestamp": vec![1_795_600_800; 2000], "conv_rate": vec![0.5; 2000],
                                        "acc_rate": vec![0.5; 2000], "avg_daily_trips": vec![id; 2000]});
                        let body = json!({"push_source_name": "driver_stats_push_source", "df": df}).to_string();
                        let response = match ureq::post(&format!("{url}/push")).send_string(&body) {
                            Ok(r) => r,
                            Err(ureq::Error::Status(_, r)) => r,
                            Err(e) => panic!("{e}"),
                        };
                        let status = response.status();
                        let retry = response.header("Retry-After").map(str::to_string);
                        let json = response.into_json().unwrap_or(Value::Null);
                        (id, status, retry, json)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (id, status, retry, json) in answers {
            match status {
                200 => acknowledged.push(id),
                503 => {
                    overloaded += 1;
                    assert_eq!(retry.as_deref(), Some("1"));
                    assert_eq!(json["code"], "shard_overloaded", "{json}");
                }
                other => panic!("unexpected {other}: {json}"),
            }
        }
        if overloaded > 0 && round >= 2 {
            break;
        }
    }
    assert!(
        overloaded > 0,
        "8 concurrent pushes never overflowed a mailbox of 1"
    );
    for id in acknowledged {
        let a = s.read(
            &["driver_hourly_stats:avg_daily_trips"],
            json!({"driver_id": [id * 10_000 + 1999]}),
        );
        assert_eq!(
            column(&a, "avg_daily_trips").0,
            [json!(id)],
            "acknowledged push {id} is missing"
        );
    }
}
