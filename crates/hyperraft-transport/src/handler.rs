//! What the serving side runs for each request.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::Bytes;

use crate::error::RemoteError;

/// The future a [`Handler`] returns: boxed so the trait stays object-safe
/// without the `async-trait` crate.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Bytes, RemoteError>> + Send + 'static>>;

/// Who sent a request, as proven by the TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// The node id in the peer's certificate, which the cluster CA signed.
    pub node_id: u64,
    /// The peer's UDP address as seen by this node.
    pub address: SocketAddr,
}

/// Answers requests. Each request runs on its own task, so a handler is
/// called concurrently and must not block the thread; it may hold the
/// request bytes as long as it likes.
///
/// Closures `Fn(PeerInfo, Bytes) -> impl Future<Output = Result<Bytes,
/// RemoteError>>` implement it.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request from `peer`.
    fn handle(&self, peer: PeerInfo, request: Bytes) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(PeerInfo, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes, RemoteError>> + Send + 'static,
{
    fn handle(&self, peer: PeerInfo, request: Bytes) -> HandlerFuture {
        Box::pin(self(peer, request))
    }
}
