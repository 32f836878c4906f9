//! The Raft type configuration of a slot group, and what its log entries carry.
//!
//! An entry's data is a batch of writes to one group ([`GroupBatch`]): each the rows of a push
//! that fall in the group's slots, in the portable form of the write-ahead log
//! ([`RecordView`]), with the push's destination. The leader puts every push that arrived while
//! earlier entries were being committed into one entry ([`super::batch`]). Applying an entry
//! is applying its writes in order as local writes; applying it twice changes nothing (newest
//! event wins, an equal write is a no-op), so a retried push is harmless.

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

/// The writes of one or more pushes to one group, in the order the leader took them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupBatch {
    pub writes: Vec<GroupWrite>,
}

impl std::fmt::Display for GroupBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "batch of {} write(s)", self.writes.len())
    }
}

openraft::declare_raft_types!(
    /// The Raft types of a featgrid slot group.
    pub TypeConfig:
        D = GroupBatch,
        R = (),
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
