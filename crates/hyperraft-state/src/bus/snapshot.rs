//! The durable bus store's own snapshot bytes, written inside the state
//! snapshot (version 4 on).
//!
//! Layout (little-endian): `topics u32 · topics × (name · messages_max u64
//! · bytes_max u64 · first_offset u64 · messages u64 · messages ×
//! (publisher · sequence u64 · payload))`, where a name, a publisher and a
//! payload are each `len u32 · bytes`, topics in name order. Decoding
//! trusts nothing: counts and lengths are bounded by the configuration
//! and the wire bounds before they are used, and each topic must be within
//! its retention and the store within its total.

use std::sync::Arc;

use bytes::Bytes;
use hyperraft_wire::bus::{PAYLOAD_BYTES_MAX, PUBLISHER_BYTES_MAX, TOPIC_BYTES_MAX};

use super::store::{DurableMessage, DurableTopic};
use super::{BusStore, BusStoreConfig};
use crate::snapshot::Section;

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

impl BusStore {
    /// Appends the store's snapshot bytes to `out`.
    pub fn encode_snapshot(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.topics.len() as u32).to_le_bytes());
        for (name, topic) in &self.topics {
            put_bytes(out, name.as_bytes());
            for word in [topic.messages_max, topic.bytes_max, topic.first_offset, topic.messages.len() as u64] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            for message in &topic.messages {
                put_bytes(out, message.publisher.as_bytes());
                out.extend_from_slice(&message.sequence.to_le_bytes());
                put_bytes(out, &message.payload);
            }
        }
    }

    /// Rebuilds a store from [`Self::encode_snapshot`] bytes.
    pub fn decode_snapshot(bytes: &[u8], config: BusStoreConfig) -> Result<BusStore, String> {
        let mut input = Section::new(bytes, "bus");
        let topics = input.u32()? as usize;
        if topics > config.topics_max {
            return Err(format!("{topics} durable topics, more than the configured {}", config.topics_max));
        }
        let mut store = BusStore::new(config);
        let mut bytes_total = 0u64;
        for _ in 0..topics {
            let (name, topic) = decode_topic(&mut input, &config)?;
            bytes_total = bytes_total.saturating_add(topic.bytes_max);
            if store.topics.last_key_value().is_some_and(|(last, _)| *last >= name) {
                return Err(format!("durable topic {name:?} is out of order or repeated"));
            }
            store.topics.insert(name, topic);
        }
        if bytes_total > config.bytes_total_max {
            return Err(format!("durable topics retain {bytes_total} bytes, more than {}", config.bytes_total_max));
        }
        if !input.bytes.is_empty() {
            return Err(format!("{} bytes after the last durable topic", input.bytes.len()));
        }
        Ok(store)
    }
}

fn decode_topic(input: &mut Section<'_>, config: &BusStoreConfig) -> Result<(String, DurableTopic), String> {
    let name = String::from_utf8(input.bytes(TOPIC_BYTES_MAX)?).map_err(|_| "a topic name is not UTF-8")?;
    let (messages_max, bytes_max, first_offset, count) = (input.u64()?, input.u64()?, input.u64()?, input.u64()?);
    let bounds_valid = (1..=config.messages_max_limit).contains(&messages_max)
        && (1..=config.bytes_max_limit).contains(&bytes_max)
        && count <= messages_max
        && first_offset.checked_add(count).is_some();
    if !bounds_valid {
        return Err(format!("durable topic {name:?} has retention or counts outside the configured bounds"));
    }
    let mut topic = DurableTopic { messages_max, bytes_max, first_offset, ..DurableTopic::default() };
    for index in 0..count {
        let publisher = String::from_utf8(input.bytes(PUBLISHER_BYTES_MAX)?).map_err(|_| "publisher not UTF-8")?;
        let sequence = input.u64()?;
        let payload = Bytes::from(input.bytes(PAYLOAD_BYTES_MAX)?);
        topic.bytes += payload.len() as u64;
        if topic.bytes > bytes_max {
            return Err(format!("durable topic {name:?} holds more than its {bytes_max} bytes"));
        }
        let publisher: Arc<str> = publisher.into();
        topic.messages.push_back(DurableMessage { offset: first_offset + index, publisher, sequence, payload });
    }
    Ok((name, topic))
}
