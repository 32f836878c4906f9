//! The Raft type configuration of a slot group, and what its log entries carry.
//!
//! An entry's data is a batch of writes to one group ([`GroupBatch`]): each the rows of a push
//! that fall in the group's slots, in the portable form of the write-ahead log
//! ([`RecordView`]), with the push's destination. The leader puts every push that arrived while
//! earlier entries were being committed into one entry ([`super::batch`]). Applying an entry
//! is applying its writes in order as local writes; applying it twice changes nothing (newest
//! event wins, an equal write is a no-op), so a retried push is harmless.

use std::io::Cursor;
use std::sync::Arc;

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
///
/// Shared, not owned: openraft clones an entry each time it reads it from the log (to send it
/// to a follower, to apply it), and a clone is a count, not a copy of the rows. Encoded as the
/// writes themselves (serde's `rc`), so the log and the wire are unchanged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupBatch {
    pub writes: Arc<[GroupWrite]>,
}

impl GroupBatch {
    /// About how many bytes the batch encodes to: its rows and a few bytes of framing per
    /// write and view, so an encoder can size its buffer once.
    pub fn encoded_len_hint(&self) -> usize {
        self.writes
            .iter()
            .map(|w| crate::persist::wal::views_len_hint(&w.views))
            .sum::<usize>()
            + 8
    }
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
