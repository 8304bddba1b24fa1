//! The checks that turn protobuf requests into wire frames, exposed so that
//! fuzz targets and property tests can drive them with arbitrary messages.
//! Not an API: the services call these same functions.
//!
//! The promise tested: a request is either refused with `INVALID_ARGUMENT`
//! (naming the field) or becomes a frame that `Frame::decode` accepts.

use hyperraft_wire::Kind;
use tonic::Status;

use crate::proto;

pub use crate::ledger::{accounts_frame, transfers_frame};

/// The frame of a put request, or why it is refused.
pub fn put_frame(request: &proto::PutRequest) -> Result<Vec<u8>, Status> {
    crate::kv::put_frame(request)
}

/// The frame of a range request, or why it is refused.
pub fn range_frame(request: &proto::RangeRequest) -> Result<Vec<u8>, Status> {
    crate::kv::range_frame(request)
}

/// The frame of a delete-range request, or why it is refused.
pub fn delete_range_frame(request: &proto::DeleteRangeRequest) -> Result<Vec<u8>, Status> {
    crate::kv::delete_range_frame(request)
}

/// The frame of a transaction, or why it is refused.
pub fn txn_frame(request: &proto::TxnRequest) -> Result<Vec<u8>, Status> {
    crate::kv::txn_frame(request)
}

/// The `Bus` frame of a publish to a durable topic, or why it is refused
/// (payload count and sizes against `config`, then the frame's bounds).
pub fn durable_append_frame(
    config: &crate::BusConfig,
    publisher: &str,
    first_sequence: u64,
    request: &proto::PublishRequest,
) -> Result<Vec<u8>, Status> {
    let bus = crate::bus::Bus::new(config.clone());
    bus.check_topic_name(&request.topic).map_err(|error| crate::errors::invalid_argument("topic", error))?;
    bus.check_payloads(&request.payloads).map_err(|error| crate::errors::invalid_argument("payloads", error))?;
    crate::bus::durable::append_frame(&request.topic, publisher, first_sequence, &request.payloads)
        .map_err(|error| crate::errors::invalid_argument("payloads", error))
}

/// The check a packed ledger frame (the `frame` field) gets on arrival:
/// a header of the `expected` kind with at least one item. The whole frame
/// (checksums, body) is decoded once afterwards, by the batcher or reader.
pub fn check_packed(frame: &[u8], expected: Kind) -> Result<(), Status> {
    crate::api::check_packed(frame, expected)
}

#[cfg(test)]
mod tests;
