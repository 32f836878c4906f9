//! Boots the real server binary on an ephemeral loopback port and talks HTTP to it. Each
//! server gets its own data directory (a temporary one unless the test gives one), and can
//! be killed (`kill -9`), terminated (SIGTERM) and restarted on the same directory.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_featgrid");

/// The fields of `customer_profile` in `config/example_registry.toml`, one of every type.
pub const CUSTOMER_PROFILE_FIELDS: [&str; 16] = [
    "age",
    "lifetime_trips",
    "avg_rating",
    "lifetime_spend",
    "name",
    "avatar",
    "is_premium",
    "signup_time",
    "recent_ages",
    "recent_trip_ids",
    "recent_ratings",
    "recent_fares",
    "favourite_places",
    "recent_receipts",
    "recent_flags",
    "recent_logins",
];

/// A running `featgrid serve`; killed when dropped.
pub struct Server {
    child: Child,
    url: String,
    /// The temporary data directory, when the test did not give one.
    _data: Option<tempfile::TempDir>,
    /// Its standard error, when the test collects it ([`Server::start_logged`]).
    log: Option<Arc<Mutex<String>>>,
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

    /// The server with extra `serve` flags and environment variables, on a fresh temporary
    /// data directory.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        let data = tempfile::tempdir().expect("temporary data dir");
        let mut server = Server::start_in(data.path(), args, env);
        server._data = Some(data);
        server
    }

    /// The server with extra flags and environment variables, its standard error (the log,
    /// at `FEATGRID_LOG=warn` unless `env` says otherwise) collected for [`Server::log`].
    pub fn start_logged(args: &[&str], env: &[(&str, &str)]) -> Server {
        let data = tempfile::tempdir().expect("temporary data dir");
        let mut server = Server::spawn(data.path(), args, env, Stdio::piped());
        server._data = Some(data);
        server
    }

    /// What the server has logged so far (empty unless started with [`Server::start_logged`]).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .map(|log| log.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// The server on the data directory `dir` (kept after it stops), with extra flags.
    pub fn start_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn(dir, args, env, Stdio::inherit())
    }

    /// Like [`Server::start_with`], with the server's standard error (its log) written to `log`.
    pub fn start_logging(args: &[&str], env: &[(&str, &str)], log: &Path) -> Server {
        let data = tempfile::tempdir().expect("temporary data dir");
        let file = std::fs::File::create(log).expect("create the log file");
        let mut server = Server::spawn(data.path(), args, env, Stdio::from(file));
        server._data = Some(data);
        server
    }

    fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Server {
        let mut command = serve_command(dir, args);
        for (k, v) in env {
            command.env(k, v);
        }
        Server::launch(command, stderr)
    }

    /// Runs a prepared `featgrid serve` command, its standard error to `stderr` (collected
    /// for [`Server::log`] when piped); answers once it reports its address.
    pub fn launch(mut command: Command, stderr: Stdio) -> Server {
        command
            .stdout(Stdio::piped())
            .stderr(stderr)
            .stdin(Stdio::null());
        let mut child = command.spawn().expect("start featgrid");
        let log = child.stderr.take().map(|stderr| {
            let log = Arc::new(Mutex::new(String::new()));
            let collected = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut log = collected.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
            log
        });
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
        let started = std::time::Instant::now();
        let url = loop {
            if let Ok(url) = rx.recv_timeout(Duration::from_millis(100)) {
                break url;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "featgrid exited ({status}) before reporting its address; its stderr says why"
                );
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                panic!("featgrid did not report its address within 30 s ({status})");
            }
        };
        Server {
            child,
            url,
            _data: None,
            log,
        }
    }

    /// `kill -9`: no shutdown work at all.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit (at most 60 s).
    pub fn terminate(mut self) -> ExitStatus {
        // SAFETY: kill(2) on the pid of a child we spawned and have not yet reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "featgrid did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGHUP: a server serving a Feast repo checks its registry file at once.
    pub fn hangup(&self) {
        // SAFETY: kill(2) on the pid of a child we spawned and have not yet reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP) };
        assert_eq!(rc, 0, "kill -HUP failed");
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The server's process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Any request: method, path, extra headers, optional body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let mut request = ureq::request(method, &format!("{}{path}", self.url));
        for (k, v) in headers {
            request = request.set(k, v);
        }
        answer(match body {
            Some(body) => request.send_string(body),
            None => request.call(),
        })
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

/// Runs `featgrid serve` on `dir` expecting it to refuse to start: answers its exit status
/// and standard error. Panics if it starts serving within 30 s.
pub fn refused_start(dir: &Path, args: &[&str]) -> (ExitStatus, String) {
    let mut child = serve_command(dir, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("start featgrid");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("featgrid started although it should have refused");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().unwrap_or_default())
}

/// `featgrid serve` on 127.0.0.1:0 (unless `args` has a `--bind`) with one worker, the data
/// directory `dir` and extra flags.
fn serve_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.arg("serve");
    if !args.contains(&"--bind") {
        command.args(["--bind", "127.0.0.1:0"]);
    }
    // One HTTP worker unless the test asks for more.
    if !args.contains(&"--workers") {
        command.args(["--workers", "1"]);
    }
    command
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("FEATGRID_LOG", "warn");
    command
}

/// A fresh directory for a test's data; removed when dropped.
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary dir");
    let path = dir.path().join("data");
    (dir, path)
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

/// Now, to the second, as RFC 3339 UTC (`2026-11-30T09:00:00Z`): rows whose view has a TTL are
/// stamped relative to now, so a test reads `PRESENT` on any date.
pub fn now_rfc3339() -> String {
    now_plus(0).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Asserts the one error shape: status, stable code, a message.
pub fn assert_error(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(a.json["code"], code, "{}", a.text);
    assert!(
        a.json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        a.text
    );
}

/// Now plus `seconds`, truncated to the second.
pub fn now_plus(seconds: i64) -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now().timestamp() + seconds;
    chrono::DateTime::from_timestamp(now, 0).expect("a time in range")
}

/// An ext4 file system in an image file, loop-mounted on a directory, that a test freezes
/// (`fsfreeze`: every write and fsync to it waits until it is thawed), as a disk that stops
/// answering would. Thawed and unmounted when dropped.
pub struct FrozenDisk {
    dir: PathBuf,
    _image: tempfile::TempDir,
}

impl FrozenDisk {
    /// Mounts a fresh 64 MiB ext4 file system on `dir` (created); `None`, after saying why,
    /// where that is not possible (not root, no loop device, no `mkfs.ext4` or `fsfreeze`).
    pub fn mount(dir: &Path) -> Option<FrozenDisk> {
        let image = tempfile::tempdir().expect("temporary dir");
        let file = image.path().join("disk.img");
        std::fs::File::create(&file)
            .and_then(|f| f.set_len(64 << 20))
            .expect("disk image");
        std::fs::create_dir_all(dir).expect("mount point");
        let steps: [(&str, Vec<&std::ffi::OsStr>); 3] = [
            ("fsfreeze", vec!["--version".as_ref()]),
            ("mkfs.ext4", vec!["-q".as_ref(), file.as_os_str()]),
            (
                "mount",
                vec![
                    "-o".as_ref(),
                    "loop".as_ref(),
                    file.as_os_str(),
                    dir.as_os_str(),
                ],
            ),
        ];
        for (tool, args) in steps {
            match Command::new(tool).args(&args).output() {
                Ok(out) if out.status.success() => {}
                Ok(out) => {
                    eprintln!(
                        "skipped: {tool} failed (a loop-mounted disk needs root): {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                    return None;
                }
                Err(e) => {
                    eprintln!("skipped: cannot run {tool}: {e}");
                    return None;
                }
            }
        }
        Some(FrozenDisk {
            dir: dir.to_path_buf(),
            _image: image,
        })
    }

    /// From now on every write and fsync to the disk waits.
    pub fn freeze(&self) {
        self.fsfreeze("-f");
    }

    /// The disk answers again; what waited goes through.
    pub fn thaw(&self) {
        self.fsfreeze("-u");
    }

    fn fsfreeze(&self, flag: &str) {
        let done = Command::new("fsfreeze")
            .arg(flag)
            .arg(&self.dir)
            .status()
            .expect("run fsfreeze");
        assert!(done.success(), "fsfreeze {flag} {}", self.dir.display());
    }
}

impl Drop for FrozenDisk {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.dir).output();
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
