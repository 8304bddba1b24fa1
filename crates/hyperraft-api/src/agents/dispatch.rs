//! The leader's dispatcher: one task that, in rounds, releases the copies
//! of agents whose lease is gone and copies past their run timeout, fails
//! tasks past their deadline, and assigns the pending copies to agents of
//! their type with free capacity — all as one `Tasks` entry per round —
//! then pushes each assignment to its agent's session.
//!
//! A round runs when something wakes it (a submission, a result, a
//! session opened or closed) or every `dispatch_interval_ms`. Rounds run
//! one after another and each reads the state the previous one committed,
//! so capacity is counted from the replicated running copies, never from
//! guesses. A released task waits `reassign_backoff_ms × 2^(attempts used
//! − 1)` (at most 32 times the base) before it is assigned again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use hyperraft_raft::TaskResult;
use hyperraft_state::kv::KvStore;
use hyperraft_state::tasks::TaskStore;
use hyperraft_wire::{AssignTaskView, ReleaseAgentView, ReleaseCopyView};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::policy::{policy_for, Candidate, DispatchPolicy};
use super::registry::{Sent, SessionHandle};
use super::tasks::{now_ns, now_us, task_frame, task_results};
use super::Hub;
use crate::proto::{self, node_to_agent};

/// Agents or copies released in one round.
const RELEASES_PER_ROUND_MAX: usize = 1024;
/// The longest reassignment pause, in multiples of the base.
const BACKOFF_FACTOR_MAX: u32 = 32;

/// What one round proposes, in this order.
#[derive(Default)]
struct Round {
    release_agents: Vec<u64>,
    /// `(task, agent, why)`.
    release_copies: Vec<(u64, u64, &'static str)>,
    expire: bool,
    /// `(task, agent)`.
    assigns: Vec<(u64, u64)>,
}

impl Round {
    fn is_empty(&self) -> bool {
        self.release_agents.is_empty() && self.release_copies.is_empty() && !self.expire && self.assigns.is_empty()
    }
}

/// When a round was committed, which its assignments carry (see
/// `Assignment.assign_applied_unix_us` in `agent.proto`).
#[derive(Clone, Copy)]
struct RoundTiming {
    /// The leader's clock once the round's entry was applied.
    applied_unix_us: u64,
    /// From handing the entry to the batcher to its being applied.
    commit_us: u64,
}

/// State the dispatcher keeps between rounds (only on this node).
struct Dispatcher {
    hub: Arc<Hub>,
    policy: Box<dyn DispatchPolicy>,
    /// Task → (attempts used when seen, not assigned before).
    backoff: HashMap<u64, (u8, Instant)>,
    /// Copies committed but not delivered: released next round.
    undelivered: Vec<(u64, u64)>,
}

/// Starts the dispatcher; it works only while this node leads and ends
/// when the server shuts down.
pub(crate) fn start(hub: Arc<Hub>) -> JoinHandle<()> {
    let policy = policy_for(hub.config.policy);
    let mut dispatcher = Dispatcher { hub, policy, backoff: HashMap::new(), undelivered: Vec::new() };
    tokio::spawn(async move {
        let interval = Duration::from_millis(dispatcher.hub.config.dispatch_interval_ms);
        let mut shutdown = dispatcher.hub.api.shutdown.clone();
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stopped| *stopped) => return,
                () = dispatcher.hub.registry.wake.notified() => {}
                () = tokio::time::sleep(interval) => {}
            }
            let api = &dispatcher.hub.api;
            if api.node.raft().metrics().borrow().current_leader != Some(api.node_id()) {
                dispatcher.backoff.clear();
                dispatcher.undelivered.clear();
                continue;
            }
            dispatcher.round().await;
        }
    })
}

impl Dispatcher {
    async fn round(&mut self) {
        let sessions = self.hub.registry.snapshot();
        let round = self.plan(&sessions);
        if round.is_empty() {
            return;
        }
        let frame = task_frame(|writer| {
            for &agent_id in &round.release_agents {
                writer.release(ReleaseAgentView { agent_id })?;
            }
            for &(task_id, agent_id, _) in &round.release_copies {
                writer.release_copy(ReleaseCopyView { task_id, agent_id })?;
            }
            if round.expire {
                writer.expire()?;
            }
            for &(task_id, agent_id) in &round.assigns {
                writer.assign(AssignTaskView { task_id, agent_id })?;
            }
            Ok(())
        });
        let count =
            round.release_agents.len() + round.release_copies.len() + usize::from(round.expire) + round.assigns.len();
        let proposed = Instant::now();
        let results = match frame {
            Ok(frame) => self.hub.api.write(&frame).await.and_then(|response| task_results(response, count)),
            Err(status) => Err(status),
        };
        let timing = RoundTiming { applied_unix_us: now_us(), commit_us: proposed.elapsed().as_micros() as u64 };
        let results = match results {
            Ok(results) => results,
            Err(status) => {
                tracing::debug!(%status, "a dispatch round was not committed; the next round plans again");
                return;
            }
        };
        self.deliver(&round, results, timing);
    }

    /// Reads the committed state and decides the round.
    fn plan(&mut self, sessions: &[Arc<SessionHandle>]) -> Round {
        let now = now_ns();
        let hub = self.hub.clone();
        let run_timeout_ns = hub.config.run_timeout_ms.saturating_mul(1_000_000);
        let undelivered = std::mem::take(&mut self.undelivered);
        hub.api.node.state().read(|state| {
            let (tasks, kv) = (state.tasks(), state.kv());
            let mut round = Round::default();
            let gone = tasks.agents_running().filter(|agent| kv.lease(*agent).is_none());
            round.release_agents = gone.take(RELEASES_PER_ROUND_MAX).collect();
            let released: HashSet<u64> = round.release_agents.iter().copied().collect();
            let mut seen = HashSet::new();
            let late = tasks
                .running_copies()
                .into_iter()
                .filter(|(_, _, assigned)| assigned.saturating_add(run_timeout_ns) <= now);
            let late = late.map(|(task, agent, _)| (task, agent, "the copy ran past its run timeout"));
            let lost =
                undelivered.into_iter().map(|(task, agent)| (task, agent, "the assignment could not be delivered"));
            for (task, agent, why) in lost.chain(late) {
                if round.release_copies.len() < RELEASES_PER_ROUND_MAX
                    && !released.contains(&agent)
                    && seen.insert((task, agent))
                {
                    round.release_copies.push((task, agent, why));
                }
            }
            round.expire = tasks.any_due(now);
            self.backoff.retain(|task, _| tasks.task(*task).is_some_and(|task| !task.is_finished()));
            hub.submit_applied
                .lock()
                .expect("the submit times lock is never poisoned")
                .retain(|task, _| tasks.task(*task).is_some_and(|task| !task.is_finished() && task.needed() > 0));
            round.assigns = self.assign(tasks, kv, sessions);
            round
        })
    }

    /// Chooses agents for pending copies, type by type, oldest task first.
    /// Costs one pass over the sessions of the types with pending tasks,
    /// then about a binary search per copy (see [`DispatchPolicy`]).
    fn assign(&mut self, tasks: &TaskStore, kv: &KvStore, sessions: &[Arc<SessionHandle>]) -> Vec<(u64, u64)> {
        let per_round = self.hub.config.assignments_per_round_max;
        let pending_types = tasks.pending_types();
        if pending_types.is_empty() {
            return Vec::new();
        }
        let mut by_type: BTreeMap<&str, Vec<Candidate>> = BTreeMap::new();
        for session in sessions {
            if !pending_types.contains(session.agent_type.as_bytes()) || kv.lease(session.agent_id).is_none() {
                continue;
            }
            let running = tasks.running_count(session.agent_id) as u32;
            if running < session.max_concurrent {
                let candidate =
                    Candidate { agent_id: session.agent_id, running, max_concurrent: session.max_concurrent };
                by_type.entry(session.agent_type.as_str()).or_default().push(candidate);
            }
        }
        let now = Instant::now();
        let base = Duration::from_millis(self.hub.config.reassign_backoff_ms);
        let mut assigns = Vec::new();
        for (agent_type, candidates) in &mut by_type {
            let agent_type = agent_type.as_bytes();
            for task_id in tasks.pending(agent_type, per_round.saturating_sub(assigns.len())) {
                let task = tasks.task(task_id).expect("pending tasks are kept");
                if task.attempts_used > 0 {
                    let entry = self.backoff.entry(task_id).or_insert((0, now));
                    if entry.0 != task.attempts_used {
                        let factor = 1u32 << u32::from(task.attempts_used - 1).min(5);
                        *entry = (task.attempts_used, now + base * factor.min(BACKOFF_FACTOR_MAX));
                    }
                    if entry.1 > now {
                        continue;
                    }
                }
                // A task has at most a few dozen copies: a list beats a set.
                let mut excluded: Vec<u64> = task.assignments.iter().map(|copy| copy.agent_id).collect();
                for _ in 0..task.needed() {
                    if assigns.len() >= per_round {
                        break;
                    }
                    let eligible =
                        |candidate: &Candidate| candidate.free() > 0 && !excluded.contains(&candidate.agent_id);
                    let Some(index) = self.policy.pick(agent_type, task_id, candidates, &eligible) else {
                        break;
                    };
                    let chosen = candidates.get_mut(index).expect("the policy picks among the candidates");
                    assert!(eligible(chosen), "the policy picked an ineligible agent");
                    chosen.running += 1;
                    excluded.push(chosen.agent_id);
                    assigns.push((task_id, chosen.agent_id));
                }
            }
        }
        assigns
    }

    /// Tells the agents what the round committed.
    fn deliver(&mut self, round: &Round, results: Vec<TaskResult>, timing: RoundTiming) {
        let hub = self.hub.clone();
        let mut results = results.into_iter();
        let mut finished = Vec::new();
        for _ in &round.release_agents {
            if let Some(TaskResult::Released { failed, .. }) = results.next() {
                finished.extend(failed);
            }
        }
        for &(task_id, agent_id, why) in &round.release_copies {
            if let Some(TaskResult::Released { failed, .. }) = results.next() {
                finished.extend(failed);
                hub.registry
                    .send(agent_id, node_to_agent::Message::Cancel(proto::Cancel { task_id, reason: why.into() }));
            }
        }
        if round.expire {
            if let Some(TaskResult::Expired { failed }) = results.next() {
                finished.extend(failed);
            }
        }
        hub.cancel_copies(&finished, "the task failed");
        let deadline_ms = |deadline_ns: u64| deadline_ns / 1_000_000;
        for result in results {
            let TaskResult::Assigned { task_id, agent_id } = result else {
                tracing::debug!(?result, "an assignment was refused; the next round plans again");
                continue;
            };
            let task_applied_unix_us = hub
                .submit_applied
                .lock()
                .expect("the submit times lock is never poisoned")
                .get(&task_id)
                .copied()
                .unwrap_or(0);
            let assignment = hub.api.node.state().read(|state| {
                let task = state.tasks().task(task_id)?;
                let attempt = task.assignments.iter().position(|copy| copy.agent_id == agent_id)? + 1;
                Some(proto::Assignment {
                    task_id,
                    task_type: String::from_utf8_lossy(&task.task_type).into_owned(),
                    payload: task.payload.clone().into(),
                    deadline_unix_ms: deadline_ms(task.deadline_ns),
                    attempt: attempt as u32,
                    run_timeout_ms: hub.config.run_timeout_ms,
                    task_applied_unix_us,
                    assign_applied_unix_us: timing.applied_unix_us,
                    assign_commit_us: timing.commit_us,
                })
            });
            let Some(assignment) = assignment else { continue };
            if hub.registry.send(agent_id, node_to_agent::Message::Assignment(assignment)) != Sent::Queued {
                self.undelivered.push((task_id, agent_id));
                hub.registry.wake.notify_one();
            }
        }
    }
}
