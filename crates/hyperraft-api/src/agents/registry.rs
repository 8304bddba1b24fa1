//! [`Registry`]: the agent sessions open on this node, and the one way a
//! message reaches an agent ([`Registry::send`]).

use std::collections::HashMap;
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
    /// Set once with the reason the node ends the session.
    closing: Mutex<Option<String>>,
    closed: Notify,
}

impl SessionHandle {
    /// Asks the session to end with `reason` (the first reason wins).
    pub(crate) fn close(&self, reason: impl Into<String>) {
        let mut closing = self.closing.lock().expect("the closing lock is never poisoned");
        if closing.is_none() {
            *closing = Some(reason.into());
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
    pub(crate) async fn closed(&self) -> String {
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

/// Counters of the sessions of one node; atomics, read without locks.
#[derive(Default)]
pub(crate) struct SessionCounters {
    pub(crate) opened: AtomicU64,
    pub(crate) closed_slow: AtomicU64,
    pub(crate) messages_sent: AtomicU64,
}

/// The sessions open on this node, by agent id.
pub(crate) struct Registry {
    sessions: Mutex<HashMap<u64, Arc<SessionHandle>>>,
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
    pub(crate) fn new(sessions_max: usize, queue_max: usize) -> Registry {
        Registry {
            sessions: Mutex::new(HashMap::new()),
            open: AtomicUsize::new(0),
            sessions_max,
            queue_max,
            next_generation: AtomicU64::new(1),
            counters: SessionCounters::default(),
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
        let old = self.lock().insert(agent_id, handle.clone());
        if let Some(old) = old {
            old.close("the agent opened a newer session");
        }
        self.counters.opened.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
        (handle, receiver)
    }

    /// Removes the session if it is still the agent's current one.
    pub(crate) fn remove(&self, handle: &SessionHandle) {
        let mut sessions = self.lock();
        if sessions.get(&handle.agent_id).is_some_and(|current| current.generation == handle.generation) {
            sessions.remove(&handle.agent_id);
        }
    }

    /// The open sessions, by agent id.
    pub(crate) fn snapshot(&self) -> Vec<Arc<SessionHandle>> {
        let mut sessions: Vec<_> = self.lock().values().cloned().collect();
        sessions.sort_unstable_by_key(|session| session.agent_id);
        sessions
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
        let message = proto::NodeToAgent { message: Some(message) };
        match session.outbound.try_send(message) {
            Ok(()) => {
                self.counters.messages_sent.fetch_add(1, Ordering::Relaxed);
                Sent::Queued
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.counters.closed_slow.fetch_add(1, Ordering::Relaxed);
                session.close(format!(
                    "slow consumer: {} messages queued and unread; reconnect and resume",
                    self.queue_max
                ));
                Sent::SlowConsumer
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Sent::NoSession,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<SessionHandle>>> {
        self.sessions.lock().expect("the session map lock is never poisoned")
    }
}
