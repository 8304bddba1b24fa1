//! A subscription's bounded queue and the batches a subscriber takes.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::topic::Topic;
use super::{SlowConsumer, SubscriptionSlot};

/// One publish, shared by every queue it was pushed to.
#[derive(Debug)]
pub(crate) struct QueuedBatch {
    pub(crate) publisher: Arc<str>,
    pub(crate) first_sequence: u64,
    pub(crate) payloads: Vec<Bytes>,
    /// The payloads' bytes together.
    pub(crate) bytes: usize,
}

/// A queued batch and how many of its messages were taken or dropped.
#[derive(Debug)]
struct Entry {
    batch: Arc<QueuedBatch>,
    start: usize,
}

#[derive(Debug, Default)]
struct QueueState {
    entries: VecDeque<Entry>,
    messages: usize,
    bytes: usize,
    /// Messages this subscription lost to drop-oldest.
    dropped: u64,
    /// Why the subscription was closed, once it was.
    closed: Option<String>,
}

impl QueueState {
    /// Drops the oldest queued message; answers whether there was one.
    fn drop_oldest(&mut self) -> bool {
        let Some(front) = self.entries.front_mut() else {
            return false;
        };
        self.bytes -= front.batch.payloads[front.start].len();
        self.messages -= 1;
        self.dropped += 1;
        front.start += 1;
        if front.start == front.batch.payloads.len() {
            self.entries.pop_front();
        }
        true
    }
}

/// What pushing a batch did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Push {
    /// Queued; `dropped` messages were lost to make room, `trimmed` of
    /// them from the front of this batch itself (it alone was too large).
    Queued { dropped: usize, trimmed: usize },
    /// The queue was full and the policy closed the subscription.
    Disconnected,
    /// The subscription was closed before.
    Closed,
}

/// The queue of one subscription.
#[derive(Debug)]
pub(crate) struct SubscriberQueue {
    id: u64,
    policy: SlowConsumer,
    messages_max: usize,
    bytes_max: usize,
    state: Mutex<QueueState>,
    notify: Notify,
}

impl SubscriberQueue {
    pub(crate) fn new(id: u64, policy: SlowConsumer, messages_max: usize, bytes_max: usize) -> SubscriberQueue {
        SubscriberQueue {
            id,
            policy,
            messages_max,
            bytes_max,
            state: Mutex::new(QueueState::default()),
            notify: Notify::new(),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().expect("a subscriber queue lock is never poisoned")
    }

    /// Queues `batch` whole (or its newest part, if it alone is over the
    /// bounds), applying the policy when it does not fit.
    pub(crate) fn push(&self, batch: &Arc<QueuedBatch>) -> Push {
        let mut state = self.lock();
        if state.closed.is_some() {
            return Push::Closed;
        }
        let fits = |state: &QueueState, messages: usize, bytes: usize| {
            state.messages + messages <= self.messages_max && state.bytes + bytes <= self.bytes_max
        };
        let mut start = 0;
        let mut bytes = batch.bytes;
        let mut dropped = 0;
        if !fits(&state, batch.payloads.len(), bytes) {
            if self.policy == SlowConsumer::Disconnect {
                let reason = format!(
                    "the subscriber fell behind: its queue of {} messages and {} bytes is full and the topic's slow-consumer policy is disconnect",
                    self.messages_max, self.bytes_max
                );
                state.entries.clear();
                state.messages = 0;
                state.bytes = 0;
                state.closed = Some(reason);
                drop(state);
                self.notify.notify_one();
                return Push::Disconnected;
            }
            // The batch's own oldest messages go first when it alone is too large.
            while start < batch.payloads.len()
                && (batch.payloads.len() - start > self.messages_max || bytes > self.bytes_max)
            {
                bytes -= batch.payloads[start].len();
                start += 1;
            }
            while !fits(&state, batch.payloads.len() - start, bytes) && state.drop_oldest() {
                dropped += 1;
            }
            state.dropped += start as u64;
        }
        let trimmed = start;
        if start < batch.payloads.len() {
            state.messages += batch.payloads.len() - start;
            state.bytes += bytes;
            state.entries.push_back(Entry { batch: batch.clone(), start });
        }
        drop(state);
        self.notify.notify_one();
        Push::Queued { dropped: dropped + trimmed, trimmed }
    }

    /// Takes up to `messages_max` messages (at least one when any is
    /// queued) within `bytes_max` payload bytes, grouped in runs.
    fn take(&self, messages_max: usize, bytes_max: usize) -> Taken {
        let mut state = self.lock();
        if let Some(reason) = &state.closed {
            return Taken::Closed(reason.clone());
        }
        let mut runs = Vec::new();
        let mut messages = 0;
        let mut bytes = 0;
        while messages < messages_max {
            let Some(front) = state.entries.front_mut() else { break };
            let payloads = &front.batch.payloads;
            let mut end = front.start;
            while end < payloads.len()
                && messages + (end - front.start) < messages_max
                && (messages + (end - front.start) == 0 || bytes + payloads[end].len() <= bytes_max)
            {
                bytes += payloads[end].len();
                end += 1;
            }
            if end == front.start {
                break;
            }
            let run = Run {
                publisher: front.batch.publisher.clone(),
                first_sequence: front.batch.first_sequence + front.start as u64,
                payloads: payloads[front.start..end].to_vec(),
                first_offset: None,
            };
            messages += end - front.start;
            front.start = end;
            if end == payloads.len() {
                state.entries.pop_front();
            }
            runs.push(run);
        }
        state.messages -= messages;
        state.bytes -= bytes;
        Taken::Batch { runs, messages, dropped: state.dropped }
    }

    fn queued(&self) -> (usize, Option<String>) {
        let state = self.lock();
        (state.messages, state.closed.clone())
    }

    fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

enum Taken {
    Batch { runs: Vec<Run>, messages: usize, dropped: u64 },
    Closed(String),
}

/// Consecutive messages of one publisher in a delivered batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub publisher: Arc<str>,
    /// The publisher's sequence number of `payloads[0]`; the rest follow.
    pub first_sequence: u64,
    pub payloads: Vec<Bytes>,
    /// On a durable topic, the offset of `payloads[0]`; the rest follow.
    pub first_offset: Option<u64>,
}

/// One batch taken by a subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub runs: Vec<Run>,
    /// Messages in `runs` together.
    pub messages: usize,
    /// Messages this subscription has lost to drop-oldest so far.
    pub dropped: u64,
}

/// A subscription to one topic. Dropping it ends it.
#[derive(Debug)]
pub struct Subscription {
    topic: Arc<Topic>,
    queue: Arc<SubscriberQueue>,
    batch_max: usize,
    window: Duration,
    bytes_max: usize,
    _slot: SubscriptionSlot,
}

impl Subscription {
    pub(crate) fn new(
        topic: Arc<Topic>,
        queue: Arc<SubscriberQueue>,
        batch_max: usize,
        window: Duration,
        bytes_max: usize,
        slot: SubscriptionSlot,
    ) -> Subscription {
        Subscription { topic, queue, batch_max, window, bytes_max, _slot: slot }
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        self.topic.name()
    }

    /// Messages lost to drop-oldest so far.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped()
    }

    /// The next batch: waits for a first message, then until `batch_max`
    /// are queued or the window since that first message has passed.
    /// `Err` with the reason once the subscription was closed for falling
    /// behind (messages still queued then are lost).
    pub async fn next_batch(&mut self) -> Result<Delivery, String> {
        // A first message.
        loop {
            let (messages, closed) = self.queue.queued();
            if let Some(reason) = closed {
                return Err(reason);
            }
            if messages > 0 {
                break;
            }
            // `notify_one` leaves a permit when nobody waits, so a push
            // between the check and this wait is not missed.
            self.queue.notify.notified().await;
        }
        if !self.window.is_zero() {
            let deadline = Instant::now() + self.window;
            loop {
                let (messages, closed) = self.queue.queued();
                if closed.is_some() || messages >= self.batch_max {
                    break;
                }
                if tokio::time::timeout_at(deadline, self.queue.notify.notified()).await.is_err() {
                    break;
                }
            }
        }
        match self.queue.take(self.batch_max, self.bytes_max) {
            Taken::Closed(reason) => Err(reason),
            Taken::Batch { runs, messages, dropped } => {
                self.topic.delivered.fetch_add(messages as u64, Ordering::Relaxed);
                Ok(Delivery { runs, messages, dropped })
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.topic.detach(self.queue.id());
    }
}
