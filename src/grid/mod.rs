//! The in-memory grid: routing of entity keys to shards, the partitions the shard actors own,
//! and the coordinator that fans requests out to them.

pub mod coordinator;
pub mod partition;
pub mod routing;
pub mod shard;
