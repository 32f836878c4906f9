//! Bad inputs, well over 80 of them, against one server: transport (wrong and missing
//! lengths, a body cut short, huge headers, wrong methods, HTTP/1.0, pipelining), JSON syntax,
//! semantics, and the native path (slow headers and bodies: `limits.rs`). For each: a 4xx answer (a JSON error wherever featgrid itself answers;
//! the few that actix-web's HTTP parser refuses before featgrid sees them are marked `Parser`),
//! the server keeps serving, and the stored data is unchanged (`/admin/digest`).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::Server;

mod data_cases;
mod http_cases;

/// What a bad input must get.
#[derive(Clone, Copy)]
pub enum Expect {
    /// A 4xx JSON error `{code, message}` from featgrid (this status, when given).
    Json(Option<u16>),
    /// A 4xx from actix-web's HTTP parser (no JSON body), or the connection closed.
    Parser,
}

pub struct Case {
    pub name: String,
    pub request: Vec<u8>,
    /// Close the sending side after the request (a body cut short).
    pub half_close: bool,
    pub expect: Expect,
}

pub fn http(method: &str, path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out =
        format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n").into_bytes();
    for h in headers {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

pub fn case(name: impl Into<String>, request: Vec<u8>, expect: Expect) -> Case {
    Case {
        name: name.into(),
        request,
        half_close: false,
        expect,
    }
}

pub fn json_case(name: &str, path: &str, body: impl AsRef<[u8]>, status: Option<u16>) -> Case {
    case(
        name,
        http("POST", path, &[], body.as_ref()),
        Expect::Json(status),
    )
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// A valid driver push, with `edit` applied to its `df`.
pub fn push_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut df = json!({"driver_id": [77], "event_timestamp": [now()], "created": [now()],
        "conv_rate": [0.5], "acc_rate": [0.25], "avg_daily_trips": [3]});
    edit(df.as_object_mut().unwrap());
    json!({"push_source_name": "driver_stats_push_source", "df": df}).to_string()
}

pub fn read_with(entities: Value) -> String {
    json!({"features": ["driver_hourly_stats:conv_rate"], "entities": entities}).to_string()
}

/// Sends one request on its own connection; the raw answer (empty if the server closed).
fn send(server: &Server, case: &Case) -> String {
    let addr = server.url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // A refused request may close the connection before the whole request is written.
    let _ = stream.write_all(&case.request);
    if case.half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Status and body (by its Content-Length) of the first final answer in `raw`.
fn parse(raw: &str) -> Option<(u16, &str)> {
    let raw = raw
        .strip_prefix("HTTP/1.1 100 Continue\r\n\r\n")
        .unwrap_or(raw);
    let status = raw.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()?;
    let (head, rest) = raw.split_once("\r\n\r\n")?;
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    Some((status, rest.get(..length)?))
}

fn check(case: &Case, raw: &str) -> Result<(), String> {
    match (case.expect, parse(raw)) {
        (Expect::Parser, None) => Ok(()), // closed without an answer
        (Expect::Parser, Some((status, _))) if (400..500).contains(&status) => Ok(()),
        (Expect::Json(want), Some((status, body))) if (400..500).contains(&status) => {
            if want.is_some_and(|w| w != status) {
                return Err(format!("status {status}, want {want:?}"));
            }
            let json: Value =
                serde_json::from_str(body).map_err(|e| format!("not JSON ({e}): {body:.200}"))?;
            match (json["code"].as_str(), json["message"].as_str()) {
                (Some(code), Some(message)) if !code.is_empty() && !message.is_empty() => Ok(()),
                _ => Err(format!("not {{code, message}}: {body:.200}")),
            }
        }
        _ => Err(format!("got {:.300}", raw)),
    }
}

#[test]
fn bad_inputs_get_4xx_errors_and_change_nothing() {
    let server = Server::start_with(
        &[],
        &[
            ("FEATGRID_MAX_ROWS_PER_PUSH", "1000"),
            ("FEATGRID_HEADER_TIMEOUT_MS", "1000"),
            ("FEATGRID_BODY_TIMEOUT_MS", "1000"),
        ],
    );
    server.push_driver(json!({"driver_id": [1, 2, 3], "event_timestamp": [now(), now(), now()], "created": [now(), now(), now()],
        "conv_rate": [0.5, 0.25, 0.75], "acc_rate": [0.1, 0.2, 0.3], "avg_daily_trips": [1, 2, 3]}));
    let digest = server.get("/admin/digest").json;
    assert_eq!(digest["rows"], 3);

    let mut cases = http_cases::transport();
    cases.extend(http_cases::json_syntax());
    cases.extend(data_cases::semantic());
    cases.extend(data_cases::native_path());
    assert!(cases.len() >= 80, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let raw = send(&server, case);
        if let Err(why) = check(case, &raw) {
            failures.push(format!("{}: {why}", case.name));
        }
        let health = server.get("/health");
        assert_eq!(
            health.status, 200,
            "the server stopped serving after '{}'",
            case.name
        );
        let now = server.get("/admin/digest").json;
        assert_eq!(now, digest, "'{}' changed the stored data", case.name);
    }
    // Pipelining: two bad requests in one write get two JSON answers, in order.
    let pipelined = [
        http("POST", "/push", &["Connection: keep-alive"], b"{"),
        http("GET", "/push", &[], b""),
    ]
    .concat();
    let raw = send(&server, &case("pipelined", pipelined, Expect::Parser));
    let first = raw.find("\"code\":\"malformed_json\"");
    let second = raw.find("\"code\":\"method_not_allowed\"");
    assert!(
        first.is_some() && second.is_some() && first < second,
        "pipelined answers: {raw}"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // And the server still answers a good request with the data it had.
    let a = server.read(
        &["driver_hourly_stats:conv_rate"],
        json!({"driver_id": [1, 3]}),
    );
    assert_eq!(a["results"][1]["values"], json!([0.5, 0.75]));
}
