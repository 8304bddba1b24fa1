//! One agent session: registration, then a task per session that reads
//! the agent's messages (heartbeats, results) and ends the session when
//! the agent leaves, the node stops leading, the server shuts down, or the
//! registry closes it (a full queue, a newer session of the same agent).
//! Bus messages ride the same session ([`SessionBus`]): publishes as the
//! agent, and subscriptions whose batches come from the bus's own queues.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyperraft_raft::{KvResult, TaskDecision, TaskResult};
use hyperraft_wire::kv::{LEASE_TTL_MS_MAX, LEASE_TTL_MS_MIN};
use hyperraft_wire::tasks::{PAYLOAD_BYTES_MAX, REASON_BYTES_MAX};
use hyperraft_wire::{LeaseGrantView, LeaseRevokeView, PutView, ReleaseAgentView, ReportResultView, TaskOutcomeView};
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;
use tonic::{Status, Streaming};

use super::registry::{CloseKind, Place, SessionHandle};
use super::tasks::{task_frame, task_results};
use super::Hub;
use crate::convert::refused;
use crate::errors::{invalid_argument, resource_exhausted, unexpected};
use crate::kv::{kv_frame, only_result};
use crate::lease::keep_alive_once;
use crate::proto::{self, agent_to_node, node_to_agent};

/// How long a new session may take to send `register`.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
/// Most copies one agent may run at once.
pub(crate) const MAX_CONCURRENT_MAX: u32 = 1024;
/// Bounds of a registration's descriptive fields.
const CAPABILITIES_MAX: usize = 64;
const LABELS_MAX: usize = 64;
pub(crate) const FIELD_BYTES_MAX: usize = 256;
/// Bus subscriptions one session may hold at once.
const BUS_SUBSCRIPTIONS_MAX: usize = 64;

/// The key that holds an agent's registration, attached to its lease.
pub(crate) fn agent_key(agent_type: &str, agent_id: u64) -> Vec<u8> {
    format!("{}{agent_type}/{agent_id:016x}", super::AGENTS_PREFIX).into_bytes()
}

/// The response stream of a session: queued messages, then the closing
/// message, which is sent ahead of anything still queued.
pub(crate) struct SessionStream {
    outbound: mpsc::Receiver<proto::NodeToAgent>,
    last: Option<oneshot::Receiver<proto::NodeToAgent>>,
}

impl Stream for SessionStream {
    type Item = Result<proto::NodeToAgent, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(last) = self.last.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(closing) = Pin::new(last).poll(cx) {
            self.last = None;
            return Poll::Ready(closing.ok().map(Ok));
        }
        match self.outbound.poll_recv(cx) {
            Poll::Ready(Some(message)) => Poll::Ready(Some(Ok(message))),
            // Every sender gone: the closing message (polled above) follows.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

/// A checked `Register`.
struct Registration {
    agent_type: String,
    max_concurrent: u32,
    ttl_ms: u64,
    resume_agent_id: u64,
    info: proto::AgentInfo,
}

/// Checks a `Register`; the agent's `max_concurrent` is then lowered to
/// `in_flight_max`, what its session queue holds (see
/// `Registry::assignments_in_flight_max`), so the dispatcher and the agent's
/// registration (`AgentInfo.max_concurrent`) both carry the effective value.
fn check_register(
    register: proto::Register,
    default_ttl_ms: u64,
    node_id: u64,
    in_flight_max: u32,
) -> Result<Registration, Status> {
    let type_len = register.agent_type.len();
    let type_ok =
        (1..=hyperraft_wire::tasks::TASK_TYPE_BYTES_MAX).contains(&type_len) && !register.agent_type.contains('/');
    if !type_ok {
        return Err(invalid_argument("register.agent_type", "1 to 128 bytes, without '/'"));
    }
    if !(1..=MAX_CONCURRENT_MAX).contains(&register.max_concurrent) {
        let max_concurrent = register.max_concurrent;
        return Err(invalid_argument(
            "register.max_concurrent",
            format!("{max_concurrent} is outside 1..={MAX_CONCURRENT_MAX}"),
        ));
    }
    let ttl_ms = if register.ttl_ms == 0 { default_ttl_ms } else { register.ttl_ms };
    if !(LEASE_TTL_MS_MIN..=LEASE_TTL_MS_MAX).contains(&ttl_ms) {
        return Err(invalid_argument(
            "register.ttl_ms",
            format!("{ttl_ms} is outside {LEASE_TTL_MS_MIN}..={LEASE_TTL_MS_MAX}"),
        ));
    }
    let long = |text: &String| text.len() > FIELD_BYTES_MAX;
    if register.capabilities.len() > CAPABILITIES_MAX || register.capabilities.iter().any(long) {
        return Err(invalid_argument(
            "register.capabilities",
            format!("at most {CAPABILITIES_MAX} of at most {FIELD_BYTES_MAX} bytes"),
        ));
    }
    if register.labels.len() > LABELS_MAX || register.labels.iter().any(|(key, value)| long(key) || long(value)) {
        return Err(invalid_argument(
            "register.labels",
            format!("at most {LABELS_MAX} of at most {FIELD_BYTES_MAX} bytes each"),
        ));
    }
    let max_concurrent = register.max_concurrent.min(in_flight_max);
    let info = proto::AgentInfo {
        agent_id: 0,
        agent_type: register.agent_type.clone(),
        capabilities: register.capabilities,
        labels: register.labels,
        max_concurrent,
        ttl_ms,
        node_id,
        running: 0,
    };
    Ok(Registration {
        agent_type: register.agent_type,
        max_concurrent,
        ttl_ms,
        resume_agent_id: register.resume_agent_id,
        info,
    })
}

/// Opens a session: checks the node leads and has room, reads and applies
/// the registration, and starts the session task.
pub(crate) async fn open(hub: Arc<Hub>, mut inbound: Streaming<proto::AgentToNode>) -> Result<SessionStream, Status> {
    let api = &hub.api;
    let leader = api.node.raft().metrics().borrow().current_leader;
    if leader != Some(api.node_id()) {
        return Err(api.not_leader_before_proposal(leader));
    }
    let Some(place) = hub.registry.reserve() else {
        api.count_rejected("agent_sessions");
        let max = hub.registry.sessions_max();
        return Err(resource_exhausted(
            format!("{max} agent sessions are open, the most this node serves"),
            api.config.retry_after,
        ));
    };
    let first = tokio::time::timeout(REGISTER_TIMEOUT, inbound.message())
        .await
        .map_err(|_| invalid_argument("register", "no register message within 10 s"))??;
    let register = match first.and_then(|message| message.message) {
        Some(agent_to_node::Message::Register(register)) => register,
        _ => return Err(invalid_argument("register", "the first message of a session must be register")),
    };
    let in_flight_max = hub.registry.assignments_in_flight_max();
    let registration = check_register(register, hub.config.default_ttl_ms, api.node_id(), in_flight_max)?;
    let (agent_id, ttl_ms, resumed) = apply_registration(&hub, &registration).await?;
    let (handle, outbound) = hub.registry.insert(agent_id, registration.agent_type, registration.max_concurrent);
    let registered = proto::Registered { agent_id, ttl_ms, resumed, heartbeat_interval_ms: (ttl_ms / 3).max(1) };
    // A new queue has room for its first message.
    let _ = hub.registry.send(agent_id, node_to_agent::Message::Registered(registered));
    let (last_sender, last) = oneshot::channel();
    tokio::spawn(run(hub.clone(), handle, inbound, place, last_sender));
    Ok(SessionStream { outbound, last: Some(last) })
}

/// Resumes the agent's lease when asked and alive, else grants a new one;
/// then writes the registration key attached to it.
async fn apply_registration(hub: &Hub, registration: &Registration) -> Result<(u64, u64, bool), Status> {
    let api = &hub.api;
    let mut resumed = None;
    if registration.resume_agent_id != 0 {
        match keep_alive_once(api, registration.resume_agent_id).await {
            Ok(response) => resumed = Some((response.id, response.ttl_ms)),
            Err(status) if status.code() == tonic::Code::NotFound => {}
            Err(status) => return Err(status),
        }
    }
    let (agent_id, ttl_ms) = match resumed {
        Some(lease) => lease,
        None => {
            let frame = kv_frame(|writer| writer.lease_grant(LeaseGrantView { id: 0, ttl_ms: registration.ttl_ms }))?;
            match only_result(api.write(&frame).await?)? {
                KvResult::LeaseGrant { id, ttl_ms, .. } => (id, ttl_ms),
                KvResult::Error { code, message } => return Err(refused(code, message)),
                other => return Err(unexpected(format!("{other:?} for a lease grant"))),
            }
        }
    };
    let info = proto::AgentInfo { agent_id, ..registration.info.clone() };
    let key = agent_key(&registration.agent_type, agent_id);
    let value = info.encode_to_vec();
    let frame = kv_frame(|writer| writer.put(PutView { key: &key, value: &value, lease: agent_id, prev_kv: false }))?;
    match only_result(api.write(&frame).await?)? {
        KvResult::Put { .. } => Ok((agent_id, ttl_ms, resumed.is_some())),
        KvResult::Error { code, message } => Err(refused(code, message)),
        other => Err(unexpected(format!("{other:?} for a put"))),
    }
}

/// How a session ended.
enum End {
    /// The node ends it; the agent is told why.
    Closed(CloseKind, String),
    /// The agent closed its side: it leaves for good.
    Left,
    /// The stream broke; the lease decides whether the agent comes back.
    Broken,
}

async fn run(
    hub: Arc<Hub>,
    handle: Arc<SessionHandle>,
    mut inbound: Streaming<proto::AgentToNode>,
    _place: Place,
    last: oneshot::Sender<proto::NodeToAgent>,
) {
    let api = hub.api.clone();
    let me = api.node_id();
    let mut bus = SessionBus::new(api.clone(), handle.clone());
    let mut shutdown = api.shutdown.clone();
    // Leadership lost after this check closes the session through
    // `watch_leadership`, which sees it in the registry.
    if api.node.raft().metrics().borrow().current_leader != Some(me) {
        handle.close(CloseKind::NotLeader, not_leading(me));
    }
    let end = loop {
        tokio::select! {
            // Only the wake-up matters: the guard it returns must not live on.
            () = async { drop(shutdown.wait_for(|stopped| *stopped).await) } => {
                break End::Closed(CloseKind::Shutdown, "the node is shutting down".into())
            }
            (kind, reason) = handle.closed() => break End::Closed(kind, reason),
            message = inbound.message() => match message {
                Ok(Some(message)) => {
                    if let Err((kind, reason)) = handle_message(&hub, &handle, &mut bus, message).await {
                        break End::Closed(kind, reason);
                    }
                }
                Ok(None) => break End::Left,
                Err(_) => break End::Broken,
            },
        }
    };
    bus.end();
    hub.registry.remove(&handle);
    let kind = match &end {
        End::Closed(kind, _) => *kind,
        End::Left => CloseKind::Left,
        End::Broken => CloseKind::Broken,
    };
    hub.registry.counters.count_closed(kind);
    match end {
        End::Closed(_, reason) => {
            let leader = api.node.raft().metrics().borrow().current_leader.filter(|leader| *leader != me);
            let closing = proto::Closing {
                reason,
                leader_id: leader.unwrap_or(0),
                leader_address: leader.and_then(|leader| api.api_address(leader)).unwrap_or_default(),
            };
            let _ = last.send(proto::NodeToAgent { message: Some(node_to_agent::Message::Closing(closing)) });
            if kind == CloseKind::SlowConsumer {
                release_copies(&hub, handle.agent_id).await;
            }
        }
        End::Left => leave(&hub, handle.agent_id).await,
        End::Broken => {}
    }
    hub.registry.wake.notify_one();
}

fn not_leading(me: u64) -> String {
    format!("node {me} no longer leads; reconnect to the leader and resume")
}

/// Closes every session of this node once it stops leading; ends at
/// server shutdown. One task watches Raft's metrics for all sessions:
/// the metrics change with every applied entry, and ten thousand sessions
/// each watching them would all wake for every commit.
pub(crate) async fn watch_leadership(hub: Arc<Hub>) {
    let me = hub.api.node_id();
    let mut metrics = hub.api.node.raft().metrics();
    let mut shutdown = hub.api.shutdown.clone();
    loop {
        tokio::select! {
            // Only the wake-up matters: the guard it returns must not live on.
            () = async { drop(shutdown.wait_for(|stopped| *stopped).await) } => return,
            changed = metrics.changed() => {
                let leader = metrics.borrow().current_leader;
                if changed.is_err() || leader != Some(me) {
                    for session in hub.registry.snapshot() {
                        session.close(CloseKind::NotLeader, not_leading(me));
                    }
                }
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// An agent that let its queue fill has not read the assignments queued
/// to it, so it may never run them: its copies are released at once for
/// other agents rather than held until its lease runs out. Its lease
/// stays, so it may reconnect and resume its id; a result it sends later
/// for a released copy is refused.
async fn release_copies(hub: &Hub, agent_id: u64) {
    let result = match task_frame(|writer| writer.release(ReleaseAgentView { agent_id })) {
        Ok(frame) => hub.api.write(&frame).await.map(drop),
        Err(status) => Err(status),
    };
    if let Err(status) = result {
        tracing::debug!(agent_id, %status, "slow agent: its lease expiry or run timeouts release its copies instead");
    }
}

/// The agent left: its lease (and with it its key) is revoked and its
/// running copies are released for other agents at once.
async fn leave(hub: &Hub, agent_id: u64) {
    let revoke = kv_frame(|writer| writer.lease_revoke(LeaseRevokeView { id: agent_id }));
    let release = task_frame(|writer| writer.release(ReleaseAgentView { agent_id }));
    for frame in [revoke, release] {
        let result = match frame {
            Ok(frame) => hub.api.write(&frame).await.map(drop),
            Err(status) => Err(status),
        };
        if let Err(status) = result {
            tracing::debug!(agent_id, %status, "leaving agent: the lease expiry releases it instead");
        }
    }
}

/// Handles one message from the agent; `Err` ends the session with the reason.
async fn handle_message(
    hub: &Hub,
    handle: &SessionHandle,
    bus: &mut SessionBus,
    message: proto::AgentToNode,
) -> Result<(), (CloseKind, String)> {
    let protocol = |reason: &str| Err((CloseKind::Protocol, reason.to_string()));
    // The bus fails a session only when its queue has closed under it.
    let broken = |reason: String| (CloseKind::Broken, reason);
    match message.message {
        Some(agent_to_node::Message::BusPublish(publish)) => bus.publish(publish).await.map_err(broken),
        Some(agent_to_node::Message::BusSubscribe(subscribe)) => bus.subscribe(subscribe).await.map_err(broken),
        Some(agent_to_node::Message::BusUnsubscribe(unsubscribe)) => {
            bus.unsubscribe(unsubscribe.subscription_id);
            Ok(())
        }
        Some(agent_to_node::Message::Heartbeat(_)) => match keep_alive_once(&hub.api, handle.agent_id).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == tonic::Code::NotFound => {
                Err((CloseKind::Lease, "the agent's lease expired; register again".to_string()))
            }
            Err(status) => Err((CloseKind::Lease, format!("renewing the agent's lease failed: {}", status.message()))),
        },
        Some(agent_to_node::Message::Result(result)) => {
            hub.registry.counters.count_result();
            let ack = report(hub, handle.agent_id, result).await;
            hub.registry.send(handle.agent_id, node_to_agent::Message::ResultAck(ack));
            Ok(())
        }
        Some(agent_to_node::Message::Register(_)) => protocol("register is only the first message of a session"),
        None => protocol("a message with no content"),
    }
}

/// Commits one result through Raft and says how it went. A refused result
/// changes nothing.
async fn report(hub: &Hub, agent_id: u64, result: proto::TaskResult) -> proto::ResultAck {
    let task_id = result.task_id;
    let refuse = |error: String| proto::ResultAck { task_id, accepted: false, error, decided: false };
    let outcome = match &result.outcome {
        Some(proto::task_result::Outcome::Output(output)) if output.len() > PAYLOAD_BYTES_MAX => {
            return refuse(format!("output of {} bytes exceeds {PAYLOAD_BYTES_MAX}", output.len()));
        }
        Some(proto::task_result::Outcome::Error(error)) if error.len() > REASON_BYTES_MAX => {
            return refuse(format!("error of {} bytes exceeds {REASON_BYTES_MAX}", error.len()));
        }
        Some(proto::task_result::Outcome::Output(output)) => TaskOutcomeView::Success(output),
        Some(proto::task_result::Outcome::Error(error)) => TaskOutcomeView::Failure(error.as_bytes()),
        None => return refuse("a result needs an output or an error".into()),
    };
    let view = ReportResultView { task_id, agent_id, outcome };
    let results = match task_frame(|writer| writer.report(&view)) {
        Ok(frame) => match hub.api.write(&frame).await.and_then(|response| task_results(response, 1)) {
            Ok(results) => results,
            Err(status) => return refuse(status.message().to_string()),
        },
        Err(status) => return refuse(status.message().to_string()),
    };
    hub.registry.wake.notify_one();
    match results.into_iter().next() {
        Some(TaskResult::Reported { decision, .. }) => {
            let decided = decision.is_some();
            if let Some(decision) = decision {
                let reason = match decision {
                    TaskDecision::Succeeded { .. } => "the task succeeded",
                    TaskDecision::Failed { .. } => "the task failed",
                };
                hub.cancel_copies(&[task_id], reason);
            }
            proto::ResultAck { task_id, accepted: true, error: String::new(), decided }
        }
        // The same result was committed before: accepted once, not twice.
        Some(TaskResult::Exists { .. }) => {
            proto::ResultAck { task_id, accepted: true, error: String::new(), decided: false }
        }
        Some(TaskResult::Error { message, .. }) => refuse(message),
        other => refuse(format!("unexpected answer {other:?}")),
    }
}

/// The bus side of one session: the agent's publisher and its
/// subscriptions, each a task that takes batches from the bus and queues
/// them on the session ([`SessionHandle::send_bus`]).
struct SessionBus {
    service: crate::bus::service::BusService,
    handle: Arc<SessionHandle>,
    /// Made on the first publish; named `agent-<id>`.
    publisher: Option<crate::bus::Publisher>,
    subscriptions: std::collections::HashMap<u64, tokio::task::AbortHandle>,
}

impl SessionBus {
    fn new(api: Arc<crate::api::Api>, handle: Arc<SessionHandle>) -> SessionBus {
        let service = crate::bus::service::BusService { api };
        SessionBus { service, handle, publisher: None, subscriptions: std::collections::HashMap::new() }
    }

    /// Publishes as the agent and answers `bus_published`; a refusal is
    /// answered, not fatal. Publishes are handled one after another, so
    /// the agent's messages keep their order.
    async fn publish(&mut self, publish: proto::BusPublish) -> Result<(), String> {
        let topic = publish.topic.clone();
        let refused = |error: String| proto::BusPublished { topic: topic.clone(), error, ..Default::default() };
        if self.publisher.is_none() {
            let id = format!("agent-{}", self.handle.agent_id);
            match self.service.api.bus.publisher(&id) {
                Ok(publisher) => self.publisher = Some(publisher),
                Err(error) => return self.send(node_to_agent::Message::BusPublished(refused(error.to_string()))).await,
            }
        }
        let publisher = self.publisher.as_ref().expect("set above");
        let answer = match self.service.publish_one(publisher, &publish.topic, publish.payloads).await {
            Ok(answer) => answer,
            Err(status) => refused(status.message().to_string()),
        };
        self.send(node_to_agent::Message::BusPublished(answer)).await
    }

    async fn subscribe(&mut self, subscribe: proto::BusSubscribe) -> Result<(), String> {
        let id = subscribe.subscription_id;
        self.subscriptions.retain(|_, task| !task.is_finished());
        let refusal = if self.subscriptions.contains_key(&id) {
            Some(format!("subscription {id} is already open"))
        } else if self.subscriptions.len() >= BUS_SUBSCRIPTIONS_MAX {
            Some(format!("{BUS_SUBSCRIPTIONS_MAX} bus subscriptions are open, the most one session holds"))
        } else {
            None
        };
        if let Some(reason) = refusal {
            return self.ended(id, reason).await;
        }
        let request = proto::SubscribeRequest {
            topic: subscribe.topic,
            batch_max: subscribe.batch_max,
            window_us: subscribe.window_us,
            from_offset: subscribe.from_offset,
        };
        let mut source = match self.service.open_source(&request).await {
            Ok(source) => source,
            Err(status) => return self.ended(id, status.message().to_string()).await,
        };
        let durable = matches!(source, crate::bus::service::Source::Durable(_));
        let handle = self.handle.clone();
        let task = tokio::spawn(async move {
            loop {
                let message = match source.next().await {
                    Ok(response) => node_to_agent::Message::BusDelivery(proto::BusDelivery {
                        subscription_id: id,
                        runs: response.runs,
                        dropped: response.dropped,
                        durable,
                    }),
                    Err(status) => {
                        let reason = status.message().to_string();
                        let ended = proto::BusSubscriptionEnded { subscription_id: id, reason };
                        let _ = handle.send_bus(node_to_agent::Message::BusSubscriptionEnded(ended)).await;
                        return;
                    }
                };
                if handle.send_bus(message).await.is_err() {
                    return;
                }
            }
        });
        self.subscriptions.insert(id, task.abort_handle());
        Ok(())
    }

    fn unsubscribe(&mut self, id: u64) {
        if let Some(task) = self.subscriptions.remove(&id) {
            task.abort();
        }
    }

    async fn ended(&self, id: u64, reason: String) -> Result<(), String> {
        let ended = proto::BusSubscriptionEnded { subscription_id: id, reason };
        self.send(node_to_agent::Message::BusSubscriptionEnded(ended)).await
    }

    async fn send(&self, message: node_to_agent::Message) -> Result<(), String> {
        self.handle.send_bus(message).await.map_err(|()| "the session's queue is closed".to_string())
    }

    /// Ends every subscription (the session is over).
    fn end(&mut self) {
        for (_, task) in self.subscriptions.drain() {
            task.abort();
        }
    }
}
