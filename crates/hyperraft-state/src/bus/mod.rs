//! Durable bus topics: the messages a topic retains, replicated through
//! Raft so every replica holds the same ones at the same offsets.
//!
//! # Semantics
//!
//! * `ConfigureTopic` makes a topic durable with retention bounds (newest
//!   `messages_max` messages within `bytes_max` payload bytes), or changes
//!   the bounds of a durable topic; a lowered bound trims at once.
//! * `Append` gives each of its messages the topic's next offset: offsets
//!   are dense, start at 0 and never repeat, so a topic's messages are in
//!   one total order, the log order. After an append the oldest messages
//!   are trimmed until the topic is within its retention; the offset of
//!   the oldest message kept is the topic's `first_offset`.
//! * A refused command changes nothing: an unknown topic, a name that is
//!   not UTF-8, one topic more than [`BusStoreConfig::topics_max`],
//!   retention above the configured hard maxima, or an append larger than
//!   its topic's whole retention (it would be trimmed as it lands).
//!
//! A batch is applied sequentially in log order; the only state is the
//! topics, so the same commands give the same topics on every replica.
//!
//! # Bounds
//!
//! Memory is bounded by construction: at most `topics_max` topics, each
//! holding at most its `bytes_max` payload bytes, and the sum of the
//! topics' `bytes_max` at most [`BusStoreConfig::bytes_total_max`] (a
//! configuration that would pass it is refused).

mod snapshot;
mod store;

pub use store::{BusStore, DurableMessage, TopicRange};

/// Bounds of one durable bus store; equal on every replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusStoreConfig {
    /// Durable topics at once.
    pub topics_max: usize,
    /// The largest `messages_max` a topic may be configured with.
    pub messages_max_limit: u64,
    /// The largest `bytes_max` a topic may be configured with.
    pub bytes_max_limit: u64,
    /// The largest sum of every topic's `bytes_max`.
    pub bytes_total_max: u64,
}

impl Default for BusStoreConfig {
    fn default() -> Self {
        BusStoreConfig {
            topics_max: 256,
            messages_max_limit: 1 << 20,
            bytes_max_limit: 256 << 20,
            bytes_total_max: 1 << 30,
        }
    }
}

/// Why the store refused a command. A refused command changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BusStoreError {
    #[error("topic {0:?} is not durable (configure it durable first)")]
    UnknownTopic(String),
    #[error("a topic name must be UTF-8")]
    TopicNotUtf8,
    #[error("{max} durable topics exist, the most the store holds")]
    TopicsFull { max: usize },
    #[error("retention {what} {value} is above the limit of {max}")]
    RetentionAboveLimit { what: &'static str, value: u64, max: u64 },
    #[error("durable topics would retain {total} bytes together, more than the limit of {max}")]
    RetentionTotalTooLarge { total: u64, max: u64 },
    #[error(
        "an append of {messages} messages and {bytes} bytes exceeds the topic's retention of {messages_max} messages and {bytes_max} bytes"
    )]
    AppendExceedsRetention { messages: u64, bytes: u64, messages_max: u64, bytes_max: u64 },
}

/// The result of one bus command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusResponse {
    /// The topic is durable with the asked retention; its range now.
    Configured(TopicRange),
    /// The messages got offsets `first_offset..first_offset + count`.
    Appended { first_offset: u64, count: u32 },
    /// Refused; nothing changed.
    Refused(BusStoreError),
}

#[cfg(test)]
mod tests;
