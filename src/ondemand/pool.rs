//! The Python worker pool: N processes of `python/featgrid_ondemand_worker.py`, each on a unix
//! socket, and the requests that wait for a free one.
//!
//! A request takes a free process and talks to it itself, on the HTTP worker thread serving it,
//! with asynchronous I/O: no thread hop between the request and Python (the socket is
//! registered with that thread's event loop for the exchange only). When no process is free the
//! request waits, FIFO; when `python_queue` requests already wait it answers 503
//! `ondemand_busy` at once, and one that waited longer than the transformation deadline answers
//! 503 without running (time while no process runs at all, at start or while every one
//! restarts, does not count).
//!
//! The exchange has the transformation deadline: past it, or when the process dies or breaks
//! the protocol, the request answers 504 or 502 naming the view, and the process goes back to
//! its supervisor thread, which kills it and starts another. Each process has a supervisor
//! thread of its own, which only starts processes (importing Feast takes seconds) and reaps
//! them: nothing blocking runs on an HTTP worker.
//!
//! Cancel safety: the exchange runs in a task of its own, so a request dropped meanwhile (its
//! client went away) never leaves half a frame in a socket.

use std::io::Read;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, Sender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, Semaphore};

use super::{OnDemandError, PoolOptions, WORKER_SCRIPT};
use crate::registry::feast::FeastRepo;

/// How long a worker may take to import Feast and load the registry.
const START_DEADLINE: Duration = Duration::from_secs(120);
/// Pause between failed starts of one worker.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);
/// How often a waiting request looks again at whether any process runs.
const RECHECK: Duration = Duration::from_millis(200);

/// What a job asks of a worker.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Request {
    /// The view written (`write`), or the views read (`read`, "a, b"): errors name it.
    pub view: String,
    /// `read` or `write`.
    pub op: &'static str,
    pub registry_version: Option<String>,
    pub full_feature_names: bool,
    /// The views a read runs, each on the whole input batch; the answer holds one output
    /// batch per view, in this order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<ViewCall>,
}

/// One view of a read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ViewCall {
    pub view: String,
    /// The output columns to keep.
    pub requested: Vec<String>,
    /// The view's name with full feature names (its alias in a service).
    pub name_to_use: String,
}

/// The pool; cheap to share (`Arc`).
pub struct Pool {
    shared: Arc<Shared>,
    options: PoolOptions,
}

/// What the requests and the supervisor threads share.
struct Shared {
    /// Processes ready for a request; `free` holds one permit per process here.
    idle: Mutex<Vec<Process>>,
    free: Semaphore,
    /// Requests waiting for a free process.
    waiting: AtomicUsize,
    /// Processes running (free or busy); 0 while every one is starting.
    live: AtomicUsize,
    /// Why the last start failed, while no process runs.
    start_failure: Mutex<Option<String>>,
    /// Per process index, its supervisor thread: a broken process goes back there.
    broken: Vec<Sender<Process>>,
    counters: Counters,
}

impl Shared {
    fn check_in(&self, process: Process) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(process);
        self.free.add_permits(1);
    }

    /// Hands a process that failed an exchange to its supervisor, to be killed and replaced.
    fn give_up(&self, process: Process) {
        self.live.fetch_sub(1, Ordering::AcqRel);
        let index = process.index;
        // Dropped here (killed) only when the supervisor is gone, i.e. the pool stops.
        let _ = self.broken[index].send(process);
    }
}

/// What the pool counts, for `/metrics`.
#[derive(Clone)]
pub struct Counters {
    /// Requests answered by a worker (one per read or write that runs on-demand views).
    pub round_trips: prometheus::IntCounter,
    /// Worker processes started (restarts included).
    pub starts: prometheus::IntCounter,
}

/// Where one worker is started from.
#[derive(Clone)]
struct Launch {
    python: PathBuf,
    registry: PathBuf,
    project: String,
    repo: PathBuf,
}

impl Pool {
    /// Starts `options.workers` worker processes for the Feast repo `repo`, each by a supervisor
    /// thread of its own, in the background (requests wait meanwhile).
    pub fn start(options: PoolOptions, repo: &FeastRepo, counters: Counters) -> Arc<Pool> {
        let repo_dir = std::fs::canonicalize(&repo.dir).unwrap_or_else(|_| repo.dir.clone());
        let registry = std::fs::canonicalize(&repo.registry_path)
            .unwrap_or_else(|_| repo.registry_path.clone());
        let launch = Launch {
            python: options.python.clone(),
            registry,
            project: repo.project.clone(),
            repo: repo_dir,
        };
        let workers = options.workers.max(1);
        let (broken, returns): (Vec<_>, Vec<_>) = (0..workers)
            .map(|_| channel::unbounded::<Process>())
            .unzip();
        let shared = Arc::new(Shared {
            idle: Mutex::new(Vec::with_capacity(workers)),
            free: Semaphore::new(0),
            waiting: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            start_failure: Mutex::new(None),
            broken,
            counters,
        });
        for (index, returns) in returns.into_iter().enumerate() {
            let supervisor = Supervisor {
                index,
                launch: launch.clone(),
                shared: Arc::downgrade(&shared),
                returns,
                counters: shared.counters.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("ondemand-{index}"))
                .spawn(move || supervisor.run());
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start an on-demand worker thread");
            }
        }
        tracing::info!(
            workers,
            python = %options.python.display(),
            timeout_ms = options.timeout.as_millis() as u64,
            "on-demand transformation workers starting"
        );
        Arc::new(Pool { shared, options })
    }

    /// Runs `request` on `body` in a worker; the answer is the worker's output (Arrow IPC).
    pub async fn run(&self, request: Request, body: Vec<u8>) -> Result<Vec<u8>, OnDemandError> {
        let view = request.view.clone();
        let process = self.check_out(&view).await?;
        let shared = self.shared.clone();
        let timeout = self.options.timeout;
        let (reply, answer) = oneshot::channel();
        actix_rt::spawn(async move {
            let _ = reply.send(exchange(shared, process, request, body, timeout).await);
        });
        answer.await.unwrap_or_else(|_| {
            Err(OnDemandError::WorkerFailed {
                view,
                detail: "the exchange with its worker was dropped".into(),
            })
        })
    }

    /// A free process: at once, or after waiting in line.
    async fn check_out(&self, view: &str) -> Result<Process, OnDemandError> {
        let shared = &self.shared;
        if let Ok(permit) = shared.free.try_acquire() {
            permit.forget();
            return Ok(take_idle(shared));
        }
        if shared.waiting.fetch_add(1, Ordering::AcqRel) >= self.options.queue {
            shared.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(OnDemandError::Busy {
                view: view.to_string(),
                why: format!(
                    "{} transformations already wait (python_queue)",
                    self.options.queue
                ),
            });
        }
        let _in_line = InLine(&shared.waiting);
        let mut since = Instant::now();
        loop {
            if shared.live.load(Ordering::Acquire) == 0 {
                let failure = shared
                    .start_failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                if let Some(detail) = failure {
                    return Err(OnDemandError::Unavailable {
                        view: view.to_string(),
                        detail,
                    });
                }
                // Waiting for a worker to start does not count.
                since = Instant::now();
            }
            let left = self.options.timeout.saturating_sub(since.elapsed());
            if left.is_zero() {
                return Err(OnDemandError::Busy {
                    view: view.to_string(),
                    why: format!(
                        "the transformation waited more than {} ms for a free worker (python_timeout_ms)",
                        self.options.timeout.as_millis()
                    ),
                });
            }
            match actix_rt::time::timeout(left.min(RECHECK), shared.free.acquire()).await {
                Ok(Ok(permit)) => {
                    permit.forget();
                    return Ok(take_idle(shared));
                }
                Ok(Err(_)) => {
                    return Err(OnDemandError::Unavailable {
                        view: view.to_string(),
                        detail: "the worker pool is closed".into(),
                    })
                }
                Err(_) => continue,
            }
        }
    }
}

/// A place in line for a free process, left when dropped (also when the request is).
struct InLine<'a>(&'a AtomicUsize);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The idle process a permit stands for.
fn take_idle(shared: &Shared) -> Process {
    shared
        .idle
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop()
        .expect("one idle process per permit")
}

/// One request and its answer with `process`, on this thread's event loop, within `timeout`;
/// then the process is free again, or handed to its supervisor when anything went wrong.
async fn exchange(
    shared: Arc<Shared>,
    mut process: Process,
    request: Request,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, OnDemandError> {
    let view = request.view.clone();
    let outcome = match process.conn.take() {
        Some(conn) => actix_rt::time::timeout(timeout, talk(conn, &request, &body))
            .await
            .unwrap_or_else(|_| Err(Failure::Timeout)),
        None => Err(Failure::Io("no connection".into())),
    };
    shared.counters.round_trips.inc();
    let (conn, answer) = match outcome {
        Ok((conn, answer)) => (conn, answer),
        Err(failure) => {
            tracing::warn!(worker = process.index, view = %view, problem = %failure.describe(), "on-demand worker restarted");
            shared.give_up(process);
            return Err(match failure {
                Failure::Timeout => OnDemandError::Timeout {
                    view,
                    ms: timeout.as_millis(),
                },
                Failure::Io(e) => OnDemandError::WorkerFailed {
                    view,
                    detail: format!("its process ended or broke the protocol: {e}"),
                },
            });
        }
    };
    process.conn = Some(conn);
    shared.check_in(process);
    answer.map_err(|refused| match refused.kind.as_str() {
        "transform" => OnDemandError::Transform {
            view: refused.view.unwrap_or(view),
            message: refused.message,
        },
        _ => OnDemandError::BadOutput {
            view: refused.view.unwrap_or(view),
            detail: refused.message,
        },
    })
}

/// Why an exchange failed: the process is then in an unknown state.
enum Failure {
    Timeout,
    Io(String),
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Failure::Timeout => "past the transformation deadline".into(),
            Failure::Io(e) => e.clone(),
        }
    }
}

type Talked = Result<(UnixStream, Result<Vec<u8>, Refused>), Failure>;

/// Sends the request, reads the answer; gives the socket back (out of the event loop).
async fn talk(conn: UnixStream, request: &Request, body: &[u8]) -> Talked {
    let io = |e: std::io::Error| Failure::Io(e.to_string());
    let mut conn = tokio::net::UnixStream::from_std(conn).map_err(io)?;
    let header = serde_json::to_vec(request).map_err(|e| Failure::Io(e.to_string()))?;
    let mut out = Vec::with_capacity(8 + header.len() + body.len());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    conn.write_all(&out).await.map_err(io)?;
    let (header, body) = {
        let mut answers = tokio::io::BufReader::with_capacity(1 << 16, &mut conn);
        let header = read_part(&mut answers).await.map_err(io)?;
        let body = read_part(&mut answers).await.map_err(io)?;
        (header, body)
    };
    let conn = conn.into_std().map_err(io)?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| Failure::Io(e.to_string()))?;
    if let Some(error) = header.get("error").and_then(|e| e.as_str()) {
        let text = |key: &str| header.get(key).and_then(|v| v.as_str()).map(str::to_string);
        let refused = Refused {
            kind: text("kind").unwrap_or_default(),
            message: error.to_string(),
            view: text("view"),
        };
        return Ok((conn, Err(refused)));
    }
    Ok((conn, Ok(body)))
}

async fn read_part(answers: &mut (impl tokio::io::AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    answers.read_exact(&mut len).await?;
    let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
    answers.read_exact(&mut buf).await?;
    Ok(buf)
}

/// A worker's error answer: its kind (`transform`: the transformation raised), message, and
/// the view it was running.
struct Refused {
    kind: String,
    message: String,
    view: Option<String>,
}

/// A running worker process and its socket (non-blocking; `None` while an exchange holds it).
struct Process {
    index: usize,
    child: Child,
    conn: Option<UnixStream>,
    socket: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Starts one worker process, and another each time one breaks.
struct Supervisor {
    index: usize,
    launch: Launch,
    shared: Weak<Shared>,
    returns: Receiver<Process>,
    counters: Counters,
}

impl Supervisor {
    fn run(self) {
        loop {
            let process = loop {
                match self.spawn() {
                    Ok(process) => break process,
                    Err(detail) => {
                        tracing::error!(worker = self.index, %detail, "on-demand worker did not start");
                        let Some(shared) = self.shared.upgrade() else {
                            return;
                        };
                        *shared
                            .start_failure
                            .lock()
                            .unwrap_or_else(|p| p.into_inner()) = Some(detail);
                        drop(shared);
                        std::thread::sleep(RESTART_BACKOFF);
                    }
                }
            };
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            *shared
                .start_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = None;
            shared.live.fetch_add(1, Ordering::AcqRel);
            shared.check_in(process);
            drop(shared);
            match self.returns.recv() {
                Ok(broken) => drop(broken), // killed and reaped here, off the HTTP workers
                Err(_) => return,           // the pool is gone
            }
        }
    }

    /// Starts a worker process and waits for its hello (Feast imported, registry read).
    fn spawn(&self) -> Result<Process, String> {
        // Unique with the worker's index: each worker's starts count up.
        let generation = self.counters.starts.get();
        self.counters.starts.inc();
        let socket = std::env::temp_dir().join(format!(
            "featgrid-ondemand-{}-{}-{generation}.sock",
            std::process::id(),
            self.index
        ));
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)
            .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
        let remove = |e: String| {
            let _ = std::fs::remove_file(&socket);
            e
        };
        let mut child = Command::new(&self.launch.python)
            .arg("-c")
            .arg(WORKER_SCRIPT)
            .arg("--socket")
            .arg(&socket)
            .arg("--registry")
            .arg(&self.launch.registry)
            .arg("--project")
            .arg(&self.launch.project)
            .arg("--repo")
            .arg(&self.launch.repo)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| remove(format!("cannot run {}: {e}", self.launch.python.display())))?;
        let mut conn = match accept(&listener, &mut child, START_DEADLINE) {
            Ok(conn) => conn,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(remove(e));
            }
        };
        let _ = conn.set_read_timeout(Some(START_DEADLINE));
        let hello = read_hello(&mut conn);
        let mut process = Process {
            index: self.index,
            child,
            conn: None,
            socket: socket.clone(),
        };
        let header = hello.map_err(|e| {
            format!(
                "{} ended before it was ready ({e}); see its errors above in the log",
                self.launch.python.display()
            )
        })?;
        let hello: serde_json::Value = serde_json::from_slice(&header).unwrap_or_default();
        if let Some(error) = hello.get("error").and_then(|e| e.as_str()) {
            return Err(format!("{}: {error}", self.launch.python.display()));
        }
        conn.set_nonblocking(true)
            .map_err(|e| format!("worker socket: {e}"))?;
        process.conn = Some(conn);
        tracing::info!(
            worker = self.index,
            pid = process.child.id(),
            feast = %hello.get("feast_version").and_then(|v| v.as_str()).unwrap_or("?"),
            "on-demand worker ready"
        );
        Ok(process)
    }
}

/// The worker's first frame (its header; the body is empty).
fn read_hello(conn: &mut UnixStream) -> std::io::Result<Vec<u8>> {
    let mut part = || -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        conn.read_exact(&mut len)?;
        let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
        conn.read_exact(&mut buf)?;
        Ok(buf)
    };
    let header = part()?;
    part()?;
    Ok(header)
}

/// Accepts the worker's connection, giving up when the process exits or the deadline passes.
fn accept(
    listener: &UnixListener,
    child: &mut Child,
    within: Duration,
) -> Result<UnixStream, String> {
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot poll the worker socket: {e}"))?;
    let deadline = Instant::now() + within;
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false)
                    .map_err(|e| format!("worker socket: {e}"))?;
                return Ok(conn);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("worker socket: {e}")),
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the worker exited ({status}) before connecting; see its errors above in the log"
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the worker did not connect within {} s",
                within.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
