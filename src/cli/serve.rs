//! `featgrid serve`: the topology and flags made into settings, `--check`, then the server
//! run until SIGTERM or SIGINT, and its shutdown in order (HTTP drained, cluster node
//! stopped, final snapshot).

use std::process::ExitCode;

use featgrid::cluster::topology::Topology;
use featgrid::config::{Overrides, Settings};

use super::args::ServeArgs;

pub fn serve(args: ServeArgs) -> ExitCode {
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
        python: args.python,
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
