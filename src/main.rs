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
    /// Directory for snapshots and the write-ahead log.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
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
        let running = featgrid::start(&settings, registry)?;
        // The one line of CLI output: tests and scripts read the bound address from it.
        println!("featgrid listening on http://{}", running.addr);
        tracing::info!(addr = %running.addr, shards = settings.shards, shard_threads = settings.shard_threads, "serving");
        let result = running.server.await;
        running.shard_threads.stop();
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("featgrid: {e}");
            ExitCode::FAILURE
        }
    }
}
