//! One topic: its settings, its subscriptions' queues and its counters.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use super::queue::{Push, QueuedBatch, SubscriberQueue};
use super::{BusError, SlowConsumer, TopicOptions};

/// A topic's settings and counters at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicStats {
    pub name: String,
    pub policy: SlowConsumer,
    /// Messages queued per subscription (for subscriptions made now).
    pub queue_max: usize,
    pub subscribers: usize,
    /// Messages accepted by publishes.
    pub published: u64,
    /// Messages taken by subscribers (each copy counts).
    pub delivered: u64,
    /// Messages dropped from full queues (drop-oldest).
    pub dropped: u64,
    /// Subscriptions closed for falling behind (disconnect).
    pub disconnected: u64,
}

#[derive(Debug)]
pub(crate) struct Topic {
    name: Arc<str>,
    policy: AtomicU8,
    queue_max: AtomicUsize,
    subscribers: RwLock<Vec<Arc<SubscriberQueue>>>,
    published: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) dropped: AtomicU64,
    disconnected: AtomicU64,
}

fn policy_code(policy: SlowConsumer) -> u8 {
    match policy {
        SlowConsumer::DropOldest => 0,
        SlowConsumer::Disconnect => 1,
    }
}

impl Topic {
    pub(crate) fn new(name: Arc<str>, policy: SlowConsumer, queue_max: usize) -> Topic {
        Topic {
            name,
            policy: AtomicU8::new(policy_code(policy)),
            queue_max: AtomicUsize::new(queue_max),
            subscribers: RwLock::new(Vec::new()),
            published: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            disconnected: AtomicU64::new(0),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn name_arc(&self) -> Arc<str> {
        self.name.clone()
    }

    pub(crate) fn policy(&self) -> SlowConsumer {
        match self.policy.load(Ordering::Relaxed) {
            0 => SlowConsumer::DropOldest,
            _ => SlowConsumer::Disconnect,
        }
    }

    pub(crate) fn queue_max(&self) -> usize {
        self.queue_max.load(Ordering::Relaxed)
    }

    pub(crate) fn configure(&self, options: TopicOptions) {
        if let Some(policy) = options.policy {
            self.policy.store(policy_code(policy), Ordering::Relaxed);
        }
        if let Some(queue_max) = options.queue_max {
            self.queue_max.store(queue_max, Ordering::Relaxed);
        }
    }

    /// Adds a subscription's queue, within `max` per topic.
    pub(crate) fn attach(&self, queue: Arc<SubscriberQueue>, max: usize) -> Result<(), BusError> {
        let mut subscribers = self.subscribers.write().expect("the subscriber list lock is never poisoned");
        if subscribers.len() >= max {
            return Err(BusError::TooManySubscriptions { what: format!("topic {:?}", &*self.name), max });
        }
        subscribers.push(queue);
        Ok(())
    }

    /// Removes subscription `id`'s queue.
    pub(crate) fn detach(&self, id: u64) {
        let mut subscribers = self.subscribers.write().expect("the subscriber list lock is never poisoned");
        subscribers.retain(|queue| queue.id() != id);
    }

    /// Queues `batch` for every subscription; answers the copies queued.
    pub(crate) fn fan_out(&self, batch: &Arc<QueuedBatch>) -> usize {
        self.published.fetch_add(batch.payloads.len() as u64, Ordering::Relaxed);
        let subscribers = self.subscribers.read().expect("the subscriber list lock is never poisoned");
        let mut deliveries = 0;
        for queue in subscribers.iter() {
            match queue.push(batch) {
                Push::Queued { dropped, trimmed } => {
                    deliveries += batch.payloads.len() - trimmed;
                    if dropped > 0 {
                        self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
                    }
                }
                Push::Disconnected => {
                    self.disconnected.fetch_add(1, Ordering::Relaxed);
                }
                Push::Closed => {}
            }
        }
        deliveries
    }

    pub(crate) fn stats(&self) -> TopicStats {
        TopicStats {
            name: self.name.to_string(),
            policy: self.policy(),
            queue_max: self.queue_max(),
            subscribers: self.subscribers.read().expect("the subscriber list lock is never poisoned").len(),
            published: self.published.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            disconnected: self.disconnected.load(Ordering::Relaxed),
        }
    }
}
