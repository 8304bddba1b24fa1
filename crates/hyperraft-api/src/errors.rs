//! How the API's failures become gRPC statuses.
//!
//! Metadata keys a client may rely on:
//! - `hyperraft-leader-id` / `hyperraft-leader-address` on `UNAVAILABLE`
//!   from a node that is not the leader but knows it (the address only when
//!   [`crate::ApiConfig::api_addresses`] holds it);
//! - `hyperraft-retry-after-ms` on `RESOURCE_EXHAUSTED`;
//! - `hyperraft-compact-revision` on the `OUT_OF_RANGE` that ends a watch
//!   whose start is older than the history kept: the smallest
//!   `start_revision` the node can still serve.

use std::fmt::Display;
use std::time::Duration;

use hyperraft_raft::NodeId;
use tonic::metadata::MetadataValue;
use tonic::Status;

/// Metadata key of the leader's node id in a not-the-leader answer.
pub const LEADER_ID_KEY: &str = "hyperraft-leader-id";
/// Metadata key of the leader's gRPC address in a not-the-leader answer.
pub const LEADER_ADDRESS_KEY: &str = "hyperraft-leader-address";
/// Metadata key of the retry hint, in milliseconds, of `RESOURCE_EXHAUSTED`.
pub const RETRY_AFTER_MS_KEY: &str = "hyperraft-retry-after-ms";

/// Metadata key of the smallest watchable `start_revision`, on the
/// `OUT_OF_RANGE` that ends a watch whose history was compacted.
pub const COMPACT_REVISION_KEY: &str = "hyperraft-compact-revision";

/// `INVALID_ARGUMENT` that names the bad field first: `"accounts[3].code: …"`.
pub(crate) fn invalid_argument(field: &str, reason: impl Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}

/// `RESOURCE_EXHAUSTED` with a retry hint.
pub(crate) fn resource_exhausted(reason: impl Display, retry_after: Duration) -> Status {
    let retry_after_ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
    let mut status = Status::resource_exhausted(format!("{reason} (retry after {retry_after_ms} ms)"));
    status.metadata_mut().insert(RETRY_AFTER_MS_KEY, MetadataValue::from(retry_after_ms));
    status
}

/// `UNAVAILABLE` from a node that cannot serve the request because it does
/// not lead; names the leader when one is known.
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

/// `INTERNAL`: the node answered something this API never asks for — a bug.
pub(crate) fn unexpected(what: impl Display) -> Status {
    Status::internal(format!("unexpected answer from the node: {what}"))
}
