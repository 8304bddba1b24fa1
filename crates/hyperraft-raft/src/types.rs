//! The openraft type configuration and the application payload of an entry.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Nodes are numbered; 0 is not a valid id.
pub type NodeId = u64;

/// The application data of one Raft log entry: a validated wire frame and
/// the leader's clock (nanoseconds since the Unix epoch) when it formed the
/// batch. Every replica applies the frame with that timestamp.
///
/// The frame is shared, not owned: openraft clones entries for every
/// follower's AppendEntries and again for apply, and a clone of `Bytes`
/// only counts a reference where a `Vec` would copy the whole batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub timestamp_ns: u64,
    #[serde(with = "shared_bytes")]
    pub frame: Bytes,
}

/// Serde for [`Bytes`] as one byte string, the same encoding `serde_bytes`
/// gives a `Vec<u8>` (so records written before read back unchanged).
mod shared_bytes {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        serde_bytes::ByteBuf::deserialize(deserializer).map(|buffer| Bytes::from(buffer.into_vec()))
    }
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
        SnapshotData = crate::state_machine::SnapshotFile,
        AsyncRuntime = openraft::TokioRuntime,
);
