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
    // Without the certificate the preload cannot connect.
    let out = run(&[]);
    assert!(!out.status.success());
    let missing = run(&["--ca-cert", dir.path().join("nope.pem").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--ca-cert"));
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
