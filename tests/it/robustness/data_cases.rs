//! The semantic and native-path cases of the robustness suite.

use featgrid::api::native::{NativeRead, NativeWrite, WriteTarget};
use featgrid::persist::codec;
use featgrid::value::native::NativeValue::{self, Float32, Int64, UnixTimestamp};
use serde_json::{json, Value};

use super::{case, http, json_case, now, push_with, read_with, Case, Expect};

pub fn semantic() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut push = |name: &str, status: u16, edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        cases.push(json_case(name, "/push", push_with(edit), Some(status)));
    };
    push("a missing join key column", 400, &|df| {
        df.remove("driver_id");
    });
    push("a missing event timestamp column", 400, &|df| {
        df.remove("event_timestamp");
    });
    push("a missing feature column", 400, &|df| {
        df.remove("avg_daily_trips");
    });
    push("columns of different lengths", 400, &|df| {
        df.insert("conv_rate".into(), json!([0.5, 0.6]));
    });
    // A single value beside list columns is repeated for every row, as Feast does; a frame of
    // single values only has no row count.
    push("a frame of single values only", 400, &|df| {
        for (name, v) in df.iter_mut() {
            *v = v[0].clone();
            let _ = name;
        }
    });
    push("a column that is an object", 400, &|df| {
        df.insert("conv_rate".into(), json!({"a": 1}));
    });
    push("text for an int64 key", 400, &|df| {
        df.insert("driver_id".into(), json!(["abc"]));
    });
    push("2.7 for an int64", 400, &|df| {
        df.insert("avg_daily_trips".into(), json!([2.7]));
    });
    push("a bool for a float", 400, &|df| {
        df.insert("conv_rate".into(), json!([true]));
    });
    push("an object for a float", 400, &|df| {
        df.insert("conv_rate".into(), json!([{"x": 1}]));
    });
    push("a list for a scalar", 400, &|df| {
        df.insert("conv_rate".into(), json!([[0.5]]));
    });
    push("a null join key", 400, &|df| {
        df.insert("driver_id".into(), json!([null]));
    });
    push("2^53 + 1 as a float for an int64", 400, &|df| {
        df.insert(
            "avg_daily_trips".into(),
            json!([9007199254740993.0_f64 + 2.0]),
        );
    });
    push("2^63 for an int64", 400, &|df| {
        df.insert("avg_daily_trips".into(), json!([9223372036854775808_u64]));
    });
    push("-2^63 - 1 for an int64", 400, &|df| {
        df.insert(
            "avg_daily_trips".into(),
            json!([-9223372036854775809.0_f64]),
        );
    });
    push("1e300 for a float32", 400, &|df| {
        df.insert("conv_rate".into(), json!([1e300]));
    });
    // "NaN" text is a float (Feast answers NaN that way), but not an integer.
    push("\"NaN\" text for an int64", 400, &|df| {
        df.insert("avg_daily_trips".into(), json!(["NaN"]));
    });
    push("a timestamp in year 0", 400, &|df| {
        df.insert("event_timestamp".into(), json!(["0000-01-01T00:00:00Z"]));
    });
    push("a timestamp in year 10000", 400, &|df| {
        df.insert("event_timestamp".into(), json!(["10000-01-01T00:00:00Z"]));
    });
    push("a created timestamp before year 1", 400, &|df| {
        df.insert("created".into(), json!(["-0001-06-01 00:00:00"]));
    });
    push("1e20 seconds", 400, &|df| {
        df.insert("event_timestamp".into(), json!([1e20]));
    });
    push("month 13", 400, &|df| {
        df.insert("event_timestamp".into(), json!(["2026-13-01T00:00:00Z"]));
    });
    push("an empty timestamp", 400, &|df| {
        df.insert("event_timestamp".into(), json!([""]));
    });
    push("a null event timestamp", 400, &|df| {
        df.insert("event_timestamp".into(), json!([null]));
    });
    push("a 3 MB string key", 400, &|df| {
        df.insert("driver_id".into(), json!(["9".repeat(3 << 20)]));
    });
    push("1001 rows (max_rows_per_push is 1000)", 413, &|df| {
        let n = 1001;
        df.insert("driver_id".into(), json!((0..n).collect::<Vec<i64>>()));
        for c in ["event_timestamp", "created"] {
            df.insert(c.into(), json!(vec![now(); n as usize]));
        }
        for c in ["conv_rate", "acc_rate", "avg_daily_trips"] {
            df.insert(c.into(), json!(vec![1; n as usize]));
        }
    });
    let mut more = vec![
        json_case("an unknown push source", "/push", push_with(|_| {}).replace("driver_stats_push_source", "nope"), Some(422)),
        json_case("a bad push mode", "/push", push_with(|_| {}).replacen("{\"df\"", "{\"to\":\"sideways\",\"df\"", 1), Some(400)),
        json_case("a 20 MB string (past max_body_bytes)", "/push", push_with(|df| { df.insert("conv_rate".into(), json!(["x".repeat(20 << 20)])); }), Some(413)),
        json_case("an unknown feature view (write)", "/write-to-online-store", json!({"feature_view_name": "nope", "df": {}}).to_string(), Some(404)),
        json_case("df is a list", "/write-to-online-store", json!({"feature_view_name": "driver_hourly_stats", "df": [1]}).to_string(), Some(400)),
        json_case("no feature_view_name", "/write-to-online-store", json!({"df": {}}).to_string(), Some(400)),
        json_case("an unknown view (read)", "/get-online-features", read_with(json!({"driver_id": [1]})).replace("driver_hourly_stats:", "nope:"), Some(404)),
        json_case("an unknown feature", "/get-online-features", read_with(json!({"driver_id": [1]})).replace("conv_rate", "nope"), Some(404)),
        json_case("a reference without a colon", "/get-online-features", read_with(json!({"driver_id": [1]})).replace("driver_hourly_stats:conv_rate", "conv_rate"), Some(400)),
        json_case("an unknown feature service", "/get-online-features", json!({"feature_service": "nope", "entities": {"driver_id": [1]}}).to_string(), Some(404)),
        json_case("features and a feature service", "/get-online-features", json!({"features": ["driver_hourly_stats:conv_rate"], "feature_service": "driver_activity", "entities": {"driver_id": [1]}}).to_string(), Some(400)),
        json_case("neither features nor a service", "/get-online-features", json!({"entities": {"driver_id": [1]}}).to_string(), Some(400)),
        json_case("no join key in entities", "/get-online-features", read_with(json!({"other": [1]})), Some(400)),
        json_case("entity text for an int64 key", "/get-online-features", read_with(json!({"driver_id": ["x"]})), Some(400)),
        json_case("a read with 1M entities", "/get-online-features", read_with(json!({"driver_id": vec![1; 1_000_000]})), Some(413)),
        json_case("a read with 10001 entities", "/get-online-features", read_with(json!({"driver_id": vec![1; 10_001]})), Some(413)),
        json_case("entities of different lengths", "/get-online-features", json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1, 2], "x": [1]}}).to_string(), Some(400)),
        json_case("a duplicate entity column", "/get-online-features", r#"{"features":["driver_hourly_stats:conv_rate"],"entities":{"driver_id":[1],"driver_id":[2]}}"#, Some(400)),
        json_case("full_feature_names is text", "/get-online-features", json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1]}, "full_feature_names": "yes"}).to_string(), Some(400)),
        json_case("features is a string", "/get-online-features", json!({"features": "driver_hourly_stats:conv_rate", "entities": {"driver_id": [1]}}).to_string(), Some(400)),
    ];
    cases.append(&mut more);
    cases
}

fn native_request(path: &str, body: &[u8]) -> Vec<u8> {
    http(
        "POST",
        path,
        &["Content-Type: application/x-featgrid-bincode"],
        body,
    )
}

pub fn native_path() -> Vec<Case> {
    let columns = |ids: Vec<NativeValue>| -> Vec<(String, Vec<NativeValue>)> {
        let n = ids.len();
        vec![
            ("driver_id".into(), ids),
            (
                "event_timestamp".into(),
                vec![UnixTimestamp(chrono::Utc::now().timestamp_micros()); n],
            ),
            ("conv_rate".into(), vec![Float32(0.5); n]),
            ("acc_rate".into(), vec![Float32(0.5); n]),
            ("avg_daily_trips".into(), vec![Int64(1); n]),
        ]
    };
    let write =
        |target: WriteTarget, columns| codec::encode(&NativeWrite { target, columns }).unwrap();
    let view = || WriteTarget::FeatureView {
        name: "driver_hourly_stats".into(),
    };
    let good = write(view(), columns(vec![Int64(78)]));
    let read = |entities| {
        codec::encode(&NativeRead {
            features: Some(vec!["driver_hourly_stats:conv_rate".into()]),
            feature_service: None,
            entities,
            full_feature_names: false,
        })
        .unwrap()
    };
    let w = "/native/v1/push";
    let r = "/native/v1/get-online-features";
    let mut wrong_variant = good.clone();
    wrong_variant[0] = 9;
    let mut huge_length = vec![0u8, 24];
    huge_length.extend_from_slice(b"driver_hourly_stats");
    huge_length.extend_from_slice(&[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut with_null_ts = columns(vec![Int64(79)]);
    with_null_ts[1].1 = vec![NativeValue::Null];
    let mut past_range = columns(vec![Int64(80)]);
    past_range[1].1 = vec![UnixTimestamp(i64::MIN)];
    let mut dup = columns(vec![Int64(81)]);
    dup.push(("conv_rate".into(), vec![Float32(0.9)]));
    vec![
        case(
            "native: empty body",
            native_request(w, b""),
            Expect::Json(Some(400)),
        ),
        case(
            "native: truncated",
            native_request(w, &good[..good.len() / 2]),
            Expect::Json(Some(400)),
        ),
        case(
            "native: trailing bytes",
            native_request(w, &[&good[..], b"xx"].concat()),
            Expect::Json(Some(400)),
        ),
        case(
            "native: a wrong enum variant",
            native_request(w, &wrong_variant),
            Expect::Json(Some(400)),
        ),
        case(
            "native: a length past the body",
            native_request(w, &huge_length),
            Expect::Json(Some(400)),
        ),
        case(
            "native: JSON sent to the native route",
            native_request(w, push_with(|_| {}).as_bytes()),
            Expect::Json(Some(400)),
        ),
        case(
            "native: random bytes",
            native_request(r, &[0xde, 0xad, 0xbe, 0xef, 0x01, 0x02]),
            Expect::Json(Some(400)),
        ),
        case(
            "native: a write sent to the read route",
            native_request(r, &good),
            Expect::Json(Some(400)),
        ),
        case(
            "native: an unknown view",
            native_request(
                w,
                &write(
                    WriteTarget::FeatureView {
                        name: "nope".into(),
                    },
                    columns(vec![Int64(1)]),
                ),
            ),
            Expect::Json(Some(404)),
        ),
        case(
            "native: an unknown push source",
            native_request(
                w,
                &write(
                    WriteTarget::PushSource {
                        name: "nope".into(),
                        to: None,
                    },
                    columns(vec![Int64(1)]),
                ),
            ),
            Expect::Json(Some(422)),
        ),
        case(
            "native: text for an int64 key",
            native_request(
                w,
                &write(view(), columns(vec![NativeValue::String("78".into())])),
            ),
            Expect::Json(Some(400)),
        ),
        case(
            "native: a null event timestamp",
            native_request(w, &write(view(), with_null_ts)),
            Expect::Json(Some(400)),
        ),
        case(
            "native: a timestamp past year 9999",
            native_request(w, &write(view(), past_range)),
            Expect::Json(Some(400)),
        ),
        case(
            "native: a duplicate column",
            native_request(w, &write(view(), dup)),
            Expect::Json(Some(400)),
        ),
        case(
            "native: columns of different lengths",
            native_request(w, &{
                let mut c = columns(vec![Int64(82)]);
                c[2].1.push(Float32(1.0));
                write(view(), c)
            }),
            Expect::Json(Some(400)),
        ),
        case(
            "native: a read with 20000 entities",
            native_request(r, &read(vec![("driver_id".into(), vec![Int64(1); 20_000])])),
            Expect::Json(Some(413)),
        ),
        case(
            "native: a read with a float key",
            native_request(r, &read(vec![("driver_id".into(), vec![Float32(1.5)])])),
            Expect::Json(Some(400)),
        ),
    ]
}
