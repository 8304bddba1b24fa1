//! The `Agents` service: agent sessions, task submission and waiting, and
//! the leader's dispatcher.
//!
//! An agent is an external worker process. It opens one `Session` stream
//! to the leader (a follower refuses it with `UNAVAILABLE` and the leader
//! hint) and registers; registering grants a KV lease whose id is the
//! agent's id and puts `/agents/<type>/<id>` attached to it, so identity
//! and liveness are replicated state like any key. Heartbeats renew the
//! lease through Raft. An agent that reconnects (to a new leader after a
//! failover, or after its session was closed) names its id in
//! `resume_agent_id` and keeps it while the lease lives. An agent that
//! closes its side leaves: its lease is revoked and its copies released at
//! once. One whose stream breaks keeps its copies until its lease expires;
//! then the dispatcher releases them and they run elsewhere.
//!
//! Tasks are replicated in the task store (`hyperraft_state::tasks`, which
//! documents the agreement rule); the dispatcher ([`dispatch`]) assigns
//! their copies, and every result is a Raft command that the store accepts
//! once. Bounds: `sessions_max` sessions per node, `session_queue_max`
//! messages queued per session (a full queue closes the session with a
//! reason and releases every copy of the agent: it did not read them), and
//! the task store's own bounds. Session counters are atomics, exported
//! through `metrics` too (see `registry.rs`).

mod dispatch;
mod policy;
mod registry;
pub(crate) mod session;
mod tasks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyperraft_node::AgentsConfig;
use hyperraft_raft::TaskResult;
use hyperraft_state::kv::KvResponse;
use hyperraft_state::tasks::CopyState;
use hyperraft_wire::RangeView;
use prost::Message;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status, Streaming};

pub use policy::{Candidate, DispatchPolicy, LeastLoaded, RoundRobin};
use registry::Registry;
use session::SessionStream;
use tasks::{check_submit, now_ns, now_us, same_submission, task_error, task_frame, task_response, task_results};

use crate::api::Api;
use crate::errors::invalid_argument;
use crate::proto::agents_server::Agents;
use crate::proto::{self, node_to_agent};

/// Where registrations live in the key space.
pub(crate) const AGENTS_PREFIX: &str = "/agents/";
/// Agents listed by one `ListAgents`.
const LIST_AGENTS_MAX: u32 = 10_000;
/// How often a `WaitTask` looks again when no apply wakes it.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// What the service, the sessions and the dispatcher share.
pub(crate) struct Hub {
    pub(crate) api: Arc<Api>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) config: AgentsConfig,
    /// When each task's submission was applied on this leader (unix µs),
    /// which its assignments carry so that the dispatch overhead can be
    /// measured (`Assignment.task_applied_unix_us`). At most
    /// `SUBMIT_TIMES_MAX` tasks: beyond it a task's time is unknown (0),
    /// never a reason to refuse it. The dispatcher forgets a task once it
    /// needs no more copies.
    pub(crate) submit_applied: Mutex<HashMap<u64, u64>>,
}

/// Tasks whose submission time [`Hub::submit_applied`] keeps.
const SUBMIT_TIMES_MAX: usize = 65_536;

impl Hub {
    pub(crate) fn new(api: Arc<Api>) -> Hub {
        let config = api.config.agents.clone();
        let registry = Arc::new(Registry::new(config.sessions_max, config.session_queue_max, &api.node_label));
        Hub { api, registry, config, submit_applied: Mutex::new(HashMap::new()) }
    }

    /// Tells the agents whose copies of `task_ids` were cancelled (the task
    /// finished while they ran) to stop.
    pub(crate) fn cancel_copies(&self, task_ids: &[u64], reason: &str) {
        if task_ids.is_empty() {
            return;
        }
        let cancelled: Vec<(u64, u64)> = self.api.node.state().read(|state| {
            let tasks = task_ids.iter().filter_map(|id| state.tasks().task(*id));
            let copies = tasks.flat_map(|task| {
                let cancelled = task.assignments.iter().filter(|copy| copy.state == CopyState::Cancelled);
                cancelled.map(move |copy| (task.id, copy.agent_id))
            });
            copies.collect()
        });
        for (task_id, agent_id) in cancelled {
            let cancel = proto::Cancel { task_id, reason: reason.to_string() };
            self.registry.send(agent_id, node_to_agent::Message::Cancel(cancel));
        }
    }
}

/// Starts the leader's dispatcher for `hub`, and the task that closes the
/// sessions when this node stops leading; both end at server shutdown.
pub(crate) fn start_dispatcher(hub: Arc<Hub>) -> JoinHandle<()> {
    let leadership = tokio::spawn(session::watch_leadership(hub.clone()));
    let dispatcher = dispatch::start(hub);
    tokio::spawn(async move {
        let (leadership, dispatcher) = tokio::join!(leadership, dispatcher);
        for ended in [leadership, dispatcher] {
            if let Err(error) = ended {
                tracing::error!(%error, "an agents task ended abnormally");
            }
        }
    })
}

pub(crate) struct AgentService {
    pub(crate) hub: Arc<Hub>,
}

#[tonic::async_trait]
impl Agents for AgentService {
    type SessionStream = SessionStream;

    async fn session(
        &self,
        request: Request<Streaming<proto::AgentToNode>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        session::open(self.hub.clone(), request.into_inner()).await.map(Response::new)
    }

    async fn submit_task(
        &self,
        request: Request<proto::SubmitTaskRequest>,
    ) -> Result<Response<proto::SubmitTaskResponse>, Status> {
        let request = request.into_inner();
        let api = &self.hub.api;
        let _permit = api.admit(request.encoded_len())?;
        let submission = check_submit(&request, now_ns())?;
        let frame = task_frame(|writer| writer.submit(&submission.view))?;
        let result = task_results(api.write(&frame).await?, 1)?.pop().expect("one result");
        let (task_id, created) = match result {
            TaskResult::Submitted { task_id } => (task_id, true),
            TaskResult::Exists { task_id } => (task_id, false),
            TaskResult::ExistsWithDifferentFields { task_id } => {
                let same = api.node.state().read(|state| {
                    state.tasks().task(task_id).is_some_and(|task| same_submission(task, &submission.view))
                });
                if !same {
                    return Err(Status::already_exists(format!(
                        "the idempotency key names task {task_id}, submitted with other fields"
                    )));
                }
                (task_id, false)
            }
            TaskResult::Error { code, message } => return Err(task_error(code, message)),
            other => return Err(crate::errors::unexpected(format!("{other:?} for a submission"))),
        };
        if created {
            let mut times = self.hub.submit_applied.lock().expect("the submit times lock is never poisoned");
            if times.len() < SUBMIT_TIMES_MAX {
                times.insert(task_id, now_us());
            }
        }
        self.hub.registry.wake.notify_one();
        Ok(Response::new(proto::SubmitTaskResponse { task_id, created }))
    }

    async fn get_task(
        &self,
        request: Request<proto::GetTaskRequest>,
    ) -> Result<Response<proto::GetTaskResponse>, Status> {
        let task_id = request.into_inner().task_id;
        check_task_id(task_id)?;
        self.hub.api.linearizable().await?;
        let task = self.hub.api.node.state().read(|state| state.tasks().task(task_id).map(task_response));
        task.map(Response::new).ok_or_else(|| not_found(task_id))
    }

    /// Holds its request permit while it waits; the wait is bounded by the
    /// request and by nine tenths of the server's request timeout.
    async fn wait_task(
        &self,
        request: Request<proto::WaitTaskRequest>,
    ) -> Result<Response<proto::GetTaskResponse>, Status> {
        let request = request.into_inner();
        check_task_id(request.task_id)?;
        let api = &self.hub.api;
        let timeout = Duration::from_millis(request.timeout_ms).min(api.config.request_timeout * 9 / 10);
        let deadline = tokio::time::Instant::now() + timeout;
        api.linearizable().await?;
        let mut metrics = api.node.raft().metrics();
        let mut shutdown = api.shutdown.clone();
        loop {
            let task = api.node.state().read(|state| {
                state.tasks().task(request.task_id).map(|task| (task.is_finished(), task_response(task)))
            });
            match task {
                None => return Err(not_found(request.task_id)),
                Some((finished, response)) if finished || tokio::time::Instant::now() >= deadline => {
                    return Ok(Response::new(response));
                }
                Some(_) => {}
            }
            tokio::select! {
                _ = metrics.changed() => {}
                () = tokio::time::sleep(WAIT_POLL) => {}
                () = tokio::time::sleep_until(deadline) => {}
                _ = shutdown.wait_for(|stopped| *stopped) => return Err(Status::unavailable("the node is shutting down")),
            }
        }
    }

    async fn list_agents(
        &self,
        request: Request<proto::ListAgentsRequest>,
    ) -> Result<Response<proto::ListAgentsResponse>, Status> {
        let agent_type = request.into_inner().agent_type;
        if agent_type.contains('/') {
            return Err(invalid_argument("agent_type", "must not contain '/'"));
        }
        let api = &self.hub.api;
        api.linearizable().await?;
        let prefix =
            if agent_type.is_empty() { AGENTS_PREFIX.to_string() } else { format!("{AGENTS_PREFIX}{agent_type}/") };
        let mut range_end = prefix.clone().into_bytes();
        *range_end.last_mut().expect("the prefix is not empty") += 1;
        let view = RangeView {
            key: prefix.as_bytes(),
            range_end: &range_end,
            limit: LIST_AGENTS_MAX,
            keys_only: false,
            count_only: false,
        };
        let agents = api.node.state().read(|state| {
            let KvResponse::Range { kvs, .. } = state.kv().range(&view) else {
                return Vec::new();
            };
            let decoded = kvs.iter().filter_map(|pair| proto::AgentInfo::decode(pair.value.as_slice()).ok());
            let with_load = decoded.map(|info| proto::AgentInfo {
                running: state.tasks().tasks_of_agent(info.agent_id).len() as u32,
                ..info
            });
            with_load.collect()
        });
        Ok(Response::new(proto::ListAgentsResponse { agents }))
    }
}

fn check_task_id(task_id: u64) -> Result<(), Status> {
    if task_id == 0 {
        return Err(invalid_argument("task_id", "0 names no task"));
    }
    Ok(())
}

fn not_found(task_id: u64) -> Status {
    Status::not_found(format!("task {task_id} not found"))
}
