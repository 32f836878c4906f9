//! The featgrid command line: `featgrid serve` runs the server, `featgrid bench` loads one,
//! `featgrid materialize` has one load its views' offline data, `featgrid token` and
//! `featgrid cluster` help run it. This file parses and dispatches; the arguments are in
//! `cli/args.rs` and each subcommand's body in its own file under `cli/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

use cli::args::{BenchArgs, ClusterCommand, MaterializeArgs, ServeArgs, TokenCommand};
use cli::{bench::bench, cluster, materialize::materialize, serve::serve, token::token};

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    featgrid::logging::init(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Bench(args) => bench(*args),
        Command::Materialize(args) => materialize(args),
        Command::Token(command) => token(command),
        Command::Cluster(ClusterCommand::Status { node, json }) => cluster::status(&node, json),
        Command::Cluster(ClusterCommand::Members {
            node,
            group,
            add,
            remove,
        }) => cluster::members(&node, group, add, remove),
        Command::Cluster(ClusterCommand::Reload { node }) => cluster::reload(&node),
        Command::Cluster(ClusterCommand::Balance { node }) => cluster::balance(&node),
    }
}
