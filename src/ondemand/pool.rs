//! The Python worker pool: N processes of `python/featgrid_ondemand_worker.py`, each owned by
//! one thread of its own that talks to it over a unix socket (blocking I/O, off the HTTP
//! workers), and one bounded queue of jobs in front of them.
//!
//! A request puts its job on the queue (full: 503 `ondemand_busy`, at once) and awaits the
//! answer. A worker thread takes the next job, sends it, and reads the answer with the
//! transformation deadline as the socket's read timeout: past it, or when the process dies,
//! the process is killed and started again, and the job answers 504 or 502 naming the view.
//! A job that waited in the queue longer than the deadline answers 503 without running. So a
//! request never waits longer than twice the deadline plus a worker's start.
//!
//! Under load a worker sends the jobs waiting in the queue together ([`Worker::pipeline_limit`]
//! of them): their frames in one write, each frame but the last marked `more`, and the Python
//! worker answers them, each transformed on its own as if sent alone, in one write once it has
//! run the last. One wake-up of each side per batch instead of per request. The batch is read
//! back within one transformation deadline, so a batch is only as long as the slowest
//! transformation of the previous batch allows (at most a quarter of the deadline in all).
//!
//! Cancel safety: a request dropped while its job waits leaves the job in the queue; the
//! worker sees that nobody awaits it and skips it.

use std::io::{BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use super::{OnDemandError, PoolOptions, WORKER_SCRIPT};
use crate::registry::feast::FeastRepo;

/// How long a worker may take to import Feast and load the registry.
const START_DEADLINE: Duration = Duration::from_secs(120);
/// Pause between failed starts of one worker.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);
/// Most jobs a worker sends in one batch.
const MAX_PIPELINE: usize = 16;

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

struct Job {
    request: Request,
    /// The input batch (Arrow IPC stream).
    body: Vec<u8>,
    queued: Instant,
    reply: oneshot::Sender<Result<Vec<u8>, OnDemandError>>,
}

/// The pool; cheap to share (`Arc`).
pub struct Pool {
    jobs: Sender<Job>,
    options: PoolOptions,
}

/// What the pool counts, for `/metrics`.
#[derive(Clone)]
pub struct Counters {
    /// Requests answered by a worker (one per read or write that runs on-demand views).
    pub round_trips: prometheus::IntCounter,
    /// Batches of requests sent to a worker (one write each).
    pub batches: prometheus::IntCounter,
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
    /// Starts `options.workers` worker threads for the Feast repo `repo`; each starts its
    /// Python process at once (in the background: requests wait in the queue meanwhile).
    pub fn start(options: PoolOptions, repo: &FeastRepo, counters: Counters) -> Arc<Pool> {
        let (jobs, queue) = channel::bounded::<Job>(options.queue.max(1));
        let repo_dir = std::fs::canonicalize(&repo.dir).unwrap_or_else(|_| repo.dir.clone());
        let registry = std::fs::canonicalize(&repo.registry_path)
            .unwrap_or_else(|_| repo.registry_path.clone());
        let launch = Launch {
            python: options.python.clone(),
            registry,
            project: repo.project.clone(),
            repo: repo_dir,
        };
        for index in 0..options.workers.max(1) {
            let worker = Worker {
                index,
                launch: launch.clone(),
                timeout: options.timeout,
                queue: queue.clone(),
                process: None,
                ready_at: Instant::now(),
                counters: counters.clone(),
                slowest: options.timeout,
            };
            let spawned = std::thread::Builder::new()
                .name(format!("ondemand-{index}"))
                .spawn(move || worker.run());
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start an on-demand worker thread");
            }
        }
        tracing::info!(
            workers = options.workers,
            python = %options.python.display(),
            timeout_ms = options.timeout.as_millis() as u64,
            "on-demand transformation workers starting"
        );
        Arc::new(Pool { jobs, options })
    }

    /// Runs `request` on `body` in a worker; the answer is the output batch (Arrow IPC).
    pub async fn run(&self, request: Request, body: Vec<u8>) -> Result<Vec<u8>, OnDemandError> {
        let view = request.view.clone();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            request,
            body,
            queued: Instant::now(),
            reply,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(OnDemandError::Busy {
                    view,
                    why: format!(
                        "{} transformations already wait (python_queue)",
                        self.options.queue
                    ),
                })
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(OnDemandError::Unavailable {
                    view,
                    detail: "the worker threads have stopped".into(),
                })
            }
        }
        // The worker answers within the deadline once it holds the job; this bound only
        // covers a worker that is still starting.
        let most = 2 * self.options.timeout + START_DEADLINE;
        match actix_rt::time::timeout(most, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(OnDemandError::WorkerFailed {
                view,
                detail: "its thread dropped the job".into(),
            }),
            Err(_) => Err(OnDemandError::Timeout {
                view,
                ms: most.as_millis(),
            }),
        }
    }
}

/// A worker's error answer: its kind (`transform`: the transformation raised), message, and
/// the view it was running.
struct Refused {
    kind: String,
    message: String,
    view: Option<String>,
}

/// A running worker process and its socket (written whole frames at a time; read through a
/// buffer, so that an answer usually takes one system call).
struct Process {
    child: Child,
    conn: UnixStream,
    answers: BufReader<UnixStream>,
    socket: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

struct Worker {
    index: usize,
    launch: Launch,
    timeout: Duration,
    queue: Receiver<Job>,
    process: Option<Process>,
    /// When the current process became ready.
    ready_at: Instant,
    counters: Counters,
    /// How long the last batch took to answer (the deadline until one was answered, or after
    /// one failed).
    slowest: Duration,
}

/// A frame sent to a worker: the request, and how many frames follow it in its batch.
#[derive(serde::Serialize)]
struct Frame<'a> {
    #[serde(flatten)]
    request: &'a Request,
    #[serde(skip_serializing_if = "is_zero")]
    more: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Worker {
    fn run(mut self) {
        loop {
            if self.process.is_none() {
                match self.spawn() {
                    Ok(process) => {
                        self.process = Some(process);
                        self.ready_at = Instant::now();
                    }
                    Err(detail) => {
                        tracing::error!(worker = self.index, %detail, "on-demand worker did not start");
                        // Answer what waits meanwhile instead of letting it time out.
                        let until = Instant::now() + RESTART_BACKOFF;
                        while let Some(left) = until.checked_duration_since(Instant::now()) {
                            match self.queue.recv_timeout(left) {
                                Ok(job) => {
                                    let view = job.request.view.clone();
                                    let _ = job.reply.send(Err(OnDemandError::Unavailable {
                                        view,
                                        detail: detail.clone(),
                                    }));
                                }
                                Err(channel::RecvTimeoutError::Timeout) => break,
                                Err(channel::RecvTimeoutError::Disconnected) => return,
                            }
                        }
                        continue;
                    }
                }
            }
            let Ok(first) = self.queue.recv() else {
                return; // the pool is gone
            };
            let Some(first) = self.admit(first) else {
                continue;
            };
            let mut jobs = vec![first];
            let limit = self.pipeline_limit();
            while jobs.len() < limit {
                let Ok(next) = self.queue.try_recv() else {
                    break;
                };
                jobs.extend(self.admit(next));
            }
            let answers = self.exchange(&jobs);
            self.counters.round_trips.inc_by(jobs.len() as u64);
            self.counters.batches.inc();
            for (job, answer) in jobs.into_iter().zip(answers) {
                let answer = self.outcome(&job.request.view, answer);
                let _ = job.reply.send(answer);
            }
        }
    }

    /// How many jobs the next batch may hold: as many as would fit in a quarter of the
    /// deadline if each took as long as the whole last batch did.
    fn pipeline_limit(&self) -> usize {
        let fit = self.timeout.as_nanos() / (4 * self.slowest.as_nanos()).max(1);
        (fit as usize).clamp(1, MAX_PIPELINE)
    }

    /// `job`, unless nobody awaits it any more or it waited past the deadline for a worker
    /// (then it is answered 503 here).
    fn admit(&self, job: Job) -> Option<Job> {
        if job.reply.is_closed() {
            return None;
        }
        // Time spent waiting for this worker to start does not count.
        if job.queued.max(self.ready_at).elapsed() > self.timeout {
            let why = format!(
                "the transformation waited more than {} ms for a free worker (python_timeout_ms)",
                self.timeout.as_millis()
            );
            let view = job.request.view.clone();
            let _ = job.reply.send(Err(OnDemandError::Busy { view, why }));
            return None;
        }
        Some(job)
    }

    /// What a job answers, from the worker's answer to it; an I/O failure or the deadline
    /// restarts the process.
    fn outcome(
        &mut self,
        view: &str,
        answer: std::io::Result<Result<Vec<u8>, Refused>>,
    ) -> Result<Vec<u8>, OnDemandError> {
        let refused = match answer {
            Ok(Ok(body)) => return Ok(body),
            Ok(Err(refused)) => refused,
            Err(e) => {
                // The process is in an unknown state: kill it, start a fresh one.
                let timed_out = matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
                if self.process.take().is_some() {
                    tracing::warn!(worker = self.index, view, error = %e, timed_out, "on-demand worker restarted");
                }
                let view = view.to_string();
                return Err(match timed_out {
                    true => OnDemandError::Timeout {
                        view,
                        ms: self.timeout.as_millis(),
                    },
                    false => OnDemandError::WorkerFailed {
                        view,
                        detail: format!("its process ended or broke the protocol: {e}"),
                    },
                });
            }
        };
        let view = refused.view.unwrap_or_else(|| view.to_string());
        Err(match refused.kind.as_str() {
            "transform" => OnDemandError::Transform {
                view,
                message: refused.message,
            },
            _ => OnDemandError::BadOutput {
                view,
                detail: refused.message,
            },
        })
    }

    /// Sends the jobs' requests in one write and reads their answers, all within one
    /// deadline: per job, `Ok(Err(_))` is the worker's own error answer, `Err` an I/O failure
    /// or the deadline (for that job and every one after it).
    fn exchange(&mut self, jobs: &[Job]) -> Vec<std::io::Result<Result<Vec<u8>, Refused>>> {
        let mut answers = Vec::with_capacity(jobs.len());
        // The worker answers a batch at once, after its last transformation: the batch's
        // whole time is what the next batch is sized by (the deadline after a failure).
        let sent = Instant::now();
        let failed = self.send_and_read(jobs, &mut answers).err();
        self.slowest = match failed {
            None => sent.elapsed(),
            Some(_) => self.timeout,
        };
        let mut answers: Vec<_> = answers.into_iter().map(Ok).collect();
        if let Some(e) = failed {
            answers.resize_with(jobs.len(), || {
                Err(std::io::Error::new(e.kind(), e.to_string()))
            });
        }
        answers
    }

    /// [`Worker::exchange`]'s I/O: the answers read, in order, until the first failure.
    fn send_and_read(
        &mut self,
        jobs: &[Job],
        answers: &mut Vec<Result<Vec<u8>, Refused>>,
    ) -> std::io::Result<()> {
        let process = self
            .process
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no process"))?;
        let mut frames = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            let frame = Frame {
                request: &job.request,
                more: jobs.len() - 1 - i,
            };
            let header = serde_json::to_vec(&frame).map_err(std::io::Error::other)?;
            push_frame(&mut frames, &header, &job.body);
        }
        let deadline = Instant::now() + self.timeout;
        process.conn.write_all(&frames)?;
        for _ in jobs {
            let (header, body) = read_frame(&mut process.answers, deadline)?;
            let header: serde_json::Value =
                serde_json::from_slice(&header).map_err(std::io::Error::other)?;
            answers.push(match header.get("error").and_then(|e| e.as_str()) {
                None => Ok(body),
                Some(error) => {
                    let text =
                        |key: &str| header.get(key).and_then(|v| v.as_str()).map(str::to_string);
                    Err(Refused {
                        kind: text("kind").unwrap_or_default(),
                        message: error.to_string(),
                        view: text("view"),
                    })
                }
            });
        }
        Ok(())
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
        let conn = match accept(&listener, &mut child, START_DEADLINE) {
            Ok(conn) => conn,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(remove(e));
            }
        };
        let answers = match conn.try_clone() {
            Ok(reader) => BufReader::with_capacity(1 << 16, reader),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(remove(format!("worker socket: {e}")));
            }
        };
        let mut process = Process {
            child,
            conn,
            answers,
            socket: socket.clone(),
        };
        let deadline = Instant::now() + START_DEADLINE;
        let _ = process.conn.set_read_timeout(Some(START_DEADLINE));
        let (header, _) = read_frame(&mut process.answers, deadline).map_err(|e| {
            format!(
                "{} ended before it was ready ({e}); see its errors above in the log",
                self.launch.python.display()
            )
        })?;
        let hello: serde_json::Value = serde_json::from_slice(&header).unwrap_or_default();
        if let Some(error) = hello.get("error").and_then(|e| e.as_str()) {
            return Err(format!("{}: {error}", self.launch.python.display()));
        }
        // From now on every call is bounded by the transformation deadline (the clone shares
        // the socket, and with it the timeouts).
        let timeouts = process
            .conn
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| process.conn.set_write_timeout(Some(self.timeout)));
        if let Err(e) = timeouts {
            return Err(format!("worker socket: {e}"));
        }
        tracing::info!(
            worker = self.index,
            pid = process.child.id(),
            feast = %hello.get("feast_version").and_then(|v| v.as_str()).unwrap_or("?"),
            "on-demand worker ready"
        );
        Ok(process)
    }
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

fn push_frame(out: &mut Vec<u8>, header: &[u8], body: &[u8]) {
    out.reserve(8 + header.len() + body.len());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
}

/// Reads one frame; `deadline` bounds the whole frame (each read is bounded by the socket's
/// read timeout, set by the caller).
fn read_frame(conn: &mut impl Read, deadline: Instant) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut part = || -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        conn.read_exact(&mut len)?;
        let len = u32::from_le_bytes(len) as usize;
        let mut buf = vec![0u8; len];
        conn.read_exact(&mut buf)?;
        if Instant::now() > deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "deadline passed",
            ));
        }
        Ok(buf)
    };
    let header = part()?;
    let body = part()?;
    Ok((header, body))
}
