//! `featgrid bench`: the arguments made into the load harness's options, the run, its table.

use std::io::IsTerminal;
use std::process::ExitCode;

use featgrid::bench::{Load, Options, Workload};

use super::args::BenchArgs;

impl BenchArgs {
    pub fn options(self) -> Options {
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

pub fn bench(args: BenchArgs) -> ExitCode {
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
