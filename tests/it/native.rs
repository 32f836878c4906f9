//! The native binary path: typed values in the codec, the same rules and answers as JSON.

use featgrid::api::lookup::Status;
use featgrid::api::native::{NativeAnswer, NativeRead, NativeWrite, WriteTarget};
use featgrid::persist::codec;
use featgrid::value::native::NativeValue::{self, Float32, Float64, Int64, Null, UnixTimestamp};
use serde_json::json;

use crate::support::{column, Server};

fn driver_columns(ids: &[i64], event: i64) -> Vec<(String, Vec<NativeValue>)> {
    let n = ids.len();
    vec![
        ("driver_id".into(), ids.iter().map(|&i| Int64(i)).collect()),
        ("event_timestamp".into(), vec![UnixTimestamp(event); n]),
        (
            "conv_rate".into(),
            ids.iter().map(|&i| Float32(i as f32 / 4.0)).collect(),
        ),
        ("acc_rate".into(), vec![Null; n]),
        (
            "avg_daily_trips".into(),
            ids.iter().map(|&i| Int64(i * 10)).collect(),
        ),
    ]
}

fn read(s: &Server, request: &NativeRead) -> NativeAnswer {
    let (status, body) = s.post_native(
        "/native/v1/get-online-features",
        &codec::encode(request).unwrap(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    codec::decode::<NativeAnswer>(&body).unwrap().0
}

#[test]
fn native_push_and_read_agree_with_json() {
    let s = Server::start();
    let now = chrono::Utc::now().timestamp_micros() / 1_000_000 * 1_000_000;
    let write = NativeWrite {
        target: WriteTarget::PushSource {
            name: "driver_stats_push_source".into(),
            to: None,
        },
        columns: driver_columns(&[1, 2, 3], now),
    };
    let (status, body) = s.post_native("/native/v1/push", &codec::encode(&write).unwrap());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let answer = read(
        &s,
        &NativeRead {
            features: Some(vec![
                "driver_hourly_stats:avg_daily_trips".into(),
                "driver_hourly_stats:acc_rate".into(),
                "driver_hourly_stats:conv_rate".into(),
            ]),
            feature_service: None,
            entities: vec![("driver_id".into(), vec![Int64(3), Int64(1), Int64(99)])],
            full_feature_names: false,
        },
    );
    assert_eq!(
        answer.feature_names,
        ["driver_id", "avg_daily_trips", "acc_rate", "conv_rate"]
    );
    assert_eq!(answer.results[0].values, [Int64(3), Int64(1), Int64(99)]);
    assert_eq!(answer.results[1].values, [Int64(30), Int64(10), Null]);
    assert_eq!(
        answer.results[1].statuses,
        [Status::Present, Status::Present, Status::NotFound]
    );
    assert_eq!(answer.results[1].event_timestamps, [now, now, 0]);
    assert_eq!(
        answer.results[2].statuses,
        [Status::NullValue, Status::NullValue, Status::NotFound]
    );
    assert_eq!(
        answer.results[3].values,
        [Float32(0.75), Float32(0.25), Null]
    );

    // The JSON route reads the same rows.
    let json_answer = s.read(
        &["driver_hourly_stats:conv_rate"],
        json!({"driver_id": [3]}),
    );
    assert_eq!(column(&json_answer, "conv_rate").0, [json!(0.75)]);
}

#[test]
fn native_writes_to_one_view_and_reads_a_service() {
    let s = Server::start();
    let write = NativeWrite {
        target: WriteTarget::FeatureView {
            name: "driver_hourly_stats".into(),
        },
        columns: driver_columns(&[5], 1_795_600_800_000_000),
    };
    assert_eq!(
        s.post_native("/native/v1/push", &codec::encode(&write).unwrap())
            .0,
        200
    );
    let answer = read(
        &s,
        &NativeRead {
            features: None,
            feature_service: Some("driver_activity".into()),
            entities: vec![("driver_id".into(), vec![Int64(5)])],
            full_feature_names: true,
        },
    );
    assert_eq!(answer.feature_names[1], "driver_hourly_stats__conv_rate");
    assert_eq!(answer.results[0].values, [Int64(5)]);
    assert_eq!(answer.results[3].values, [Int64(50)]);
}

#[test]
fn native_errors_are_the_json_error() {
    let s = Server::start();
    let (status, body) = s.post_native("/native/v1/push", b"\xff\xff\xff garbage");
    assert_eq!(status, 400);
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["code"], "malformed_body");

    let mut columns = driver_columns(&[1], 0);
    columns[4].1 = vec![Float64(2.5)];
    let write = NativeWrite {
        target: WriteTarget::FeatureView {
            name: "driver_hourly_stats".into(),
        },
        columns,
    };
    let (status, body) = s.post_native("/native/v1/push", &codec::encode(&write).unwrap());
    assert_eq!(status, 400);
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["code"], "invalid_value");
    assert_eq!(
        error["message"],
        "column 'avg_daily_trips' row 0: expected int64, got Float64(2.5)"
    );

    // Native values are typed: text is not parsed as a number.
    let text_key = NativeRead {
        features: None,
        feature_service: Some("driver_activity".into()),
        entities: vec![("driver_id".into(), vec![NativeValue::String("5".into())])],
        full_feature_names: false,
    };
    let (status, body) = s.post_native(
        "/native/v1/get-online-features",
        &codec::encode(&text_key).unwrap(),
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));

    let unknown = NativeWrite {
        target: WriteTarget::PushSource {
            name: "nope".into(),
            to: None,
        },
        columns: vec![],
    };
    assert_eq!(
        s.post_native("/native/v1/push", &codec::encode(&unknown).unwrap())
            .0,
        422
    );
}

#[test]
fn a_deeply_nested_list_is_refused_and_the_server_stays_up() {
    let s = Server::start();
    let write = NativeWrite {
        target: WriteTarget::FeatureView {
            name: "driver_hourly_stats".into(),
        },
        columns: vec![("conv_rate".into(), vec![Null])],
    };
    let mut body = codec::encode(&write).unwrap();
    // The last byte is the Null's variant; put `List([List([... Null])])`, 100,000 levels
    // deep, in its place: variant 9 (List), length 1, again and again.
    assert_eq!(body.pop(), Some(0));
    for _ in 0..100_000 {
        body.extend_from_slice(&[9, 1]);
    }
    body.push(0);
    let (status, answer) = s.post_native("/native/v1/push", &body);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&answer));
    let error: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(error["code"], "malformed_body", "{error}");
    assert_eq!(s.get("/health").status, 200, "the server survived");
}
