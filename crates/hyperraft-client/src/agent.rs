//! Agents: task submission and waiting on the [`Client`], and [`run`], the
//! loop of an agent process.
//!
//! An agent implements [`AgentHandler`] and calls [`run`]: it opens a
//! session on the leader, registers, sends a heartbeat every third of its
//! lease's TTL, runs each assignment on its own task (the node never sends
//! more than `max_concurrent` at once), reports each result, and stops a
//! copy the node cancels. When the session ends (the leader changed, the
//! node shut down, the connection broke) it reconnects to the leader and
//! resumes its agent id while the lease lives; the node gives it a new id
//! otherwise.
//!
//! The session carries bus messages too: [`AgentOptions::bus_subscriptions`]
//! are subscribed on every session (a durable one resumes after the last
//! offset it delivered), their batches reach [`AgentHandler::on_bus`], and
//! an [`AgentBus`] (from [`agent_bus`], given to [`run_with_bus`]) publishes
//! as the agent, in order.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyperraft_proto::{
    agent_to_node, node_to_agent, task_result, AgentInfo, AgentToNode, GetTaskRequest, GetTaskResponse, Heartbeat,
    ListAgentsRequest, Register, SubmitTaskRequest, SubmitTaskResponse, TaskResult, WaitTaskRequest,
};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_stream::wrappers::ReceiverStream;

pub use hyperraft_proto::{Assignment, BusDelivery, BusPublished, BusSubscriptionEnded, TaskFailure, TaskStatus};

use crate::client::Core;
use crate::error::client_side;
use crate::pool::Target;
use crate::retry::{backoff, Safety};
use crate::{Client, Error};

/// Longest failure reason the node accepts; longer ones are cut.
const ERROR_BYTES_MAX: usize = 4096;
/// Messages the agent queues to the node before a result waits for room.
const OUTBOUND_QUEUE: usize = 256;

impl Client {
    /// Submits a task. Retried after an unknown outcome only when it has an
    /// idempotency key (a repeat then returns the same task).
    pub async fn submit_task(&self, request: SubmitTaskRequest) -> Result<SubmitTaskResponse, Error> {
        let core = &self.core;
        let safety = if request.idempotency_key.is_empty() { Safety::NotIdempotent } else { Safety::Idempotent };
        core.call(Target::Leader, safety, |channel| {
            let mut agents = core.agents(channel);
            let request = core.request(request.clone());
            async move { agents.submit_task(request).await }
        })
        .await
    }

    /// A task's state, copies and results.
    pub async fn get_task(&self, task_id: u64) -> Result<GetTaskResponse, Error> {
        let core = &self.core;
        core.call(Target::Leader, Safety::Idempotent, |channel| {
            let mut agents = core.agents(channel);
            let request = core.request(GetTaskRequest { task_id });
            async move { agents.get_task(request).await }
        })
        .await
    }

    /// Waits until the task is finished or `timeout` passes (then the answer
    /// shows it still open).
    pub async fn wait_task(&self, task_id: u64, timeout: Duration) -> Result<GetTaskResponse, Error> {
        let core = &self.core;
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        core.call(Target::Leader, Safety::Idempotent, |channel| {
            let mut agents = core.agents(channel);
            let mut request = tonic::Request::new(WaitTaskRequest { task_id, timeout_ms });
            request.set_timeout(timeout + core.pool.config().request_timeout);
            async move { agents.wait_task(request).await }
        })
        .await
    }

    /// The registered agents, of `agent_type` or (empty) of every type.
    pub async fn list_agents(&self, agent_type: &str) -> Result<Vec<AgentInfo>, Error> {
        let core = &self.core;
        let response = core
            .call(Target::Leader, Safety::Idempotent, |channel| {
                let mut agents = core.agents(channel);
                let request = core.request(ListAgentsRequest { agent_type: agent_type.to_string() });
                async move { agents.list_agents(request).await }
            })
            .await?;
        Ok(response.agents)
    }
}

/// What an agent does with one assignment: its output, or why it failed.
pub trait AgentHandler: Send + Sync + 'static {
    /// Runs one copy of a task.
    fn handle(&self, assignment: Assignment) -> impl Future<Output = Result<Vec<u8>, String>> + Send;

    /// A bus event of the session: a delivered batch of a subscription, the
    /// answer to a publish, or the end of a subscription. Awaited in the
    /// session's loop, in the order the node sent them; keep it short.
    fn on_bus(&self, event: BusEvent) -> impl Future<Output = ()> + Send {
        let _ = event;
        async {}
    }
}

/// What the node sends an agent about the bus.
#[derive(Clone, Debug, PartialEq)]
pub enum BusEvent {
    /// A batch of subscription `subscription_id`.
    Delivery(BusDelivery),
    /// The answer to one publish, in publish order.
    Published(BusPublished),
    /// A subscription ended (refused, fell behind) with the reason.
    Ended(BusSubscriptionEnded),
}

/// A topic an agent subscribes to on every session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSubscription {
    /// The topic.
    pub topic: String,
    /// On a durable topic, the first offset of the first session; later
    /// sessions resume after the last offset delivered.
    pub from_offset: Option<u64>,
    /// Messages per batch (0 for the node's default).
    pub batch_max: u32,
    /// How long a batch may wait to fill.
    pub window: Duration,
}

/// Publishes on the bus as the agent, through its session. Cheap to clone.
#[derive(Clone)]
pub struct AgentBus {
    sender: mpsc::Sender<hyperraft_proto::BusPublish>,
}

impl AgentBus {
    /// Queues a publish of `payloads` on `topic`; waits while `capacity`
    /// publishes are queued. The answer comes as [`BusEvent::Published`].
    /// Publishes queued while no session is open wait for the next one.
    pub async fn publish(&self, topic: &str, payloads: Vec<bytes::Bytes>) -> Result<(), Error> {
        let publish = hyperraft_proto::BusPublish { topic: topic.to_string(), payloads };
        self.sender.send(publish).await.map_err(|_| Error::Closed)
    }
}

/// The session's end of an [`AgentBus`]; give it to [`run_with_bus`].
pub struct AgentBusLink {
    receiver: mpsc::Receiver<hyperraft_proto::BusPublish>,
}

/// An [`AgentBus`] and its link, queueing at most `capacity` publishes.
pub fn agent_bus(capacity: usize) -> (AgentBus, AgentBusLink) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    (AgentBus { sender }, AgentBusLink { receiver })
}

/// How an agent registers.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// The task type it runs.
    pub agent_type: String,
    /// What it can do, for people and listings.
    pub capabilities: Vec<String>,
    /// Free-form labels, for people and listings.
    pub labels: HashMap<String, String>,
    /// Copies it runs at once, 1 to 1024. The node gives one agent at most
    /// a quarter of its session queue at once (`[agents]
    /// session_queue_max`, 64 by default), whatever this asks.
    pub max_concurrent: u32,
    /// Its lease's TTL; zero for the node's default (at least 1 s).
    pub ttl: Duration,
    /// Bus topics it subscribes to on every session.
    pub bus_subscriptions: Vec<AgentSubscription>,
}

impl AgentOptions {
    /// Options for an agent of `agent_type` running `max_concurrent` copies.
    pub fn new(agent_type: impl Into<String>, max_concurrent: u32) -> AgentOptions {
        AgentOptions {
            agent_type: agent_type.into(),
            capabilities: Vec::new(),
            labels: HashMap::new(),
            max_concurrent,
            ttl: Duration::ZERO,
            bus_subscriptions: Vec::new(),
        }
    }
}

/// Where a running agent stands, for its owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentState {
    /// The id the node gave (0 before the first registration).
    pub agent_id: u64,
    /// Sessions opened so far.
    pub sessions: u64,
    /// Registrations the node answered (new or resumed).
    pub registrations: u64,
    /// Results the node accepted.
    pub results_accepted: u64,
}

/// Runs an agent until `stop` completes or registering fails for good
/// (bad options, no permission). Progress is published on `state`.
pub async fn run<H: AgentHandler>(
    client: &Client,
    options: AgentOptions,
    handler: H,
    state: tokio::sync::watch::Sender<AgentState>,
    stop: impl Future<Output = ()>,
) -> Result<(), Error> {
    let (_unused, link) = agent_bus(1);
    run_with_bus(client, options, handler, state, link, stop).await
}

/// [`run`], with the publishes of an [`AgentBus`] sent through the session.
pub async fn run_with_bus<H: AgentHandler>(
    client: &Client,
    options: AgentOptions,
    handler: H,
    state: tokio::sync::watch::Sender<AgentState>,
    mut link: AgentBusLink,
    stop: impl Future<Output = ()>,
) -> Result<(), Error> {
    let mut resume = HashMap::new();
    let handler = Arc::new(handler);
    let core = client.core.clone();
    let retry = core.pool.config().retry.clone();
    tokio::pin!(stop);
    let mut failures = 0u32;
    loop {
        let session = one_session(&core, &options, &handler, &state, &mut link, &mut resume);
        let outcome = tokio::select! {
            () = &mut stop => return Ok(()),
            outcome = session => outcome,
        };
        match outcome {
            Ok(()) => failures = 0,
            Err(error) => {
                let fatal = matches!(
                    error,
                    Error::InvalidArgument { .. }
                        | Error::Unauthenticated(_)
                        | Error::PermissionDenied(_)
                        | Error::Unimplemented(_)
                );
                if fatal {
                    return Err(error);
                }
                tracing::debug!(%error, "agent session failed; reconnecting");
                failures = failures.saturating_add(1);
            }
        }
        let wait = if failures == 0 { Duration::ZERO } else { backoff(&retry, failures.saturating_sub(1)) };
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One session: `Ok` when the node closed it (reconnect at once), `Err`
/// when it failed.
async fn one_session<H: AgentHandler>(
    core: &Arc<Core>,
    options: &AgentOptions,
    handler: &Arc<H>,
    state: &tokio::sync::watch::Sender<AgentState>,
    link: &mut AgentBusLink,
    resume: &mut HashMap<u64, u64>,
) -> Result<(), Error> {
    let checkout = core.pool.checkout(&core.pool.pick(Target::Leader, None));
    let (outbound, receiver) = mpsc::channel(OUTBOUND_QUEUE);
    let register = Register {
        agent_type: options.agent_type.clone(),
        capabilities: options.capabilities.clone(),
        labels: options.labels.clone(),
        max_concurrent: options.max_concurrent,
        ttl_ms: u64::try_from(options.ttl.as_millis()).unwrap_or(u64::MAX),
        resume_agent_id: state.borrow().agent_id,
    };
    let message = |message| AgentToNode { message: Some(message) };
    outbound.try_send(message(agent_to_node::Message::Register(register))).expect("an empty queue has room");
    for (index, subscription) in options.bus_subscriptions.iter().enumerate() {
        let subscription_id = index as u64 + 1;
        let subscribe = hyperraft_proto::BusSubscribe {
            subscription_id,
            topic: subscription.topic.clone(),
            batch_max: subscription.batch_max,
            window_us: u64::try_from(subscription.window.as_micros()).unwrap_or(u64::MAX),
            from_offset: resume.get(&subscription_id).copied().or(subscription.from_offset),
        };
        // Sent after the registration; waits for room like any message.
        outbound.send(message(agent_to_node::Message::BusSubscribe(subscribe))).await.map_err(|_| Error::Closed)?;
    }
    let mut agents = core.agents(checkout.channel.clone());
    let fail = |status: tonic::Status| {
        if let Some((leader, address)) = crate::error::leader_hint(&status) {
            core.pool.learn_leader(leader, address.as_deref());
        } else if status.code() == tonic::Code::Unavailable || client_side(&status) {
            core.pool.failed(&checkout.endpoint, client_side(&status));
        }
        Error::from_status(&status)
    };
    let mut inbound = agents.session(ReceiverStream::new(receiver)).await.map_err(fail)?.into_inner();
    state.send_modify(|state| state.sessions += 1);
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    let mut running: HashMap<u64, AbortHandle> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut cancelled = HashSet::new();
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                // A full queue already holds messages that prove the agent alive.
                let _ = outbound.try_send(message(agent_to_node::Message::Heartbeat(Heartbeat {})));
            }
            Some(publish) = link.receiver.recv() => {
                // Waits for room: publishes keep their order.
                let _ = outbound.send(message(agent_to_node::Message::BusPublish(publish))).await;
            }
            Some(finished) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(task_id) = finished {
                    running.remove(&task_id);
                    cancelled.remove(&task_id);
                }
            }
            next = inbound.message() => match next.map_err(fail)? {
                None => return Err(Error::Unavailable("the node ended the agent session".into())),
                Some(reply) => match reply.message {
                    Some(node_to_agent::Message::Registered(registered)) => {
                        state.send_modify(|state| {
                            state.agent_id = registered.agent_id;
                            state.registrations += 1;
                        });
                        let period = Duration::from_millis(registered.heartbeat_interval_ms.max(1));
                        heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                    }
                    Some(node_to_agent::Message::Assignment(assignment)) => {
                        let task_id = assignment.task_id;
                        let (handler, outbound) = (handler.clone(), outbound.clone());
                        let abort = tasks.spawn(async move {
                            let outcome = match handler.handle(assignment).await {
                                Ok(output) => task_result::Outcome::Output(output.into()),
                                Err(error) => task_result::Outcome::Error(truncate(error)),
                            };
                            let result = TaskResult { task_id, outcome: Some(outcome) };
                            // The session may have ended meanwhile; the copy is then released by the node.
                            let _ = outbound.send(message(agent_to_node::Message::Result(result))).await;
                            task_id
                        });
                        running.insert(task_id, abort);
                    }
                    Some(node_to_agent::Message::Cancel(cancel)) => {
                        if let Some(abort) = running.remove(&cancel.task_id) {
                            abort.abort();
                            cancelled.insert(cancel.task_id);
                        }
                    }
                    Some(node_to_agent::Message::ResultAck(ack)) => {
                        if ack.accepted {
                            state.send_modify(|state| state.results_accepted += 1);
                        } else {
                            tracing::debug!(task = ack.task_id, error = ack.error, "result refused");
                        }
                    }
                    Some(node_to_agent::Message::BusDelivery(delivery)) => {
                        let id = delivery.subscription_id;
                        let next = delivery.runs.iter().map(|run| run.first_offset + run.payloads.len() as u64).max();
                        if let (Some(next), true) = (next, delivery.durable) {
                            resume.insert(id, next);
                        }
                        handler.on_bus(BusEvent::Delivery(delivery)).await;
                    }
                    Some(node_to_agent::Message::BusPublished(published)) => {
                        handler.on_bus(BusEvent::Published(published)).await;
                    }
                    Some(node_to_agent::Message::BusSubscriptionEnded(ended)) => {
                        handler.on_bus(BusEvent::Ended(ended)).await;
                    }
                    Some(node_to_agent::Message::Closing(closing)) => {
                        tracing::debug!(reason = closing.reason, "the node closed the agent session");
                        if closing.leader_id != 0 {
                            let address = (!closing.leader_address.is_empty()).then_some(closing.leader_address.as_str());
                            core.pool.learn_leader(closing.leader_id, address);
                        }
                        return Ok(());
                    }
                    None => {}
                },
            },
        }
    }
}

/// Cuts `error` to what the node accepts, at a character boundary.
fn truncate(mut error: String) -> String {
    if error.len() > ERROR_BYTES_MAX {
        let mut end = ERROR_BYTES_MAX;
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        error.truncate(end);
    }
    error
}
