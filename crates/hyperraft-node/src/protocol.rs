//! The node protocol: every message a node accepts on its QUIC endpoint.
//!
//! Peers send Raft RPCs; clients (the native SDK, tools, tests) send
//! writes, reads and status queries. Every message is the postcard encoding
//! of [`NodeRequest`] / [`NodeReply`]; the transport bounds its size and
//! authenticates the sender by its certificate from the cluster CA.

use hyperraft_raft::{BatchResponse, NodeId};
use serde::{Deserialize, Serialize};

use crate::batcher::WriteError;
use crate::network::{RaftReply, RaftRequest};

/// A request to a node.
#[derive(Serialize, Deserialize)]
pub enum NodeRequest {
    Raft(RaftRequest),
    /// A write frame (`CreateAccounts`, `CreateTransfers` or `Kv`), committed through Raft.
    Write(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A read-only frame (lookups, key/value ranges), answered linearizably by the leader.
    Read(#[serde(with = "serde_bytes")] Vec<u8>),
    Status,
    /// The applied index and a digest of the whole state at it (costs a full state pass).
    Digest,
    /// Leadership transfer, step 1 (to every voter but the target): start
    /// no election for this long.
    HoldElections {
        millis: u64,
    },
    /// Leadership transfer, step 2 (to the target): campaign until leader, for at most this long.
    Campaign {
        millis: u64,
    },
}

/// [`NodeRequest`] by reference, to send without moving the payload.
#[derive(Serialize)]
pub enum NodeRequestRef<'a> {
    Raft(&'a RaftRequest),
    Write(#[serde(with = "serde_bytes")] &'a [u8]),
    Read(#[serde(with = "serde_bytes")] &'a [u8]),
    Status,
    Digest,
    HoldElections { millis: u64 },
    Campaign { millis: u64 },
}

/// A node's answer.
#[derive(Serialize, Deserialize)]
pub enum NodeReply {
    Raft(RaftReply),
    Write(Result<BatchResponse, WriteError>),
    Read(Result<BatchResponse, WriteError>),
    Status(Status),
    Digest {
        applied_index: Option<u64>,
        digest: u64,
    },
    /// Answer to `HoldElections` and `Campaign`: whether this node leads now.
    Leading(bool),
}

/// What a node knows about the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub node_id: NodeId,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// Voters and learners with their peer addresses.
    pub voters: Vec<(NodeId, String)>,
    pub learners: Vec<(NodeId, String)>,
}

/// The postcard bytes of `message`, in a buffer allocated once: sizing
/// first costs a pass over the structure, while growing a vector by doubling
/// would reallocate and copy about 18 times for a batch of a few hundred KB.
pub(crate) fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let size = postcard::experimental::serialized_size(message).expect("node protocol messages always serialize");
    let bytes =
        postcard::to_extend(message, Vec::with_capacity(size)).expect("node protocol messages always serialize");
    debug_assert_eq!(bytes.len(), size);
    bytes
}

pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_bytes_decode_as_a_message_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            // Proves whatever a peer or client sends is a request or reply that re-encodes to bytes decoding the same way, or a clean postcard error, never a panic.
            if let Ok(request) = decode::<NodeRequest>(&bytes) {
                let again = encode(&request);
                prop_assert!(decode::<NodeRequest>(&again).is_ok());
                prop_assert!(again.len() <= bytes.len());
            }
            if let Ok(reply) = decode::<NodeReply>(&bytes) {
                prop_assert!(decode::<NodeReply>(&encode(&reply)).is_ok());
            }
        }
    }

    #[test]
    fn borrowed_and_owned_requests_encode_identically() {
        // Proves NodeRequestRef (sent) and NodeRequest (decoded) agree byte for byte, variant by variant.
        let frame = vec![1u8, 2, 3];
        let pairs: Vec<(Vec<u8>, NodeRequest)> = vec![
            (encode(&NodeRequestRef::Write(&frame)), NodeRequest::Write(frame.clone())),
            (encode(&NodeRequestRef::Read(&frame)), NodeRequest::Read(frame.clone())),
            (encode(&NodeRequestRef::Status), NodeRequest::Status),
            (encode(&NodeRequestRef::Digest), NodeRequest::Digest),
            (encode(&NodeRequestRef::HoldElections { millis: 7 }), NodeRequest::HoldElections { millis: 7 }),
            (encode(&NodeRequestRef::Campaign { millis: 9 }), NodeRequest::Campaign { millis: 9 }),
        ];
        for (sent, owned) in pairs {
            assert_eq!(sent, encode(&owned));
            let decoded: NodeRequest = decode(&sent).unwrap();
            assert_eq!(encode(&decoded), sent);
        }
    }
}
