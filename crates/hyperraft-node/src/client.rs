//! A native client over QUIC: writes, linearizable reads and status, with
//! leader discovery.
//!
//! The client authenticates with a certificate from the cluster CA, like a
//! node. It remembers which node led last and goes there first; a
//! `NotLeader` answer names the leader, and it follows that hint. It
//! retries a request on another node only when the request certainly was
//! not applied (refused before delivery, or answered `NotLeader`); when the
//! outcome is unknown (the connection dropped after sending) it reports
//! [`ClientError::OutcomeUnknown`], and retrying is the caller's choice
//! (safe for ledger creates, which are idempotent by id).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyperraft_raft::{BatchResponse, NodeId};
use hyperraft_transport::{Peer, TlsIdentity, Transport, TransportError};

use crate::batcher::WriteError;
use crate::protocol::{self, NodeReply, NodeRequestRef, Status};

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("the request may or may not have been applied: {0}")]
    OutcomeUnknown(TransportError),
    #[error("no node could take the request after {attempts} attempts: {last}")]
    Exhausted { attempts: usize, last: String },
    #[error("node answered with an unexpected or undecodable message: {0}")]
    Protocol(String),
}

/// A connection to a cluster.
pub struct Client {
    transport: Transport,
    peers: Vec<(NodeId, Peer)>,
    /// Index into `peers` of the node that led last.
    leader: AtomicUsize,
    attempts_max: usize,
}

impl Client {
    /// A client with `identity` (a certificate from the cluster CA) for the
    /// nodes at `endpoints`. Binds an ephemeral local UDP port.
    pub fn connect(identity: TlsIdentity, endpoints: &[(NodeId, SocketAddr)]) -> Result<Client, ClientError> {
        assert!(!endpoints.is_empty(), "a client needs at least one endpoint");
        let local: SocketAddr = if endpoints[0].1.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().expect("literal");
        let transport = Transport::bind(local, identity, crate::node::transport_config())?;
        let peers = endpoints.iter().map(|&(id, addr)| (id, transport.peer(id, addr))).collect();
        Ok(Client { transport, peers, leader: AtomicUsize::new(0), attempts_max: 3 * endpoints.len() + 2 })
    }

    /// Commits a write frame; returns this frame's own results.
    pub async fn write(&self, frame: &[u8]) -> Result<BatchResponse, ClientError> {
        self.to_leader(&NodeRequestRef::Write(frame)).await
    }

    /// A linearizable read of a lookup or range-only frame.
    pub async fn read(&self, frame: &[u8]) -> Result<BatchResponse, ClientError> {
        self.to_leader(&NodeRequestRef::Read(frame)).await
    }

    /// What `node` knows about the cluster.
    pub async fn status(&self, node: NodeId) -> Result<Status, ClientError> {
        match self.call(self.peer(node)?, &NodeRequestRef::Status).await? {
            NodeReply::Status(status) => Ok(status),
            _ => Err(ClientError::Protocol("expected a status reply".into())),
        }
    }

    /// `node`'s applied index and the digest of its state there.
    pub async fn digest(&self, node: NodeId) -> Result<(Option<u64>, u64), ClientError> {
        match self.call(self.peer(node)?, &NodeRequestRef::Digest).await? {
            NodeReply::Digest { applied_index, digest } => Ok((applied_index, digest)),
            _ => Err(ClientError::Protocol("expected a digest reply".into())),
        }
    }

    pub async fn close(&self) {
        self.transport.close().await;
    }

    fn peer(&self, node: NodeId) -> Result<&Peer, ClientError> {
        self.peers
            .iter()
            .find(|(id, _)| *id == node)
            .map(|(_, peer)| peer)
            .ok_or_else(|| ClientError::Protocol(format!("node {node} is not among the endpoints")))
    }

    async fn call(&self, peer: &Peer, request: &NodeRequestRef<'_>) -> Result<NodeReply, ClientError> {
        let reply = peer.call(Bytes::from(protocol::encode(request))).await?;
        protocol::decode(&reply).map_err(|error| ClientError::Protocol(error.to_string()))
    }

    /// Sends to the believed leader, following hints and moving on from
    /// nodes that certainly did not take the request.
    async fn to_leader(&self, request: &NodeRequestRef<'_>) -> Result<BatchResponse, ClientError> {
        let mut last = String::new();
        for attempt in 0..self.attempts_max {
            let index = self.leader.load(Ordering::Relaxed) % self.peers.len();
            let (node, peer) = &self.peers[index];
            match self.call(peer, request).await {
                Ok(NodeReply::Write(result) | NodeReply::Read(result)) => match result {
                    Err(WriteError::NotLeader { leader }) => {
                        last = format!("node {node} is not the leader");
                        if leader.is_none() {
                            // No leader known yet (an election is on): give it time.
                            tokio::time::sleep(backoff(attempt)).await;
                        }
                        self.follow(leader.map(|(id, _)| id), index);
                    }
                    Err(WriteError::Unavailable(reason)) => {
                        last = format!("node {node}: {reason}");
                        self.follow(None, index);
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                    other => return other.map_err(ClientError::from),
                },
                Ok(_) => return Err(ClientError::Protocol("expected a write or read reply".into())),
                Err(ClientError::Transport(error)) if not_delivered(&error) => {
                    last = format!("node {node}: {error}");
                    self.follow(None, index);
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(ClientError::Transport(error)) => {
                    // The node may be gone: the next request should try another one.
                    self.follow(None, index);
                    return Err(ClientError::OutcomeUnknown(error));
                }
                Err(other) => return Err(other),
            }
        }
        Err(ClientError::Exhausted { attempts: self.attempts_max, last })
    }

    /// Points at the hinted leader, or else at the next endpoint.
    fn follow(&self, hint: Option<NodeId>, current: usize) {
        let next = hint
            .and_then(|leader| self.peers.iter().position(|(id, _)| *id == leader))
            .filter(|&position| position != current)
            .unwrap_or((current + 1) % self.peers.len());
        self.leader.store(next, Ordering::Relaxed);
    }
}

/// Errors after which the request certainly never reached a handler.
fn not_delivered(error: &TransportError) -> bool {
    matches!(
        error,
        TransportError::Handshake { .. }
            | TransportError::Connect { .. }
            | TransportError::Partitioned { .. }
            | TransportError::Closed
    )
}

fn backoff(attempt: usize) -> Duration {
    Duration::from_millis(50 * (1 << attempt.min(5)) as u64)
}
