//! An embedded cluster: several nodes in this process on loopback, with a
//! fresh CA, certificates and data folders under one root folder. Real QUIC
//! with mutual TLS and real fsync'd storage — for the benchmark, the tests,
//! and trying hyperraft out on one machine.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyperraft_raft::{BatchResponse, NodeId};
use hyperraft_transport::ClusterCa;
use tokio::time::Instant;

use crate::{Node, NodeConfig, NodeError, RaftTuning, TlsPaths, WriteError};

/// How long [`EmbeddedCluster::start`] waits for a stopped node's port to
/// be released.
pub const REBIND_PATIENCE: Duration = Duration::from_secs(5);

/// Nodes of one cluster running in this process.
pub struct EmbeddedCluster {
    root: PathBuf,
    ca: ClusterCa,
    configs: BTreeMap<NodeId, NodeConfig>,
    nodes: BTreeMap<NodeId, Node>,
}

/// A loopback UDP address that was free a moment ago.
pub fn free_loopback_addr() -> std::io::Result<SocketAddr> {
    UdpSocket::bind("127.0.0.1:0")?.local_addr()
}

fn setup_error(error: impl std::fmt::Display) -> NodeError {
    NodeError::Config(error.to_string())
}

impl EmbeddedCluster {
    /// A CA, certificates and configurations for nodes `1..=count` under
    /// `root` (which should be empty); nothing started yet.
    pub fn new(root: &Path, count: u64, raft: RaftTuning, apply_threads: usize) -> Result<EmbeddedCluster, NodeError> {
        let ca = ClusterCa::generate("hyperraft embedded cluster").map_err(setup_error)?;
        let certs = root.join("certs");
        std::fs::create_dir_all(&certs).map_err(setup_error)?;
        ca.save(&certs).map_err(setup_error)?;
        let mut cluster =
            EmbeddedCluster { root: root.to_path_buf(), ca, configs: BTreeMap::new(), nodes: BTreeMap::new() };
        let mut members = BTreeMap::new();
        for id in 1..=count {
            members.insert(id, free_loopback_addr().map_err(setup_error)?);
        }
        for (&id, &addr) in &members {
            let config = cluster.config(id, addr, members.clone(), raft, apply_threads)?;
            cluster.configs.insert(id, config);
        }
        Ok(cluster)
    }

    /// The folder with `ca.pem` and the node certificates.
    pub fn certs_dir(&self) -> PathBuf {
        self.root.join("certs")
    }

    pub fn ca(&self) -> &ClusterCa {
        &self.ca
    }

    /// A configuration for node `id` at `addr`, with a certificate from this cluster's CA.
    pub fn config(
        &self,
        id: NodeId,
        addr: SocketAddr,
        initial_members: BTreeMap<NodeId, SocketAddr>,
        raft: RaftTuning,
        apply_threads: usize,
    ) -> Result<NodeConfig, NodeError> {
        let certs = self.certs_dir();
        self.ca.issue_node(id, &["127.0.0.1".to_string()]).map_err(setup_error)?.save(&certs).map_err(setup_error)?;
        Ok(NodeConfig {
            node_id: id,
            peer_listen: addr,
            peer_advertise: None,
            client_listen: None,
            client_addresses: BTreeMap::new(),
            data_dir: self.root.join(format!("node-{id}")),
            tls: TlsPaths {
                ca_cert: certs.join("ca.pem"),
                node_cert: certs.join(format!("node-{id}.pem")),
                node_key: certs.join(format!("node-{id}.key")),
            },
            initial_members,
            raft,
            apply_threads,
            kv_history_events_max: hyperraft_state::kv::KvConfig::default().history_events_max,
            metrics_listen: None,
            api: crate::config::ApiSection::default(),
            decisions: crate::config::DecisionsSection::default(),
            agents: crate::pools::AgentsSection::default(),
            testing: crate::config::TestingSection::default(),
            log_sync: true,
        })
    }

    /// Adds (or replaces) the configuration a later [`Self::start`] uses.
    pub fn set_config(&mut self, config: NodeConfig) {
        self.configs.insert(config.node_id, config);
    }

    pub fn configs(&self) -> &BTreeMap<NodeId, NodeConfig> {
        &self.configs
    }

    /// The running node `id`. Panics if it is not running.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[&id]
    }

    pub fn running(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    pub async fn start_all(&mut self) -> Result<(), NodeError> {
        let ids: Vec<NodeId> = self.configs.keys().copied().collect();
        for id in ids {
            self.start(id).await?;
        }
        Ok(())
    }

    /// Starts node `id` from its configuration.
    ///
    /// A node stopped a moment ago may still hold its port: its QUIC
    /// endpoint releases the socket from a task of its own, after shutdown
    /// returns. So a start that finds the port in use tries again, for up
    /// to [`REBIND_PATIENCE`].
    pub async fn start(&mut self, id: NodeId) -> Result<(), NodeError> {
        let config =
            self.configs.get(&id).ok_or_else(|| NodeError::Config(format!("no configuration for node {id}")))?;
        let deadline = Instant::now() + REBIND_PATIENCE;
        let node = loop {
            match Node::start(config.clone()).await {
                Err(NodeError::PeerAddressInUse(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                result => break result?,
            }
        };
        self.nodes.insert(id, node);
        Ok(())
    }

    /// Shuts node `id` down cleanly (its data stays for a restart).
    pub async fn stop(&mut self, id: NodeId) -> Result<(), NodeError> {
        match self.nodes.remove(&id) {
            Some(node) => node.shutdown().await,
            None => Err(NodeError::Config(format!("node {id} is not running"))),
        }
    }

    /// The node that leads, once it knows it and every running voter agrees.
    pub async fn leader(&self, timeout: Duration) -> Result<NodeId, NodeError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.agreed_leader() {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                return Err(NodeError::Raft(format!("no agreed leader within {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn agreed_leader(&self) -> Option<NodeId> {
        let leader = self.nodes.values().map(Node::metrics).find(|metrics| metrics.state.is_leader())?;
        let agree = leader
            .membership_config
            .voter_ids()
            .filter_map(|id| self.nodes.get(&id))
            .all(|node| node.metrics().current_leader == Some(leader.id));
        agree.then_some(leader.id)
    }

    /// Writes through the leader, retrying while leadership settles.
    pub async fn write(&self, frame: &[u8], timeout: Duration) -> Result<BatchResponse, WriteError> {
        let deadline = Instant::now() + timeout;
        loop {
            let leader = self.leader(timeout).await.map_err(|error| WriteError::Unavailable(error.to_string()))?;
            match self.nodes[&leader].write(frame).await {
                Err(WriteError::NotLeader { .. } | WriteError::Unavailable(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                result => return result,
            }
        }
    }

    /// Waits until every running node has applied the whole log and holds
    /// the same state; returns the common state digest.
    pub async fn converged(&self, timeout: Duration) -> Result<u64, NodeError> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen: Vec<_> = self.nodes.values().map(|node| node.state().applied_digest()).collect();
            let last_log = self.nodes.values().filter_map(|node| node.metrics().last_log_index).max();
            let same = seen.windows(2).all(|pair| pair[0] == pair[1]);
            if same && seen.first().and_then(|(applied, _)| applied.map(|log_id| log_id.index)) >= last_log {
                return Ok(seen.first().map_or(0, |(_, digest)| *digest));
            }
            if Instant::now() >= deadline {
                return Err(NodeError::Raft(format!("nodes did not converge within {timeout:?}: {seen:?}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Shuts every running node down.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await?;
        }
        Ok(())
    }
}
