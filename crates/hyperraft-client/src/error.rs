//! [`Error`]: every way a call of the SDK fails, and how a gRPC status
//! becomes one.

use std::time::Duration;

use tonic::{Code, Status};

/// Metadata key of the leader's node id in a not-the-leader answer.
pub const LEADER_ID_KEY: &str = "hyperraft-leader-id";
/// Metadata key of the leader's gRPC address in a not-the-leader answer.
pub const LEADER_ADDRESS_KEY: &str = "hyperraft-leader-address";
/// Metadata key of the retry hint, in milliseconds, of `RESOURCE_EXHAUSTED`.
pub const RETRY_AFTER_MS_KEY: &str = "hyperraft-retry-after-ms";
/// Metadata key the server sets to `true` on an error after which the
/// request certainly changed nothing, so that sending it again is safe.
pub const RETRY_SAFE_KEY: &str = "hyperraft-retry-safe";
/// Metadata key of the oldest revision a watch can still start from, on
/// `OUT_OF_RANGE`.
pub const COMPACT_REVISION_KEY: &str = "hyperraft-compact-revision";
/// Metadata key of a durable topic's oldest retained offset, on the
/// `OUT_OF_RANGE` of a bus subscription from an offset already trimmed.
pub const BUS_FIRST_OFFSET_KEY: &str = "hyperraft-bus-first-offset";

/// Why a call failed.
///
/// The first variants are answers of the cluster to this request (a
/// caller's mistake or a refusal); `Unavailable`, `Overloaded`,
/// `OutcomeUnknown` and `Transport` come after the client's retries gave
/// up; `InvalidConfig` and `Closed` are about the client itself.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// The request was refused as malformed; `field` names the bad part
    /// (`key`, `transfers`, `frame`, `compare[2].key`).
    #[error("invalid argument {field}: {message}")]
    InvalidArgument {
        /// The field named by the server or the client.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The lease (or other named thing) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The state machine refused a well-formed command (the store is full,
    /// a transaction branch writes one key twice, ...). Nothing changed.
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// The nodes require a token and the client sent none, or one they do
    /// not know ([`crate::ClientConfig::token`]). Never retried.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The token is known but its role does not allow this call; the
    /// message names the role needed. Never retried.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The server does not serve this call (yet).
    #[error("not served by this server: {0}")]
    Unimplemented(String),
    /// A watch asked for revisions older than the history kept; re-read
    /// the range and watch again from `oldest` or later.
    #[error("revisions before {oldest} were compacted")]
    Compacted {
        /// The oldest revision still available.
        oldest: u64,
    },
    /// A durable bus subscription asked for an offset its topic's
    /// retention already trimmed; subscribe again from `first_kept` or
    /// later ([`crate::BusNode::subscribe_from`]).
    #[error("the bus offsets before {first_kept} are no longer retained")]
    OffsetTrimmed {
        /// The topic's oldest retained offset when the node answered.
        first_kept: u64,
    },
    /// No node could serve the call within the retry budget (no leader,
    /// nodes down). The call certainly changed nothing, or it is safe to
    /// repeat (ledger creates, reads).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The cluster refused the call for load, through every retry; try
    /// again after `retry_after` when the server said.
    #[error("overloaded (retry after {retry_after:?})")]
    Overloaded {
        /// The server's hint, when it gave one.
        retry_after: Option<Duration>,
    },
    /// A write that is not idempotent (a key/value put, delete or
    /// transaction; a lease grant or revoke; a membership change) may or
    /// may not have been applied: the connection failed or timed out after
    /// the request was sent, or a node failed it without saying that
    /// nothing happened. The client does not retry it; read the state to
    /// find out.
    #[error("the outcome of the write is unknown: {0}")]
    OutcomeUnknown(String),
    /// The connection failed in a way not covered above.
    #[error("transport: {0}")]
    Transport(String),
    /// The server answered with a status this client does not expect.
    #[error("server error {code:?}: {message}")]
    Server {
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        message: String,
    },
    /// The server's answer could not be read (a bug or a version mismatch).
    #[error("malformed answer: {0}")]
    Protocol(String),
    /// The configuration does not hold together; the message names the field.
    #[error("invalid client configuration: {0}")]
    InvalidConfig(String),
    /// The client was dropped or is shutting down.
    #[error("the client is closed")]
    Closed,
}

impl Error {
    /// Whether the cluster may have applied the write this error ended.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::OutcomeUnknown(_))
    }

    /// The error of a final (not retried) status.
    pub(crate) fn from_status(status: &Status) -> Error {
        let message = status.message().to_string();
        match status.code() {
            Code::InvalidArgument => {
                let (field, message) = match message.split_once(": ") {
                    Some((field, reason)) if !field.contains(' ') => (field.to_string(), reason.to_string()),
                    _ => ("request".to_string(), message),
                };
                Error::InvalidArgument { field, message }
            }
            Code::NotFound => Error::NotFound(message),
            Code::Unauthenticated => Error::Unauthenticated(message),
            Code::PermissionDenied => Error::PermissionDenied(message),
            Code::FailedPrecondition => Error::FailedPrecondition(message),
            Code::Unimplemented => Error::Unimplemented(message),
            Code::ResourceExhausted => Error::Overloaded { retry_after: retry_after(status) },
            Code::Unavailable => Error::Unavailable(message),
            Code::OutOfRange => {
                let compacted = metadata_u64(status, COMPACT_REVISION_KEY);
                match (compacted, metadata_u64(status, BUS_FIRST_OFFSET_KEY)) {
                    (Some(oldest), _) => Error::Compacted { oldest },
                    (None, Some(first_kept)) => Error::OffsetTrimmed { first_kept },
                    (None, None) => Error::Server { code: Code::OutOfRange, message },
                }
            }
            code => Error::Server { code, message },
        }
    }
}

/// A numeric metadata value of `status`.
pub(crate) fn metadata_u64(status: &Status, key: &str) -> Option<u64> {
    status.metadata().get(key)?.to_str().ok()?.trim().parse().ok()
}

/// The server's retry hint.
pub(crate) fn retry_after(status: &Status) -> Option<Duration> {
    metadata_u64(status, RETRY_AFTER_MS_KEY).map(Duration::from_millis)
}

/// Whether the server marked the error as leaving nothing changed.
pub(crate) fn retry_safe(status: &Status) -> bool {
    status.metadata().get(RETRY_SAFE_KEY).and_then(|value| value.to_str().ok()) == Some("true")
}

/// The leader a not-the-leader answer names: its id and, when known, its
/// API address.
pub(crate) fn leader_hint(status: &Status) -> Option<(u64, Option<String>)> {
    let id = metadata_u64(status, LEADER_ID_KEY)?;
    let address = status.metadata().get(LEADER_ADDRESS_KEY).and_then(|value| value.to_str().ok()).map(String::from);
    Some((id, address))
}

/// Whether the status was made by this client because it could not
/// connect: the request was certainly never sent.
pub(crate) fn connect_failed(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.downcast_ref::<tonic::ConnectError>().is_some() {
            return true;
        }
        source = error.source();
    }
    false
}

/// The status's message followed by its chain of causes, for errors the
/// client made itself (a refused TLS certificate is only named deep in
/// the chain).
pub(crate) fn describe_chain(status: &Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        let cause = error.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = error.source();
    }
    if text.contains("certificate") || text.contains("InvalidCertificate") {
        text.push_str(" (check ClientConfig::tls: the CA must be the one that signed the nodes' API certificates, and the domain one they name)");
    }
    text
}

/// Whether the status was made by this client from a transport failure
/// (rather than sent by a server).
pub(crate) fn client_side(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
}

#[cfg(test)]
mod tests;
