//! [`Cluster`]: the simulated nodes' lifecycles. Each node is a real
//! openraft `Raft` over our `LogStore` and `StateMachineStore` in its own
//! data directory; a crash drops it at once and a restart reopens both from
//! that directory, as a process restarted after `kill -9` would.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use hyperraft_raft::log::{LogConfig, LogStore};
use hyperraft_raft::state_machine::{SnapshotWork, StateMachineStore};
use hyperraft_raft::NodeId;
use hyperraft_state::StateConfig;
use openraft::{BasicNode, Raft, SnapshotPolicy};

use crate::network::{Network, SimNetworkFactory};
use crate::registry::{NodeHandle, Registry};
use crate::storage::{tear_tail, SimLog};
use crate::trace::Trace;

/// Raft timing, in virtual milliseconds.
pub const HEARTBEAT_MS: u64 = 50;
/// openraft draws its election timeout from an unseeded RNG in
/// `[min, max)`; a range one wide makes the draw a constant. It still sets
/// the leader lease during which followers refuse votes.
const ELECTION_TIMEOUT_MS: u64 = 300;

/// The nodes of one run.
pub struct Cluster {
    pub registry: Arc<Registry>,
    pub network: Arc<Network>,
    trace: Arc<Trace>,
    root: PathBuf,
    pub ids: Vec<NodeId>,
    raft_config: Arc<openraft::Config>,
}

impl Cluster {
    pub fn new(
        root: PathBuf,
        nodes: usize,
        registry: Arc<Registry>,
        network: Arc<Network>,
        trace: Arc<Trace>,
    ) -> Cluster {
        let raft_config = openraft::Config {
            cluster_name: "hyperraft-sim".to_string(),
            heartbeat_interval: HEARTBEAT_MS,
            election_timeout_min: ELECTION_TIMEOUT_MS,
            election_timeout_max: ELECTION_TIMEOUT_MS + 1,
            // Elections are started by the simulator on a seeded schedule.
            enable_elect: false,
            max_payload_entries: 16,
            // Small snapshot and purge steps, so runs exercise snapshot
            // install, log purge and segment deletion.
            snapshot_policy: SnapshotPolicy::LogsSinceLast(60),
            max_in_snapshot_log_to_keep: 20,
            purge_batch_size: 16,
            ..openraft::Config::default()
        };
        let raft_config = Arc::new(raft_config.validate().expect("the simulator's Raft config is valid"));
        Cluster { registry, network, trace, root, ids: (1..=nodes as NodeId).collect(), raft_config }
    }

    /// The run's trace.
    pub fn trace(&self) -> Arc<Trace> {
        self.trace.clone()
    }

    fn dir(&self, id: NodeId) -> PathBuf {
        self.root.join(format!("node-{id}"))
    }

    /// Starts (or restarts) node `id` from its data directory.
    pub async fn start(&self, id: NodeId) -> Result<(), String> {
        let dir = self.dir(id);
        // Small segments, so rollover and purge delete whole files.
        let log_config = LogConfig { segment_bytes_max: 64 * 1024, ..LogConfig::default() };
        let log = LogStore::open(&dir.join("log"), log_config).map_err(|error| format!("log: {error}"))?;
        let state_config = StateConfig { apply_threads: NonZeroUsize::MIN, ..StateConfig::default() };
        // Snapshot work stays on the runtime thread, like the log's writes
        // (see `storage.rs`): another thread would race the paused clock.
        let state = StateMachineStore::open_with(&dir.join("state"), state_config, SnapshotWork::Inline)
            .map_err(|error| format!("state: {error}"))?;
        let factory = SimNetworkFactory { source: id, network: self.network.clone() };
        let raft = Raft::new(id, self.raft_config.clone(), factory, SimLog::new(log), state.clone())
            .await
            .map_err(|error| format!("raft: {error}"))?;
        self.registry.insert(id, NodeHandle { raft, state });
        self.network.mark_heard(id);
        self.trace.event(format_args!("start n{id}"));
        Ok(())
    }

    /// Proposes the first membership (all nodes as voters) from node 1.
    pub async fn bootstrap(&self) -> Result<(), String> {
        let members: BTreeMap<NodeId, BasicNode> =
            self.ids.iter().map(|id| (*id, BasicNode { addr: format!("sim-{id}") })).collect();
        let first = self.registry.get(self.ids[0]).ok_or("node 1 is down")?;
        first.raft.initialize(members).await.map_err(|error| error.to_string())
    }

    /// Stops node `id` at once. With `garbage`, leaves it after the last
    /// record of the node's log.
    pub async fn crash(&self, id: NodeId, garbage: Option<Vec<u8>>) {
        let Some(handle) = self.registry.remove(id) else { return };
        // Shutdown ends the Raft core, which drops the log; dropping the log
        // waits for its writer thread, so the files are closed afterwards.
        // Nothing is flushed that an append had not already synced.
        let _ = handle.raft.shutdown().await;
        drop(handle);
        let torn = match garbage {
            Some(garbage) => tear_tail(&self.dir(id).join("log"), &garbage).unwrap_or(false),
            None => false,
        };
        self.trace.event(format_args!("crash n{id} torn={torn}"));
    }

    /// Stops every node that is up (end of run).
    pub async fn stop_all(&self) {
        for (id, handle) in self.registry.up() {
            self.registry.remove(id);
            let _ = handle.raft.shutdown().await;
        }
    }
}
