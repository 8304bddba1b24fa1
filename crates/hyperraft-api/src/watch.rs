//! `Kv.Watch`: a stream of the changes of a key or range, served from this
//! node's applied state.
//!
//! Each watch is one task that reads the store's bounded event history
//! (`KvStore::events_since`) under the state lock, turns the events of its
//! range into responses, and sends them down a bounded channel to the
//! client. It reads again whenever the node's applied index moves, which
//! the Raft metrics channel announces. Everything is bounded:
//!
//! - watches at once ([`crate::ApiConfig::watches_max`]): one more is
//!   refused with `RESOURCE_EXHAUSTED`;
//! - events and bytes per response: a response ends at a revision boundary
//!   once the next revision would overflow it (one revision larger than the
//!   bound alone is sent alone: a revision is never split);
//! - responses buffered per watch: when the client reads slower than the
//!   store changes, the task waits for room (backpressure), so a slow
//!   client costs a fixed amount of memory; the history it has not read
//!   yet stays in the store, and if the store drops it first the watch
//!   ends with `OUT_OF_RANGE` like a start that is too old;
//! - events scanned per hold of the state lock, so a watch far behind
//!   never holds up the apply of new entries for long.
//!
//! A watch ends when the client goes away (its stream is dropped), when
//! the server shuts down (`UNAVAILABLE`: reconnect elsewhere with
//! `start_revision` = last revision + 1), or when the history it needs was
//! compacted (`OUT_OF_RANGE` with `hyperraft-compact-revision`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyperraft_state::kv::{Event, EventKind, KeyValue, KvError, KvStore};
use prost::Message;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::Stream;
use tonic::Status;

use crate::api::Api;
use crate::errors::{compacted, retry_safe};
use crate::proto;

/// Shortest progress interval a client may ask for; a shorter one is
/// refused rather than letting one watch busy the node with empty responses.
pub(crate) const PROGRESS_INTERVAL_MS_MIN: u64 = 10;

/// Events looked at per hold of the state lock (matching or not).
const EVENTS_SCANNED_PER_READ_MAX: usize = 16_384;

/// What one watch selects and sends; checked by the handler.
#[derive(Clone, Debug)]
pub(crate) struct WatchSpec {
    pub(crate) key: Vec<u8>,
    pub(crate) range_end: Vec<u8>,
    pub(crate) prev_kv: bool,
    /// The first revision delivered; 0 for the next change.
    pub(crate) start_revision: u64,
    pub(crate) progress_interval: Option<Duration>,
}

impl WatchSpec {
    /// Whether `key` is in the watched range (etcd's `range_end` rules).
    fn contains(&self, key: &[u8]) -> bool {
        match self.range_end.as_slice() {
            [] => key == self.key.as_slice(),
            [0] => key >= self.key.as_slice(),
            end => self.key.as_slice() <= key && key < end,
        }
    }
}

/// Bounds of one response.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResponseBounds {
    pub(crate) events_max: usize,
    pub(crate) bytes_max: usize,
}

/// The events read for one response.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Collected {
    pub(crate) events: Vec<proto::Event>,
    /// Every change of the range up to this revision is in `events` or was
    /// sent before.
    pub(crate) through: u64,
    /// The whole history after the start was looked at: the watch is
    /// current to the store's revision.
    pub(crate) caught_up: bool,
    /// The revision to report in the header: `through`, or the store's
    /// revision when the watch starts after it (a start in the future).
    pub(crate) current: u64,
}

/// The events of `spec`'s range with a revision above `after`, whole
/// revisions only, within `bounds` (a first revision larger than them
/// alone is taken alone).
pub(crate) fn collect(
    store: &KvStore,
    after: u64,
    spec: &WatchSpec,
    bounds: ResponseBounds,
) -> Result<Collected, KvError> {
    let mut collected = Collected { events: Vec::new(), through: after, caught_up: false, current: 0 };
    let mut bytes = 0usize;
    let mut group: Vec<proto::Event> = Vec::new();
    let mut group_bytes = 0usize;
    let mut group_revision: Option<u64> = None;
    for (scanned, event) in store.events_since(after)?.enumerate() {
        let revision = event.revision();
        if group_revision != Some(revision) {
            if let Some(done) = group_revision {
                // The previous revision is complete: take it if it fits.
                if !fits(&collected, bytes, group.len(), group_bytes, bounds) {
                    return Ok(partial(collected));
                }
                collected.events.append(&mut group);
                bytes += group_bytes;
                group_bytes = 0;
                collected.through = done;
                if scanned >= EVENTS_SCANNED_PER_READ_MAX {
                    return Ok(partial(collected));
                }
            }
            group_revision = Some(revision);
        }
        if spec.contains(&event.kv.key) {
            let message = event_message(event, spec.prev_kv);
            group_bytes += message.encoded_len();
            group.push(message);
        }
    }
    if let Some(done) = group_revision {
        if !fits(&collected, bytes, group.len(), group_bytes, bounds) {
            return Ok(partial(collected));
        }
        collected.events.append(&mut group);
        collected.through = done;
    }
    collected.current = store.revision();
    collected.through = collected.through.max(store.revision());
    collected.caught_up = true;
    Ok(collected)
}

/// A response that ends before the store's revision.
fn partial(mut collected: Collected) -> Collected {
    collected.current = collected.through;
    collected
}

/// Whether a revision of `count` events and `bytes` bytes fits after what
/// is collected. An empty response takes any revision: it is never split.
fn fits(collected: &Collected, bytes: usize, count: usize, group_bytes: usize, bounds: ResponseBounds) -> bool {
    collected.events.is_empty()
        || (collected.events.len() + count <= bounds.events_max && bytes + group_bytes <= bounds.bytes_max)
}

fn key_value(pair: &KeyValue) -> proto::KeyValue {
    proto::KeyValue {
        key: pair.key.clone().into(),
        value: pair.value.clone().into(),
        create_revision: pair.create_revision,
        mod_revision: pair.mod_revision,
        version: pair.version,
        lease: pair.lease,
    }
}

fn event_message(event: &Event, prev_kv: bool) -> proto::Event {
    let kind = match event.kind {
        EventKind::Put => proto::event::EventType::Put,
        EventKind::Delete => proto::event::EventType::Delete,
    };
    proto::Event {
        r#type: kind as i32,
        kv: Some(key_value(&event.kv)),
        prev_kv: if prev_kv { event.prev.as_ref().map(key_value) } else { None },
    }
}

/// The response stream of one watch: the task's responses, then the
/// status the watch ended with, if it ended with an error.
pub(crate) struct WatchResponses {
    responses: mpsc::Receiver<proto::WatchResponse>,
    end: Option<oneshot::Receiver<Status>>,
}

impl Stream for WatchResponses {
    type Item = Result<proto::WatchResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.responses.poll_recv(context) {
            Poll::Ready(Some(response)) => return Poll::Ready(Some(Ok(response))),
            Poll::Ready(None) => {}
            Poll::Pending => return Poll::Pending,
        }
        // The task is gone; it set its final status (if any) before it
        // dropped the response sender, so the status is ready now.
        let Some(mut end) = self.end.take() else {
            return Poll::Ready(None);
        };
        match Pin::new(&mut end).poll(context) {
            Poll::Ready(Ok(status)) => Poll::Ready(Some(Err(status))),
            Poll::Ready(Err(_)) | Poll::Pending => Poll::Ready(None),
        }
    }
}

/// Starts the task of one watch and answers its response stream. The task
/// holds `permit` (its place among `watches_max`) until it ends.
pub(crate) fn start(api: Arc<Api>, spec: WatchSpec, permit: OwnedSemaphorePermit) -> WatchResponses {
    let (sender, responses) = mpsc::channel(api.config.watch_responses_buffered);
    let (end_sender, end) = oneshot::channel();
    let task = WatchTask {
        bounds: ResponseBounds {
            events_max: api.config.watch_events_per_response_max,
            bytes_max: api.config.watch_response_bytes_max,
        },
        shutdown: api.shutdown.clone(),
        api,
        spec,
        sender,
    };
    let active = metrics::gauge!("hyperraft_watches_active", "node" => task.api.node_label.clone());
    active.increment(1.0);
    tokio::spawn(async move {
        let ending = task.run().await;
        active.decrement(1.0);
        drop(permit);
        if let Some(status) = ending {
            // The client may be gone already; then nobody reads it.
            let _ = end_sender.send(status);
        }
    });
    WatchResponses { responses, end: Some(end) }
}

struct WatchTask {
    api: Arc<Api>,
    spec: WatchSpec,
    bounds: ResponseBounds,
    sender: mpsc::Sender<proto::WatchResponse>,
    shutdown: watch::Receiver<bool>,
}

/// What woke an idle watch.
enum Wake {
    /// The node's metrics changed (false: the node is gone).
    Metrics(bool),
    Progress,
}

/// Why a watch stopped sending.
enum Stop {
    /// The client went away: nothing to tell it.
    Gone,
    /// The watch ends with this status.
    Ended(Status),
}

impl WatchTask {
    /// Runs the watch until it ends; answers the status to end the stream with.
    async fn run(mut self) -> Option<Status> {
        match self.serve().await {
            Err(Stop::Gone) => None,
            Err(Stop::Ended(status)) => Some(status),
            Ok(never) => match never {},
        }
    }

    async fn serve(&mut self) -> Result<Infallible, Stop> {
        let mut metrics = self.api.node.raft().metrics();
        let mut applied = metrics.borrow_and_update().last_applied;
        let mut after = match self.spec.start_revision {
            0 => self.api.node.state().read(|state| state.kv().revision()),
            start => start - 1,
        };
        let mut progress = self.spec.progress_interval.map(|interval| {
            let mut progress = tokio::time::interval_at(Instant::now() + interval, interval);
            progress.set_missed_tick_behavior(MissedTickBehavior::Delay);
            progress
        });
        // The cursor (`after`) may lie ahead of the store when the watch
        // starts in the future; headers report what the store reached.
        let mut current = after;
        let mut read = true;
        loop {
            if read {
                let collected =
                    self.api.node.state().read(|state| collect(state.kv(), after, &self.spec, self.bounds)).map_err(
                        |error| match error {
                            KvError::Compacted { oldest } => Stop::Ended(compacted(oldest + 1)),
                            other => Stop::Ended(Status::internal(format!("reading the event history: {other}"))),
                        },
                    );
                let collected = collected?;
                after = collected.through;
                current = collected.current;
                if !collected.events.is_empty() {
                    self.send(current, collected.events).await?;
                    if let Some(progress) = progress.as_mut() {
                        progress.reset();
                    }
                }
                if !collected.caught_up {
                    // More to read: let other tasks (and the apply) run first.
                    tokio::task::yield_now().await;
                    continue;
                }
                read = false;
            }
            let woken = tokio::select! {
                _ = self.shutdown.wait_for(|stopped| *stopped) => return Err(Stop::Ended(shutting_down())),
                _ = self.sender.closed() => return Err(Stop::Gone),
                changed = metrics.changed() => Wake::Metrics(changed.is_ok()),
                _ = tick(&mut progress) => Wake::Progress,
            };
            match woken {
                Wake::Metrics(false) => return Err(Stop::Ended(shutting_down())),
                Wake::Metrics(true) => {
                    // Most metric changes are not applies (heartbeats,
                    // replication progress); only a new applied index can
                    // bring new events.
                    let now = metrics.borrow_and_update().last_applied;
                    read = now != applied;
                    applied = now;
                }
                Wake::Progress => self.send(current, Vec::new()).await?,
            }
        }
    }

    /// Sends one response, waiting for room in the channel (backpressure)
    /// unless the client goes away or the server shuts down meanwhile.
    async fn send(&mut self, revision: u64, events: Vec<proto::Event>) -> Result<(), Stop> {
        let header = Some(proto::ResponseHeader { revision, node_id: self.api.node_id() });
        let response = proto::WatchResponse { header, events };
        tokio::select! {
            sent = self.sender.send(response) => sent.map_err(|_| Stop::Gone),
            _ = self.shutdown.wait_for(|stopped| *stopped) => Err(Stop::Ended(shutting_down())),
        }
    }
}

/// The next progress tick, or never when the watch asked for none.
async fn tick(progress: &mut Option<tokio::time::Interval>) {
    match progress {
        Some(progress) => {
            progress.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A watch only reads, so resuming it elsewhere is always safe.
fn shutting_down() -> Status {
    retry_safe(Status::unavailable(
        "the node's API is shutting down; watch again elsewhere from the last revision received + 1",
    ))
}

#[cfg(test)]
mod tests;
