//! TLS (`--tls-cert`, `--tls-key`): HTTPS with a self-signed certificate, the certificate
//! swapped on SIGHUP, `featgrid bench --ca-cert`, and the Feast SDK's `cert` option.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::json;

use crate::support::{Server, BIN};

/// A self-signed certificate for localhost and 127.0.0.1, written as `<name>.crt`/`<name>.key`.
fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let pair =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// An HTTPS client trusting only the certificate in `ca`.
fn agent(ca: &Path) -> ureq::Agent {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    ureq::AgentBuilder::new()
        .tls_config(Arc::new(config))
        .build()
}

fn health(agent: &ureq::Agent, url: &str) -> Result<u16, String> {
    agent
        .get(&format!("{url}/health"))
        .call()
        .map(|r| r.status())
        .map_err(|e| e.to_string())
}

fn tls_server(cert: &Path, key: &Path) -> Server {
    Server::start_with(
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    )
}

#[test]
fn https_serves_and_sighup_swaps_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_pair(dir.path(), "server");
    let first = dir.path().join("first.crt");
    std::fs::copy(&cert, &first).unwrap();
    let server = tls_server(&cert, &key);
    let url = server.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let client = agent(&first);
    assert_eq!(health(&client, &url), Ok(200));
    let now = chrono::Utc::now().to_rfc3339();
    let push = json!({"push_source_name": "driver_stats_push_source", "df": {"driver_id": [5], "event_timestamp": [now],
        "conv_rate": [0.5], "acc_rate": [0.5], "avg_daily_trips": [1]}});
    let r = client
        .post(&format!("{url}/push"))
        .send_string(&push.to_string())
        .unwrap();
    assert_eq!(r.status(), 200);
    let read =
        json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [5]}});
    let r: serde_json::Value = client
        .post(&format!("{url}/get-online-features"))
        .send_string(&read.to_string())
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(r["results"][1]["values"], json!([0.5]));
    // Plain HTTP to the TLS port gets no answer.
    assert!(
        ureq::get(&format!("{}/health", url.replace("https://", "http://")))
            .call()
            .is_err()
    );

    // A new pair in the same files, then SIGHUP: new handshakes get the new certificate.
    let (cert_b, key_b) = write_pair(dir.path(), "second");
    std::fs::copy(&cert_b, &cert).unwrap();
    std::fs::copy(&key_b, &key).unwrap();
    // SAFETY: kill(2) on the pid of a child process the test owns.
    assert_eq!(
        unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGHUP) },
        0
    );
    let second = agent(&cert_b);
    let deadline = Instant::now() + Duration::from_secs(20);
    while health(&second, &url).is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let old = health(&agent(&first), &url).unwrap_err();
    assert!(
        old.to_lowercase().contains("certificate") || old.contains("UnknownIssuer"),
        "{old}"
    );
}

#[test]
fn a_bad_certificate_or_half_a_pair_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = write_pair(dir.path(), "a");
    let (_, other_key) = write_pair(dir.path(), "b");
    let (status, stderr) = crate::support::refused_start(
        &dir.path().join("d1"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            other_key.to_str().unwrap(),
        ],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("a.crt") && stderr.contains("cannot be served together"),
        "{stderr}"
    );
    let (status, stderr) = crate::support::refused_start(
        &dir.path().join("d2"),
        &["--tls-cert", cert.to_str().unwrap()],
    );
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("tls_key: TLS needs both"), "{stderr}");
}

#[test]
fn bench_loads_an_https_server_with_ca_cert() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_pair(dir.path(), "server");
    let server = tls_server(&cert, &key);
    let run = |extra: &[&str]| {
        std::process::Command::new(BIN)
            .args([
                "bench",
                "--target",
                &server.url(),
                "--entities",
                "50",
                "--duration",
                "1s",
                "--warmup",
                "0s",
            ])
            .args(["--rate", "50", "--timeout", "2s"])
            .args(extra)
            .env("FEATGRID_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = run(&["--ca-cert", cert.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the certificate the preload cannot connect, and says the TLS error.
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot connect: ")
            && stderr.contains("certificate")
            && stderr.contains("--ca-cert")
            && !stderr.contains("listening"),
        "{stderr}"
    );
    let missing = run(&["--ca-cert", dir.path().join("nope.pem").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--ca-cert"));
}

/// A self-signed certificate marked as a CA, as `openssl req -x509` makes them (CA:TRUE), is
/// trusted when given as it is to `--ca-cert` (curl accepts it too).
#[test]
fn bench_trusts_a_pinned_self_signed_ca_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = dir.path().join("ca-marked.crt");
    let key_file = dir.path().join("ca-marked.key");
    std::fs::write(&cert, params.self_signed(&key).unwrap().pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let server = tls_server(&cert, &key_file);
    let out = std::process::Command::new(BIN)
        .args(["bench", "--target", &server.url(), "--entities", "20"])
        .args(["--warmup", "0s", "--duration", "1s", "--max-requests", "20"])
        .args(["--ca-cert", cert.to_str().unwrap()])
        .env("FEATGRID_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("preload"));
}

#[test]
fn the_feast_sdk_connects_with_its_cert_option() {
    let Some(python) = crate::feast_sdk::feast_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_pair(dir.path(), "server");
    let server = tls_server(&cert, &key);
    crate::feast_sdk::run_sdk_script(
        &python,
        "run.py",
        &server,
        &["--cert", cert.to_str().unwrap()],
        &[],
        "feast sdk check: OK",
    );
}

/// Whether curl is installed and speaks HTTP/2 (saying why not).
fn curl_speaks_http2() -> bool {
    match std::process::Command::new("curl").arg("--version").output() {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("HTTP2") => true,
        Ok(_) => {
            eprintln!("skipped: this curl does not speak HTTP/2");
            false
        }
        Err(_) => {
            eprintln!("skipped: curl not found");
            false
        }
    }
}

/// One curl request over `protocol` (`--http2` or `--http1.1`): the HTTP version used, the
/// status and the body; curl's own error when it got no answer.
fn curl(
    protocol: &str,
    ca: &Path,
    url: &str,
    token: Option<&str>,
    body: &Path,
) -> Result<(String, u16, serde_json::Value), String> {
    let mut command = std::process::Command::new("curl");
    command
        .args(["-sS", protocol, "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_version} %{http_code}", "--data-binary"])
        .arg(format!("@{}", body.display()))
        .arg(url);
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = command.output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!("{}{stdout}", String::from_utf8_lossy(&out.stderr)));
    }
    let (answer, last) = stdout.rsplit_once('\n').ok_or(stdout.clone())?;
    let (version, status) = last.split_once(' ').ok_or(last.to_string())?;
    let json = serde_json::from_str(answer).unwrap_or(serde_json::Value::Null);
    Ok((version.to_string(), status.parse().unwrap_or(0), json))
}

/// Answers given before the body is read (401 without a token, 403 with a read-only one, 413
/// for a 17 MB body past `max_body_bytes`) reach curl intact over HTTP/2 and HTTP/1.1 alike;
/// a push with the right token still lands (HTTP/2 reads the body through the same path).
#[test]
fn early_error_answers_reach_http2_and_http1_clients_intact() {
    if !curl_speaks_http2() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_pair(dir.path(), "server");
    let (read_token, hash) = featgrid::auth::tokens::new_token().unwrap();
    let (write_token, write_hash) = featgrid::auth::tokens::new_token().unwrap();
    let tokens = dir.path().join("tokens.toml");
    let entries = [
        featgrid::auth::tokens::file_entry("reader", &hash, &[featgrid::auth::Scope::Read], &[]),
        featgrid::auth::tokens::file_entry(
            "writer",
            &write_hash,
            &[featgrid::auth::Scope::Write, featgrid::auth::Scope::Read],
            &[],
        ),
    ];
    std::fs::write(&tokens, entries.concat()).unwrap();
    let server = Server::start_with(
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--auth-tokens",
            tokens.to_str().unwrap(),
        ],
        &[],
    );
    let push = format!("{}/push", server.url());
    let body = |name: &str, text: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let now = crate::support::now_rfc3339();
    let one_row = |driver: i64| {
        json!({"push_source_name": "driver_stats_push_source", "to": "online", "df": {
            "driver_id": [driver], "event_timestamp": [now], "conv_rate": [0.25],
            "acc_rate": [0.5], "avg_daily_trips": [driver]}})
        .to_string()
    };
    let small = body("small.json", one_row(1).as_bytes());
    // 17 MB: past max_body_bytes (16 MiB), within what the server reads to discard.
    let large = body("large.json", &vec![b' '; 17_000_000]);
    for (protocol, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let expect = |token: Option<&str>, body: &Path, status: u16, code: &str, times: usize| {
            for attempt in 0..times {
                let (v, s, json) = curl(protocol, &cert, &push, token, body)
                    .unwrap_or_else(|e| panic!("{protocol} attempt {attempt}: {e}"));
                assert_eq!((v.as_str(), s), (version, status), "{protocol}: {json}");
                assert_eq!(json["code"], code, "{protocol}: {json}");
            }
        };
        expect(None, &small, 401, "unauthorized", 20);
        expect(Some(&read_token), &small, 403, "forbidden", 20);
        expect(Some(&write_token), &large, 413, "body_too_large", 3);
        let driver = if protocol == "--http2" { 2 } else { 3 };
        let row = body("row.json", one_row(driver).as_bytes());
        let (v, s, _) = curl(protocol, &cert, &push, Some(&write_token), &row).unwrap();
        assert_eq!((v.as_str(), s), (version, 200));
    }
    let client = agent(&cert);
    let read = json!({"features": ["driver_hourly_stats:avg_daily_trips"], "entities": {"driver_id": [2, 3]}});
    let r: serde_json::Value = client
        .post(&format!("{}/get-online-features", server.url()))
        .set("Authorization", &format!("Bearer {read_token}"))
        .send_string(&read.to_string())
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(r["results"][1]["values"], json!([2, 3]), "{r}");
}
