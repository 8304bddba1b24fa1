//! How the API's failures become gRPC statuses.
//!
//! Metadata keys a client may rely on:
//! - `hyperraft-leader-id` / `hyperraft-leader-address` on `UNAVAILABLE`
//!   from a node that is not the leader but knows it (the address only when
//!   [`crate::ApiConfig::api_addresses`] holds it);
//! - `hyperraft-retry-after-ms` on `RESOURCE_EXHAUSTED`;
//! - `hyperraft-retry-safe: true` on every error after which the node
//!   guarantees that the request's write was NOT proposed to Raft, so a
//!   retry cannot apply it twice: the node was not the leader when it
//!   checked before proposing, admission control or the write queue refused
//!   it (`RESOURCE_EXHAUSTED`), its input was invalid (`INVALID_ARGUMENT`),
//!   or it was a read (a refused linearizable read, a watch ended by a
//!   server shutdown), or its token was refused (`UNAUTHENTICATED`,
//!   `PERMISSION_DENIED`: checked before anything else).
//!   Errors after the write was handed to Raft never carry it: a timeout or
//!   a leader lost while committing leave the outcome unknown (the write
//!   may still commit), and so does a refusal by the state machine (it was
//!   committed, it just changed nothing);
//! - `hyperraft-compact-revision` on the `OUT_OF_RANGE` that ends a watch
//!   whose start is older than the history kept: the smallest
//!   `start_revision` the node can still serve.

use std::fmt::Display;
use std::time::Duration;

use hyperraft_node::WriteError;
use hyperraft_raft::NodeId;
use tonic::metadata::MetadataValue;
use tonic::Status;

use crate::auth::{ApiToken, Role};

/// Metadata key of the leader's node id in a not-the-leader answer.
pub const LEADER_ID_KEY: &str = "hyperraft-leader-id";
/// Metadata key of the leader's gRPC address in a not-the-leader answer.
pub const LEADER_ADDRESS_KEY: &str = "hyperraft-leader-address";
/// Metadata key of the retry hint, in milliseconds, of `RESOURCE_EXHAUSTED`.
pub const RETRY_AFTER_MS_KEY: &str = "hyperraft-retry-after-ms";

/// Metadata key that marks an error after which the request was certainly
/// not proposed (value `true`); see the module documentation.
pub const RETRY_SAFE_KEY: &str = "hyperraft-retry-safe";

/// Metadata key of the smallest watchable `start_revision`, on the
/// `OUT_OF_RANGE` that ends a watch whose history was compacted.
pub const COMPACT_REVISION_KEY: &str = "hyperraft-compact-revision";

/// Marks `status` as given before anything was proposed: a retry is safe.
pub(crate) fn retry_safe(mut status: Status) -> Status {
    status.metadata_mut().insert(RETRY_SAFE_KEY, MetadataValue::from_static("true"));
    status
}

/// `INVALID_ARGUMENT` that names the bad field first: `"accounts[3].code: …"`.
/// Input is checked before anything is proposed, so it is retry-safe (the
/// retry fails the same way unless the input changes).
pub(crate) fn invalid_argument(field: &str, reason: impl Display) -> Status {
    retry_safe(Status::invalid_argument(format!("{field}: {reason}")))
}

/// `RESOURCE_EXHAUSTED` with a retry hint.
pub(crate) fn resource_exhausted(reason: impl Display, retry_after: Duration) -> Status {
    let retry_after_ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
    let mut status = Status::resource_exhausted(format!("{reason} (retry after {retry_after_ms} ms)"));
    status.metadata_mut().insert(RETRY_AFTER_MS_KEY, MetadataValue::from(retry_after_ms));
    // Every refusal for lack of room comes before the request is proposed.
    retry_safe(status)
}

/// `UNAUTHENTICATED`: the call carries no token, or one this node does not
/// know. Checked before anything else, so retry-safe (though repeating it
/// with the same token fails the same way).
pub(crate) fn unauthenticated(reason: impl Display) -> Status {
    retry_safe(Status::unauthenticated(reason.to_string()))
}

/// `PERMISSION_DENIED`: `token` is known but its role is below `needed`
/// for `method` (`Service/Method`). Retry-safe like [`unauthenticated`].
pub(crate) fn permission_denied(method: &str, needed: Role, token: &ApiToken) -> Status {
    retry_safe(Status::permission_denied(format!(
        "{method} needs the {needed} role; token {:?} has the {} role",
        token.name(),
        token.role()
    )))
}

/// `UNAVAILABLE` from a node that cannot serve the request because it does
/// not lead; names the leader when one is known. Not retry-safe by itself:
/// the caller marks it when it checked before proposing.
pub(crate) fn not_leader(this_node: NodeId, leader: Option<NodeId>, leader_address: Option<&str>) -> Status {
    let Some(leader) = leader else {
        return Status::unavailable(format!("node {this_node} is not the leader and knows no leader; retry later"));
    };
    let message = match leader_address {
        Some(address) => format!("node {this_node} is not the leader; the leader is node {leader} at {address}"),
        None => format!("node {this_node} is not the leader; the leader is node {leader}"),
    };
    let mut status = Status::unavailable(message);
    status.metadata_mut().insert(LEADER_ID_KEY, MetadataValue::from(leader));
    // Addresses come from our own configuration; one that is not valid
    // ASCII metadata is left out rather than failing the answer.
    if let Some(value) = leader_address.and_then(|address| address.parse().ok()) {
        status.metadata_mut().insert(LEADER_ADDRESS_KEY, value);
    }
    status
}

/// `OUT_OF_RANGE` ending a watch that needs history already dropped;
/// `start_revision_min` is the oldest start the node can still serve.
pub(crate) fn compacted(start_revision_min: u64) -> Status {
    let mut status = Status::out_of_range(format!(
        "the history before revision {start_revision_min} was compacted; read the range again, then watch from its revision + 1"
    ));
    status.metadata_mut().insert(COMPACT_REVISION_KEY, MetadataValue::from(start_revision_min));
    status
}

/// The status of a write the batcher did not commit. Refusals made before
/// the write was queued (invalid frame, full queue) are retry-safe; what
/// the batcher answers after proposing (leader lost, Raft unavailable) is
/// not. `not_leader` builds the leader hint.
pub(crate) fn write_error(
    error: WriteError,
    retry_after: Duration,
    not_leader: impl FnOnce(Option<NodeId>) -> Status,
) -> Status {
    match error {
        WriteError::InvalidFrame(reason) => invalid_argument("frame", reason),
        WriteError::NotAWrite(kind) => invalid_argument("frame", format!("a frame of kind {kind} is not a write")),
        WriteError::Overloaded(queue_len) => {
            resource_exhausted(format!("the leader's write queue is full ({queue_len} requests)"), retry_after)
        }
        WriteError::NotLeader { leader } => not_leader(leader.map(|(id, _)| id)),
        WriteError::Unavailable(reason) => Status::unavailable(reason),
        WriteError::Refused(reason) => Status::failed_precondition(reason),
    }
}

/// `INTERNAL`: the node answered something this API never asks for — a bug.
pub(crate) fn unexpected(what: impl Display) -> Status {
    Status::internal(format!("unexpected answer from the node: {what}"))
}

#[cfg(test)]
mod tests;
