//! [`BusStore`]: the durable topics and the messages they retain.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use hyperraft_wire::{AppendView, BusCommand, BusCommands, ConfigureTopicView};

use super::{BusResponse, BusStoreConfig, BusStoreError};

/// One retained message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableMessage {
    /// Its offset in the topic.
    pub offset: u64,
    /// Who published it.
    pub publisher: Arc<str>,
    /// The publisher's sequence number of it.
    pub sequence: u64,
    pub payload: Bytes,
}

/// What a topic holds: offsets `first_offset..next_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicRange {
    /// The oldest offset retained (equal to `next_offset` when empty).
    pub first_offset: u64,
    /// The offset the next message gets.
    pub next_offset: u64,
}

/// One durable topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DurableTopic {
    pub(crate) messages_max: u64,
    pub(crate) bytes_max: u64,
    /// Offset of `messages[0]`.
    pub(crate) first_offset: u64,
    pub(crate) messages: VecDeque<DurableMessage>,
    /// Payload bytes of `messages`.
    pub(crate) bytes: u64,
}

impl DurableTopic {
    fn range(&self) -> TopicRange {
        TopicRange { first_offset: self.first_offset, next_offset: self.first_offset + self.messages.len() as u64 }
    }

    /// Drops the oldest messages until the topic is within its retention.
    fn trim(&mut self) {
        while self.messages.len() as u64 > self.messages_max || self.bytes > self.bytes_max {
            let oldest = self.messages.pop_front().expect("over a bound means a message is there");
            self.bytes -= oldest.payload.len() as u64;
            self.first_offset += 1;
        }
    }
}

/// The durable topics of one replica, by name (ordered, so snapshots of
/// equal stores are equal bytes).
#[derive(Clone, Debug)]
pub struct BusStore {
    pub(crate) config: BusStoreConfig,
    pub(crate) topics: BTreeMap<String, DurableTopic>,
}

impl BusStore {
    /// An empty store.
    pub fn new(config: BusStoreConfig) -> BusStore {
        BusStore { config, topics: BTreeMap::new() }
    }

    /// The bounds of this store.
    pub fn config(&self) -> &BusStoreConfig {
        &self.config
    }

    /// Applies a batch's commands in order, one response each.
    pub fn apply_batch(&mut self, commands: &BusCommands<'_>, out: &mut Vec<BusResponse>) {
        out.reserve(commands.len());
        for command in commands.iter() {
            out.push(self.apply(&command));
        }
    }

    /// Applies one command.
    pub fn apply(&mut self, command: &BusCommand<'_>) -> BusResponse {
        let result = match command {
            BusCommand::Configure(view) => self.configure(view),
            BusCommand::Append(view) => self.append(view),
        };
        result.unwrap_or_else(BusResponse::Refused)
    }

    fn configure(&mut self, view: &ConfigureTopicView<'_>) -> Result<BusResponse, BusStoreError> {
        let name = std::str::from_utf8(view.topic).map_err(|_| BusStoreError::TopicNotUtf8)?;
        let config = &self.config;
        for (what, value, max) in [
            ("messages_max", view.messages_max, config.messages_max_limit),
            ("bytes_max", view.bytes_max, config.bytes_max_limit),
        ] {
            if value > max {
                return Err(BusStoreError::RetentionAboveLimit { what, value, max });
            }
        }
        let existing = self.topics.get(name);
        if existing.is_none() && self.topics.len() >= config.topics_max {
            return Err(BusStoreError::TopicsFull { max: config.topics_max });
        }
        let others: u64 =
            self.topics.iter().filter(|(other, _)| other.as_str() != name).map(|(_, topic)| topic.bytes_max).sum();
        let total = others.saturating_add(view.bytes_max);
        if total > config.bytes_total_max {
            return Err(BusStoreError::RetentionTotalTooLarge { total, max: config.bytes_total_max });
        }
        let topic = self.topics.entry(name.to_string()).or_default();
        topic.messages_max = view.messages_max;
        topic.bytes_max = view.bytes_max;
        topic.trim();
        Ok(BusResponse::Configured(topic.range()))
    }

    fn append(&mut self, view: &AppendView<'_>) -> Result<BusResponse, BusStoreError> {
        let name = std::str::from_utf8(view.topic).map_err(|_| BusStoreError::TopicNotUtf8)?;
        let topic = self.topics.get_mut(name).ok_or_else(|| BusStoreError::UnknownTopic(name.to_string()))?;
        let (messages, bytes) = (view.len() as u64, view.payload_bytes() as u64);
        if messages > topic.messages_max || bytes > topic.bytes_max {
            return Err(BusStoreError::AppendExceedsRetention {
                messages,
                bytes,
                messages_max: topic.messages_max,
                bytes_max: topic.bytes_max,
            });
        }
        // Publisher ids are not UTF-8-checked by the decoder; a lossy copy
        // is deterministic, so every replica stores the same name.
        let publisher: Arc<str> = String::from_utf8_lossy(view.publisher).into();
        let first_offset = topic.range().next_offset;
        for (index, payload) in view.payloads().enumerate() {
            topic.messages.push_back(DurableMessage {
                offset: first_offset + index as u64,
                publisher: publisher.clone(),
                sequence: view.first_sequence.wrapping_add(index as u64),
                payload: Bytes::copy_from_slice(payload),
            });
        }
        topic.bytes += bytes;
        topic.trim();
        assert!(topic.messages.len() as u64 <= topic.messages_max, "trim keeps the message bound");
        assert!(topic.bytes <= topic.bytes_max, "trim keeps the byte bound");
        Ok(BusResponse::Appended { first_offset, count: view.len() as u32 })
    }

    /// Whether `topic` is durable.
    pub fn is_durable(&self, topic: &str) -> bool {
        self.topics.contains_key(topic)
    }

    /// The offsets `topic` holds, or `None` when it is not durable.
    pub fn range(&self, topic: &str) -> Option<TopicRange> {
        self.topics.get(topic).map(DurableTopic::range)
    }

    /// The retention (`messages_max`, `bytes_max`) of `topic`.
    pub fn retention(&self, topic: &str) -> Option<(u64, u64)> {
        self.topics.get(topic).map(|topic| (topic.messages_max, topic.bytes_max))
    }

    /// Names of the durable topics, in order.
    pub fn topic_names(&self) -> impl Iterator<Item = &str> {
        self.topics.keys().map(String::as_str)
    }

    /// Appends to `out` the messages of `topic` from offset `from` on: at
    /// most `messages_max` (at least one when any is there) within
    /// `bytes_max` payload bytes. Answers the topic's range; reads nothing
    /// when `from` is outside it (the caller decides what that means).
    pub fn read(
        &self,
        topic: &str,
        from: u64,
        messages_max: usize,
        bytes_max: usize,
        out: &mut Vec<DurableMessage>,
    ) -> Option<TopicRange> {
        let durable = self.topics.get(topic)?;
        let range = durable.range();
        if from < range.first_offset || from >= range.next_offset {
            return Some(range);
        }
        let skip = (from - range.first_offset) as usize;
        let mut bytes = 0usize;
        for (taken, message) in durable.messages.iter().skip(skip).enumerate() {
            if taken >= messages_max || (taken > 0 && bytes + message.payload.len() > bytes_max) {
                break;
            }
            bytes += message.payload.len();
            out.push(message.clone());
        }
        Some(range)
    }
}
