//! The openraft type configuration and the application payload of an entry.

use serde::{Deserialize, Serialize};

/// Nodes are numbered; 0 is not a valid id.
pub type NodeId = u64;

/// The application data of one Raft log entry: a validated wire frame and
/// the leader's clock (nanoseconds since the Unix epoch) when it formed the
/// batch. Every replica applies the frame with that timestamp.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub timestamp_ns: u64,
    #[serde(with = "serde_bytes")]
    pub frame: Vec<u8>,
}

impl std::fmt::Display for Batch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Batch({} bytes @{})", self.frame.len(), self.timestamp_ns)
    }
}

pub use crate::response::BatchResponse;

openraft::declare_raft_types!(
    /// hyperraft's Raft types.
    pub TypeConfig:
        D = Batch,
        R = BatchResponse,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);
