//! The one integration-test binary (one binary links faster than many). Every test starts
//! the real `featgrid` binary on 127.0.0.1:0 through [`support::Server`] and speaks HTTP to it.

mod auth;
mod bench;
mod cli;
mod cluster;
mod cluster_config;
mod cluster_failures;
mod cluster_partition;
mod cluster_trust;
mod consistency;
mod durability;
mod error_format;
mod feast_api;
mod feast_ondemand;
mod feast_repo;
mod feast_sdk;
mod feast_template;
mod limits;
mod logs;
mod materialize;
mod materialize_native;
mod native;
mod offline;
mod robustness;
mod semantics;
mod support;
mod tls;
mod types;
mod validation;
