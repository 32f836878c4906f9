//! Boots the real server binary on an ephemeral loopback port and talks HTTP to it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_featgrid");

/// A running `featgrid serve`; killed when dropped.
pub struct Server {
    child: Child,
    url: String,
}

/// An HTTP answer: status, parsed JSON body (Null when empty or not JSON), raw text, request id.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub json: Value,
    pub text: String,
    pub request_id: Option<String>,
}

impl Server {
    /// The server on its embedded defaults.
    pub fn start() -> Server {
        Server::start_with(&[], &[])
    }

    /// The server with extra `serve` flags and environment variables.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--workers", "1"])
            .args(args)
            .env("FEATGRID_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start featgrid");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("featgrid listening on ") {
                    let _ = tx.send(url.trim().to_string());
                    break;
                }
            }
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                panic!("featgrid did not report its address within 30 s ({status})");
            }
        };
        Server { child, url }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn post(&self, path: &str, body: &Value) -> Answer {
        self.post_raw(path, &body.to_string(), Some("application/json"))
    }

    /// Posts a raw body with the given Content-Type (or none).
    pub fn post_raw(&self, path: &str, body: &str, content_type: Option<&str>) -> Answer {
        let mut request = ureq::post(&format!("{}{path}", self.url));
        if let Some(ct) = content_type {
            request = request.set("Content-Type", ct);
        }
        answer(request.send_string(body))
    }

    /// Posts bytes in the native codec; answers status and body bytes.
    pub fn post_native(&self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let request = ureq::post(&format!("{}{path}", self.url))
            .set("Content-Type", featgrid::api::native::CONTENT_TYPE);
        let response = match request.send_bytes(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("request failed: {e}"),
        };
        let status = response.status();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).expect("read body");
        (status, bytes)
    }

    pub fn get(&self, path: &str) -> Answer {
        answer(ureq::get(&format!("{}{path}", self.url)).call())
    }

    /// `get-online-features` for `features` and the given entity columns; panics unless 200.
    pub fn read(&self, features: &[&str], entities: Value) -> Value {
        let a = self.post(
            "/get-online-features",
            &serde_json::json!({"features": features, "entities": entities}),
        );
        assert_eq!(a.status, 200, "{}", a.text);
        a.json
    }

    /// `push` to the driver quickstart's source; panics unless 200.
    pub fn push_driver(&self, df: Value) {
        let a = self.post("/push", &serde_json::json!({"push_source_name": "driver_stats_push_source", "df": df, "to": "online"}));
        assert_eq!(a.status, 200, "{}", a.text);
    }
}

fn answer(result: Result<ureq::Response, ureq::Error>) -> Answer {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    let request_id = response.header("x-request-id").map(str::to_string);
    let text = response.into_string().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        json,
        text,
        request_id,
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The column named `name` of a get-online-features answer: (values, statuses, event_timestamps).
pub fn column(answer: &Value, name: &str) -> (Vec<Value>, Vec<String>, Vec<String>) {
    let names = answer["metadata"]["feature_names"]
        .as_array()
        .expect("feature_names");
    let i = names
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no column {name} in {answer}"));
    let result = &answer["results"][i];
    let strings = |key: &str| {
        result[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    (
        result["values"].as_array().unwrap().clone(),
        strings("statuses"),
        strings("event_timestamps"),
    )
}
