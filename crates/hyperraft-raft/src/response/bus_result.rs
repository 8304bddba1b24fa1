//! Durable bus results mirrored as plain serde types (see
//! `hyperraft_state::bus::BusResponse`).

use hyperraft_state::bus::{BusResponse, BusStoreError};
use serde::{Deserialize, Serialize};

/// Why the state machine refused a bus command, without its details.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BusErrorCode {
    /// The topic is not durable.
    UnknownTopic,
    /// The store holds its limit of durable topics.
    TopicsFull,
    /// A retention bound above the configured limits.
    RetentionTooLarge,
    /// An append larger than its topic's whole retention.
    AppendExceedsRetention,
    /// A refusal with no code of its own.
    Other,
}

/// The result of one durable bus command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BusResult {
    /// The topic is durable; it holds offsets `first_offset..next_offset`.
    Configured { first_offset: u64, next_offset: u64 },
    /// The messages got offsets `first_offset..first_offset + count`.
    Appended { first_offset: u64, count: u32 },
    /// Refused; nothing changed. `message` says why, for people.
    Refused { code: BusErrorCode, message: String },
}

impl From<&BusStoreError> for BusErrorCode {
    fn from(error: &BusStoreError) -> BusErrorCode {
        match error {
            BusStoreError::UnknownTopic(_) => BusErrorCode::UnknownTopic,
            BusStoreError::TopicsFull { .. } => BusErrorCode::TopicsFull,
            BusStoreError::RetentionAboveLimit { .. } | BusStoreError::RetentionTotalTooLarge { .. } => {
                BusErrorCode::RetentionTooLarge
            }
            BusStoreError::AppendExceedsRetention { .. } => BusErrorCode::AppendExceedsRetention,
            BusStoreError::TopicNotUtf8 => BusErrorCode::Other,
        }
    }
}

impl From<&BusResponse> for BusResult {
    fn from(response: &BusResponse) -> BusResult {
        match response {
            BusResponse::Configured(range) => {
                BusResult::Configured { first_offset: range.first_offset, next_offset: range.next_offset }
            }
            BusResponse::Appended { first_offset, count } => {
                BusResult::Appended { first_offset: *first_offset, count: *count }
            }
            BusResponse::Refused(error) => BusResult::Refused { code: error.into(), message: error.to_string() },
        }
    }
}
