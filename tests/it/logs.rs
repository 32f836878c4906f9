//! The log (README "Routes"): failed requests with their request id, route, status and error
//! code (a 4xx at `info`), no colour codes when the log is a pipe, and one JSON object a line
//! with `--log-format json`. Cluster nodes started one after another log no error for a peer
//! not up yet; a peer away for long is a `warn` line, shown in `GET /cluster`, and its return
//! an `info` line.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{push, Cluster};
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

/// Lines of `log` that are at `level` and mention a peer that could not be reached.
fn lines_about_unreachable<'a>(log: &'a str, level: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| l.contains(&format!(" {level} ")))
        .filter(|l| {
            [
                "Unreachable",
                "Connection refused",
                "did not answer",
                "backoff",
            ]
            .iter()
            .any(|w| l.contains(w))
        })
        .collect()
}

#[test]
fn cluster_nodes_started_one_after_another_log_no_error_for_a_peer_not_up_yet() {
    let groups: &[&[usize]] = &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]];
    let mut cluster = Cluster::prepare(3, groups, &[], "127.0.0.1", None).logged();
    for i in 0..3 {
        cluster.restart(i);
        // The next node starts once this one has tried (and failed) to reach it.
        std::thread::sleep(Duration::from_secs(2));
    }
    cluster.wait_for_replicas();
    let a = push(cluster.node(0), &[1, 2, 3], 5);
    assert_eq!(a.status, 200, "{}", a.text);
    for i in 0..3 {
        let log = cluster.node(i).log();
        assert!(log.contains("cluster node started"), "node {i}:\n{log}");
        let errors = lines_about_unreachable(&log, "ERROR");
        assert!(errors.is_empty(), "node {i}:\n{}", errors.join("\n"));
        // openraft's own warnings about it are gone too; ours (after 10 s away) may stay.
        let warnings: Vec<&str> = lines_about_unreachable(&log, "WARN")
            .into_iter()
            .filter(|l| l.contains("openraft"))
            .collect();
        assert!(warnings.is_empty(), "node {i}:\n{}", warnings.join("\n"));
    }
}

#[test]
fn a_peer_away_for_long_is_a_warning_shown_in_cluster_status_and_its_return_is_told() {
    let groups: &[&[usize]] = &[&[1, 2, 3], &[2, 3, 1]];
    let mut cluster = Cluster::prepare(3, groups, &[], "127.0.0.1", None).logged();
    cluster.restart(0);
    cluster.restart(1);
    let leader_of_0 = cluster.wait_for_leaders(0)["groups"][0]["leader"]
        .as_str()
        .unwrap()
        .to_string();
    let asked = if leader_of_0 == "n1" { 0 } else { 1 };
    // Node 3 never started: the leader's calls to it fail until a warning says so.
    let log = log_with(cluster.node(asked), "peer unreachable");
    let warning = log
        .lines()
        .find(|l| l.contains("peer unreachable"))
        .unwrap();
    let n3 = cluster.internal[2].clone();
    assert!(
        warning.contains(" WARN ") && warning.contains(&format!("peer={n3} ")),
        "{warning}"
    );
    let status = cluster.status(asked);
    let node3 = &status["nodes"][2];
    assert_eq!(node3["healthy"], false, "{status}");
    assert!(
        node3["unreachable_secs"].as_u64().is_some_and(|s| s >= 10),
        "{status}"
    );
    assert!(status["nodes"][0]["unreachable_secs"].is_null(), "{status}");
    for i in 0..2 {
        let log = cluster.node(i).log();
        let errors = lines_about_unreachable(&log, "ERROR");
        assert!(errors.is_empty(), "node {i}:\n{}", errors.join("\n"));
    }

    cluster.restart(2);
    cluster.wait_for_replicas();
    let log = log_with(cluster.node(asked), "peer reachable again");
    let back = log
        .lines()
        .find(|l| l.contains("peer reachable again"))
        .unwrap();
    assert!(
        back.contains(" INFO ") && back.contains(&format!("peer={n3} ")),
        "{back}"
    );
    let status = cluster.status(asked);
    assert!(status["nodes"][2]["unreachable_secs"].is_null(), "{status}");
}
