//! A running node: storage, Raft, transport and batcher wired together.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use hyperraft_raft::log::{LogConfig, LogStore};
use hyperraft_raft::state_machine::StateMachineStore;
use hyperraft_raft::{BatchResponse, NodeId, TypeConfig};
use hyperraft_state::StateConfig;
use hyperraft_transport::{TlsIdentity, Transport, TransportConfig, TransportError};
use openraft::{BasicNode, Raft, RaftMetrics, SnapshotPolicy};

use crate::batcher::{Batcher, BatcherConfig, WriteError};
use crate::compaction::LogCompaction;
use crate::config::NodeConfig;
use crate::network::NetworkFactory;
use crate::protocol::{self, NodeReply, NodeRequestRef};
use crate::service::NodeService;

/// Why a node failed to start or to change the cluster.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("transport: {0}")]
    Transport(String),
    /// The peer address is bound by another socket: another process, or in
    /// this process a stopped node's socket not yet released.
    #[error("transport: {0}")]
    PeerAddressInUse(String),
    #[error("raft: {0}")]
    Raft(String),
}

/// Largest number of entries (batches) in one AppendEntries message. A
/// batch frame is at most 8 MiB, so one message stays within the
/// transport's message bound; and openraft times an AppendEntries out after
/// one heartbeat interval, so a message must be sent, written and fsync'd
/// by the follower within it.
const ENTRIES_PER_APPEND_MAX: u64 = 4;

/// A started node. Drop it only after [`Node::shutdown`].
pub struct Node {
    id: NodeId,
    network: NetworkFactory,
    election_timeout_max: Duration,
    raft: Raft<TypeConfig>,
    transport: Transport,
    state: StateMachineStore,
    batcher: Batcher,
    compaction: LogCompaction,
}

impl Node {
    /// Opens storage, binds the transport, starts Raft and, for a new
    /// cluster, bootstraps it (from the member with the smallest id).
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        config.validate().map_err(|error| NodeError::Config(error.to_string()))?;
        let identity = load_identity(&config.tls).map_err(|error| NodeError::Config(error.to_string()))?;
        let transport_config = TransportConfig { faults_enabled: config.testing.fault_control, ..transport_config() };
        let transport =
            Transport::bind(config.peer_listen, identity, transport_config).map_err(|error| match &error {
                TransportError::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse => {
                    NodeError::PeerAddressInUse(error.to_string())
                }
                _ => NodeError::Transport(error.to_string()),
            })?;
        let log_config =
            LogConfig { metrics_node: config.node_id, sync_appends: config.log_sync, ..LogConfig::default() };
        let log = LogStore::open(&config.data_dir.join("log"), log_config)
            .map_err(|error| NodeError::Storage(error.to_string()))?;
        let defaults = StateConfig::default();
        let state_config = StateConfig {
            apply_threads: NonZeroUsize::new(config.apply_threads).expect("validated"),
            kv: hyperraft_state::kv::KvConfig { history_events_max: config.kv_history_events_max, ..defaults.kv },
            ..defaults
        };
        let state = StateMachineStore::open(&config.data_dir.join("state"), state_config)
            .map_err(|error| NodeError::Storage(error.to_string()))?
            .with_snapshot_write_rate(config.raft.snapshot_write_bytes_per_second);
        let raft_config = raft_config(&config)?;
        let log_reader = log.reader();
        let network = NetworkFactory::new(config.node_id, transport.clone());
        let network_handle = network.clone();
        let raft = Raft::new(config.node_id, raft_config, network, log, state.clone())
            .await
            .map_err(|error| NodeError::Raft(error.to_string()))?;
        let batcher = Batcher::start(raft.clone(), BatcherConfig::default());
        crate::telemetry::start_sampler(config.node_id, raft.metrics(), batcher.clone());
        let service = NodeService { raft: raft.clone(), batcher: batcher.clone(), state: state.clone() };
        transport.serve(Arc::new(service)).map_err(|error| NodeError::Transport(error.to_string()))?;
        bootstrap(&raft, &config).await?;
        let compaction = LogCompaction::start(raft.clone(), log_reader, state.clone(), &config.raft);
        Ok(Node {
            id: config.node_id,
            network: network_handle,
            election_timeout_max: Duration::from_millis(config.raft.election_timeout_max_ms),
            raft,
            transport,
            state,
            batcher,
            compaction,
        })
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The longest election timeout this node is configured with.
    pub fn election_timeout_max(&self) -> Duration {
        self.election_timeout_max
    }

    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    pub fn metrics(&self) -> RaftMetrics<NodeId, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// A handle on this node's batcher, for tasks that write concurrently.
    pub fn writer(&self) -> Batcher {
        self.batcher.clone()
    }

    /// What this node's batcher proposed (it proposes only while leading).
    pub fn batcher_stats(&self) -> crate::batcher::BatcherStats {
        self.batcher.stats()
    }

    /// The local state machine (for reads and digests).
    pub fn state(&self) -> &StateMachineStore {
        &self.state
    }

    /// Proposes a write frame through the batcher; answers once it is committed and applied.
    pub async fn write(&self, frame: &[u8]) -> Result<BatchResponse, WriteError> {
        self.batcher.submit(frame).await
    }

    /// Adds `id` at `addr`: first as a learner, waits up to `catch_up` for
    /// it to hold the log up to its own addition, then makes it a voter. A
    /// node that does not catch up in time (unreachable, refused by TLS) is
    /// removed again and the call fails; the voters never change then.
    pub async fn add_node(&self, id: NodeId, addr: SocketAddr, catch_up: Duration) -> Result<(), NodeError> {
        let raft_error = |error: &dyn std::fmt::Display| NodeError::Raft(error.to_string());
        let node = BasicNode { addr: addr.to_string() };
        let added = self.raft.add_learner(id, node, false).await.map_err(|e| raft_error(&e))?;
        if !self.wait_replicated(id, added.log_id.index, catch_up).await {
            let forget = openraft::ChangeMembers::RemoveNodes([id].into_iter().collect());
            self.raft.change_membership(forget, false).await.map_err(|e| raft_error(&e))?;
            return Err(NodeError::Raft(format!("node {id} did not catch up within {catch_up:?}; it was not added")));
        }
        let mut voters: std::collections::BTreeSet<NodeId> = self.metrics().membership_config.voter_ids().collect();
        voters.insert(id);
        self.raft.change_membership(voters, false).await.map_err(|e| raft_error(&e))?;
        Ok(())
    }

    /// Whether the leader's replication to `id` reaches `index` within `timeout`.
    async fn wait_replicated(&self, id: NodeId, index: u64, timeout: Duration) -> bool {
        let mut metrics = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let matched = metrics
                .borrow()
                .replication
                .as_ref()
                .and_then(|replication| replication.get(&id).copied().flatten())
                .map(|log_id| log_id.index);
            if matched >= Some(index) {
                return true;
            }
            if tokio::time::timeout_at(deadline, metrics.changed()).await.is_err() {
                return false;
            }
        }
    }

    /// Hands leadership to the voter `target`, which must catch up within
    /// `timeout`. openraft 0.9 has no transfer of its own, so: every other
    /// voter holds its elections, this leader stops its heartbeats, and
    /// the target campaigns until the voters' leases on this leader expire
    /// and they elect it. Holds end by themselves, so a failed transfer
    /// leaves a cluster that elects normally again.
    pub async fn transfer_leader(&self, target: NodeId, timeout: Duration) -> Result<(), NodeError> {
        let metrics = self.metrics();
        if !metrics.state.is_leader() {
            return Err(NodeError::Raft(format!("node {} is not the leader", self.id)));
        }
        if target == self.id {
            return Ok(());
        }
        let addresses: BTreeMap<NodeId, SocketAddr> =
            members(&metrics).0.into_iter().filter_map(|(id, addr)| addr.parse().ok().map(|addr| (id, addr))).collect();
        let Some(&target_addr) = addresses.get(&target) else {
            return Err(NodeError::Config(format!("node {target} is not a voter")));
        };
        let last_index = metrics.last_log_index.unwrap_or(0);
        if !self.wait_replicated(target, last_index, timeout).await {
            return Err(NodeError::Raft(format!("node {target} did not catch up within {timeout:?}")));
        }
        let hold = timeout + 2 * self.election_timeout_max;
        let others: Vec<(NodeId, SocketAddr)> = addresses
            .iter()
            .filter(|(id, _)| **id != target && **id != self.id)
            .map(|(id, addr)| (*id, *addr))
            .collect();
        for &(id, addr) in &others {
            self.call(id, addr, &NodeRequestRef::HoldElections { millis: hold.as_millis() as u64 }).await.ok();
        }
        crate::service::hold_elections(&self.raft, hold);
        self.raft.runtime_config().heartbeat(false);
        let campaign = NodeRequestRef::Campaign { millis: (timeout + self.election_timeout_max).as_millis() as u64 };
        let won = matches!(self.call(target, target_addr, &campaign).await, Ok(NodeReply::Leading(true)));
        self.raft.runtime_config().heartbeat(true);
        self.raft.runtime_config().elect(true);
        for &(id, addr) in &others {
            self.call(id, addr, &NodeRequestRef::HoldElections { millis: 0 }).await.ok();
        }
        if won {
            Ok(())
        } else {
            Err(NodeError::Raft(format!("node {target} did not win the election")))
        }
    }

    async fn call(&self, id: NodeId, addr: SocketAddr, request: &NodeRequestRef<'_>) -> Result<NodeReply, NodeError> {
        let peer = self.network.peer(id, addr);
        let reply = peer
            .call_with_timeout(
                bytes::Bytes::from(protocol::encode(request)),
                2 * self.election_timeout_max + Duration::from_secs(30),
            )
            .await
            .map_err(|error| NodeError::Transport(error.to_string()))?;
        protocol::decode(&reply).map_err(|error| NodeError::Transport(error.to_string()))
    }

    /// Removes `id` from the voters and the cluster.
    pub async fn remove_node(&self, id: NodeId) -> Result<(), NodeError> {
        let mut voters: std::collections::BTreeSet<NodeId> = self.metrics().membership_config.voter_ids().collect();
        if !voters.remove(&id) {
            return Err(NodeError::Config(format!("node {id} is not a voter")));
        }
        self.raft.change_membership(voters, false).await.map_err(|error| NodeError::Raft(error.to_string()))?;
        Ok(())
    }

    /// Cuts (`true`) or heals (`false`) this node's link to `peer`, both
    /// ways: calls either way fail at once. Refused unless the
    /// configuration's `[testing] fault_control` is on.
    pub fn set_partitioned(&self, peer: NodeId, partitioned: bool) -> Result<(), NodeError> {
        self.transport.set_partitioned(peer, partitioned).map_err(|error| NodeError::Transport(error.to_string()))
    }

    /// Stops Raft (finishing what it is doing) and closes the transport.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        self.compaction.stop().await;
        let result = self.raft.shutdown().await.map_err(|error| NodeError::Raft(error.to_string()));
        self.transport.close().await;
        result
    }
}

/// Keep-alives every 500 ms and a 3 s idle timeout: a restarted peer cannot
/// answer on the old connection, so it must be noticed dead (and redialled)
/// within a few election timeouts, not the transport's default 30 s.
///
/// An initial round trip of 10 ms: a node dials peers that may not be
/// listening yet (a cluster starting, a peer restarting), and QUIC's default
/// of 333 ms would retry a lost handshake only after about a second, which
/// left a follower without entries for that long after start.
pub fn transport_config() -> TransportConfig {
    TransportConfig {
        idle_timeout: Duration::from_secs(3),
        keep_alive_interval: Duration::from_millis(500),
        call_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        initial_rtt: Duration::from_millis(10),
        message_bytes_max: 128 << 20,
        ..TransportConfig::default()
    }
}

fn load_identity(paths: &crate::config::TlsPaths) -> Result<TlsIdentity, String> {
    let read =
        |path: &std::path::Path| std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()));
    let (ca, certificate, key) = (read(&paths.ca_cert)?, read(&paths.node_cert)?, read(&paths.node_key)?);
    TlsIdentity::from_pem(&ca, &certificate, &key).map_err(|error| error.to_string())
}

fn raft_config(config: &NodeConfig) -> Result<Arc<openraft::Config>, NodeError> {
    let tuning = &config.raft;
    let raft_config = openraft::Config {
        cluster_name: "hyperraft".to_string(),
        heartbeat_interval: tuning.heartbeat_interval_ms,
        election_timeout_min: tuning.election_timeout_min_ms,
        election_timeout_max: tuning.election_timeout_max_ms,
        max_payload_entries: ENTRIES_PER_APPEND_MAX,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_after_entries),
        max_in_snapshot_log_to_keep: tuning.entries_kept_after_snapshot,
        ..openraft::Config::default()
    };
    let validated = raft_config.validate().map_err(|error| NodeError::Config(error.to_string()))?;
    Ok(Arc::new(validated))
}

/// Initializes a brand-new cluster from `initial_members`, on the member
/// with the smallest id only (one proposer of the first membership).
async fn bootstrap(raft: &Raft<TypeConfig>, config: &NodeConfig) -> Result<(), NodeError> {
    let Some((&first, _)) = config.initial_members.first_key_value() else {
        return Ok(());
    };
    let initialized = raft.is_initialized().await.map_err(|error| NodeError::Raft(error.to_string()))?;
    if initialized || first != config.node_id {
        return Ok(());
    }
    let members: BTreeMap<NodeId, BasicNode> =
        config.initial_members.iter().map(|(&id, addr)| (id, BasicNode { addr: addr.to_string() })).collect();
    raft.initialize(members).await.map_err(|error| NodeError::Raft(error.to_string()))?;
    Ok(())
}

/// Members as (node id, peer address).
pub type MemberList = Vec<(NodeId, String)>;

/// The members in `metrics`' membership: voters, then learners.
pub fn members(metrics: &RaftMetrics<NodeId, BasicNode>) -> (MemberList, MemberList) {
    let membership = metrics.membership_config.membership();
    let voter_ids: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
    membership.nodes().map(|(id, node)| (*id, node.addr.clone())).partition(|(id, _)| voter_ids.contains(id))
}

/// Waits until some node is leader according to `node`, up to `timeout`.
pub async fn wait_for_leader(node: &Node, timeout: Duration) -> Option<NodeId> {
    let mut metrics = node.raft.metrics();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(leader) = metrics.borrow().current_leader {
            return Some(leader);
        }
        if tokio::time::timeout_at(deadline, metrics.changed()).await.is_err() {
            return None;
        }
    }
}
