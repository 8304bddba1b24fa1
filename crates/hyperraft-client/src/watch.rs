//! [`WatchStream`]: the changes of a key or range, each delivered exactly
//! once and in revision order, across disconnects and node failures.
//!
//! A background task holds one `Watch` call to some node. When the call
//! ends or fails for a reason that is not final, the task reconnects (to
//! any node, another one first) and resumes at the revision after the
//! last one it delivered, dropping anything older that a node sends
//! again; so a failover shows neither gaps nor duplicates. The task stops
//! when the stream is dropped.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyperraft_proto::{Event, RangeRequest, WatchRequest, WatchResponse};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Code, Status};

use crate::client::Core;
use crate::error::client_side;
use crate::pool::Target;
use crate::retry::backoff;
use crate::{Client, Error};

/// Responses buffered between the watch task and the consumer; a slow
/// consumer slows the task, which slows the server's stream (HTTP/2 flow
/// control), never memory.
const BUFFER_EVENTS_MAX: usize = 256;

/// How often an idle watch asks the node for its current revision, so a
/// reconnect resumes from there rather than replaying history.
const PROGRESS_INTERVAL_MS: u64 = 1000;

/// The changes of a watched key or range: a [`Stream`] of events, oldest
/// first. It ends after an `Err`: [`Error::Compacted`] when the history
/// needed was dropped (re-read the range and watch again), or the error
/// that made reconnecting pointless (a refused request, or every attempt
/// of the retry budget failed). Dropping it stops the watch.
pub struct WatchStream {
    events: ReceiverStream<Result<Event, Error>>,
    task: JoinHandle<()>,
    node: Arc<Mutex<Option<String>>>,
}

impl WatchStream {
    /// The API address of the node the watch is connected to (or trying
    /// to reach) now; `None` before the first attempt.
    pub fn node_address(&self) -> Option<String> {
        self.node.lock().expect("not poisoned").clone()
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for WatchStream {
    type Item = Result<Event, Error>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.events).poll_next(context)
    }
}

/// The revision of an event: its put's or delete's revision.
pub fn event_revision(event: &Event) -> u64 {
    event.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

impl Client {
    /// Watches `[key, range_end)` (the key alone when `range_end` is empty;
    /// see [`crate::prefix_end`]) from `start_revision`, or, when it is 0,
    /// from the first change after now.
    pub async fn watch(
        &self,
        key: impl Into<Bytes>,
        range_end: impl Into<Bytes>,
        start_revision: u64,
    ) -> Result<WatchStream, Error> {
        let (key, range_end) = (key.into(), range_end.into());
        let start_revision = match start_revision {
            // "Changes after now" must mean the same after a reconnect: pin now.
            0 => {
                let request = RangeRequest { key: key.clone(), count_only: true, ..RangeRequest::default() };
                let now = self.range(request).await?.header.map_or(0, |header| header.revision);
                now + 1
            }
            revision => revision,
        };
        let (sender, receiver) = mpsc::channel(BUFFER_EVENTS_MAX);
        let node = Arc::new(Mutex::new(None));
        let watch = Watch {
            core: self.core.clone(),
            key,
            range_end,
            next_revision: start_revision,
            sender,
            node: node.clone(),
        };
        let task = tokio::spawn(watch.run());
        Ok(WatchStream { events: ReceiverStream::new(receiver), task, node })
    }
}

struct Watch {
    core: Arc<Core>,
    key: Bytes,
    range_end: Bytes,
    /// The first revision not delivered yet.
    next_revision: u64,
    sender: mpsc::Sender<Result<Event, Error>>,
    /// The address of the node followed now, for [`WatchStream::node_address`].
    node: Arc<Mutex<Option<String>>>,
}

/// How one connection of a watch ended.
enum Ended {
    /// The consumer is gone.
    Dropped,
    /// Worth reconnecting; `progressed` when it delivered something first.
    Broken { status: Status, progressed: bool },
    /// Final: deliver the error and stop.
    Final(Error),
}

impl Watch {
    async fn run(mut self) {
        let retry = self.core.pool.config().retry.clone();
        let mut failures = 0;
        let mut avoid = None;
        loop {
            let checkout = self.core.pool.checkout(&self.core.pool.pick(Target::Any, avoid.as_ref()));
            *self.node.lock().expect("not poisoned") = Some(checkout.endpoint.address.clone());
            let status = match self.follow(checkout.channel.clone()).await {
                Ended::Dropped => return,
                Ended::Final(error) => {
                    let _ = self.sender.send(Err(error)).await;
                    return;
                }
                Ended::Broken { status, progressed } => {
                    if progressed {
                        failures = 0;
                    }
                    status
                }
            };
            tracing::debug!(code = ?status.code(), message = status.message(), next = self.next_revision, "watch reconnects");
            self.core.pool.failed(&checkout.endpoint, client_side(&status));
            avoid = Some(checkout.endpoint.clone());
            failures += 1;
            if failures >= retry.attempts {
                let error =
                    Error::Unavailable(format!("watch gave up after {failures} attempts: {}", status.message()));
                let _ = self.sender.send(Err(error)).await;
                return;
            }
            tokio::time::sleep(backoff(&retry, failures - 1)).await;
        }
    }

    /// Follows one `Watch` call until it ends.
    async fn follow(&mut self, channel: crate::pool::Channel) -> Ended {
        let request = WatchRequest {
            key: self.key.clone(),
            range_end: self.range_end.clone(),
            start_revision: self.next_revision,
            prev_kv: false,
            progress_interval_ms: PROGRESS_INTERVAL_MS,
        };
        let mut kv = self.core.kv(channel);
        let started = tokio::select! {
            started = kv.watch(request) => started,
            () = self.sender.closed() => return Ended::Dropped,
        };
        let mut stream = match started {
            Ok(response) => response.into_inner(),
            Err(status) => return judge(status, false),
        };
        let mut progressed = false;
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                () = self.sender.closed() => return Ended::Dropped,
            };
            match message {
                Ok(Some(response)) => {
                    if !self.deliver(response).await {
                        return Ended::Dropped;
                    }
                    progressed = true;
                }
                Ok(None) => {
                    return Ended::Broken { status: Status::unavailable("the node ended the watch"), progressed }
                }
                Err(status) => return judge(status, progressed),
            }
        }
    }

    /// Delivers the events of `response` not delivered before; false when
    /// the consumer is gone.
    async fn deliver(&mut self, response: WatchResponse) -> bool {
        let first_new = self.next_revision;
        let mut next = first_new;
        for event in response.events {
            let revision = event_revision(&event);
            // A node that replays from an older revision repeats events already delivered.
            if revision < first_new {
                continue;
            }
            next = next.max(revision + 1);
            if self.sender.send(Ok(event)).await.is_err() {
                return false;
            }
        }
        // Every event of a revision comes in one response, and the header
        // says everything up to its revision was delivered.
        let current = response.header.map_or(0, |header| header.revision);
        self.next_revision = next.max(current + 1);
        true
    }
}

/// Whether a failed watch call is worth another connection.
fn judge(status: Status, progressed: bool) -> Ended {
    match status.code() {
        Code::OutOfRange
        | Code::InvalidArgument
        | Code::Unimplemented
        | Code::NotFound
        | Code::FailedPrecondition
        | Code::Unauthenticated
        | Code::PermissionDenied
            if !client_side(&status) =>
        {
            Ended::Final(Error::from_status(&status))
        }
        _ => Ended::Broken { status, progressed },
    }
}
