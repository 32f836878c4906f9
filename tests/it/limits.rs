//! Limits (README "Limits"): slow and silent clients are cut off, oversized bodies, values and answers are
//! refused with 4xx JSON errors naming the setting, and the memory ceiling refuses writes with
//! 507 while reads keep working.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::Server;

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// Driver rows `first..first + n`.
fn drivers(first: i64, n: i64) -> Value {
    let ids: Vec<i64> = (first..first + n).collect();
    let k = ids.len();
    json!({"driver_id": ids, "event_timestamp": vec![now(); k], "created": vec![now(); k],
           "conv_rate": vec![0.5; k], "acc_rate": vec![0.25; k], "avg_daily_trips": vec![3; k]})
}

fn push(server: &Server, df: Value) -> crate::support::Answer {
    server.post(
        "/push",
        &json!({"push_source_name": "driver_stats_push_source", "df": df}),
    )
}

/// Opens a connection and sends `head`, then `trickle` one byte every 200 ms from a thread;
/// returns what the server answered (until it closes or 30 s pass).
fn trickle(server: &Server, head: &str, trickle: &'static [u8]) -> String {
    let addr = server.url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        for b in trickle {
            std::thread::sleep(Duration::from_millis(200));
            if writer.write_all(&[*b]).is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_client_trickling_its_body_or_headers_is_cut_off_and_others_are_served() {
    let server = Server::start_with(
        &[],
        &[
            ("FEATGRID_BODY_TIMEOUT_MS", "1000"),
            ("FEATGRID_HEADER_TIMEOUT_MS", "1000"),
        ],
    );
    // 200 bytes at 5 a second would take 40 s; the server gives up after 1 s.
    let body: &'static [u8] = Box::leak(vec![b' '; 200].into_boxed_slice());
    let answer = trickle(
        &server,
        "POST /push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n",
        body,
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"body_timeout""#), "{answer}");

    let headers: &'static [u8] = Box::leak(b"X-Slow: 1\r\n".repeat(20).into_boxed_slice());
    let answer = trickle(&server, "GET /health HTTP/1.1\r\nHost: x\r\n", headers);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // A connection that sends nothing at all is answered 408 and closed as well: it holds no
    // connection slot past the header timeout.
    let answer = trickle(&server, "", b"");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    assert_eq!(server.get("/health").status, 200);
}

/// Sends `head` and then `pieces` on one connection, 100 ms apart (separate TCP segments, each
/// read by the server on its own); returns the answer.
fn in_pieces(server: &Server, head: &str, pieces: &[&[u8]]) -> String {
    let addr = server.url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    for piece in pieces {
        std::thread::sleep(Duration::from_millis(100));
        stream.write_all(piece).unwrap();
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_body_that_arrives_in_pieces_is_read_whole_and_still_held_to_the_limit() {
    let server = Server::start_with(&[], &[("FEATGRID_MAX_BODY_BYTES", "4000")]);
    let body = json!({"push_source_name": "driver_stats_push_source", "df": drivers(0, 10)})
        .to_string()
        .into_bytes();
    let (a, rest) = body.split_at(7);
    let (b, c) = rest.split_at(rest.len() / 2);
    // With a length, in three pieces.
    let head = format!(
        "POST /push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let answer = in_pieces(&server, &head, &[a, b, c]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Chunked, two chunks in two segments, of the next ten rows.
    let body = json!({"push_source_name": "driver_stats_push_source", "df": drivers(10, 10)})
        .to_string()
        .into_bytes();
    let (a, b) = body.split_at(body.len() / 3);
    let chunk =
        |bytes: &[u8]| [format!("{:x}\r\n", bytes.len()).as_bytes(), bytes, b"\r\n"].concat();
    let head = "POST /push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
    let answer = in_pieces(
        &server,
        head,
        &[&chunk(a), &[chunk(b), b"0\r\n\r\n".to_vec()].concat()],
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let ids: Vec<i64> = (0..20).collect();
    let read = server.read(
        &["driver_hourly_stats:conv_rate"],
        json!({"driver_id": ids}),
    );
    let (values, statuses, _) = crate::support::column(&read, "conv_rate");
    assert_eq!(values, vec![json!(0.5); 20], "{read}");
    assert!(statuses.iter().all(|s| s == "PRESENT"), "{read}");
    // Chunked past the limit (no length to refuse up front): 413 once the pieces add up.
    let big = json!({"push_source_name": "driver_stats_push_source", "df": drivers(0, 100)})
        .to_string()
        .into_bytes();
    let (a, b) = big.split_at(3000);
    let answer = in_pieces(
        &server,
        head,
        &[&chunk(a), &[chunk(b), b"0\r\n\r\n".to_vec()].concat()],
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""code":"body_too_large""#), "{answer}");
}

#[test]
fn oversized_reads_values_and_answers_are_refused_naming_the_setting() {
    let server = Server::start_with(
        &[],
        &[
            ("FEATGRID_MAX_READ_BODY_BYTES", "2048"),
            ("FEATGRID_MAX_ANSWER_BYTES", "20000"),
        ],
    );
    push(&server, drivers(0, 1000));
    let ids: Vec<i64> = (0..1000).collect();
    let a = server.post(
        "/get-online-features",
        &json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": ids}}),
    );
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (413, Some("body_too_large")),
        "{}",
        a.text
    );
    assert!(a.text.contains("max_read_body_bytes"), "{}", a.text);

    // 300 ids fit in the read body limit, but their answer does not fit in 20 kB.
    let ids: Vec<i64> = (0..300).collect();
    let body = json!({"features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips"], "entities": {"driver_id": ids}});
    let a = server.post("/get-online-features", &body);
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (413, Some("answer_too_large")),
        "{}",
        a.text
    );
    assert!(a.text.contains("max_answer_bytes"), "{}", a.text);
    let small =
        json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1, 2]}});
    assert_eq!(server.post("/get-online-features", &small).status, 200);
}

#[test]
fn a_string_past_max_value_bytes_is_refused_and_nothing_is_written() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");
    let server = Server::start_with(
        &["--config", config],
        &[("FEATGRID_MAX_VALUE_BYTES", "1000")],
    );
    let features = crate::support::CUSTOMER_PROFILE_FIELDS;
    let write = |name: Value, id: &str| {
        let mut df = serde_json::Map::new();
        df.insert("customer_id".into(), json!([id]));
        df.insert("event_timestamp".into(), json!([now()]));
        for f in features {
            df.insert(f.into(), json!([null]));
        }
        df.insert("name".into(), json!([name]));
        server.post(
            "/write-to-online-store",
            &json!({"feature_view_name": "customer_profile", "df": df}),
        )
    };
    let before = server.get("/admin/digest").json;
    let a = write(json!("x".repeat(5000)), "c1");
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (413, Some("value_too_large")),
        "{}",
        a.text
    );
    assert!(
        a.text.contains("column 'name' row 0") && a.text.contains("max_value_bytes"),
        "{}",
        a.text
    );
    let a = write(json!("ok"), &"k".repeat(5000));
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (413, Some("value_too_large")),
        "{}",
        a.text
    );
    assert_eq!(server.get("/admin/digest").json, before);
    assert_eq!(write(json!("fits"), "c1").status, 200);
}

#[test]
fn past_max_memory_writes_are_507_and_reads_keep_working() {
    let server = Server::start_with(&["--max-memory", "256KiB"], &[]);
    let mut refused = None;
    for batch in 0..200 {
        let a = push(&server, drivers(batch * 500, 500));
        if a.status != 200 {
            refused = Some(a);
            break;
        }
    }
    let a = refused.expect("a 256 KiB store never refused a write");
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (507, Some("memory_limit")),
        "{}",
        a.text
    );
    assert!(a.text.contains("max_memory (262144 bytes)"), "{}", a.text);
    let digest = server.get("/admin/digest").json;
    let again = push(&server, drivers(1_000_000, 500));
    assert_eq!(again.status, 507, "{}", again.text);
    assert_eq!(
        server.get("/admin/digest").json,
        digest,
        "a refused write changed nothing"
    );
    let read = server.read(
        &["driver_hourly_stats:conv_rate"],
        json!({"driver_id": [0, 1]}),
    );
    assert_eq!(read["results"][1]["values"], json!([0.5, 0.5]));
}

/// README "Limits": a view's first row in a shard takes a first block of 1,024 records (and a
/// sequence number per 16) beside its index: 42,304 bytes for the driver quickstart's 41-byte
/// records, from the first row to the 12th.
#[test]
fn a_views_first_row_in_a_shard_takes_the_documented_floor() {
    let server = Server::start_with(&["--shards", "1"], &[]);
    let memory = || server.get("/stats").json["memory_bytes"].clone();
    assert_eq!(memory(), 64, "an empty index of 16 slots");
    push(&server, drivers(1, 1));
    assert_eq!(memory(), 1024 * 41 + 1024 / 16 * 4 + 64);
    push(&server, drivers(2, 11));
    assert_eq!(memory(), 42_304);
}

/// Sends a raw HTTP/1.1 request (Host plus `headers` extra headers of `value`) and returns the
/// status line of the answer.
fn status_with_headers(server: &Server, headers: usize, value: &str) -> String {
    let addr = server.url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = String::from("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 0..headers {
        request.push_str(&format!("X-H{i}: {value}\r\n"));
    }
    request.push_str("\r\n");
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(request.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or("").to_string()
}

/// README "Limits": 96 headers at most (Host and Connection count), 128 KiB of headers at most;
/// past either, 431.
#[test]
fn too_many_or_too_large_headers_answer_431() {
    let server = Server::start();
    assert_eq!(status_with_headers(&server, 94, "1"), "HTTP/1.1 200 OK");
    assert_eq!(
        status_with_headers(&server, 95, "1"),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    let kib = "a".repeat(1024);
    assert_eq!(status_with_headers(&server, 60, &kib), "HTTP/1.1 200 OK");
    assert_eq!(
        status_with_headers(&server, 90, &"a".repeat(2000)),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}

#[test]
fn a_megabyte_first_key_before_sixty_thousand_short_ones_is_stored_not_a_crash() {
    // Batches were sized for every row as long as the first key: 60,000 rows behind a key of
    // a megabyte asked the allocator for 30 GB, and a failed allocation aborts the process.
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml");
    let server = Server::start_with(&["--config", config], &[]);
    let rows = 60_000;
    let long = "x".repeat(1_000_000);
    let customers: Vec<String> = std::iter::once(long.clone())
        .chain((1..rows).map(|i| format!("c{i}")))
        .collect();
    let df = json!({
        "driver_id": vec![7; rows],
        "customer_id": customers,
        "event_timestamp": vec![now(); rows],
        "trips_together": vec![3; rows],
        "total_fare": vec![12.5; rows],
        "rating": vec![4.5; rows],
    });
    let a = server.post(
        "/write-to-online-store",
        &json!({"feature_view_name": "driver_customer_stats", "df": df}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    // Read back the same way: the long key first, then thousands of short ones.
    let read = |customers: Vec<String>| {
        let n = customers.len();
        server.post(
            "/get-online-features",
            &json!({
                "features": ["driver_customer_stats:trips_together"],
                "entities": {"driver_id": vec![7; n], "customer_id": customers},
            }),
        )
    };
    let customers: Vec<String> = std::iter::once(long)
        .chain((1..5_000).map(|i| format!("c{i}")))
        .collect();
    let a = read(customers);
    assert_eq!(a.status, 200, "{}", a.text);
    let values = &a.json["results"][2]["values"];
    assert_eq!(values[0], json!(3), "{}", &a.text[..200.min(a.text.len())]);
    assert_eq!(values[4_999], json!(3));
    assert_eq!(server.get("/health").status, 200);
}
