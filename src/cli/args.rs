//! The command line's arguments: what each subcommand (`serve`, `bench`, `materialize`,
//! `token`, `cluster`) accepts, with its help text. The subcommands' bodies live beside this
//! file, one each.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use featgrid::bench::{parse_duration, Protocol, Target};

#[derive(Subcommand)]
pub enum TokenCommand {
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

pub fn parse_scope(s: &str) -> Result<featgrid::auth::Scope, String> {
    s.trim().parse()
}

#[derive(Subcommand)]
pub enum ClusterCommand {
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
    /// Make a running node take the [[node]]s added at the end of its topology file, without a
    /// restart (as SIGHUP does); the others take theirs when it calls them. Prints the nodes.
    Reload {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Hand each group's leadership to its preferred leader (the first of its nodes in the
    /// topology that is a voter), e.g. after a restart left one node leading every group.
    /// Prints what moved; fails when a group could not be handed over (it says why).
    Balance {
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// Which node the cluster commands ask, and how.
#[derive(clap::Args)]
pub struct NodeArgs {
    /// Any node's client URL, e.g. http://127.0.0.1:7001.
    #[arg(long, value_name = "URL")]
    pub node: String,
    /// A token with the admin scope (a node with auth_tokens or JWTs asks for it).
    #[command(flatten)]
    pub token: TokenArg,
}

#[derive(clap::Args)]
pub struct MaterializeArgs {
    /// START END (ISO 8601, e.g. 2026-07-16T19:20:01; no offset means UTC), or END with
    /// --incremental.
    #[arg(value_name = "TIMESTAMP", num_args = 0..=2)]
    pub times: Vec<String>,
    /// From where each view's last run ended (else END - ttl, else the epoch) to END.
    #[arg(long)]
    pub incremental: bool,
    /// Everything from the epoch up to now.
    #[arg(long)]
    pub disable_event_timestamp: bool,
    /// Comma-separated feature views [default: every view with an offline source].
    #[arg(long, value_delimiter = ',')]
    pub views: Vec<String>,
    /// Start even if a view is already materializing.
    #[arg(long)]
    pub force: bool,
    /// The server's URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:6566")]
    pub url: String,
    #[command(flatten)]
    pub token: TokenArg,
}

/// A bearer token for the requests a command sends.
#[derive(clap::Args)]
pub struct TokenArg {
    /// Bearer token sent with every request (servers with auth_tokens or JWTs ask for one).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "FEATGRID_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Settings file (TOML); see config/default.toml for every key.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve the registry of this Feast feature repo (the folder with feature_store.yaml, after
    /// `feast apply`), reloaded when it changes; not together with a TOML registry.
    #[arg(long, value_name = "DIR")]
    pub feast_repo: Option<PathBuf>,
    /// The Python of a Feast environment: its workers run on-demand feature views'
    /// transformations with Feast's own code (setting `python`).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:6566]; port 0 picks a free one.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Number of shards the key space is split into [default: 8].
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// Threads hosting the shard actors [default: 1].
    #[arg(long, value_name = "N")]
    pub shard_threads: Option<usize>,
    /// HTTP worker threads [default: one per core].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Directory for snapshots and the write-ahead log [default: featgrid-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// When the write-ahead log is fsynced: always, everysec or no [default: everysec].
    #[arg(long, value_name = "POLICY")]
    pub fsync: Option<String>,
    /// Time between snapshots: seconds (300) or a duration (30s, 5m); 0 = never [default: 5m].
    #[arg(long, value_name = "DURATION")]
    pub snapshot_interval: Option<String>,
    /// Complete snapshot sets to keep [default: 2].
    #[arg(long, value_name = "N")]
    pub snapshot_keep: Option<usize>,
    /// Start despite a damaged snapshot or log: fall back to the previous snapshot set, skip
    /// the damaged part of the log, log what was skipped, then write a fresh snapshot.
    #[arg(long)]
    pub recover: bool,
    /// Token file (TOML `[[token]]` entries); every route but /health then needs a token.
    #[arg(long, value_name = "FILE")]
    pub auth_tokens: Option<PathBuf>,
    /// Serve a non-loopback address without any credentials configured.
    #[arg(long)]
    pub insecure: bool,
    /// Memory ceiling of the store: bytes or a size (4GiB, 512MiB); writes past it answer 507 [default: none].
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Run as a node of the cluster this topology file describes (the same file on every
    /// node); binds the node's `client` address unless --bind is given. Needs --node-id.
    #[arg(long, value_name = "FILE", requires = "node_id")]
    pub cluster: Option<PathBuf>,
    /// This node's id in the --cluster topology.
    #[arg(long, value_name = "ID", requires = "cluster")]
    pub node_id: Option<String>,
    /// The first start of a brand-new cluster: groups this node has no Raft state for are
    /// started afresh (the first node of each group initializes it). Without it, a node with
    /// no Raft state for a group (a wiped or new data directory) rejoins: it votes in no
    /// election until the group's leader has added it back and caught it up.
    #[arg(long, requires = "cluster", env = "FEATGRID_BOOTSTRAP")]
    pub bootstrap: bool,
    /// Validate the settings, the registry and the topology, then exit: 0 and a summary when
    /// they are valid, 2 and the first problem otherwise.
    #[arg(long)]
    pub check: bool,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Server to load; repeat for several nodes (requests go round-robin) [default: http://127.0.0.1:6566].
    #[arg(long = "target", value_name = "URL", value_parser = Target::parse)]
    pub targets: Vec<Target>,
    /// Allow targets that are not on this machine (by default only loopback hosts are loaded).
    #[arg(long)]
    pub allow_remote: bool,
    /// Wire format: feast (Feast JSON) or native (the binary path).
    #[arg(long, value_name = "NAME", default_value = "feast", value_parser = Protocol::parse)]
    pub protocol: Protocol,
    /// What to send: read, push, mixed (see --read-ratio) or freshness (push, then read until visible).
    #[arg(long, value_name = "KIND", default_value = "read", value_parser = ["read", "push", "mixed", "freshness"])]
    pub workload: String,
    /// Fraction of reads in the mixed workload.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.95)]
    pub read_ratio: f64,
    /// Entities (driver ids 1..=N) to preload and draw keys from.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub entities: u64,
    /// Skip the preload (the entities are already there).
    #[arg(long)]
    pub no_preload: bool,
    /// Rows per preload push.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub preload_batch: usize,
    /// Entities per read and rows per push.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub batch: usize,
    /// Features per read: the first K of conv_rate, acc_rate, avg_daily_trips.
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub features: usize,
    /// Zipfian key choice with this exponent (e.g. 0.99); uniform when omitted.
    #[arg(long, value_name = "S")]
    pub zipf: Option<f64>,
    /// Closed loop: concurrent connections sending back to back. Open loop: most requests in flight.
    #[arg(long, value_name = "C", default_value_t = 8)]
    pub connections: usize,
    /// Open loop: requests per second in total, on a fixed schedule (latency counts from each
    /// request's intended send time).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Client threads (each runs its own event loop and share of the connections); 0: one per
    /// core, so the generator is not the bottleneck (one thread tops out below the server).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Load before measuring, not recorded.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Measured time after the warmup.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after this many recorded requests (or probes).
    #[arg(long, value_name = "N")]
    pub max_requests: Option<u64>,
    /// Per-request timeout.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Freshness: read from this server instead of the one pushed to.
    #[arg(long, value_name = "URL", value_parser = Target::parse)]
    pub read_target: Option<Target>,
    /// Freshness: give up on a probe (count a timeout) after this long.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub probe_timeout: Duration,
    /// Random seed for key choice and values.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// PEM certificate(s) to trust for https:// targets (the server's own, or its CA).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    #[command(flatten)]
    pub token: TokenArg,
    /// Write the results as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write latency and throughput over time as an SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}
