//! The Raft type configuration of a slot group, and what its log entries carry.
//!
//! An entry's data is one write to one group ([`GroupWrite`]): the rows of a push that fall in
//! the group's slots, in the portable form of the write-ahead log ([`RecordView`]), with the
//! push's destination. Applying it is applying a local write; applying it twice changes nothing
//! (newest event wins, an equal write is a no-op), so a retried push is harmless.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::persist::wal::{Destination, RecordView};

/// A write to one group: what a committed entry applies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupWrite {
    pub dest: Destination,
    pub views: Vec<RecordView>,
}

impl std::fmt::Display for GroupWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "write of {} view(s)", self.views.len())
    }
}

/// What applying a write did on the replica that answers the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub written: u64,
    pub skipped_older: u64,
}

openraft::declare_raft_types!(
    /// The Raft types of a featgrid slot group.
    pub TypeConfig:
        D = GroupWrite,
        R = Applied,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type NodeId = u64;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Raft = openraft::Raft<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
