//! Raft RPCs over the QUIC transport: the client side openraft calls
//! ([`RaftNetworkFactory`]) and the server side that feeds incoming RPCs to
//! the local Raft (`crate::service`).
//!
//! Each RPC is one request/response exchange on its own QUIC stream; the
//! messages are [`RaftRequest`] and [`RaftReply`] inside the node protocol
//! (`crate::protocol`).
//! The transport authenticates both ends with the cluster CA, bounds every
//! message, and multiplexes concurrent RPCs (pipelined AppendEntries) on the
//! one connection per peer.

use std::net::SocketAddr;

use bytes::Bytes;
use hyperraft_raft::{NodeId, TypeConfig};
use hyperraft_transport::{Peer, Transport, TransportError};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use crate::protocol::{self, NodeReply, NodeRequestRef};

/// A Raft RPC as sent to a peer.
#[derive(Serialize, Deserialize)]
pub enum RaftRequest {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
}

/// A peer's answer to a [`RaftRequest`].
#[derive(Serialize, Deserialize)]
pub enum RaftReply {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
}

/// Creates a [`PeerClient`] per target node. Peers are kept, one per
/// (node, address), so every client of a node shares one QUIC connection.
#[derive(Clone)]
pub struct NetworkFactory {
    /// This node, the `node` label of the RPC metrics.
    node: NodeId,
    transport: Transport,
    peers: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(NodeId, SocketAddr), Peer>>>,
}

/// Most peers a node keeps connections to (bounds the peer cache).
const PEERS_MAX: usize = 64;

impl NetworkFactory {
    pub fn new(node: NodeId, transport: Transport) -> NetworkFactory {
        NetworkFactory { node, transport, peers: Default::default() }
    }

    pub(crate) fn peer(&self, target: NodeId, addr: SocketAddr) -> Peer {
        let mut peers = self.peers.lock().expect("peer cache lock");
        if peers.len() >= PEERS_MAX && !peers.contains_key(&(target, addr)) {
            // Membership changed a lot: drop connections to addresses no longer asked for.
            peers.clear();
        }
        peers.entry((target, addr)).or_insert_with(|| self.transport.peer(target, addr)).clone()
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        let peer = node.addr.parse::<SocketAddr>().map(|addr| self.peer(target, addr));
        let append_seconds = metrics::histogram!(
            "hyperraft_raft_append_seconds",
            "node" => self.node.to_string(),
            "peer" => target.to_string()
        );
        PeerClient { target, peer: peer.map_err(|error| error.to_string()), append_seconds }
    }
}

/// Sends Raft RPCs to one peer.
pub struct PeerClient {
    target: NodeId,
    /// The peer, or why its address is unusable.
    peer: Result<Peer, String>,
    /// Round trips of AppendEntries that carry entries: the send, the
    /// peer's append and sync, the answer.
    append_seconds: metrics::Histogram,
}

type RpcResult<T, E = openraft::error::Infallible> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn call<E: std::error::Error>(
        &self,
        request: &RaftRequest,
    ) -> Result<RaftReply, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>> {
        let peer = self.peer.as_ref().map_err(|reason| {
            RPCError::Unreachable(Unreachable::new(&std::io::Error::other(format!(
                "node {}: bad address: {reason}",
                self.target
            ))))
        })?;
        let bytes = protocol::encode(&NodeRequestRef::Raft(request));
        let reply = peer.call(Bytes::from(bytes)).await.map_err(|error| match error {
            remote @ TransportError::Remote { .. } => RPCError::Network(NetworkError::new(&remote)),
            other => RPCError::Unreachable(Unreachable::new(&other)),
        })?;
        match protocol::decode::<NodeReply>(&reply) {
            Ok(NodeReply::Raft(reply)) => Ok(reply),
            Ok(_) => Err(unexpected()),
            Err(error) => Err(RPCError::Network(NetworkError::new(&error))),
        }
    }
}

fn unexpected<E: std::error::Error>() -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    RPCError::Network(NetworkError::new(&std::io::Error::other("peer answered a different RPC")))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let started = (!rpc.entries.is_empty()).then(std::time::Instant::now);
        let reply = self.call(&RaftRequest::Append(rpc)).await?;
        if let Some(started) = started {
            self.append_seconds.record(started.elapsed().as_secs_f64());
        }
        match reply {
            RaftReply::Append(reply) => {
                reply.map_err(|error| RPCError::RemoteError(openraft::error::RemoteError::new(self.target, error)))
            }
            _ => Err(unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.call(&RaftRequest::Snapshot(rpc)).await? {
            RaftReply::Snapshot(reply) => {
                reply.map_err(|error| RPCError::RemoteError(openraft::error::RemoteError::new(self.target, error)))
            }
            _ => Err(unexpected()),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, _option: RPCOption) -> RpcResult<VoteResponse<NodeId>> {
        match self.call(&RaftRequest::Vote(rpc)).await? {
            RaftReply::Vote(reply) => {
                reply.map_err(|error| RPCError::RemoteError(openraft::error::RemoteError::new(self.target, error)))
            }
            _ => Err(unexpected()),
        }
    }
}
