//! `error_format`: Feast's own error shape for Feast SDK users (a JSON string holding
//! `{"module", "class", "message"}`), chosen per server and overridable per request with the
//! `Featgrid-Error-Format` header.

use serde_json::{json, Value};

use crate::support::{Answer, Server};

fn unknown_view(server: &Server, header: Option<&str>) -> Answer {
    let body = json!({"features": ["nope:x"], "entities": {"driver_id": [1]}}).to_string();
    let headers: Vec<(&str, &str)> = header
        .map(|h| ("Featgrid-Error-Format", h))
        .into_iter()
        .collect();
    server.send("POST", "/get-online-features", &headers, Some(&body))
}

/// The `{module, class, message}` inside a Feast-shaped answer.
fn feast_detail(a: &Answer) -> Value {
    let inner = a
        .json
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON string: {}", a.text));
    serde_json::from_str(inner).unwrap()
}

#[test]
fn the_server_setting_and_the_request_header_choose_the_error_shape() {
    let plain = Server::start();
    let a = unknown_view(&plain, None);
    assert_eq!(
        (a.status, a.json["code"].as_str()),
        (404, Some("unknown_feature_view")),
        "{}",
        a.text
    );
    let a = unknown_view(&plain, Some("feast"));
    assert_eq!(a.status, 404);
    let detail = feast_detail(&a);
    assert_eq!(detail["module"], "feast.errors");
    assert_eq!(detail["class"], "FeatureViewNotFoundException");
    assert!(
        detail["message"].as_str().unwrap().contains("nope"),
        "{detail}"
    );
    assert!(a.request_id.is_some());

    let feast = Server::start_with(&[], &[("FEATGRID_ERROR_FORMAT", "feast")]);
    let a = unknown_view(&feast, None);
    assert_eq!(feast_detail(&a)["class"], "FeatureViewNotFoundException");
    let a = unknown_view(&feast, Some("featgrid"));
    assert_eq!(a.json["code"], "unknown_feature_view", "{}", a.text);
    // Every error takes the shape: a route that does not exist, a bad body, a bad push source.
    let a = feast.send("GET", "/nowhere", &[], None);
    assert_eq!(
        (a.status, feast_detail(&a)["class"].as_str()),
        (404, Some("FeastError"))
    );
    let a = feast.send("POST", "/push", &[], Some("{"));
    assert!(
        feast_detail(&a)["message"]
            .as_str()
            .unwrap()
            .starts_with("malformed_json: "),
        "{}",
        a.text
    );
    let a = feast.send(
        "POST",
        "/push",
        &[],
        Some(r#"{"push_source_name":"nope","df":{}}"#),
    );
    assert_eq!(
        (a.status, feast_detail(&a)["class"].as_str()),
        (422, Some("PushSourceNotFoundException"))
    );
    // Successful answers are untouched.
    assert_eq!(feast.get("/health").json["status"], "ok");
}

#[test]
fn an_unknown_error_format_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("s.toml");
    std::fs::write(&settings, "error_format = \"xml\"\n").unwrap();
    let (status, stderr) =
        crate::support::refused_start(dir.path(), &["--config", settings.to_str().unwrap()]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("error_format: 'xml'"), "{stderr}");
}
