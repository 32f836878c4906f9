//! The transport and JSON-syntax cases of the robustness suite.

use serde_json::json;

use super::{case, http, json_case, push_with, read_with, Case, Expect};

pub fn transport() -> Vec<Case> {
    let push = push_with(|_| {});
    let raw = |s: &str| s.as_bytes().to_vec();
    let mut cases = vec![
        case("garbage request line", raw("HELLO\r\n\r\n"), Expect::Parser),
        case("unknown HTTP version", raw("GET /health HTTP/9.9\r\nHost: t\r\n\r\n"), Expect::Parser),
        case("header without a colon", raw("POST /push HTTP/1.1\r\nHost t\r\n\r\n"), Expect::Parser),
        case("non-numeric Content-Length", raw("POST /push HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n{}"), Expect::Parser),
        case("negative Content-Length", raw("POST /push HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n{}"), Expect::Parser),
        case("two different Content-Lengths", raw("POST /push HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"), Expect::Parser),
        case("Content-Length and chunked together", raw("POST /push HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"), Expect::Parser),
        case("a bad chunk size", raw("POST /push HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"), Expect::Parser),
        case("a 200 KiB header", format!("GET /health HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(200 << 10)).into_bytes(), Expect::Parser),
        case("120 headers", format!("GET /health HTTP/1.1\r\nHost: t\r\n{}\r\n", "X-H: 1\r\n".repeat(120)).into_bytes(), Expect::Parser),
        case("a 200 KiB path", format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "p".repeat(200 << 10)).into_bytes(), Expect::Parser),
        case("a 20 GB Content-Length", raw("POST /push HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 20000000000\r\n\r\n{"), Expect::Json(Some(413))),
        case("Expect: 100-continue past the limit", raw("POST /push HTTP/1.1\r\nHost: t\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: 900000000\r\n\r\n"), Expect::Json(Some(413))),
        case("no Content-Length, body sent anyway", format!("POST /push HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n{push}").into_bytes(), Expect::Json(Some(400))),
        case("Content-Length shorter than the body", format!("POST /push HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 20\r\n\r\n{push}").into_bytes(), Expect::Json(Some(400))),
        case("HTTP/1.0 with a bad body", raw("POST /push HTTP/1.0\r\nHost: t\r\nContent-Length: 5\r\n\r\n{nope"), Expect::Json(Some(400))),
        case("HTTP/1.0 read of an unknown view", {
            let body = read_with(json!({"driver_id": [1]})).replace("driver_hourly_stats:", "nope:");
            format!("POST /get-online-features HTTP/1.0\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
        }, Expect::Json(Some(404))),
        case("a non-UTF-8 path", b"GET /\xff\xfe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(), Expect::Parser),
    ];
    for (method, path) in [
        ("GET", "/push"),
        ("PUT", "/get-online-features"),
        ("DELETE", "/admin/snapshot"),
        ("PATCH", "/write-to-online-store"),
        ("GET", "/native/v1/push"),
        ("POST", "/health"),
    ] {
        cases.push(case(
            format!("{method} {path}"),
            http(method, path, &[], b""),
            Expect::Json(Some(405)),
        ));
    }
    // A body cut short: Content-Length says more than arrives, then the client stops sending.
    let mut cut = format!(
        "POST /push HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        push.len()
    )
    .into_bytes();
    cut.extend_from_slice(&push.as_bytes()[..push.len() / 2]);
    cases.push(Case {
        name: "a body cut short".into(),
        request: cut,
        half_close: true,
        expect: Expect::Json(Some(400)),
    });
    cases
}

pub fn json_syntax() -> Vec<Case> {
    let push = push_with(|_| {});
    let mut cases = Vec::new();
    for path in ["/push", "/get-online-features", "/write-to-online-store"] {
        cases.push(json_case(
            &format!("{path}: empty body"),
            path,
            "",
            Some(400),
        ));
        cases.push(json_case(
            &format!("{path}: not JSON"),
            path,
            "hello",
            Some(400),
        ));
        cases.push(json_case(
            &format!("{path}: a JSON array"),
            path,
            "[1,2]",
            Some(400),
        ));
        cases.push(json_case(&format!("{path}: null"), path, "null", Some(400)));
    }
    let bad_bodies: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", push.as_bytes()[..push.len() - 3].to_vec()),
        ("trailing garbage", format!("{push}xyz").into_bytes()),
        ("two documents", format!("{push}{push}").into_bytes()),
        (
            "a duplicate top-level key",
            push.replacen("{\"df\"", "{\"push_source_name\":\"x\",\"df\"", 1)
                .into_bytes(),
        ),
        (
            "a duplicate column",
            push.replacen("\"acc_rate\"", "\"conv_rate\":[0.9],\"acc_rate\"", 1)
                .into_bytes(),
        ),
        (
            "nesting 100000 deep",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        ),
        (
            "a list nested 200 deep as a value",
            push.replacen(
                "[0.5]",
                &format!("[{}0.5{}]", "[".repeat(200), "]".repeat(200)),
                1,
            )
            .into_bytes(),
        ),
        ("invalid UTF-8 in a string", {
            let mut b = push
                .replacen("driver_stats_push_source", "driver\u{1}", 1)
                .into_bytes();
            let i = b.iter().position(|&c| c == 1).unwrap();
            b[i] = 0xff;
            b
        }),
        // NaN and the infinities are read for float features, as Feast does (see
        // validation.rs); anywhere else (here an int64 feature) they are a 400.
        (
            "a NaN literal for an int64",
            push.replacen("[3]", "[NaN]", 1).into_bytes(),
        ),
        (
            "an Infinity literal for an int64",
            push.replacen("[3]", "[Infinity]", 1).into_bytes(),
        ),
        (
            "-Infinity for an int64",
            push.replacen("[3]", "[-Infinity]", 1).into_bytes(),
        ),
        (
            "a lone high surrogate",
            push.replacen("driver_stats_push_source", "\\ud800", 1)
                .into_bytes(),
        ),
        (
            "a lone low surrogate",
            push.replacen("driver_stats_push_source", "\\udc00x", 1)
                .into_bytes(),
        ),
        (
            "an unescaped control character",
            push.replacen("driver_stats_push_source", "driver\u{7}", 1)
                .into_bytes(),
        ),
        ("single quotes", push.replace('"', "'").into_bytes()),
        (
            "a byte-order mark",
            [&[0xef, 0xbb, 0xbf][..], push.as_bytes()].concat(),
        ),
        ("a comment", format!("/* c */{push}").into_bytes()),
        (
            "a leading zero",
            push.replacen("[77]", "[077]", 1).into_bytes(),
        ),
        (
            "a number past f64",
            push.replacen("0.5", "1e400", 1).into_bytes(),
        ),
        (
            "a trailing comma",
            push.replacen("]},\"push", "],},\"push", 1).into_bytes(),
        ),
    ];
    for (name, body) in bad_bodies {
        cases.push(json_case(name, "/push", body, Some(400)));
    }
    cases
}
