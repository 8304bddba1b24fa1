//! [`Registry`]: the agent sessions open on this node, and the one way a
//! message reaches an agent ([`Registry::send`]).
//!
//! Its counters are atomics, and each is exported through the `metrics`
//! facade too (handles made once, so counting takes no lock and no
//! allocation): `hyperraft_agent_sessions_open`,
//! `hyperraft_agent_sessions_opened_total`,
//! `hyperraft_agent_sessions_closed_total{reason}`,
//! `hyperraft_agent_assignments_sent_total`,
//! `hyperraft_agent_messages_sent_total` and
//! `hyperraft_agent_results_received_total`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Notify};

use crate::proto::{self, node_to_agent};

/// One open session, as the dispatcher and other sessions see it.
pub(crate) struct SessionHandle {
    pub(crate) agent_id: u64,
    pub(crate) agent_type: String,
    pub(crate) max_concurrent: u32,
    /// Distinguishes a resumed agent's new session from its old one.
    pub(crate) generation: u64,
    outbound: mpsc::Sender<proto::NodeToAgent>,
    /// Set once with why the node ends the session: the metric's reason
    /// label and the message for the agent.
    closing: Mutex<Option<(CloseKind, String)>>,
    closed: Notify,
}

impl SessionHandle {
    /// Asks the session to end with `reason` (the first reason wins).
    pub(crate) fn close(&self, kind: CloseKind, reason: impl Into<String>) {
        let mut closing = self.closing.lock().expect("the closing lock is never poisoned");
        if closing.is_none() {
            *closing = Some((kind, reason.into()));
            // `notify_one` keeps the permit if the session is not waiting yet.
            self.closed.notify_one();
        }
    }

    /// Queues a bus message for the agent, waiting while the session's
    /// queue is more than half full: bus traffic waits for room (so the
    /// bus queue behind it fills and the topic's slow-consumer policy
    /// applies) and always leaves half of the queue to assignments. `Err`
    /// once the session is gone.
    pub(crate) async fn send_bus(&self, message: node_to_agent::Message) -> Result<(), ()> {
        let half = self.outbound.max_capacity() / 2;
        while self.outbound.capacity() <= half {
            if self.outbound.is_closed() {
                return Err(());
            }
            // The queue drains as the gRPC stream sends; no notification
            // exists for "room freed", so look again shortly.
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        self.outbound.try_send(proto::NodeToAgent { message: Some(message) }).map_err(drop)
    }

    /// Waits until [`Self::close`] is called; returns its reason.
    pub(crate) async fn closed(&self) -> (CloseKind, String) {
        loop {
            if let Some(reason) = self.closing.lock().expect("the closing lock is never poisoned").clone() {
                return reason;
            }
            self.closed.notified().await;
        }
    }
}

/// What became of a message for an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    Queued,
    /// No session of this agent is open here.
    NoSession,
    /// The agent's queue was full: the session is being closed.
    SlowConsumer,
}

/// Why a session ended: the `reason` label of
/// `hyperraft_agent_sessions_closed_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CloseKind {
    /// The agent closed its side.
    Left,
    /// The stream broke (the connection, the agent process).
    Broken,
    /// Its queue filled: the agent did not read.
    SlowConsumer,
    /// The same agent opened a newer session.
    Replaced,
    /// This node no longer leads.
    NotLeader,
    /// The server is shutting down.
    Shutdown,
    /// Its lease expired or could not be renewed.
    Lease,
    /// The agent broke the protocol.
    Protocol,
}

impl CloseKind {
    const ALL: [CloseKind; 8] = [
        CloseKind::Left,
        CloseKind::Broken,
        CloseKind::SlowConsumer,
        CloseKind::Replaced,
        CloseKind::NotLeader,
        CloseKind::Shutdown,
        CloseKind::Lease,
        CloseKind::Protocol,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            CloseKind::Left => "left",
            CloseKind::Broken => "broken",
            CloseKind::SlowConsumer => "slow_consumer",
            CloseKind::Replaced => "replaced",
            CloseKind::NotLeader => "not_leader",
            CloseKind::Shutdown => "shutdown",
            CloseKind::Lease => "lease",
            CloseKind::Protocol => "protocol",
        }
    }
}

/// Counters of the sessions of one node: atomics, read without locks, and
/// the same counts as `metrics` handles.
pub(crate) struct SessionCounters {
    pub(crate) opened: AtomicU64,
    /// By [`CloseKind`], in the order of `CloseKind::ALL`.
    pub(crate) closed: [AtomicU64; CloseKind::ALL.len()],
    pub(crate) messages_sent: AtomicU64,
    pub(crate) assignments_sent: AtomicU64,
    pub(crate) results_received: AtomicU64,
    open_gauge: metrics::Gauge,
    opened_metric: metrics::Counter,
    closed_metric: [metrics::Counter; CloseKind::ALL.len()],
    messages_metric: metrics::Counter,
    assignments_metric: metrics::Counter,
    results_metric: metrics::Counter,
}

impl SessionCounters {
    fn new(node_label: &str) -> SessionCounters {
        let node = node_label.to_string();
        SessionCounters {
            opened: AtomicU64::new(0),
            closed: std::array::from_fn(|_| AtomicU64::new(0)),
            messages_sent: AtomicU64::new(0),
            assignments_sent: AtomicU64::new(0),
            results_received: AtomicU64::new(0),
            open_gauge: metrics::gauge!("hyperraft_agent_sessions_open", "node" => node.clone()),
            opened_metric: metrics::counter!("hyperraft_agent_sessions_opened_total", "node" => node.clone()),
            closed_metric: CloseKind::ALL.map(|kind| {
                metrics::counter!("hyperraft_agent_sessions_closed_total", "node" => node.clone(), "reason" => kind.label())
            }),
            messages_metric: metrics::counter!("hyperraft_agent_messages_sent_total", "node" => node.clone()),
            assignments_metric: metrics::counter!("hyperraft_agent_assignments_sent_total", "node" => node.clone()),
            results_metric: metrics::counter!("hyperraft_agent_results_received_total", "node" => node),
        }
    }

    /// Counts a session that ended, by why.
    pub(crate) fn count_closed(&self, kind: CloseKind) {
        let index = CloseKind::ALL.iter().position(|known| *known == kind).expect("every kind is listed");
        self.closed[index].fetch_add(1, Ordering::Relaxed);
        self.closed_metric[index].increment(1);
    }

    /// Counts a result an agent sent, accepted or not.
    pub(crate) fn count_result(&self) {
        self.results_received.fetch_add(1, Ordering::Relaxed);
        self.results_metric.increment(1);
    }
}

/// The sessions open on this node, by agent id.
pub(crate) struct Registry {
    /// Ordered by agent id, which is the order the dispatcher wants.
    sessions: Mutex<BTreeMap<u64, Arc<SessionHandle>>>,
    /// Sessions counted against `sessions_max`, including ones registering.
    open: AtomicUsize,
    sessions_max: usize,
    queue_max: usize,
    next_generation: AtomicU64,
    pub(crate) counters: SessionCounters,
    /// Wakes the dispatcher: work may be waiting.
    pub(crate) wake: Notify,
}

/// A place among `sessions_max`; given back when dropped.
pub(crate) struct Place {
    registry: Arc<Registry>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.registry.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Registry {
    pub(crate) fn new(sessions_max: usize, queue_max: usize, node_label: &str) -> Registry {
        Registry {
            sessions: Mutex::new(BTreeMap::new()),
            open: AtomicUsize::new(0),
            sessions_max,
            queue_max,
            next_generation: AtomicU64::new(1),
            counters: SessionCounters::new(node_label),
            wake: Notify::new(),
        }
    }

    /// A place for one more session, or `None` at `sessions_max`.
    pub(crate) fn reserve(self: &Arc<Self>) -> Option<Place> {
        let taken = self.open.fetch_add(1, Ordering::AcqRel);
        let place = Place { registry: self.clone() };
        (taken < self.sessions_max).then_some(place)
    }

    pub(crate) fn sessions_max(&self) -> usize {
        self.sessions_max
    }

    /// The most copies one agent is given at once, whatever its
    /// `max_concurrent`: a quarter of its session queue (at least one).
    /// Bus traffic may hold half of the queue ([`SessionHandle::send_bus`]);
    /// of the half left, assignments take at most half, so that every copy
    /// in flight can also be answered by its `ResultAck` or `Cancel` before
    /// the agent reads any of them. One dispatch round then never queues
    /// more than the session takes, and only an agent that stops reading
    /// fills its queue.
    pub(crate) fn assignments_in_flight_max(&self) -> u32 {
        let quarter = (self.queue_max / 4).max(1);
        u32::try_from(quarter).unwrap_or(u32::MAX)
    }

    /// Adds a session and its outbound queue; an older session of the same
    /// agent is closed (the agent resumed elsewhere or reconnected).
    pub(crate) fn insert(
        &self,
        agent_id: u64,
        agent_type: String,
        max_concurrent: u32,
    ) -> (Arc<SessionHandle>, mpsc::Receiver<proto::NodeToAgent>) {
        let (outbound, receiver) = mpsc::channel(self.queue_max);
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(SessionHandle {
            agent_id,
            agent_type,
            max_concurrent,
            generation,
            outbound,
            closing: Mutex::new(None),
            closed: Notify::new(),
        });
        let (old, open) = {
            let mut sessions = self.lock();
            (sessions.insert(agent_id, handle.clone()), sessions.len())
        };
        self.counters.open_gauge.set(open as f64);
        if let Some(old) = old {
            old.close(CloseKind::Replaced, "the agent opened a newer session");
        }
        self.counters.opened.fetch_add(1, Ordering::Relaxed);
        self.counters.opened_metric.increment(1);
        self.wake.notify_one();
        (handle, receiver)
    }

    /// Removes the session if it is still the agent's current one.
    pub(crate) fn remove(&self, handle: &SessionHandle) {
        let mut sessions = self.lock();
        if sessions.get(&handle.agent_id).is_some_and(|current| current.generation == handle.generation) {
            sessions.remove(&handle.agent_id);
        }
        self.counters.open_gauge.set(sessions.len() as f64);
    }

    /// The open sessions, by agent id.
    pub(crate) fn snapshot(&self) -> Vec<Arc<SessionHandle>> {
        self.lock().values().cloned().collect()
    }

    pub(crate) fn get(&self, agent_id: u64) -> Option<Arc<SessionHandle>> {
        self.lock().get(&agent_id).cloned()
    }

    /// Queues `message` for the agent without waiting. A full queue closes
    /// the session with a reason: a message is never dropped silently.
    pub(crate) fn send(&self, agent_id: u64, message: node_to_agent::Message) -> Sent {
        let Some(session) = self.get(agent_id) else {
            return Sent::NoSession;
        };
        let assignment = matches!(message, node_to_agent::Message::Assignment(_));
        let message = proto::NodeToAgent { message: Some(message) };
        match session.outbound.try_send(message) {
            Ok(()) => {
                self.counters.messages_sent.fetch_add(1, Ordering::Relaxed);
                self.counters.messages_metric.increment(1);
                if assignment {
                    self.counters.assignments_sent.fetch_add(1, Ordering::Relaxed);
                    self.counters.assignments_metric.increment(1);
                }
                Sent::Queued
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                session.close(
                    CloseKind::SlowConsumer,
                    format!("slow consumer: {} messages queued and unread; reconnect and resume", self.queue_max),
                );
                Sent::SlowConsumer
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Sent::NoSession,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<SessionHandle>>> {
        self.sessions.lock().expect("the session map lock is never poisoned")
    }
}
