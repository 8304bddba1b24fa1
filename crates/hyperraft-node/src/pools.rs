//! Agent process pools: local agent processes per agent type, kept warm,
//! restarted, and scaled by the backlog of pending tasks.
//!
//! Each node runs the pools its own configuration names
//! (`[[agents.pools]]`), as child processes of the node on the node's
//! machine. A spawned process gets `HYPERRAFT_ENDPOINTS` (this node's API
//! address) and `HYPERRAFT_AGENT_TYPE` in its environment, on top of the
//! pool's `env`, and dies with the node (`kill_on_drop`; the manager kills
//! every child at shutdown).
//!
//! Per pool, one task ticks every [`TICK`]:
//!
//! - **Pre-warm.** At start every pool spawns `min` processes at once, all
//!   pools in parallel, `spawn_batch` at a time.
//! - **Restart.** A process that exits without being told to is a crash: it
//!   is replaced after a backoff that starts at `restart_backoff_initial_ms`
//!   and doubles with each further crash up to `restart_backoff_max_ms`; a
//!   pool whose processes have run for `restart_backoff_max_ms` since its
//!   last crash and its last start begins again from the initial backoff.
//! - **Scale up (leader only).** The leader reads its replicated task
//!   store: with `p` tasks of the pool's type pending (not yet given to
//!   enough agents), the pool wants `ceil(p / tasks_per_agent)` processes,
//!   within `min..=max`. Below that it grows in waves of at most
//!   `wave_size`, `wave_pause_ms` apart, so a burst does not fork hundreds
//!   of processes at once.
//! - **Scale down.** Once no task of the type has been pending for
//!   `idle_stop_ms`, processes above `min` are stopped, newest first.
//!
//! Followers run their own pools at `min` (pre-warmed, restarted after
//! crashes) and never scale up: only the leader sees every pending task
//! the moment it is submitted, and one scaling decision per cluster keeps
//! nodes from all forking for the same backlog. A node that becomes leader
//! starts scaling its pools; one that loses leadership returns to `min`
//! after `idle_stop_ms`.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyperraft_raft::state_machine::StateMachineStore;
use hyperraft_raft::{NodeId, TypeConfig};
use openraft::Raft;
use serde::Deserialize;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often each pool looks at its processes and the backlog.
pub const TICK: Duration = Duration::from_millis(50);
/// Pools one node may configure.
pub const POOLS_MAX: usize = 64;
/// Processes one pool may run.
pub const POOL_PROCESSES_MAX: usize = 4096;
/// Arguments and environment entries of one pool's command.
pub const COMMAND_ITEMS_MAX: usize = 256;

/// The `[agents]` section, whose `pools` this module runs.
pub type AgentsSection = crate::config::AgentsConfig;

/// One `[[agents.pools]]` entry.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// The agent type its processes serve (the tasks' `type`).
    pub agent_type: String,
    /// The program to start, and its arguments and extra environment.
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Processes kept running at all times.
    #[serde(default)]
    pub min: usize,
    /// Processes at most.
    pub max: usize,
    /// Processes spawned together before yielding, at pre-warm and in a wave.
    #[serde(default = "default_spawn_batch")]
    pub spawn_batch: usize,
    /// Processes added per scale-up wave, and the pause between waves.
    #[serde(default = "default_wave_size")]
    pub wave_size: usize,
    #[serde(default = "default_wave_pause_ms")]
    pub wave_pause_ms: u64,
    /// Backoff before replacing a crashed process: initial, doubling to max.
    #[serde(default = "default_backoff_initial_ms")]
    pub restart_backoff_initial_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub restart_backoff_max_ms: u64,
    /// How long no task of the type must be pending before processes above
    /// `min` are stopped.
    #[serde(default = "default_idle_stop_ms")]
    pub idle_stop_ms: u64,
    /// Pending tasks one process is counted on to take.
    #[serde(default = "default_tasks_per_agent")]
    pub tasks_per_agent: usize,
}

fn default_spawn_batch() -> usize {
    16
}
fn default_wave_size() -> usize {
    4
}
fn default_wave_pause_ms() -> u64 {
    1000
}
fn default_backoff_initial_ms() -> u64 {
    100
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_idle_stop_ms() -> u64 {
    60_000
}
fn default_tasks_per_agent() -> usize {
    1
}

impl PoolConfig {
    /// A pool of `command` for `agent_type` with the defaults.
    pub fn new(agent_type: &str, command: &str, min: usize, max: usize) -> PoolConfig {
        PoolConfig {
            agent_type: agent_type.to_string(),
            command: command.to_string(),
            args: Vec::new(),
            env: BTreeMap::new(),
            min,
            max,
            spawn_batch: default_spawn_batch(),
            wave_size: default_wave_size(),
            wave_pause_ms: default_wave_pause_ms(),
            restart_backoff_initial_ms: default_backoff_initial_ms(),
            restart_backoff_max_ms: default_backoff_max_ms(),
            idle_stop_ms: default_idle_stop_ms(),
            tasks_per_agent: default_tasks_per_agent(),
        }
    }
}

/// Checks every pool's bounds, and that agent types are unique.
pub(crate) fn validate_pools(pools: &[PoolConfig]) -> Result<(), String> {
    if pools.len() > POOLS_MAX {
        return Err(format!("agents.pools: {} pools, more than the {POOLS_MAX} allowed", pools.len()));
    }
    for (index, pool) in pools.iter().enumerate() {
        let at = format!("agents.pools[{index}]");
        if pool.agent_type.is_empty() || pool.agent_type.len() > 256 {
            return Err(format!("{at}.agent_type must be 1 to 256 bytes"));
        }
        if pools[..index].iter().any(|other| other.agent_type == pool.agent_type) {
            return Err(format!("{at}.agent_type {:?} has another pool already", pool.agent_type));
        }
        if pool.command.is_empty() {
            return Err(format!("{at}.command must not be empty"));
        }
        if pool.args.len() > COMMAND_ITEMS_MAX || pool.env.len() > COMMAND_ITEMS_MAX {
            return Err(format!("{at}: at most {COMMAND_ITEMS_MAX} args and {COMMAND_ITEMS_MAX} env entries"));
        }
        if pool.max == 0 || pool.max > POOL_PROCESSES_MAX || pool.min > pool.max {
            return Err(format!("{at}: need 0 <= min <= max, 1 <= max <= {POOL_PROCESSES_MAX}"));
        }
        if pool.spawn_batch == 0 || pool.wave_size == 0 || pool.tasks_per_agent == 0 {
            return Err(format!("{at}: spawn_batch, wave_size and tasks_per_agent must be at least 1"));
        }
        if pool.restart_backoff_initial_ms == 0 || pool.restart_backoff_initial_ms > pool.restart_backoff_max_ms {
            return Err(format!("{at}: need 0 < restart_backoff_initial_ms <= restart_backoff_max_ms"));
        }
    }
    Ok(())
}

/// One pool's counters (atomics, read at any time).
#[derive(Debug, Default)]
struct Counters {
    running: AtomicUsize,
    spawned: AtomicU64,
    crashes: AtomicU64,
    stopped: AtomicU64,
    spawn_failures: AtomicU64,
    backoff_ms: AtomicU64,
    target: AtomicUsize,
    waves: AtomicU64,
}

/// One pool's counters at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolStats {
    pub agent_type: String,
    /// Processes alive now.
    pub running: usize,
    /// The count the pool is heading for.
    pub target: usize,
    /// Processes started, pre-warm and restarts included.
    pub spawned: u64,
    /// Processes that exited without being told to.
    pub crashes: u64,
    /// Processes stopped for idleness.
    pub stopped: u64,
    /// Starts that failed (the command could not be run).
    pub spawn_failures: u64,
    /// The backoff the next restart waits, in milliseconds.
    pub backoff_ms: u64,
    /// Scale-up waves started.
    pub waves: u64,
}

/// What the pools read from the node: whether it leads, and the backlog.
#[derive(Clone)]
struct NodeView {
    id: NodeId,
    raft: Raft<TypeConfig>,
    state: StateMachineStore,
}

impl NodeView {
    fn leads(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.id)
    }

    fn pending(&self, agent_type: &str, max: usize) -> usize {
        self.state.read(|state| state.tasks().pending(agent_type.as_bytes(), max).len())
    }
}

/// The running pools of one node. Dropping it kills every child too;
/// [`PoolManager::shutdown`] also waits for them.
pub struct PoolManager {
    pools: Vec<(String, Arc<Counters>)>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl PoolManager {
    /// Starts every pool of `agents` for `node`, whose gRPC API is at
    /// `endpoints` (given to the processes as `HYPERRAFT_ENDPOINTS`).
    pub fn start(node: &crate::Node, agents: &AgentsSection, endpoints: &str) -> Result<PoolManager, String> {
        agents.validate()?;
        let view = NodeView { id: node.id(), raft: node.raft().clone(), state: node.state().clone() };
        let (stop, stopped) = watch::channel(false);
        let mut pools = Vec::new();
        let mut tasks = Vec::new();
        for config in &agents.pools {
            let counters = Arc::new(Counters::default());
            let pool = Pool {
                config: config.clone(),
                endpoints: endpoints.to_string(),
                counters: counters.clone(),
                view: view.clone(),
                children: Vec::new(),
                not_before: Instant::now(),
                next_wave: Instant::now(),
                consecutive_crashes: 0,
                last_crash: None,
                last_spawn: Instant::now(),
                last_busy: Instant::now(),
            };
            tasks.push(tokio::spawn(pool.run(stopped.clone())));
            pools.push((config.agent_type.clone(), counters));
        }
        Ok(PoolManager { pools, stop, tasks })
    }

    /// Each pool's counters, in configuration order.
    pub fn stats(&self) -> Vec<PoolStats> {
        self.pools
            .iter()
            .map(|(agent_type, counters)| PoolStats {
                agent_type: agent_type.clone(),
                running: counters.running.load(Ordering::Relaxed),
                target: counters.target.load(Ordering::Relaxed),
                spawned: counters.spawned.load(Ordering::Relaxed),
                crashes: counters.crashes.load(Ordering::Relaxed),
                stopped: counters.stopped.load(Ordering::Relaxed),
                spawn_failures: counters.spawn_failures.load(Ordering::Relaxed),
                backoff_ms: counters.backoff_ms.load(Ordering::Relaxed),
                waves: counters.waves.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Kills every process and waits until each has exited.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        for task in self.tasks {
            // A pool task that panicked has dropped its children (killed).
            let _ = task.await;
        }
    }
}

struct Pool {
    config: PoolConfig,
    endpoints: String,
    counters: Arc<Counters>,
    view: NodeView,
    /// Newest last.
    children: Vec<Child>,
    /// No process starts before this (the restart backoff).
    not_before: Instant,
    /// The next scale-up wave may start then.
    next_wave: Instant,
    consecutive_crashes: u32,
    last_crash: Option<Instant>,
    last_spawn: Instant,
    /// The last time a task of this type was pending (on the leader).
    last_busy: Instant,
}

impl Pool {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        // Pre-warm: `min` at once, in spawn batches.
        let min = self.config.min;
        self.counters.target.store(min, Ordering::Relaxed);
        self.spawn(min).await;
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // Only ever set to true; a dropped manager stops the pool too.
                _ = stopped.changed() => break,
                _ = ticker.tick() => self.tick().await,
            }
        }
        for child in &mut self.children {
            let _ = child.kill().await;
        }
        self.children.clear();
        self.counters.running.store(0, Ordering::Relaxed);
    }

    fn backoff(&self) -> Duration {
        let initial = self.config.restart_backoff_initial_ms;
        let doublings = self.consecutive_crashes.saturating_sub(1).min(32);
        Duration::from_millis(initial.saturating_mul(1u64 << doublings).min(self.config.restart_backoff_max_ms))
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        self.reap(now);
        let max_backoff = Duration::from_millis(self.config.restart_backoff_max_ms);
        // Calm again: processes have run for the longest backoff since the last crash and the last start.
        let calm = |at: Instant| now.duration_since(at) >= max_backoff;
        if !self.children.is_empty() && self.last_crash.is_some_and(calm) && calm(self.last_spawn) {
            self.consecutive_crashes = 0;
            self.last_crash = None;
        }
        self.counters.backoff_ms.store(self.backoff().as_millis() as u64, Ordering::Relaxed);
        let target = self.target(now);
        self.counters.target.store(target, Ordering::Relaxed);
        let running = self.children.len();
        if running < target && now >= self.not_before {
            let below_min = self.config.min.saturating_sub(running);
            // Back to `min` (restarts) at once; above it in waves.
            let mut count = below_min;
            if target > self.config.min && now >= self.next_wave {
                count = count.max((target - running).min(self.config.wave_size));
                self.next_wave = now + Duration::from_millis(self.config.wave_pause_ms);
                self.counters.waves.fetch_add(1, Ordering::Relaxed);
            }
            self.spawn(count.min(target - running)).await;
        } else if running > target {
            // Newest first.
            for mut child in self.children.drain(target..).rev() {
                let _ = child.kill().await;
                self.counters.stopped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.counters.running.store(self.children.len(), Ordering::Relaxed);
    }

    /// The count wanted now: `min` on a follower, the backlog within
    /// `min..=max` on the leader, and no fewer than running until the type
    /// has been idle for `idle_stop_ms`.
    fn target(&mut self, now: Instant) -> usize {
        let config = &self.config;
        let wanted = if self.view.leads() {
            let limit = config.max.saturating_mul(config.tasks_per_agent).saturating_add(1);
            let pending = self.view.pending(&config.agent_type, limit);
            if pending > 0 {
                self.last_busy = now;
            }
            pending.div_ceil(config.tasks_per_agent).clamp(config.min, config.max)
        } else {
            config.min
        };
        let idle = now.duration_since(self.last_busy) >= Duration::from_millis(config.idle_stop_ms);
        if idle {
            wanted
        } else {
            wanted.max(self.children.len().min(config.max))
        }
    }

    /// Drops the processes that exited and sets the restart backoff.
    fn reap(&mut self, now: Instant) {
        let before = self.children.len();
        self.children.retain_mut(|child| matches!(child.try_wait(), Ok(None)));
        let crashed = before - self.children.len();
        if crashed > 0 {
            self.counters.crashes.fetch_add(crashed as u64, Ordering::Relaxed);
            self.consecutive_crashes = self.consecutive_crashes.saturating_add(crashed as u32);
            self.last_crash = Some(now);
            self.not_before = now + self.backoff();
            tracing::warn!(agent_type = %self.config.agent_type, crashed, backoff = ?self.backoff(), "agent processes exited; restarting after the backoff");
        }
    }

    /// Starts `count` processes, `spawn_batch` at a time.
    async fn spawn(&mut self, count: usize) {
        for started in 0..count {
            if started > 0 && started % self.config.spawn_batch == 0 {
                tokio::task::yield_now().await;
            }
            let mut command = Command::new(&self.config.command);
            command
                .args(&self.config.args)
                .envs(&self.config.env)
                .env("HYPERRAFT_ENDPOINTS", &self.endpoints)
                .env("HYPERRAFT_AGENT_TYPE", &self.config.agent_type)
                .stdin(Stdio::null())
                .kill_on_drop(true);
            match command.spawn() {
                Ok(child) => {
                    self.children.push(child);
                    self.last_spawn = Instant::now();
                    self.counters.spawned.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    self.counters.spawn_failures.fetch_add(1, Ordering::Relaxed);
                    // A command that cannot start is treated like a crash: back off.
                    self.consecutive_crashes = self.consecutive_crashes.saturating_add(1);
                    self.last_crash = Some(Instant::now());
                    self.not_before = Instant::now() + self.backoff();
                    tracing::error!(agent_type = %self.config.agent_type, %error, "cannot start an agent process");
                    break;
                }
            }
        }
        self.counters.running.store(self.children.len(), Ordering::Relaxed);
    }
}
