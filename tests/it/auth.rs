//! Who may read and write: bearer tokens with scopes and views (`--auth-tokens`), 401/403 in
//! the standard error shape, SIGHUP reload, `featgrid token new`, and the safe default
//! (no credentials: loopback only unless `--insecure`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use featgrid::auth::tokens::{file_entry, new_token};
use featgrid::auth::Scope;
use serde_json::json;

use crate::support::{assert_error, Answer, Server, BIN};

/// A token and its `[[token]]` entry.
fn token(name: &str, scopes: &[Scope], views: &[&str]) -> (String, String) {
    let (token, hash) = new_token().unwrap();
    let views: Vec<String> = views.iter().map(|v| v.to_string()).collect();
    (token, file_entry(name, &hash, scopes, &views))
}

fn push_body(driver: i64) -> String {
    let now = chrono::Utc::now().to_rfc3339();
    json!({"push_source_name": "driver_stats_push_source", "to": "online", "df": {
        "driver_id": [driver], "event_timestamp": [now], "created": [now],
        "conv_rate": [0.5], "acc_rate": [0.9], "avg_daily_trips": [12]}})
    .to_string()
}

fn read_body() -> String {
    json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1]}})
        .to_string()
}

fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    server.send(method, path, &headers, body)
}

#[test]
fn scopes_and_views_decide_who_may_read_write_and_administer() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, e1) = token("reader", &[Scope::Read], &[]);
    let (writer, e2) = token("writer", &[Scope::Write], &[]);
    let (admin, e3) = token("ops", &[Scope::Admin], &[]);
    let (limited, e4) = token("limited", &[Scope::Read, Scope::Write], &["another_view"]);
    let file = dir.path().join("tokens.toml");
    std::fs::write(&file, [e1, e2, e3, e4].concat()).unwrap();
    let log = dir.path().join("server.log");
    let server = Server::start_logging(
        &["--auth-tokens", file.to_str().unwrap()],
        &[("FEATGRID_LOG", "debug")],
        &log,
    );

    // Open routes.
    assert_eq!(call(&server, "GET", "/health", None, None).status, 200);
    assert_eq!(call(&server, "GET", "/metrics", None, None).status, 200);

    // 401: no token, an unknown token, a malformed header; before the body is looked at.
    for path in [
        "/push",
        "/get-online-features",
        "/write-to-online-store",
        "/native/v1/push",
        "/native/v1/get-online-features",
    ] {
        let a = call(&server, "POST", path, None, Some("not json"));
        assert_error(&a, 401, "unauthorized");
        let a = call(&server, "POST", path, Some("fgt_0000"), Some("{}"));
        assert_error(&a, 401, "unauthorized");
    }
    for path in ["/stats", "/registry", "/admin/digest", "/admin/snapshot"] {
        assert_error(&call(&server, "GET", path, None, None), 401, "unauthorized");
    }
    let a = server.send(
        "GET",
        "/stats",
        &[("Authorization", &format!("Basic {admin}"))],
        None,
    );
    assert_error(&a, 401, "unauthorized");

    // write: push, but not read or administer.
    assert_eq!(
        call(&server, "POST", "/push", Some(&writer), Some(&push_body(1))).status,
        200
    );
    assert_error(
        &call(
            &server,
            "POST",
            "/get-online-features",
            Some(&writer),
            Some(&read_body()),
        ),
        403,
        "forbidden",
    );
    assert_error(
        &call(&server, "GET", "/stats", Some(&writer), None),
        403,
        "forbidden",
    );

    // read: read, but not write (whatever the path's spelling) or administer.
    let a = call(
        &server,
        "POST",
        "/get-online-features",
        Some(&reader),
        Some(&read_body()),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["results"][1]["values"][0], json!(0.5));
    for path in [
        "/push",
        "/pu%73h",
        "/write-to-online-store",
        "/native/v1/push",
    ] {
        let a = call(&server, "POST", path, Some(&reader), Some(&push_body(2)));
        assert_error(&a, 403, "forbidden");
        assert!(
            a.json["message"].as_str().unwrap().contains("'reader'"),
            "{}",
            a.text
        );
    }
    assert_error(
        &call(&server, "POST", "/admin/snapshot", Some(&reader), None),
        403,
        "forbidden",
    );

    // admin: the admin routes, nothing else.
    for path in ["/stats", "/registry", "/admin/digest", "/admin/snapshot"] {
        assert_eq!(
            call(&server, "GET", path, Some(&admin), None).status,
            200,
            "{path}"
        );
    }
    assert_error(
        &call(&server, "POST", "/push", Some(&admin), Some(&push_body(3))),
        403,
        "forbidden",
    );

    // A token limited to other views may not touch driver_hourly_stats.
    let a = call(
        &server,
        "POST",
        "/get-online-features",
        Some(&limited),
        Some(&read_body()),
    );
    assert_error(&a, 403, "forbidden");
    assert!(
        a.json["message"]
            .as_str()
            .unwrap()
            .contains("driver_hourly_stats"),
        "{}",
        a.text
    );
    assert_error(
        &call(
            &server,
            "POST",
            "/push",
            Some(&limited),
            Some(&push_body(4)),
        ),
        403,
        "forbidden",
    );

    // Nothing was written by a refused request.
    let a = call(&server, "GET", "/stats", Some(&admin), None);
    assert_eq!(a.json["feature_views"][0]["rows"], 1, "{}", a.text);

    // No secret in the metrics or the log; the token names are there.
    let metrics = call(&server, "GET", "/metrics", None, None).text;
    drop(server);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("reader") || log.contains("limited"),
        "the log names tokens:\n{log}"
    );
    for secret in [&reader, &writer, &admin, &limited] {
        assert!(!metrics.contains(secret.as_str()), "a token in /metrics");
        assert!(!log.contains(secret.as_str()), "a token in the log:\n{log}");
        assert!(
            !log.contains(&secret[4..16]),
            "part of a token in the log:\n{log}"
        );
    }
}

#[test]
fn metrics_can_require_an_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let (admin, entry) = token("ops", &[Scope::Admin], &[]);
    let (reader, entry2) = token("reader", &[Scope::Read], &[]);
    let file = dir.path().join("tokens.toml");
    std::fs::write(&file, entry + &entry2).unwrap();
    let server = Server::start_with(
        &["--auth-tokens", file.to_str().unwrap()],
        &[("FEATGRID_METRICS_REQUIRE_AUTH", "true")],
    );
    assert_error(
        &call(&server, "GET", "/metrics", None, None),
        401,
        "unauthorized",
    );
    assert_error(
        &call(&server, "GET", "/metrics", Some(&reader), None),
        403,
        "forbidden",
    );
    let a = call(&server, "GET", "/metrics", Some(&admin), None);
    assert_eq!(a.status, 200);
    assert!(a.text.contains("featgrid_requests_total"), "{}", a.text);
    assert_eq!(call(&server, "GET", "/health", None, None).status, 200);
}

/// Polls `check` until it holds (the reload happens when the signal is handled).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hangup(server: &Server) {
    // SAFETY: kill(2) on the pid of a child process the test owns.
    let rc = unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(rc, 0, "kill -HUP failed");
}

#[test]
fn sighup_reloads_the_token_file_and_a_bad_file_keeps_the_old_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    let (old, entry) = token("old", &[Scope::Admin], &[]);
    std::fs::write(&file, entry).unwrap();
    let server = Server::start_with(&["--auth-tokens", file.to_str().unwrap()], &[]);
    assert_eq!(call(&server, "GET", "/stats", Some(&old), None).status, 200);

    let (new, entry) = token("new", &[Scope::Admin], &[]);
    std::fs::write(&file, entry).unwrap();
    hangup(&server);
    eventually("the new token being accepted", || {
        call(&server, "GET", "/stats", Some(&new), None).status == 200
    });
    assert_error(
        &call(&server, "GET", "/stats", Some(&old), None),
        401,
        "unauthorized",
    );

    std::fs::write(&file, "[[token]]\nname = \"broken\"\n").unwrap();
    hangup(&server);
    // Give the server a request to order the signal before; the new token still works.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(call(&server, "GET", "/stats", Some(&new), None).status, 200);
    assert_eq!(call(&server, "GET", "/health", None, None).status, 200);
}

#[test]
fn token_new_prints_a_token_and_the_lines_that_make_it_work() {
    let out = Command::new(BIN)
        .args([
            "token",
            "new",
            "--name",
            "trainer",
            "--scopes",
            "read,write",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .lines()
        .find(|l| l.starts_with("fgt_"))
        .unwrap_or_else(|| panic!("no token in:\n{text}"))
        .to_string();
    let entry = &text[text.find("[[token]]").expect("the file lines")..];
    assert!(
        entry.contains("name = \"trainer\"") && entry.contains("scopes = [\"read\", \"write\"]"),
        "{entry}"
    );
    assert!(
        !entry.contains(&token),
        "the file lines hold the hash, not the token"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    std::fs::write(&file, entry).unwrap();
    let server = Server::start_with(&["--auth-tokens", file.to_str().unwrap()], &[]);
    assert_eq!(
        call(&server, "POST", "/push", Some(&token), Some(&push_body(7))).status,
        200
    );
    assert_eq!(
        call(
            &server,
            "POST",
            "/get-online-features",
            Some(&token),
            Some(&read_body())
        )
        .status,
        200
    );
    assert_error(
        &call(&server, "GET", "/stats", Some(&token), None),
        403,
        "forbidden",
    );

    let bad = Command::new(BIN)
        .args(["token", "new", "--name", "x", "--scopes", "root"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("'root' is not a scope"));
}

#[test]
fn a_bad_token_file_refuses_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    std::fs::write(
        &file,
        "[[token]]\nname = \"a\"\nsha256 = \"zz\"\nscopes = [\"read\"]\n",
    )
    .unwrap();
    let (status, stderr) =
        crate::support::refused_start(dir.path(), &["--auth-tokens", file.to_str().unwrap()]);
    assert!(!status.success());
    assert!(
        stderr.contains("tokens.toml") && stderr.contains("sha256 must be 64 hex digits"),
        "{stderr}"
    );
    let missing = dir.path().join("missing.toml");
    let (_, stderr) =
        crate::support::refused_start(dir.path(), &["--auth-tokens", missing.to_str().unwrap()]);
    assert!(stderr.contains("missing.toml: cannot read"), "{stderr}");
}

/// `featgrid serve` on `bind` with `args`; the address it reports, or its stderr if it exits.
fn serve_on(
    dir: &Path,
    bind: &str,
    args: &[&str],
) -> Result<(std::process::Child, String), String> {
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", bind, "--workers", "1", "--data-dir"])
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout).lines().next();
    match line {
        Some(Ok(line)) if line.starts_with("featgrid listening on ") => Ok((child, line)),
        _ => {
            let out = child.wait_with_output().unwrap();
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

#[test]
fn without_credentials_only_loopback_is_served_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let err = serve_on(&dir.path().join("a"), "0.0.0.0:0", &[])
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.contains("--insecure") && err.contains("0.0.0.0:0"),
        "{err}"
    );

    let (mut child, line) = serve_on(&dir.path().join("b"), "0.0.0.0:0", &["--insecure"]).unwrap();
    assert!(line.contains("0.0.0.0:"), "{line}");
    let _ = child.kill();
    let _ = child.wait();

    let (_, entry) = token("ops", &[Scope::Admin], &[]);
    let file = dir.path().join("tokens.toml");
    std::fs::write(&file, entry).unwrap();
    let (mut child, _) = serve_on(
        &dir.path().join("c"),
        "0.0.0.0:0",
        &["--auth-tokens", file.to_str().unwrap()],
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn bench_and_the_cluster_commands_send_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, e1) = token("loader", &[Scope::Read, Scope::Write], &[]);
    let (admin, e2) = token("ops", &[Scope::Admin], &[]);
    let file = dir.path().join("tokens.toml");
    std::fs::write(&file, [e1, e2].concat()).unwrap();
    let server = Server::start_with(&["--auth-tokens", file.to_str().unwrap()], &[]);
    let bench = |token: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .args(["bench", "--target", &server.url(), "--entities", "50"])
            .args(["--warmup", "0s", "--duration", "1s", "--max-requests", "20"])
            .env("FEATGRID_LOG", "warn")
            .env_remove("FEATGRID_TOKEN");
        if let Some(t) = token {
            command.args(["--token", t]);
        }
        command.output().expect("run featgrid bench")
    };
    let refused = bench(None);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a bench without a token ran");
    assert!(
        stderr.contains("401 x") && stderr.contains("give one with --token"),
        "{stderr}"
    );
    let out = bench(Some(&writer));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A cluster node with tokens: `featgrid cluster status` needs the admin one.
    let tokens: &'static str = Box::leak(file.to_str().unwrap().to_string().into_boxed_str());
    let cluster = super::cluster::Cluster::start_as(
        1,
        &[&[1]],
        &[("FEATGRID_AUTH_TOKENS", tokens)],
        "127.0.0.1",
        Some(admin.clone()),
    );
    let status = |token: &str| {
        Command::new(BIN)
            .args(["cluster", "status", "--node", &cluster.node(0).url()])
            .env("FEATGRID_TOKEN", token)
            .output()
            .expect("run featgrid cluster status")
    };
    let out = status(&admin);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && table.contains("asked node: n1"),
        "{table}"
    );
    let out = status(&writer);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
