//! The bytes that cross the network and land in the Raft log.
//!
//! Everything here is a fixed layout read in place: ledger records are
//! little-endian structs with alignment 1 (`zerocopy`), so a received buffer
//! is viewed as `&[TransferRecord]` without copying or allocating. A batch
//! travels as a [`Frame`]: a 24-byte header (magic, version, kind, count,
//! body length, body checksum, header checksum) followed by the body.
//! Key/value commands are variable-size and use a compact length-prefixed
//! layout ([`kv`]) that is decoded into borrowed views; task commands for
//! agents use a layout of the same kind ([`tasks`]), and so do durable bus
//! commands ([`bus`]).
//!
//! Decoding validates everything up front and returns a typed
//! [`DecodeError`]; hostile bytes never panic. After a successful
//! [`Frame::decode`], reading the body is infallible.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bus;
pub mod commands;
pub mod decisions;
pub mod frame;
pub mod kv;
pub mod records;
pub mod tasks;

pub use bus::{
    AppendView, BusBatchWriter, BusCommand, BusCommands, BusDecodeError, BusIter, ConfigureTopicView, PayloadIter,
};
pub use decisions::{
    Choice, Criticality, DecisionBatchWriter, DecisionCommand, DecisionCommands, DecisionDecodeError, DecisionIter,
    Electorate, Proposal, ProposeView, RegisterKeyView, Threshold, VoteView,
};
pub use frame::{
    encode_frame, encode_ids, encode_records, Body, DecodeError, EncodeError, Frame, FrameHeader, Kind, Limits,
};
pub use kv::{
    Compare, CompareIter, CompareOp, CompareTarget, DeleteView, KvBatchWriter, KvCommand, KvCommands, KvDecodeError,
    KvIter, KvOp, LeaseExpireView, LeaseGrantView, LeaseKeepAliveView, LeaseRevokeView, OpIter, PutView, RangeView,
    TxnView,
};
pub use records::{account_flags, transfer_flags, AccountRecord, ResultRecord, TransferRecord};
pub use tasks::{
    AssignTaskView, ReleaseAgentView, ReleaseCopyView, ReportResultView, SubmitTaskView, TaskBatchWriter, TaskCommand,
    TaskCommands, TaskDecodeError, TaskIter, TaskOutcomeView,
};
