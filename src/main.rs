//! The featgrid command line: `featgrid serve` runs the server, `featgrid bench` loads one,
//! `featgrid materialize` has one load its views' offline data.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use featgrid::bench::{parse_duration, Load, Options, Protocol, Target, Workload};
use featgrid::cluster::topology::Topology;
use featgrid::config::{Overrides, Settings};

#[derive(Parser)]
#[command(
    name = "featgrid",
    version,
    about = "An online feature store, wire-compatible with Feast's feature server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How the log (standard error) is written: text (coloured only on a terminal, never with
    /// NO_COLOR) or one JSON object a line.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "FEATGRID_LOG_FORMAT"
    )]
    log_format: featgrid::logging::LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the feature server (embedded driver quickstart registry unless --config names one
    /// or --feast-repo points at a Feast feature repo).
    Serve(Box<ServeArgs>),
    /// Load a feature server: preload entities, then reads, pushes, a mix or freshness probes;
    /// prints requests, errors, throughput and latency percentiles per operation.
    Bench(Box<BenchArgs>),
    /// Have a running server load feature views' rows from their offline sources (Parquet),
    /// as `feast materialize` does: `START END`, `--incremental END` or
    /// `--disable-event-timestamp`; shows progress, then what was loaded.
    Materialize(MaterializeArgs),
    /// Manage bearer tokens for the token file (`auth_tokens`).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Look at a cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a fresh random token and the `[[token]]` lines to paste into the token file.
    New {
        /// Name shown in logs and metrics (never the secret).
        #[arg(long)]
        name: String,
        /// Comma-separated scopes: read, write, admin.
        #[arg(long, value_delimiter = ',', required = true, value_parser = parse_scope)]
        scopes: Vec<featgrid::auth::Scope>,
        /// Comma-separated feature views the token is limited to [default: all].
        #[arg(long, value_delimiter = ',')]
        views: Vec<String>,
    },
}

fn parse_scope(s: &str) -> Result<featgrid::auth::Scope, String> {
    s.trim().parse()
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Print who owns what, who leads, who is healthy (GET /cluster of one node, as a table).
    Status {
        #[command(flatten)]
        node: NodeArgs,
        /// Print the JSON answer instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Change a group's voters through its leader, e.g. replace a dead node: new nodes are
    /// added as learners, caught up, then made voters with the removed ones dropped (joint
    /// consensus). Prints the group's members.
    Members {
        #[command(flatten)]
        node: NodeArgs,
        /// The group (its index in the topology's [[group]] list).
        #[arg(long, value_name = "N")]
        group: usize,
        /// A node id to add (a [[node]] of the topology); repeat for several.
        #[arg(long, value_name = "ID")]
        add: Vec<String>,
        /// A node id to remove; repeat for several.
        #[arg(long, value_name = "ID")]
        remove: Vec<String>,
    },
}

/// Which node the cluster commands ask, and how.
#[derive(clap::Args)]
struct NodeArgs {
    /// Any node's client URL, e.g. http://127.0.0.1:7001.
    #[arg(long, value_name = "URL")]
    node: String,
    /// A token with the admin scope (a node with auth_tokens or JWTs asks for it).
    #[command(flatten)]
    token: TokenArg,
}

#[derive(clap::Args)]
struct MaterializeArgs {
    /// START END (ISO 8601, e.g. 2026-07-16T19:20:01; no offset means UTC), or END with
    /// --incremental.
    #[arg(value_name = "TIMESTAMP", num_args = 0..=2)]
    times: Vec<String>,
    /// From where each view's last run ended (else END - ttl, else the epoch) to END.
    #[arg(long)]
    incremental: bool,
    /// Everything from the epoch up to now.
    #[arg(long)]
    disable_event_timestamp: bool,
    /// Comma-separated feature views [default: every view with an offline source].
    #[arg(long, value_delimiter = ',')]
    views: Vec<String>,
    /// Start even if a view is already materializing.
    #[arg(long)]
    force: bool,
    /// The server's URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:6566")]
    url: String,
    #[command(flatten)]
    token: TokenArg,
}

/// A bearer token for the requests a command sends.
#[derive(clap::Args)]
struct TokenArg {
    /// Bearer token sent with every request (servers with auth_tokens or JWTs ask for one).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "FEATGRID_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Settings file (TOML); see config/default.toml for every key.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve the registry of this Feast feature repo (the folder with feature_store.yaml, after
    /// `feast apply`), reloaded when it changes; not together with a TOML registry.
    #[arg(long, value_name = "DIR")]
    feast_repo: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:6566]; port 0 picks a free one.
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// Number of shards the key space is split into [default: 8].
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// Threads hosting the shard actors [default: 1].
    #[arg(long, value_name = "N")]
    shard_threads: Option<usize>,
    /// HTTP worker threads [default: one per core].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Directory for snapshots and the write-ahead log [default: featgrid-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// When the write-ahead log is fsynced: always, everysec or no [default: everysec].
    #[arg(long, value_name = "POLICY")]
    fsync: Option<String>,
    /// Time between snapshots: seconds (300) or a duration (30s, 5m); 0 = never [default: 5m].
    #[arg(long, value_name = "DURATION")]
    snapshot_interval: Option<String>,
    /// Complete snapshot sets to keep [default: 2].
    #[arg(long, value_name = "N")]
    snapshot_keep: Option<usize>,
    /// Start despite a damaged snapshot or log: fall back to the previous snapshot set, skip
    /// the damaged part of the log, log what was skipped, then write a fresh snapshot.
    #[arg(long)]
    recover: bool,
    /// Token file (TOML `[[token]]` entries); every route but /health then needs a token.
    #[arg(long, value_name = "FILE")]
    auth_tokens: Option<PathBuf>,
    /// Serve a non-loopback address without any credentials configured.
    #[arg(long)]
    insecure: bool,
    /// Memory ceiling of the store: bytes or a size (4GiB, 512MiB); writes past it answer 507 [default: none].
    #[arg(long, value_name = "SIZE")]
    max_memory: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Run as a node of the cluster this topology file describes (the same file on every
    /// node); binds the node's `client` address unless --bind is given. Needs --node-id.
    #[arg(long, value_name = "FILE", requires = "node_id")]
    cluster: Option<PathBuf>,
    /// This node's id in the --cluster topology.
    #[arg(long, value_name = "ID", requires = "cluster")]
    node_id: Option<String>,
    /// The first start of a brand-new cluster: groups this node has no Raft state for are
    /// started afresh (the first node of each group initializes it). Without it, a node with
    /// no Raft state for a group (a wiped or new data directory) rejoins: it votes in no
    /// election until the group's leader has added it back and caught it up.
    #[arg(long, requires = "cluster", env = "FEATGRID_BOOTSTRAP")]
    bootstrap: bool,
    /// Validate the settings, the registry and the topology, then exit: 0 and a summary when
    /// they are valid, 2 and the first problem otherwise.
    #[arg(long)]
    check: bool,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Server to load; repeat for several nodes (requests go round-robin) [default: http://127.0.0.1:6566].
    #[arg(long = "target", value_name = "URL", value_parser = Target::parse)]
    targets: Vec<Target>,
    /// Allow targets that are not on this machine (by default only loopback hosts are loaded).
    #[arg(long)]
    allow_remote: bool,
    /// Wire format: feast (Feast JSON) or native (the binary path).
    #[arg(long, value_name = "NAME", default_value = "feast", value_parser = Protocol::parse)]
    protocol: Protocol,
    /// What to send: read, push, mixed (see --read-ratio) or freshness (push, then read until visible).
    #[arg(long, value_name = "KIND", default_value = "read", value_parser = ["read", "push", "mixed", "freshness"])]
    workload: String,
    /// Fraction of reads in the mixed workload.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.95)]
    read_ratio: f64,
    /// Entities (driver ids 1..=N) to preload and draw keys from.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    entities: u64,
    /// Skip the preload (the entities are already there).
    #[arg(long)]
    no_preload: bool,
    /// Rows per preload push.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    preload_batch: usize,
    /// Entities per read and rows per push.
    #[arg(long, value_name = "N", default_value_t = 1)]
    batch: usize,
    /// Features per read: the first K of conv_rate, acc_rate, avg_daily_trips.
    #[arg(long, value_name = "K", default_value_t = 3)]
    features: usize,
    /// Zipfian key choice with this exponent (e.g. 0.99); uniform when omitted.
    #[arg(long, value_name = "S")]
    zipf: Option<f64>,
    /// Closed loop: concurrent connections sending back to back. Open loop: most requests in flight.
    #[arg(long, value_name = "C", default_value_t = 8)]
    connections: usize,
    /// Open loop: requests per second in total, on a fixed schedule (latency counts from each
    /// request's intended send time).
    #[arg(long, value_name = "R")]
    rate: Option<f64>,
    /// Client threads (each runs its own event loop and share of the connections); 0: one per
    /// core, so the generator is not the bottleneck (one thread tops out below the server).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Load before measuring, not recorded.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Measured time after the warmup.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Stop after this many recorded requests (or probes).
    #[arg(long, value_name = "N")]
    max_requests: Option<u64>,
    /// Per-request timeout.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// Freshness: read from this server instead of the one pushed to.
    #[arg(long, value_name = "URL", value_parser = Target::parse)]
    read_target: Option<Target>,
    /// Freshness: give up on a probe (count a timeout) after this long.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    probe_timeout: Duration,
    /// Random seed for key choice and values.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// PEM certificate(s) to trust for https:// targets (the server's own, or its CA).
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    #[command(flatten)]
    token: TokenArg,
    /// Write the results as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write latency and throughput over time as an SVG.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

impl BenchArgs {
    fn options(self) -> Options {
        let defaults = Options::default();
        Options {
            targets: if self.targets.is_empty() {
                defaults.targets
            } else {
                self.targets
            },
            read_target: self.read_target,
            allow_remote: self.allow_remote,
            protocol: self.protocol,
            workload: match self.workload.as_str() {
                "push" => Workload::Push,
                "mixed" => Workload::Mixed {
                    read_ratio: self.read_ratio,
                },
                "freshness" => Workload::Freshness,
                _ => Workload::Read,
            },
            load: match self.rate {
                Some(rate) => Load::Open { rate },
                None => Load::Closed,
            },
            entities: self.entities,
            preload: !self.no_preload,
            preload_batch: self.preload_batch,
            batch: self.batch,
            features: self.features,
            zipf: self.zipf,
            connections: self.connections,
            threads: match self.threads {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            }
            .min(self.connections.max(1)),
            warmup: self.warmup,
            duration: self.duration,
            max_requests: self.max_requests,
            timeout: self.timeout,
            probe_timeout: self.probe_timeout,
            seed: self.seed,
            ca_cert: self.ca_cert,
            token: self.token.token,
            json: self.json,
            plot: self.plot,
            progress: std::io::stderr().is_terminal(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    featgrid::logging::init(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Bench(args) => bench(*args),
        Command::Materialize(args) => materialize(args),
        Command::Token(command) => token(command),
        Command::Cluster(ClusterCommand::Status { node, json }) => cluster_status(&node, json),
        Command::Cluster(ClusterCommand::Members {
            node,
            group,
            add,
            remove,
        }) => cluster_members(&node, group, add, remove),
    }
}

fn token(command: TokenCommand) -> ExitCode {
    let TokenCommand::New {
        name,
        scopes,
        views,
    } = command;
    match featgrid::auth::tokens::new_token() {
        Ok((token, hash)) => {
            println!("token (give it to the client; it is not stored anywhere):\n{token}\n");
            println!("add to the token file (auth_tokens), then send SIGHUP or restart:\n");
            print!(
                "{}",
                featgrid::auth::tokens::file_entry(&name, &hash, &scopes, &views)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("featgrid token: {e}");
            ExitCode::FAILURE
        }
    }
}

/// GETs `url` (or POSTs `body` as JSON), with `token` as a bearer token if given: the answer's
/// body when it is a 200.
fn http(
    url: &str,
    body: Option<serde_json::Value>,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    actix_rt::System::new().block_on(async {
        let mut client = awc::Client::builder().timeout(timeout);
        if let Some(token) = token {
            client = client.bearer_auth(token);
        }
        let client = client.finish();
        let sent = match body {
            Some(body) => client.post(url).send_json(&body).await,
            None => client.get(url).send().await,
        };
        let mut response = sent.map_err(|e| e.to_string())?;
        let body = response.body().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!(
                "{} {}",
                response.status(),
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(body.to_vec())
    })
}

/// Sends the materialize request on a thread of its own and, until it answers, draws the
/// progress from `GET /materialize` (in place on a terminal, every 5 s otherwise).
fn materialize(args: MaterializeArgs) -> ExitCode {
    use featgrid::materialize::command;
    let (path, body) = match command::request(
        &args.times,
        args.incremental,
        args.disable_event_timestamp,
        &args.views,
    ) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("featgrid materialize: {e}");
            return ExitCode::from(2);
        }
    };
    let base = args.url.trim_end_matches('/').to_string();
    let url = format!(
        "{base}{path}{}",
        if args.force { "?force=true" } else { "" }
    );
    let token = args.token.token.clone();
    let sent = std::thread::spawn({
        let token = token.clone();
        move || {
            http(
                &url,
                Some(body),
                token.as_deref(),
                Duration::from_secs(7 * 86_400),
            )
        }
    });
    let started = std::time::Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let mut last_line = std::time::Instant::now();
    let mut drawn = false;
    while !sent.is_finished() {
        std::thread::sleep(Duration::from_millis(250));
        let Ok(status) = http(
            &format!("{base}/materialize"),
            None,
            token.as_deref(),
            Duration::from_secs(5),
        ) else {
            continue;
        };
        let status = serde_json::from_slice(&status).unwrap_or_default();
        if let Some(line) = command::progress_line(&status, &args.views, started.elapsed()) {
            if terminal {
                eprint!("\r{line}");
                drawn = true;
            } else if last_line.elapsed() >= Duration::from_secs(5) {
                eprintln!("{line}");
                last_line = std::time::Instant::now();
            }
        }
    }
    if drawn {
        eprintln!();
    }
    match sent.join() {
        Ok(Ok(answer)) => {
            let answer = serde_json::from_slice(&answer).unwrap_or_default();
            print!("{}", command::summary(&answer));
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("featgrid materialize: {base}{path}: {e}");
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::FAILURE,
    }
}

fn cluster_members(
    node: &NodeArgs,
    group: usize,
    add: Vec<String>,
    remove: Vec<String>,
) -> ExitCode {
    let url = format!(
        "{}/cluster/groups/{group}/members",
        node.node.trim_end_matches('/')
    );
    let body = serde_json::json!({"add": add, "remove": remove});
    match http(
        &url,
        Some(body),
        node.token.token.as_deref(),
        Duration::from_secs(180),
    ) {
        Ok(answer) => {
            println!("{}", String::from_utf8_lossy(&answer));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("featgrid cluster members: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cluster_status(node: &NodeArgs, json: bool) -> ExitCode {
    let url = format!("{}/cluster", node.node.trim_end_matches('/'));
    let body = match http(
        &url,
        None,
        node.token.token.as_deref(),
        Duration::from_secs(10),
    ) {
        Ok(body) => body,
        Err(e) => {
            eprintln!("featgrid cluster status: {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{}", String::from_utf8_lossy(&body));
        return ExitCode::SUCCESS;
    }
    match serde_json::from_slice::<featgrid::cluster::status::ClusterStatus>(&body) {
        Ok(status) => {
            print!("{}", featgrid::cluster::status::table(&status));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("featgrid cluster status: {url}: unexpected answer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: BenchArgs) -> ExitCode {
    match featgrid::bench::run(&args.options()) {
        Ok(report) => {
            print!("{}", report.table());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("featgrid bench: {e}");
            ExitCode::from(if e.is_usage() { 2 } else { 1 })
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let cluster = match (&args.cluster, &args.node_id) {
        (Some(file), Some(id)) => {
            let loaded = Topology::load(file).and_then(|t| t.node_index(id).map(|n| (t, n)));
            match loaded {
                Ok(loaded) => Some(loaded),
                Err(e) => {
                    eprintln!("featgrid: invalid cluster topology: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        _ => None,
    };
    // A cluster node listens on its `client` address (a name resolved now) unless --bind
    // says otherwise.
    let mut bind_source = None;
    let bind = match (args.bind, &cluster) {
        (Some(bind), _) => Some(bind),
        (None, Some((t, n))) => {
            let client = &t.node(*n).client;
            bind_source = args.cluster.as_ref().map(|file| {
                format!(
                    "cluster topology {} (node {}'s client address)",
                    file.display(),
                    t.node(*n).id
                )
            });
            match std::net::ToSocketAddrs::to_socket_addrs(client.as_str()).map(|mut a| a.next()) {
                Ok(Some(addr)) => Some(addr.to_string()),
                _ => {
                    eprintln!("featgrid: invalid cluster topology: node {}'s client address {client} does not resolve here; give --bind", t.node(*n).id);
                    return ExitCode::from(2);
                }
            }
        }
        (None, None) => None,
    };
    let flags = Overrides {
        bind,
        bind_source,
        feast_repo: args.feast_repo,
        shards: args.shards,
        shard_threads: args.shard_threads,
        workers: args.workers,
        data_dir: args.data_dir,
        fsync: args.fsync,
        snapshot_interval: args.snapshot_interval,
        snapshot_keep: args.snapshot_keep,
        recover: args.recover,
        auth_tokens: args.auth_tokens,
        insecure: args.insecure,
        max_memory: args.max_memory,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
    };
    let (settings, registry) =
        match Settings::load(args.config.as_deref(), std::env::vars(), &flags) {
            Ok(loaded) => loaded,
            Err(e) => {
                eprintln!("featgrid: invalid configuration: {e}");
                return ExitCode::from(2);
            }
        };
    if args.check {
        println!(
            "featgrid: configuration is valid: {} feature views, listening on {}{}",
            registry.feature_views.len(),
            settings.bind,
            match &cluster {
                Some((t, n)) => format!(
                    ", node {} of a cluster of {} nodes and {} groups",
                    t.node(*n).id,
                    t.nodes.len(),
                    t.groups.len()
                ),
                None => String::new(),
            }
        );
        return ExitCode::SUCCESS;
    }
    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        let running = match cluster {
            Some((topology, node)) => {
                featgrid::start_cluster(&settings, registry, topology, node, args.bootstrap).await
            }
            None => featgrid::start(&settings, registry),
        }
        .map_err(|e| e.to_string())?;
        // The one line of CLI output: tests and scripts read the bound address from it.
        let scheme = if running.tls { "https" } else { "http" };
        println!("featgrid listening on {scheme}://{}", running.addr);
        tracing::info!(addr = %running.addr, shards = settings.shards, shard_threads = settings.shard_threads, "serving");
        // Ends on SIGTERM or SIGINT, once in-flight requests have drained.
        let served = running.server.await.map_err(|e| e.to_string());
        if let Some(node) = running.cluster {
            node.stop().await;
        }
        let saved = running.durability.shutdown().await;
        running.shard_threads.stop();
        served?;
        let report = saved.map_err(|e| format!("final snapshot failed: {e}"))?;
        tracing::info!(seq = report.seq, rows = report.rows, "final snapshot written; stopped");
        Ok::<(), String>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("featgrid: {e}");
            ExitCode::FAILURE
        }
    }
}
