//! The `[agents]` section: bounds and timings of agent sessions and of the
//! leader's task dispatcher.

use serde::Deserialize;

/// How the dispatcher chooses among the agents that could run a copy.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DispatchPolicyKind {
    /// Each agent of a type in turn.
    #[default]
    RoundRobin,
    /// The agent with the most free capacity.
    LeastLoaded,
}

/// Agent sessions and task dispatch (see the API crate's `agents` module).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsConfig {
    /// Open agent sessions on this node; one more is refused with
    /// `RESOURCE_EXHAUSTED`.
    pub sessions_max: usize,
    /// Messages (assignments, cancels, acknowledgements) queued to one
    /// agent. An agent that lets it fill is disconnected with a reason and
    /// the copy that did not fit is released for another agent. It also
    /// bounds the copies one agent runs at once: at most a quarter of it
    /// (at least one), whatever the agent's `max_concurrent`, so that a
    /// dispatch round never queues more than an agent that reads can take.
    pub session_queue_max: usize,
    /// Lease TTL of an agent that asks for none; at least 1000.
    pub default_ttl_ms: u64,
    /// A copy with no result this long after its assignment is released
    /// and the task reassigned (a new attempt).
    pub run_timeout_ms: u64,
    /// First pause before a released task is assigned again; doubles with
    /// each attempt used, up to 32 times this.
    pub reassign_backoff_ms: u64,
    /// Longest wait between dispatch rounds when nothing wakes the
    /// dispatcher (submissions, results and registrations do).
    pub dispatch_interval_ms: u64,
    /// Task copies assigned in one dispatch round (one Raft entry).
    pub assignments_per_round_max: usize,
    pub policy: DispatchPolicyKind,
    /// Local agent processes this node starts and scales
    /// (`[[agents.pools]]`, see [`crate::pools`]).
    pub pools: Vec<crate::pools::PoolConfig>,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            sessions_max: 10_000,
            session_queue_max: 256,
            default_ttl_ms: 10_000,
            run_timeout_ms: 60_000,
            reassign_backoff_ms: 100,
            dispatch_interval_ms: 100,
            assignments_per_round_max: 1024,
            policy: DispatchPolicyKind::RoundRobin,
            pools: Vec::new(),
        }
    }
}

impl AgentsConfig {
    /// Checks each bound is usable.
    pub fn validate(&self) -> Result<(), String> {
        if self.sessions_max == 0 || self.session_queue_max == 0 || self.assignments_per_round_max == 0 {
            return Err("agents: sessions_max, session_queue_max and assignments_per_round_max must be > 0".into());
        }
        if !(1_000..=86_400_000).contains(&self.default_ttl_ms) {
            return Err(format!("agents.default_ttl_ms {} is outside 1000..=86400000", self.default_ttl_ms));
        }
        if self.run_timeout_ms == 0 || self.dispatch_interval_ms == 0 {
            return Err("agents: run_timeout_ms and dispatch_interval_ms must be > 0".into());
        }
        crate::pools::validate_pools(&self.pools)
    }
}
