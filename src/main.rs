//! The featgrid command line: `featgrid serve` runs the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
}

#[derive(Subcommand)]
enum Command {
    /// Run the feature server (embedded driver quickstart registry unless --config names one).
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Settings file (TOML); see config/default.toml for every key.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FEATGRID_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let flags = Overrides {
        bind: args.bind,
        shards: args.shards,
        shard_threads: args.shard_threads,
        workers: args.workers,
        data_dir: args.data_dir,
        fsync: args.fsync,
        snapshot_interval: args.snapshot_interval,
        snapshot_keep: args.snapshot_keep,
        recover: args.recover,
    };
    let (settings, registry) =
        match Settings::load(args.config.as_deref(), std::env::vars(), &flags) {
            Ok(loaded) => loaded,
            Err(e) => {
                eprintln!("featgrid: invalid configuration: {e}");
                return ExitCode::from(2);
            }
        };
    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        let running = featgrid::start(&settings, registry).map_err(|e| e.to_string())?;
        // The one line of CLI output: tests and scripts read the bound address from it.
        println!("featgrid listening on http://{}", running.addr);
        tracing::info!(addr = %running.addr, shards = settings.shards, shard_threads = settings.shard_threads, "serving");
        // Ends on SIGTERM or SIGINT, once in-flight requests have drained.
        let served = running.server.await.map_err(|e| e.to_string());
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
