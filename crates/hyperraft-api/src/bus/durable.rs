//! Durable topics on the API side: the frames a publish and a
//! configuration become, and the subscription that reads a durable topic
//! by offset from this node's applied state.
//!
//! A durable subscription is a cursor, not a queue: it holds the offset of
//! the next message it delivers and reads the replicated store
//! (`hyperraft_state::bus::BusStore::read`) from there whenever the node
//! applies more. Replay and live delivery are the same loop, so there is
//! no switch-over at which a message could be lost or repeated. Memory is
//! what one batch holds; a subscriber that reads slower than the topic is
//! written falls behind the retention instead of filling a queue, and the
//! topic's slow-consumer policy decides then: drop-oldest skips to the
//! oldest retained offset and counts what it skipped, disconnect ends the
//! subscription with the reason.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyperraft_node::Node;
use hyperraft_raft::NodeId;
use hyperraft_state::bus::{DurableMessage, TopicRange};
use hyperraft_wire::{BusBatchWriter, ConfigureTopicView};
use openraft::{BasicNode, RaftMetrics};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Delivery, Run, SlowConsumer};

/// Why a durable subscription could not start or continue.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurableError {
    /// The topic is not durable (here, yet).
    #[error("topic {0:?} is not durable; from_offset needs a durable topic")]
    NotDurable(String),
    /// The asked offset was trimmed by retention.
    #[error("offset {asked} of topic {topic:?} is no longer retained; the oldest retained offset is {first_offset}")]
    Trimmed { topic: String, asked: u64, first_offset: u64 },
    /// The asked offset is past the topic's end (after waiting to apply).
    #[error("offset {asked} of topic {topic:?} is in the future; the topic's next offset is {next_offset}")]
    Future { topic: String, asked: u64, next_offset: u64 },
    /// The subscriber fell behind the retention on a `disconnect` topic.
    #[error(
        "the subscriber fell behind: offset {asked} of topic {topic:?} was trimmed (oldest retained {first_offset}) and the topic's slow-consumer policy is disconnect"
    )]
    FellBehind { topic: String, asked: u64, first_offset: u64 },
    /// The node stopped.
    #[error("the node is shutting down")]
    NodeGone,
}

/// How a durable subscriber wants its batches.
#[derive(Clone, Copy, Debug)]
pub struct DurableOptions {
    /// Messages per batch (already checked against the bus bounds).
    pub batch_max: usize,
    /// How long a batch may wait to fill after its first message.
    pub window: Duration,
    /// Payload bytes per batch (at least one message is always taken).
    pub bytes_max: usize,
    /// What to do when the subscriber falls behind the retention.
    pub policy: SlowConsumer,
    /// How long to wait for this node to apply up to `from_offset`.
    pub catch_up: Duration,
}

/// A subscription to a durable topic: a cursor over its offsets.
pub struct DurableSubscription {
    node: Arc<Node>,
    topic: String,
    /// The offset of the next message to deliver.
    next: u64,
    options: DurableOptions,
    /// Messages trimmed before this subscription read them (drop-oldest).
    dropped: u64,
    metrics: watch::Receiver<RaftMetrics<NodeId, BasicNode>>,
}

impl DurableSubscription {
    /// Opens a subscription at `from` (the topic's next offset with
    /// `None`). An offset beyond what this node applied waits up to
    /// `options.catch_up` for it before failing.
    pub async fn open(
        node: Arc<Node>,
        topic: &str,
        from: Option<u64>,
        options: DurableOptions,
    ) -> Result<DurableSubscription, DurableError> {
        let mut metrics = node.raft().metrics();
        let range = |node: &Node| node.state().read(|state| state.bus().range(topic));
        let deadline = Instant::now() + options.catch_up;
        let next = loop {
            metrics.borrow_and_update();
            let current = range(&node);
            let Some(current) = current else {
                if from.is_none() || Instant::now() >= deadline {
                    return Err(DurableError::NotDurable(topic.to_string()));
                }
                wait_applied(&mut metrics, deadline).await?;
                continue;
            };
            let asked = from.unwrap_or(current.next_offset);
            if asked < current.first_offset {
                let first_offset = current.first_offset;
                return Err(DurableError::Trimmed { topic: topic.to_string(), asked, first_offset });
            }
            if asked <= current.next_offset {
                break asked;
            }
            if Instant::now() >= deadline {
                let next_offset = current.next_offset;
                return Err(DurableError::Future { topic: topic.to_string(), asked, next_offset });
            }
            wait_applied(&mut metrics, deadline).await?;
        };
        Ok(DurableSubscription { node, topic: topic.to_string(), next, options, dropped: 0, metrics })
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The offset of the next message this subscription delivers.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// The next batch: waits for a first message, then until `batch_max`
    /// are there or the window since that first message has passed.
    /// Cancel-safe: the cursor moves only when a batch is returned.
    pub async fn next_batch(&mut self) -> Result<Delivery, DurableError> {
        let mut messages = Vec::new();
        let mut next = self.next;
        let mut deadline = None;
        loop {
            self.metrics.borrow_and_update();
            let room = self.options.batch_max - messages.len();
            let bytes_room = self.options.bytes_max.saturating_sub(bytes_of(&messages));
            let before = messages.len();
            let range = self.read(next, room, bytes_room, &mut messages)?;
            if messages.len() == before && next < range.first_offset {
                // Fell behind the retention: the policy decides.
                if self.options.policy == SlowConsumer::Disconnect {
                    let (topic, first_offset) = (self.topic.clone(), range.first_offset);
                    return Err(DurableError::FellBehind { topic, asked: next, first_offset });
                }
                self.dropped += range.first_offset - next;
                next = range.first_offset;
                continue;
            }
            next += (messages.len() - before) as u64;
            let full = messages.len() >= self.options.batch_max || bytes_of(&messages) >= self.options.bytes_max;
            if !messages.is_empty() && (full || self.options.window.is_zero() || next < range.next_offset) {
                break;
            }
            if !messages.is_empty() {
                let deadline = *deadline.get_or_insert_with(|| Instant::now() + self.options.window);
                if Instant::now() >= deadline {
                    break;
                }
                match tokio::time::timeout_at(deadline, self.metrics.changed()).await {
                    Err(_) => break,
                    Ok(changed) => changed.map_err(|_| DurableError::NodeGone)?,
                }
                continue;
            }
            self.metrics.changed().await.map_err(|_| DurableError::NodeGone)?;
        }
        self.next = next;
        Ok(delivery(messages, self.dropped))
    }

    /// Reads from `from` into `out` under the state lock.
    fn read(
        &self,
        from: u64,
        messages_max: usize,
        bytes_max: usize,
        out: &mut Vec<DurableMessage>,
    ) -> Result<TopicRange, DurableError> {
        let topic = &self.topic;
        let range = self.node.state().read(|state| state.bus().read(topic, from, messages_max, bytes_max.max(1), out));
        // A durable topic never stops being durable, but a snapshot from
        // before its configuration could be installed on a lagging node.
        range.ok_or_else(|| DurableError::NotDurable(topic.clone()))
    }
}

fn bytes_of(messages: &[DurableMessage]) -> usize {
    messages.iter().map(|message| message.payload.len()).sum()
}

/// Waits for the node's metrics to change (an apply, say) or `deadline`.
async fn wait_applied(
    metrics: &mut watch::Receiver<RaftMetrics<NodeId, BasicNode>>,
    deadline: Instant,
) -> Result<(), DurableError> {
    match tokio::time::timeout_at(deadline, metrics.changed()).await {
        Ok(Err(_)) => Err(DurableError::NodeGone),
        Ok(Ok(())) | Err(_) => Ok(()),
    }
}

/// Groups consecutive messages of one publisher (consecutive sequences)
/// into runs.
fn delivery(messages: Vec<DurableMessage>, dropped: u64) -> Delivery {
    let count = messages.len();
    let mut runs: Vec<Run> = Vec::new();
    for message in messages {
        if let Some(run) = runs.last_mut() {
            let expected = run.first_sequence.wrapping_add(run.payloads.len() as u64);
            if run.publisher == message.publisher && expected == message.sequence {
                run.payloads.push(message.payload);
                continue;
            }
        }
        runs.push(Run {
            publisher: message.publisher,
            first_sequence: message.sequence,
            payloads: vec![message.payload],
            first_offset: Some(message.offset),
        });
    }
    Delivery { runs, messages: count, dropped }
}

/// The `Bus` frame that appends `payloads` of `publisher` to `topic`.
pub(crate) fn append_frame(
    topic: &str,
    publisher: &str,
    first_sequence: u64,
    payloads: &[Bytes],
) -> Result<Vec<u8>, hyperraft_wire::EncodeError> {
    let mut frame = Vec::new();
    let mut writer = BusBatchWriter::new(&mut frame);
    writer.append(topic.as_bytes(), publisher.as_bytes(), first_sequence, payloads)?;
    writer.finish();
    Ok(frame)
}

/// The `Bus` frame that makes `topic` durable with this retention.
pub(crate) fn configure_frame(
    topic: &str,
    messages_max: u64,
    bytes_max: u64,
) -> Result<Vec<u8>, hyperraft_wire::EncodeError> {
    let mut frame = Vec::new();
    let mut writer = BusBatchWriter::new(&mut frame);
    writer.configure(&ConfigureTopicView { topic: topic.as_bytes(), messages_max, bytes_max })?;
    writer.finish();
    Ok(frame)
}
