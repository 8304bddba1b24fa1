//! The message bus: topics with publish/subscribe between the clients and
//! agents connected to one node.
//!
//! An ephemeral topic (the default) is per node. Nothing of it is
//! replicated or goes through Raft, and nothing crosses to other nodes: a
//! publisher reaches the subscribers connected to the same node. Delivery
//! is at most once. A durable topic is replicated state instead (see
//! [`durable`]): its messages are appended through Raft, and any node
//! serves them by offset from its applied state.
//!
//! - A publish is a *batch* of payloads for one topic. It is validated
//!   whole (topic name, batch size, each payload's size) before anything is
//!   queued, then fanned out as one shared [`Arc`] to every subscriber's
//!   queue: one allocation per batch, payload bytes ([`Bytes`]) shared by
//!   every subscriber, never copied.
//! - Each subscription has a bounded queue (messages and bytes). When a
//!   publish does not fit, the topic's [`SlowConsumer`] policy decides:
//!   drop the oldest queued messages (counted, and reported to the
//!   subscriber with every batch), or close the subscription with a reason.
//! - A subscriber takes batches of up to `batch_max` messages, sent as soon
//!   as that many are queued or `window` after the first one arrived,
//!   whichever comes first ([`Subscription::next_batch`]).
//! - Messages of one [`Publisher`] reach each subscriber in publish order:
//!   a batch enters each queue whole, under that queue's lock, and queues
//!   are first in, first out. Publishes made one after another by one
//!   publisher are delivered in that order; publishes made at the same
//!   time from different tasks are ordered by whoever queues first.
//! - Topics, subscribers per topic, subscriptions, name lengths, payload
//!   sizes and batch sizes are bounded ([`BusConfig`]); a request over a
//!   bound is refused whole with a [`BusError`] naming the bound.
//! - Counters (per topic and per subscription) are atomics.
//!
//! [`service`] serves it as the gRPC `Bus` service of `proto/bus.proto`;
//! other code (agent sessions, say) uses [`Bus`] directly.

pub(crate) mod durable;
mod queue;
pub(crate) mod service;
mod topic;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;

pub use durable::{DurableError, DurableSubscription};
pub use queue::{Delivery, Run, Subscription};
pub use topic::TopicStats;

use queue::{QueuedBatch, SubscriberQueue};
use topic::Topic;

/// What happens when a publish does not fit a subscriber's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlowConsumer {
    /// The oldest queued messages make room; the subscriber's drop counter
    /// counts them and comes with every batch it takes.
    DropOldest,
    /// The subscription is closed with a reason; its queue is emptied.
    Disconnect,
}

/// Bounds and defaults of one node's bus.
#[derive(Clone, Debug)]
pub struct BusConfig {
    /// Topics at once. Publishing to, subscribing to or configuring one
    /// more is refused ([`BusError::TooManyTopics`]). Topics live until the
    /// node stops.
    pub topics_max: usize,
    /// Subscriptions of one topic at once.
    pub subscribers_per_topic_max: usize,
    /// Subscriptions of the whole bus at once.
    pub subscriptions_max: usize,
    /// Bytes of a topic name (UTF-8, not empty).
    pub topic_bytes_max: usize,
    /// Bytes of a publisher id (not empty).
    pub publisher_bytes_max: usize,
    /// Bytes of one payload.
    pub message_bytes_max: usize,
    /// Payloads in one publish.
    pub publish_batch_max: usize,
    /// The largest `batch_max` a subscriber may ask for.
    pub delivery_batch_max: usize,
    /// `batch_max` of a subscriber that asks for none.
    pub delivery_batch_default: usize,
    /// Payload bytes in one delivered batch (at least one message is
    /// always taken, so it must be at least `message_bytes_max`).
    pub delivery_bytes_max: usize,
    /// The longest batching window a subscriber may ask for.
    pub window_max: Duration,
    /// Messages queued per subscription for a new topic.
    pub queue_max_default: usize,
    /// The largest per-subscription queue a topic may be configured with.
    pub queue_max_limit: usize,
    /// Payload bytes queued per subscription.
    pub queue_bytes_max: usize,
    /// The policy of a topic nobody configured.
    pub policy_default: SlowConsumer,
    /// Retention of a durable topic configured without one: messages.
    pub durable_retention_messages_default: u64,
    /// Retention of a durable topic configured without one: payload bytes.
    pub durable_retention_bytes_default: u64,
    /// Durable publishes of one Publish call awaiting commit at once; the
    /// call reads its next request only when one of them is answered.
    pub durable_publishes_in_flight_max: usize,
    /// Durable requests one Publish call may carry (each gets an entry in
    /// its answer).
    pub durable_acks_per_call_max: usize,
    /// How long a subscription from an offset this node has not applied
    /// yet waits for it before failing with `OUT_OF_RANGE`.
    pub durable_catch_up: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            topics_max: 4096,
            subscribers_per_topic_max: 1024,
            subscriptions_max: 16_384,
            topic_bytes_max: 256,
            publisher_bytes_max: 256,
            message_bytes_max: 1 << 20,
            publish_batch_max: 16_384,
            delivery_batch_max: 16_384,
            delivery_batch_default: 1024,
            delivery_bytes_max: 4 << 20,
            window_max: Duration::from_secs(1),
            queue_max_default: 65_536,
            queue_max_limit: 1 << 20,
            queue_bytes_max: 64 << 20,
            policy_default: SlowConsumer::DropOldest,
            durable_retention_messages_default: 100_000,
            durable_retention_bytes_default: 64 << 20,
            durable_publishes_in_flight_max: 64,
            durable_acks_per_call_max: 4096,
            durable_catch_up: Duration::from_secs(5),
        }
    }
}

impl BusConfig {
    /// Checks the bounds against each other.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("topics_max", self.topics_max),
            ("subscribers_per_topic_max", self.subscribers_per_topic_max),
            ("subscriptions_max", self.subscriptions_max),
            ("topic_bytes_max", self.topic_bytes_max),
            ("publisher_bytes_max", self.publisher_bytes_max),
            ("publish_batch_max", self.publish_batch_max),
            ("delivery_batch_max", self.delivery_batch_max),
            ("delivery_batch_default", self.delivery_batch_default),
            ("queue_max_default", self.queue_max_default),
            ("durable_publishes_in_flight_max", self.durable_publishes_in_flight_max),
            ("durable_acks_per_call_max", self.durable_acks_per_call_max),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(format!("bus: {name} must be at least 1"));
        }
        if self.delivery_batch_default > self.delivery_batch_max {
            return Err("bus: delivery_batch_default is above delivery_batch_max".to_string());
        }
        if self.durable_retention_messages_default == 0 || self.durable_retention_bytes_default == 0 {
            return Err("bus: durable retention defaults must be at least 1".to_string());
        }
        if self.message_bytes_max > hyperraft_wire::bus::PAYLOAD_BYTES_MAX
            || self.topic_bytes_max > hyperraft_wire::bus::TOPIC_BYTES_MAX
            || self.publisher_bytes_max > hyperraft_wire::bus::PUBLISHER_BYTES_MAX
        {
            return Err("bus: message, topic and publisher bytes must fit a durable append".to_string());
        }
        if self.queue_max_default > self.queue_max_limit {
            return Err("bus: queue_max_default is above queue_max_limit".to_string());
        }
        if self.delivery_bytes_max < self.message_bytes_max || self.queue_bytes_max < self.message_bytes_max {
            return Err(
                "bus: delivery_bytes_max and queue_bytes_max must hold at least one largest message".to_string()
            );
        }
        Ok(())
    }
}

/// Why the bus refused a request. Nothing of a refused request was queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    #[error("topic: {0}")]
    Topic(String),
    #[error("publisher: {0}")]
    Publisher(String),
    #[error("payloads: a publish needs at least one message")]
    EmptyBatch,
    #[error("payloads: {count} messages, more than the {max} one publish may hold")]
    BatchTooLarge { count: usize, max: usize },
    #[error("payloads[{index}]: {bytes} bytes, more than the {max} a message may hold")]
    MessageTooLarge { index: usize, bytes: usize, max: usize },
    #[error("{max} topics exist, the most this node's bus holds")]
    TooManyTopics { max: usize },
    #[error("{what} has {max} subscriptions, the most it may have")]
    TooManySubscriptions { what: String, max: usize },
    #[error("{field}: {reason}")]
    Option { field: &'static str, reason: String },
}

/// How a subscriber wants its batches.
#[derive(Clone, Copy, Debug, Default)]
pub struct SubscribeOptions {
    /// Messages per batch; 0 for [`BusConfig::delivery_batch_default`].
    pub batch_max: usize,
    /// How long a batch may wait to fill after its first message; zero
    /// sends what is queued at once.
    pub window: Duration,
}

/// Settings of one topic; `None` keeps what the topic has (or the
/// defaults, for a new one).
#[derive(Clone, Copy, Debug, Default)]
pub struct TopicOptions {
    pub policy: Option<SlowConsumer>,
    /// Messages queued per subscription (subscriptions made afterwards).
    pub queue_max: Option<usize>,
}

/// One publisher: its id and the sequence number of its next message.
#[derive(Debug)]
pub struct Publisher {
    id: Arc<str>,
    next_sequence: AtomicU64,
}

impl Publisher {
    /// The publisher's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Takes the sequence numbers of `count` messages; answers the first.
    pub(crate) fn reserve(&self, count: usize) -> u64 {
        self.next_sequence.fetch_add(count as u64, Ordering::Relaxed)
    }
}

/// What one publish did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Messages accepted.
    pub messages: usize,
    /// Message copies queued (messages × subscriptions reached).
    pub deliveries: usize,
}

/// The bus of one node. Share it (`Arc<Bus>`).
#[derive(Debug)]
pub struct Bus {
    config: BusConfig,
    topics: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    subscriptions: Arc<AtomicUsize>,
    next_subscription: AtomicU64,
}

impl Bus {
    /// An empty bus. The configuration must be valid ([`BusConfig::validate`]).
    pub fn new(config: BusConfig) -> Bus {
        Bus {
            config,
            topics: RwLock::new(HashMap::new()),
            subscriptions: Arc::new(AtomicUsize::new(0)),
            next_subscription: AtomicU64::new(1),
        }
    }

    /// The bounds this bus enforces.
    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// A publisher named `id` (1 to `publisher_bytes_max` bytes), its
    /// sequence numbers starting at 1.
    pub fn publisher(&self, id: &str) -> Result<Publisher, BusError> {
        if id.is_empty() {
            return Err(BusError::Publisher("must not be empty".to_string()));
        }
        if id.len() > self.config.publisher_bytes_max {
            let max = self.config.publisher_bytes_max;
            return Err(BusError::Publisher(format!("{} bytes, more than the {max} allowed", id.len())));
        }
        Ok(Publisher { id: id.into(), next_sequence: AtomicU64::new(1) })
    }

    /// Publishes `payloads` on `topic` (made with the defaults if new) to
    /// every current subscription, as one batch. Checks everything first:
    /// a refused publish queues nothing.
    pub fn publish(&self, publisher: &Publisher, topic: &str, payloads: Vec<Bytes>) -> Result<Published, BusError> {
        let bytes = self.check_payloads(&payloads)?;
        let topic = self.topic(topic)?;
        let count = payloads.len();
        let first_sequence = publisher.next_sequence.fetch_add(count as u64, Ordering::Relaxed);
        let batch = Arc::new(QueuedBatch { publisher: publisher.id.clone(), first_sequence, payloads, bytes });
        let deliveries = topic.fan_out(&batch);
        Ok(Published { messages: count, deliveries })
    }

    /// Checks a publish's payloads (count and sizes); answers their bytes.
    pub(crate) fn check_payloads(&self, payloads: &[Bytes]) -> Result<usize, BusError> {
        if payloads.is_empty() {
            return Err(BusError::EmptyBatch);
        }
        if payloads.len() > self.config.publish_batch_max {
            return Err(BusError::BatchTooLarge { count: payloads.len(), max: self.config.publish_batch_max });
        }
        let max = self.config.message_bytes_max;
        let mut bytes = 0;
        for (index, payload) in payloads.iter().enumerate() {
            if payload.len() > max {
                return Err(BusError::MessageTooLarge { index, bytes: payload.len(), max });
            }
            bytes += payload.len();
        }
        Ok(bytes)
    }

    /// The slow-consumer policy of `topic`, or the default when this node
    /// has no such topic (it is not created).
    pub fn policy_of(&self, topic: &str) -> SlowConsumer {
        let topics = self.topics.read().expect("the topic map lock is never poisoned");
        topics.get(topic).map_or(self.config.policy_default, |topic| topic.policy())
    }

    /// Subscribes to `topic` (made with the defaults if new) from now on.
    /// Dropping the [`Subscription`] ends it.
    pub fn subscribe(&self, topic: &str, options: SubscribeOptions) -> Result<Subscription, BusError> {
        let batch_max = self.check_subscribe_options(options)?;
        let topic = self.topic(topic)?;
        self.subscribe_checked(topic, batch_max, options)
    }

    /// The `batch_max` a subscription with `options` gets, or why the
    /// options are refused.
    pub(crate) fn check_subscribe_options(&self, options: SubscribeOptions) -> Result<usize, BusError> {
        let batch_max = match options.batch_max {
            0 => self.config.delivery_batch_default,
            n if n > self.config.delivery_batch_max => {
                let max = self.config.delivery_batch_max;
                return Err(BusError::Option { field: "batch_max", reason: format!("{n} is above the bound {max}") });
            }
            n => n,
        };
        if options.window > self.config.window_max {
            let max = self.config.window_max;
            return Err(BusError::Option {
                field: "window",
                reason: format!("{:?} is above the bound {max:?}", options.window),
            });
        }
        Ok(batch_max)
    }

    /// Subscribes to `topic` with checked options.
    fn subscribe_checked(
        &self,
        topic: Arc<Topic>,
        batch_max: usize,
        options: SubscribeOptions,
    ) -> Result<Subscription, BusError> {
        let taken = self.subscriptions.fetch_add(1, Ordering::AcqRel);
        let slot = SubscriptionSlot(self.subscriptions.clone());
        if taken >= self.config.subscriptions_max {
            let max = self.config.subscriptions_max;
            return Err(BusError::TooManySubscriptions { what: "the bus".to_string(), max });
        }
        let id = self.next_subscription.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(SubscriberQueue::new(id, topic.policy(), topic.queue_max(), self.config.queue_bytes_max));
        topic.attach(queue.clone(), self.config.subscribers_per_topic_max)?;
        Ok(Subscription::new(topic, queue, batch_max, options.window, self.config.delivery_bytes_max, slot))
    }

    /// Creates `topic` or changes its settings; answers its counters.
    pub fn configure_topic(&self, topic: &str, options: TopicOptions) -> Result<TopicStats, BusError> {
        self.check_topic_options(options)?;
        let topic = self.topic(topic)?;
        topic.configure(options);
        Ok(topic.stats())
    }

    /// Checks topic settings without applying them.
    pub(crate) fn check_topic_options(&self, options: TopicOptions) -> Result<(), BusError> {
        if let Some(queue_max) = options.queue_max {
            let limit = self.config.queue_max_limit;
            if queue_max == 0 || queue_max > limit {
                return Err(BusError::Option {
                    field: "queue_max",
                    reason: format!("{queue_max} is outside 1..={limit}"),
                });
            }
        }
        Ok(())
    }

    /// The counters of every topic whose name starts with `prefix`, by name.
    pub fn topics(&self, prefix: &str) -> Vec<TopicStats> {
        let topics = self.topics.read().expect("the topic map lock is never poisoned");
        let mut stats: Vec<TopicStats> =
            topics.values().filter(|topic| topic.name().starts_with(prefix)).map(|topic| topic.stats()).collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }

    /// Subscriptions open now.
    pub fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::Acquire)
    }

    /// The topic named `name`, made with the defaults if new.
    fn topic(&self, name: &str) -> Result<Arc<Topic>, BusError> {
        if let Some(topic) = self.topics.read().expect("the topic map lock is never poisoned").get(name) {
            return Ok(topic.clone());
        }
        self.check_topic_name(name)?;
        let mut topics = self.topics.write().expect("the topic map lock is never poisoned");
        if let Some(topic) = topics.get(name) {
            return Ok(topic.clone());
        }
        if topics.len() >= self.config.topics_max {
            return Err(BusError::TooManyTopics { max: self.config.topics_max });
        }
        let topic = Arc::new(Topic::new(name.into(), self.config.policy_default, self.config.queue_max_default));
        topics.insert(topic.name_arc(), topic.clone());
        Ok(topic)
    }

    pub(crate) fn check_topic_name(&self, name: &str) -> Result<(), BusError> {
        if name.is_empty() {
            return Err(BusError::Topic("must not be empty".to_string()));
        }
        if name.len() > self.config.topic_bytes_max {
            let max = self.config.topic_bytes_max;
            return Err(BusError::Topic(format!("{} bytes, more than the {max} a topic name may have", name.len())));
        }
        if name.chars().any(char::is_control) {
            return Err(BusError::Topic("must not contain control characters".to_string()));
        }
        Ok(())
    }
}

/// One place among [`BusConfig::subscriptions_max`], given back on drop.
#[derive(Debug)]
pub(crate) struct SubscriptionSlot(Arc<AtomicUsize>);

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests;
