//! Errors of the transport: caller mistakes, network faults, and errors
//! reported by the remote handler.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

use crate::config::ConfigError;
use crate::framing::{truncate_message, ERROR_MESSAGE_BYTES_MAX};
use crate::tls::TlsError;

/// An error a [`Handler`](crate::Handler) returns; the caller receives it
/// as [`TransportError::Remote`]. Its message crosses the network, so it is
/// cut to [`ERROR_MESSAGE_BYTES_MAX`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    message: String,
}

impl RemoteError {
    /// An error with a human-readable message.
    pub fn new(message: impl Into<String>) -> RemoteError {
        let mut message = message.into();
        let length = truncate_message(&message, ERROR_MESSAGE_BYTES_MAX).len();
        message.truncate(length);
        RemoteError { message }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {}

/// Everything a transport operation can fail with.
///
/// The variants fall in three groups. Caller mistakes ([`Config`],
/// [`Tls`], [`MessageTooLarge`], [`FaultsDisabled`], [`PartitionTableFull`],
/// [`AlreadyServing`])
/// will fail again if retried unchanged. Faults ([`Bind`], [`Handshake`],
/// [`Connect`], [`ConnectionLost`], [`Timeout`], [`Refused`],
/// [`ResponseTooLarge`], [`StreamReset`], [`Protocol`], [`Partitioned`],
/// [`Closed`]) come from the network or the peer; whether the request ran
/// on the peer is unknown unless the variant says otherwise. [`Remote`] is
/// the peer's handler saying no.
///
/// [`Config`]: TransportError::Config
/// [`Tls`]: TransportError::Tls
/// [`MessageTooLarge`]: TransportError::MessageTooLarge
/// [`FaultsDisabled`]: TransportError::FaultsDisabled
/// [`PartitionTableFull`]: TransportError::PartitionTableFull
/// [`AlreadyServing`]: TransportError::AlreadyServing
/// [`Bind`]: TransportError::Bind
/// [`Handshake`]: TransportError::Handshake
/// [`Connect`]: TransportError::Connect
/// [`ConnectionLost`]: TransportError::ConnectionLost
/// [`Timeout`]: TransportError::Timeout
/// [`Refused`]: TransportError::Refused
/// [`ResponseTooLarge`]: TransportError::ResponseTooLarge
/// [`StreamReset`]: TransportError::StreamReset
/// [`Protocol`]: TransportError::Protocol
/// [`Partitioned`]: TransportError::Partitioned
/// [`Closed`]: TransportError::Closed
/// [`Remote`]: TransportError::Remote
#[derive(Debug, Error)]
pub enum TransportError {
    /// The transport configuration is invalid.
    #[error("invalid transport configuration: {0}")]
    Config(#[from] ConfigError),
    /// The TLS identity could not be turned into a configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A request larger than `message_bytes_max`; nothing was sent.
    #[error("request of {bytes} bytes exceeds message_bytes_max of {bytes_max} bytes; not sent")]
    MessageTooLarge {
        /// Size of the request.
        bytes: usize,
        /// The local bound.
        bytes_max: u32,
    },
    /// Fault injection was used on a transport built without it.
    #[error("fault injection is disabled (TransportConfig::faults_enabled is false)")]
    FaultsDisabled,
    /// More peers partitioned at once than fault injection tracks.
    #[error("cannot partition more than {peers_max} peers at once")]
    PartitionTableFull {
        /// The bound.
        peers_max: usize,
    },
    /// [`Transport::serve`](crate::Transport::serve) was called twice.
    #[error("this transport is already serving")]
    AlreadyServing,
    /// The UDP socket could not be bound.
    #[error("cannot bind {address}: {source}")]
    Bind {
        /// The address asked for.
        address: std::net::SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake with the peer failed: one side's certificate is
    /// not signed by the other's cluster CA, is missing, names another node,
    /// or the peer does not speak this protocol. Nothing was delivered.
    #[error("node {node_id}: TLS handshake refused: {reason}")]
    Handshake {
        /// The peer.
        node_id: u64,
        /// The TLS alert or verifier message.
        reason: String,
    },
    /// A connection could not even be attempted (bad address, endpoint
    /// shutting down). Nothing was delivered.
    #[error("node {node_id}: cannot connect: {source}")]
    Connect {
        /// The peer.
        node_id: u64,
        /// quinn's reason.
        #[source]
        source: quinn::ConnectError,
    },
    /// The connection failed or was closed during the call.
    #[error("node {node_id}: connection lost: {source}")]
    ConnectionLost {
        /// The peer.
        node_id: u64,
        /// quinn's reason.
        #[source]
        source: quinn::ConnectionError,
    },
    /// The call (or the connect within it) did not finish in time.
    #[error("node {node_id}: no answer within {timeout:?}")]
    Timeout {
        /// The peer.
        node_id: u64,
        /// The bound that expired.
        timeout: Duration,
    },
    /// The peer refused the request without running it (for example it is
    /// larger than the peer's `message_bytes_max`).
    #[error("node {node_id} refused the request: {reason}")]
    Refused {
        /// The peer.
        node_id: u64,
        /// The peer's reason.
        reason: String,
    },
    /// The response announced a body larger than local `message_bytes_max`;
    /// it was not read.
    #[error("node {node_id}: response of {bytes} bytes exceeds message_bytes_max of {bytes_max} bytes")]
    ResponseTooLarge {
        /// The peer.
        node_id: u64,
        /// The announced size.
        bytes: u32,
        /// The local bound.
        bytes_max: u32,
    },
    /// The peer abandoned the call's stream with an application code.
    #[error("node {node_id}: stream reset ({reason}, code {code})")]
    StreamReset {
        /// The peer.
        node_id: u64,
        /// The QUIC application error code.
        code: u64,
        /// What the code means, if known.
        reason: &'static str,
    },
    /// The peer sent bytes that do not follow the framing.
    #[error("node {node_id}: protocol violation: {reason}")]
    Protocol {
        /// The peer.
        node_id: u64,
        /// What was wrong.
        reason: &'static str,
    },
    /// The peer's handler returned an error.
    #[error("node {node_id}: handler error: {error}")]
    Remote {
        /// The peer.
        node_id: u64,
        /// The handler's error.
        error: RemoteError,
    },
    /// Fault injection has partitioned this node from the peer (on either
    /// side). Nothing was delivered.
    #[error("node {node_id} is partitioned from this node (fault injection)")]
    Partitioned {
        /// The peer.
        node_id: u64,
    },
    /// The local transport has been closed.
    #[error("transport is closed")]
    Closed,
}
