//! The Feast Python SDK (0.67, `online_store: {type: remote}`) against a real featgrid:
//! `examples/feast_sdk/run.py` writes, pushes and reads back the quickstart driver features,
//! and a feature repo of its own (`tests/it/feast_repo/`) is served with `--feast-repo`.
//!
//! The SDK lives in a venv kept between runs (`$HOME/.cache/featgrid/feast-venv`, or
//! `FEATGRID_FEAST_VENV`); pip runs only when `import feast` fails there, once per machine
//! (a lock file serializes test threads and processes: [`feast_python`]). The test skips,
//! saying why, when `python3` is missing or the package registry cannot be reached; any
//! other failure, above all a failed check, fails it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

const FEAST_REQUIREMENT: &str = "feast==0.67.0";
/// A cold `pip install` took about 35 s here; the check itself takes about 5 s.
const PIP_DEADLINE: Duration = Duration::from_secs(600);
const CHECK_DEADLINE: Duration = Duration::from_secs(180);

/// pip's words for "the registry could not be reached" (urllib3, requests and pip itself).
const UNREACHABLE_MARKERS: &[&str] = &[
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "Connection refused",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "Max retries exceeded",
    "ProxyError",
];

/// `examples/feast_sdk` as its README runs it: `feast apply` in (a copy of) the example repo,
/// featgrid serving that registry with `--feast-repo` (no TOML registry), `run.py --repo`.
#[test]
fn feast_sdk_round_trip() {
    let Some(python) = feast_python() else {
        return; // feast_python said why
    };
    let (example, repo) = example_repo(&python);
    let server =
        crate::support::Server::start_with(&["--feast-repo", repo.path().to_str().unwrap()], &[]);
    let url = server.url();
    assert_eq!(server.get("/registry").json["loaded_from"]["kind"], "feast");
    run_example(&python, &example, repo.path(), &url);
}

/// The same check against a 3-node cluster (the embedded registry, which is the example's):
/// the SDK talks to one node, which forwards what other nodes lead.
#[test]
fn feast_sdk_round_trip_through_a_cluster_node() {
    let Some(python) = feast_python() else {
        return;
    };
    let (example, repo) = example_repo(&python);
    let cluster = super::cluster::Cluster::three();
    let url = cluster.node(1).url();
    run_example(&python, &example, repo.path(), &url);
}

/// `error_format = "feast"`: the SDK raises FeatureViewNotFoundException,
/// FeatureServiceNotFoundException, PushSourceNotFoundException (and FeastError for errors
/// Feast has no class for), as against Feast's own server.
#[test]
fn feast_sdk_raises_its_own_exceptions_with_error_format_feast() {
    let Some(python) = feast_python() else {
        return;
    };
    let server = crate::support::Server::start_with(&[], &[("FEATGRID_ERROR_FORMAT", "feast")]);
    run_sdk_script(
        &python,
        "errors.py",
        &server,
        &[],
        &[],
        "feast sdk errors: OK",
    );
}

/// A feature repo with `auth: {type: kubernetes}` and `LOCAL_K8S_TOKEN` set to a JWT minted
/// here (ES256, verified against a PEM public key): the SDK reads and writes with the right
/// roles, gets FeastPermissionError for a write without the `write` role, and a 401 for an
/// expired token.
#[test]
fn the_feast_sdk_authenticates_with_a_kubernetes_jwt() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let Some(python) = feast_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let public = dir.path().join("jwt.pub.pem");
    std::fs::write(&public, pair.public_key_pem()).unwrap();
    let signing = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let mint = |roles: &[&str], exp: i64| {
        let claims = serde_json::json!({"sub": "system:serviceaccount:ml:trainer", "iss": "https://kubernetes.default.svc",
                            "exp": exp, "iat": now, "roles": roles});
        encode(&Header::new(Algorithm::ES256), &claims, &signing).unwrap()
    };
    let server = crate::support::Server::start_with(
        &[],
        &[
            ("FEATGRID_AUTH_JWT_KEYS", public.to_str().unwrap()),
            ("FEATGRID_AUTH_JWT_ISSUER", "https://kubernetes.default.svc"),
            ("FEATGRID_ERROR_FORMAT", "feast"),
        ],
    );
    let sdk = |token: &str, read: &str, write: &str| {
        run_sdk_script(
            &python,
            "auth.py",
            &server,
            &["--read", read, "--write", write],
            &[("LOCAL_K8S_TOKEN", token)],
            "feast sdk auth: OK",
        )
    };
    sdk(&mint(&["read", "write"], now + 600), "ok", "ok");
    sdk(
        &mint(&["read"], now + 600),
        "ok",
        "FeastPermissionError:'write' scope",
    );
    sdk(
        &mint(&["read", "write"], now - 3600),
        "RuntimeError:expired",
        "RuntimeError:401",
    );
    // Without any token: 401 in FastAPI's shape, as Feast's server answers (the SDK cannot
    // build a session without a token, so this is checked over plain HTTP).
    let body = r#"{"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1]}}"#;
    let a = server.send("POST", "/get-online-features", &[], Some(body));
    assert_eq!(a.status, 401);
    assert!(
        a.json["detail"].as_str().unwrap().contains("needs a token"),
        "{}",
        a.text
    );
}

/// Runs `examples/feast_sdk/<script> --url <server> <args>` with `env`; panics with its output
/// unless it succeeds and prints `ok_line`.
pub fn run_sdk_script(
    python: &Path,
    script: &str,
    server: &crate::support::Server,
    args: &[&str],
    env: &[(&str, &str)],
    ok_line: &str,
) {
    let url = server.url();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/feast_sdk")
        .join(script);
    let mut check = Command::new(python);
    check
        .arg(&script)
        .args(["--url", url.as_str()])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in env {
        check.env(k, v);
    }
    passes(&mut check, ok_line, &url);
}

/// `examples/feast_sdk`, and a copy of its feature repo where `feast apply` ran.
fn example_repo(python: &Path) -> (PathBuf, tempfile::TempDir) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/feast_sdk");
    let repo = tempfile::tempdir().expect("temporary repo");
    for file in ["feature_store.yaml", "definitions.py", ".feastignore"] {
        std::fs::copy(example.join(file), repo.path().join(file)).expect("copy the example");
    }
    feast_apply(python, repo.path());
    (example, repo)
}

/// Points the example repo at `url` and runs the example's `run.py` against it.
fn run_example(python: &Path, example: &Path, repo: &Path, url: &str) {
    set_online_store(repo, url);
    let mut check = Command::new(python);
    check.arg(example.join("run.py")).arg("--repo").arg(repo);
    passes(&mut check, "feast sdk check: OK", url);
}

/// Runs a check script; panics, with its output, unless it exits 0 printing `ok_line`.
pub fn passes(command: &mut Command, ok_line: &str, url: &str) {
    let output = run(command, CHECK_DEADLINE).expect("running the check script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(ok_line),
        "the Feast SDK check against {url} failed ({}).\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status,
    );
}

/// `feast apply` in `repo` with the venv's feast (which does not call the online store).
pub fn feast_apply(python: &Path, repo: &Path) {
    let mut apply = Command::new(python.with_file_name("feast"));
    apply.arg("apply").current_dir(repo);
    let output = run(&mut apply, CHECK_DEADLINE).expect("running feast apply");
    assert!(
        output.status.success(),
        "feast apply in {} failed ({}):\n{}",
        repo.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Points `repo`'s `online_store.path` at `url` (the only `path:` under `online_store:`).
pub fn set_online_store(repo: &Path, url: &str) {
    let file = repo.join("feature_store.yaml");
    let text = std::fs::read_to_string(&file).expect("read feature_store.yaml");
    let mut in_online_store = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if !line.starts_with(' ') {
                in_online_store = line.starts_with("online_store:");
            } else if in_online_store && line.trim_start().starts_with("path:") {
                return format!("  path: {url}");
            }
            line.to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").expect("write feature_store.yaml");
}

/// A Feast feature repo unlike the embedded registry (`tests/it/feast_repo/definitions.py`:
/// string and composite keys, float64, int32, string, bool, unix_timestamp and list features,
/// one push source feeding two views, a feature service selecting part of a view under an
/// alias, an on-demand view) is applied with `feast apply` and served with `--feast-repo`;
/// `sdk_check.py` writes over HTTP and through the SDK and reads back through the SDK. A
/// second `feast apply` adds a view, which is then served without a restart.
#[test]
fn a_feast_feature_repo_is_served_and_reloaded_through_the_sdk() {
    let Some(python) = feast_python() else {
        return; // feast_python said why
    };
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/feast_repo");
    let repo = tempfile::tempdir().expect("temporary repo");
    let repo_dir = repo.path();
    let yaml = "project: featgrid_it\nregistry:\n  path: data/registry.db\n  cache_ttl_seconds: 1\nprovider: local\noffline_store:\n  type: file\nonline_store:\n  type: remote\n  path: http://127.0.0.1:6566\nentity_key_serialization_version: 3\nauth:\n  type: no_auth\n";
    std::fs::write(repo_dir.join("feature_store.yaml"), yaml).unwrap();
    std::fs::copy(
        sources.join("definitions.py"),
        repo_dir.join("definitions.py"),
    )
    .unwrap();
    feast_apply(&python, repo_dir);

    let server =
        crate::support::Server::start_with(&["--feast-repo", repo_dir.to_str().unwrap()], &[]);
    let url = server.url();
    set_online_store(repo_dir, &url);
    let registry = server.get("/registry").json;
    assert_eq!(registry["loaded_from"]["not_served"], serde_json::json!([]));
    // Served without --python: its reads say how to enable it (tests/it/feast_ondemand.rs).
    assert_eq!(registry["on_demand_views"][0]["name"], "boosted");
    let check = |phase: &str| {
        let mut command = Command::new(&python);
        command.arg(sources.join("sdk_check.py")).args([
            "--repo",
            repo_dir.to_str().unwrap(),
            "--url",
            url.as_str(),
            "--phase",
            phase,
        ]);
        passes(
            &mut command,
            &format!("feast repo check: OK ({phase})"),
            &url,
        );
    };
    check("first");

    std::fs::copy(
        sources.join("more_definitions.py"),
        repo_dir.join("more_definitions.py"),
    )
    .unwrap();
    feast_apply(&python, repo_dir);
    // Served once featgrid's next registry check (every second here) has found it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.get("/registry").json["feature_views"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["name"] == "merchant_stats")
    {
        assert!(Instant::now() < deadline, "merchant_stats was never served");
        thread::sleep(Duration::from_millis(100));
    }
    check("second");
}

/// The venv's python with feast importable, installing it when needed; `None` (after
/// saying why) without python3 or when the package registry cannot be reached.
///
/// Installed once per machine: the first caller of this process does the work (the others
/// wait for its answer), and across processes (two `cargo test` runs, or tests run one
/// process each) the venv is made and filled under an exclusive lock on `feast-venv.lock`
/// beside it. A venv left without pip by a killed run is made anew.
pub fn feast_python() -> Option<PathBuf> {
    static PREPARED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PREPARED.get_or_init(|| prepare_venv(&venv_dir())) {
        Ok(python) => Some(python.clone()),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// `FEATGRID_FEAST_VENV`, or `$HOME/.cache/featgrid/feast-venv` (the system temp dir without
/// HOME, as in some CI environments).
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("FEATGRID_FEAST_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let base = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
            base.join(".cache/featgrid/feast-venv")
        }
    }
}

/// Whether `python` runs and can `import module`.
fn imports(python: &Path, module: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Makes `venv` hold feast, under the machine-wide lock; `Err` is why the tests skip.
fn prepare_venv(venv: &Path) -> Result<PathBuf, String> {
    if Command::new("python3").arg("--version").output().is_err() {
        return Err("python3 not found".into());
    }
    let python = venv.join("bin/python");
    if imports(&python, "feast") {
        return Ok(python);
    }
    let parent = venv.parent().expect("the venv directory has a parent");
    std::fs::create_dir_all(parent).expect("create the venv's parent directory");
    let lock_path = venv.with_extension("lock");
    let lock = std::fs::File::create(&lock_path).expect("create the venv lock file");
    lock.lock().expect("lock the venv lock file");
    // Whoever held the lock before may have installed it meanwhile.
    if imports(&python, "feast") {
        return Ok(python);
    }
    if !imports(&python, "pip") {
        eprintln!("creating the venv {}", venv.display());
        let made = Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(venv)
            .output()
            .expect("python3 -m venv");
        assert!(
            made.status.success(),
            "python3 -m venv {} failed:\n{}",
            venv.display(),
            String::from_utf8_lossy(&made.stderr)
        );
    }
    eprintln!("installing {FEAST_REQUIREMENT} into {}", venv.display());
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ])
    .args(["--retries", "1", "--timeout", "20", FEAST_REQUIREMENT]);
    let output = run(&mut pip, PIP_DEADLINE).expect("running pip");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        if UNREACHABLE_MARKERS.iter().any(|m| stderr.contains(m)) {
            return Err(format!("the package registry is unreachable, so {FEAST_REQUIREMENT} could not be installed:\n{stderr}"));
        }
        panic!(
            "pip install {FEAST_REQUIREMENT} failed ({}):\n{stderr}",
            output.status
        );
    }
    assert!(
        imports(&python, "feast"),
        "pip installed {FEAST_REQUIREMENT} but `import feast` still fails"
    );
    Ok(python)
}

/// Runs `command` with its output captured; kills it and says so past `deadline`.
pub fn run(command: &mut Command, deadline: Duration) -> std::io::Result<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let finished = wait_until(&mut child, Instant::now() + deadline)?;
    let status = match finished {
        Some(status) => status,
        None => child.wait()?,
    };
    let stdout = stdout.join().unwrap_or_default();
    let mut stderr = stderr.join().unwrap_or_default();
    if finished.is_none() {
        let note = format!("\n(killed after {} s)", deadline.as_secs());
        stderr.extend_from_slice(note.as_bytes());
    }
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// `Some(status)` when the child exits before `until`; otherwise kills it and returns `None`.
fn wait_until(
    child: &mut Child,
    until: Instant,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= until {
            child.kill()?;
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}
