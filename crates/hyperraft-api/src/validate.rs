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

/// The check a packed ledger frame (the `frame` field) gets on arrival:
/// a header of the `expected` kind with at least one item. The whole frame
/// (checksums, body) is decoded once afterwards, by the batcher or reader.
pub fn check_packed(frame: &[u8], expected: Kind) -> Result<(), Status> {
    crate::api::check_packed(frame, expected)
}

#[cfg(test)]
mod tests;
