//! The log (README "Routes"): failed requests with their request id, route, status and error
//! code (a 4xx at `info`), no colour codes when the log is a pipe, and one JSON object a line
//! with `--log-format json`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Server;

/// Waits (up to 30 s) until the server's log holds `what`; answers the log.
fn log_with(server: &Server, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = server.log();
        if log.contains(what) {
            return log;
        }
        assert!(Instant::now() < deadline, "no '{what}' in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_piped_text_log_has_no_colour_and_client_errors_are_info_lines_with_their_code() {
    let server = Server::start_logged(&[], &[("FEATGRID_LOG", "info"), ("NO_COLOR", "")]);
    let bad = server.post_raw("/get-online-features", "{", None);
    assert_eq!(bad.status, 400);
    let id = bad.request_id.expect("an x-request-id");
    let log = log_with(&server, &format!("request_id={id} "));
    let line = log
        .lines()
        .find(|l| l.contains(&format!("request_id={id} ")))
        .unwrap();
    assert!(
        line.contains(" INFO ")
            && line.contains("request refused (client error)")
            && line.contains("route=\"/get-online-features\"")
            && line.contains("status=400")
            && line.contains("malformed_json"),
        "{line}"
    );
    assert!(!log.contains('\x1b'), "colour codes in a piped log:\n{log}");
}

#[test]
fn log_format_json_writes_one_object_a_line() {
    let server = Server::start_logged(&["--log-format", "json"], &[("FEATGRID_LOG", "info")]);
    let missing = server.get("/nowhere");
    assert_eq!(missing.status, 404);
    let id: u64 = missing.request_id.unwrap().parse().unwrap();
    let log = log_with(&server, "request refused (client error)");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["message"] == "serving"), "{log}");
    let refused = lines
        .iter()
        .find(|l| l["message"] == "request refused (client error)")
        .unwrap();
    assert_eq!(refused["level"], "INFO", "{refused}");
    assert_eq!(refused["request_id"], id, "{refused}");
    assert_eq!(refused["status"], 404, "{refused}");
    assert_eq!(refused["code"], "not_found", "{refused}");
    assert!(!log.contains('\x1b'), "{log}");
}
