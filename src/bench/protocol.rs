//! The one seam between the harness and a wire format: what a read or a push of the driver
//! quickstart looks like on the wire, and how to find a value in a read's answer.
//!
//! The harness only ever asks a [`Protocol`] for a [`Call`] (route, content type, body) and,
//! for the freshness probe, to pull `avg_daily_trips` out of a read's answer. A new protocol
//! is a new variant and one arm in each method here; nothing else changes.

use actix_web::web::Bytes;
use awc::http::header::HeaderValue;
use serde_json::Value as Json;

use crate::api::native::{NativeAnswer, NativeRead, NativeWrite, WriteTarget, CONTENT_TYPE};
use crate::persist::codec;
use crate::value::native::NativeValue;
use crate::value::write_timestamp;

/// The push source and view of the driver quickstart (the embedded registry).
pub const PUSH_SOURCE: &str = "driver_stats_push_source";
pub const VIEW: &str = "driver_hourly_stats";
pub const JOIN_KEY: &str = "driver_id";
/// The driver view's features, in the order `--features K` takes them.
pub const FEATURES: [&str; 3] = ["conv_rate", "acc_rate", "avg_daily_trips"];

/// The wire format the harness speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Feast's feature-server JSON: `POST /get-online-features`, `POST /push`.
    Feast,
    /// featgrid's binary path: `POST /native/v1/get-online-features`, `POST /native/v1/push`.
    Native,
}

/// Which kind of request a [`Call`] is; each protocol maps it to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Read,
    Push,
}

/// One request, ready to send to any target.
#[derive(Debug, Clone)]
pub struct Call {
    pub route: Route,
    pub content_type: HeaderValue,
    pub body: Bytes,
}

/// One row of the driver view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub driver_id: i64,
    pub conv_rate: f32,
    pub acc_rate: f32,
    pub avg_daily_trips: i64,
}

impl Protocol {
    /// The protocol called `name` on the command line.
    pub fn parse(name: &str) -> Result<Protocol, String> {
        match name {
            "feast" => Ok(Protocol::Feast),
            "native" => Ok(Protocol::Native),
            other => Err(format!(
                "'{other}' is not a protocol: expected feast or native"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Feast => "feast",
            Protocol::Native => "native",
        }
    }

    /// The path a route is served on.
    pub fn path(self, route: Route) -> &'static str {
        match (self, route) {
            (Protocol::Feast, Route::Read) => "/get-online-features",
            (Protocol::Feast, Route::Push) => "/push",
            (Protocol::Native, Route::Read) => "/native/v1/get-online-features",
            (Protocol::Native, Route::Push) => "/native/v1/push",
        }
    }

    /// A read of the first `features` features (1..=3) for the given driver ids.
    pub fn read(self, driver_ids: &[i64], features: usize) -> Call {
        match self {
            Protocol::Feast => {
                let mut out = Vec::with_capacity(96 + 40 * features + 12 * driver_ids.len());
                out.extend_from_slice(b"{\"features\":[");
                for (i, feature) in FEATURES[..features].iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(format!("\"{VIEW}:{feature}\"").as_bytes());
                }
                out.extend_from_slice(format!("],\"entities\":{{\"{JOIN_KEY}\":").as_bytes());
                push_list(&mut out, driver_ids, |out, id| push_int(out, *id));
                out.extend_from_slice(b"}}");
                json_call(Route::Read, out)
            }
            Protocol::Native => native_call(
                Route::Read,
                &NativeRead {
                    features: Some(
                        FEATURES[..features]
                            .iter()
                            .map(|f| format!("{VIEW}:{f}"))
                            .collect(),
                    ),
                    feature_service: None,
                    entities: vec![(
                        JOIN_KEY.into(),
                        driver_ids
                            .iter()
                            .map(|&id| NativeValue::Int64(id))
                            .collect(),
                    )],
                    full_feature_names: false,
                },
            ),
        }
    }

    /// A push of `rows`, all with the event time `event_micros` (microseconds since the epoch).
    pub fn push(self, rows: &[Row], event_micros: i64) -> Call {
        match self {
            Protocol::Feast => {
                let mut timestamp = Vec::with_capacity(27);
                write_timestamp(event_micros, &mut timestamp);
                let mut out = Vec::with_capacity(160 + rows.len() * (60 + timestamp.len()));
                out.extend_from_slice(
                    format!("{{\"push_source_name\":\"{PUSH_SOURCE}\",\"df\":{{\"{JOIN_KEY}\":")
                        .as_bytes(),
                );
                push_list(&mut out, rows, |out, r| push_int(out, r.driver_id));
                out.extend_from_slice(b",\"event_timestamp\":");
                push_list(&mut out, rows, |out, _| {
                    out.push(b'"');
                    out.extend_from_slice(&timestamp);
                    out.push(b'"');
                });
                out.extend_from_slice(b",\"conv_rate\":");
                push_list(&mut out, rows, |out, r| push_float(out, r.conv_rate));
                out.extend_from_slice(b",\"acc_rate\":");
                push_list(&mut out, rows, |out, r| push_float(out, r.acc_rate));
                out.extend_from_slice(b",\"avg_daily_trips\":");
                push_list(&mut out, rows, |out, r| push_int(out, r.avg_daily_trips));
                out.extend_from_slice(b"},\"to\":\"online\"}");
                json_call(Route::Push, out)
            }
            Protocol::Native => {
                let column = |f: fn(&Row) -> NativeValue| rows.iter().map(f).collect::<Vec<_>>();
                let write = NativeWrite {
                    target: WriteTarget::PushSource {
                        name: PUSH_SOURCE.into(),
                        to: None,
                    },
                    columns: vec![
                        (JOIN_KEY.into(), column(|r| NativeValue::Int64(r.driver_id))),
                        (
                            "event_timestamp".into(),
                            vec![NativeValue::UnixTimestamp(event_micros); rows.len()],
                        ),
                        (
                            FEATURES[0].into(),
                            column(|r| NativeValue::Float32(r.conv_rate)),
                        ),
                        (
                            FEATURES[1].into(),
                            column(|r| NativeValue::Float32(r.acc_rate)),
                        ),
                        (
                            FEATURES[2].into(),
                            column(|r| NativeValue::Int64(r.avg_daily_trips)),
                        ),
                    ],
                };
                native_call(Route::Push, &write)
            }
        }
    }

    /// `avg_daily_trips` of the first entity in a read's answer; `Ok(None)` when it is not
    /// there yet (not found, or null).
    pub fn read_trips(self, answer: &[u8]) -> Result<Option<i64>, String> {
        match self {
            Protocol::Feast => {
                let answer: Json = serde_json::from_slice(answer)
                    .map_err(|e| format!("the read answer is not JSON: {e}"))?;
                let names = answer["metadata"]["feature_names"]
                    .as_array()
                    .ok_or("the read answer has no metadata.feature_names")?;
                let column = names
                    .iter()
                    .position(|n| n == FEATURES[2])
                    .ok_or("the read answer has no avg_daily_trips column")?;
                let value = &answer["results"][column]["values"][0];
                Ok(value.as_i64())
            }
            Protocol::Native => {
                let (answer, _): (NativeAnswer, usize) = codec::decode(answer)
                    .map_err(|e| format!("the read answer is not a native answer: {e}"))?;
                let column = answer
                    .feature_names
                    .iter()
                    .position(|n| n == FEATURES[2])
                    .ok_or("the read answer has no avg_daily_trips column")?;
                match answer.results[column].values.first() {
                    Some(NativeValue::Int64(v)) => Ok(Some(*v)),
                    _ => Ok(None),
                }
            }
        }
    }
}

fn json_call(route: Route, body: Vec<u8>) -> Call {
    Call {
        route,
        content_type: HeaderValue::from_static("application/json"),
        body: Bytes::from(body),
    }
}

fn native_call<T: serde::Serialize>(route: Route, request: &T) -> Call {
    // Encoding the protocol's own types into a Vec cannot fail.
    let body = codec::encode(request).unwrap_or_default();
    Call {
        route,
        content_type: HeaderValue::from_static(CONTENT_TYPE),
        body: Bytes::from(body),
    }
}

fn push_list<T>(out: &mut Vec<u8>, items: &[T], mut item: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, value) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(out, value);
    }
    out.push(b']');
}

fn push_int(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

fn push_float(out: &mut Vec<u8>, value: f32) {
    if value.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(call: &Call) -> Json {
        serde_json::from_slice(&call.body).unwrap()
    }

    #[test]
    fn a_feast_read_names_the_first_k_features() {
        let call = Protocol::Feast.read(&[1, 2], 2);
        assert_eq!(call.route, Route::Read);
        assert_eq!(Protocol::Feast.path(call.route), "/get-online-features");
        assert_eq!(
            json(&call),
            serde_json::json!({
                "features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate"],
                "entities": {"driver_id": [1, 2]}
            })
        );
    }

    #[test]
    fn a_feast_push_is_columnar_with_one_timestamp() {
        let rows = [
            Row {
                driver_id: 7,
                conv_rate: 0.5,
                acc_rate: 0.25,
                avg_daily_trips: 12,
            },
            Row {
                driver_id: 8,
                conv_rate: 1.0,
                acc_rate: 0.0,
                avg_daily_trips: -3,
            },
        ];
        let call = Protocol::Feast.push(&rows, 1_795_600_800_000_000);
        assert_eq!(Protocol::Feast.path(call.route), "/push");
        assert_eq!(
            json(&call),
            serde_json::json!({
                "push_source_name": "driver_stats_push_source",
                "df": {
                    "driver_id": [7, 8],
                    "event_timestamp": ["2026-11-25T10:00:00Z", "2026-11-25T10:00:00Z"],
                    "conv_rate": [0.5, 1.0],
                    "acc_rate": [0.25, 0.0],
                    "avg_daily_trips": [12, -3]
                },
                "to": "online"
            })
        );
    }

    #[test]
    fn native_calls_decode_to_the_protocol_types() {
        let call = Protocol::Native.read(&[3], 3);
        assert_eq!(
            Protocol::Native.path(call.route),
            "/native/v1/get-online-features"
        );
        let (read, _): (NativeRead, usize) = codec::decode(&call.body).unwrap();
        assert_eq!(read.entities[0].1, [NativeValue::Int64(3)]);
        assert_eq!(read.features.unwrap().len(), 3);
        let row = Row {
            driver_id: 7,
            conv_rate: 0.5,
            acc_rate: 0.25,
            avg_daily_trips: 12,
        };
        let call = Protocol::Native.push(&[row], 5);
        let (write, _): (NativeWrite, usize) = codec::decode(&call.body).unwrap();
        assert_eq!(write.columns[1].1, [NativeValue::UnixTimestamp(5)]);
        assert_eq!(write.columns[4].1, [NativeValue::Int64(12)]);
        let answer = NativeAnswer {
            feature_names: vec!["driver_id".into(), "avg_daily_trips".into()],
            results: vec![
                crate::api::native::NativeColumn {
                    values: vec![NativeValue::Int64(7)],
                    statuses: vec![],
                    event_timestamps: vec![],
                },
                crate::api::native::NativeColumn {
                    values: vec![NativeValue::Int64(42)],
                    statuses: vec![],
                    event_timestamps: vec![],
                },
            ],
        };
        assert_eq!(
            Protocol::Native.read_trips(&codec::encode(&answer).unwrap()),
            Ok(Some(42))
        );
    }

    #[test]
    fn trips_are_found_by_column_name() {
        let answer = br#"{"metadata":{"feature_names":["driver_id","avg_daily_trips"]},
            "results":[{"values":[5]},{"values":[42]}]}"#;
        assert_eq!(Protocol::Feast.read_trips(answer), Ok(Some(42)));
        let missing = br#"{"metadata":{"feature_names":["driver_id","avg_daily_trips"]},
            "results":[{"values":[5]},{"values":[null]}]}"#;
        assert_eq!(Protocol::Feast.read_trips(missing), Ok(None));
        assert!(Protocol::Feast.read_trips(b"oops").is_err());
    }
}
