//! A cluster of in-process nodes on loopback, for tests.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use hyperraft_node::{Node, NodeConfig, RaftTuning, TlsPaths, WriteError};
use hyperraft_raft::BatchResponse;
use hyperraft_transport::ClusterCa;

pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub ca: ClusterCa,
    pub configs: BTreeMap<u64, NodeConfig>,
    pub nodes: BTreeMap<u64, Node>,
}

/// A loopback UDP port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral port");
    socket.local_addr().expect("local address")
}

pub fn fast_raft() -> RaftTuning {
    RaftTuning {
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        ..RaftTuning::default()
    }
}

impl Cluster {
    /// Certificates for nodes `1..=count`, and their configurations, not started.
    pub fn new(count: u64, raft: RaftTuning) -> Cluster {
        // `RUST_LOG=openraft=info cargo test …` shows what the nodes do.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("temporary folder");
        let ca = ClusterCa::generate("test cluster").expect("CA");
        let addresses: BTreeMap<u64, SocketAddr> =
            (1..=count).map(|id| (id, free_addr())).collect();
        let mut cluster = Cluster {
            dir,
            ca,
            configs: BTreeMap::new(),
            nodes: BTreeMap::new(),
        };
        std::fs::create_dir_all(cluster.certs_dir()).unwrap();
        cluster.ca.save(&cluster.certs_dir()).unwrap();
        for (&id, &addr) in &addresses {
            let config = cluster.config(id, addr, addresses.clone(), raft);
            cluster.configs.insert(id, config);
        }
        cluster
    }

    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// A configuration for node `id` with a certificate from the cluster CA.
    pub fn config(
        &self,
        id: u64,
        addr: SocketAddr,
        members: BTreeMap<u64, SocketAddr>,
        raft: RaftTuning,
    ) -> NodeConfig {
        let certs = self.certs_dir();
        self.ca
            .issue_node(id, &["127.0.0.1".to_string()])
            .unwrap()
            .save(&certs)
            .unwrap();
        NodeConfig {
            node_id: id,
            peer_listen: addr,
            peer_advertise: None,
            client_listen: None,
            data_dir: self.dir.path().join(format!("node-{id}")),
            tls: TlsPaths {
                ca_cert: certs.join("ca.pem"),
                node_cert: certs.join(format!("node-{id}.pem")),
                node_key: certs.join(format!("node-{id}.key")),
            },
            initial_members: members,
            raft,
            apply_threads: 2,
        }
    }

    pub async fn start_all(&mut self) {
        let ids: Vec<u64> = self.configs.keys().copied().collect();
        for id in ids {
            self.start(id).await;
        }
    }

    pub async fn start(&mut self, id: u64) {
        let node = Node::start(self.configs[&id].clone())
            .await
            .expect("node starts");
        self.nodes.insert(id, node);
    }

    pub async fn stop(&mut self, id: u64) {
        let node = self.nodes.remove(&id).expect("a running node");
        node.shutdown().await.expect("clean shutdown");
    }

    /// The node that leads, once it knows it leads and every running
    /// voter agrees.
    pub async fn leader(&self) -> u64 {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let leading = self
                .nodes
                .values()
                .map(|node| node.metrics())
                .find(|metrics| metrics.state.is_leader());
            if let Some(leader) = leading {
                let voters: Vec<u64> = leader.membership_config.voter_ids().collect();
                let agree = voters
                    .iter()
                    .filter_map(|id| self.nodes.get(id))
                    .all(|node| node.metrics().current_leader == Some(leader.id));
                if agree {
                    return leader.id;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no agreed leader within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Writes through the leader, retrying while leadership settles.
    pub async fn write(&self, frame: &[u8]) -> BatchResponse {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let leader = self.leader().await;
            match self.nodes[&leader].write(frame).await {
                Ok(response) => return response,
                Err(WriteError::NotLeader { .. } | WriteError::Unavailable(_))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("write failed: {error}"),
            }
        }
    }

    /// Waits until every running node has applied the same entries and
    /// holds the same state; returns the common digest.
    pub async fn converged(&self) -> u64 {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let seen: Vec<_> = self
                .nodes
                .values()
                .map(|node| node.state().applied_digest())
                .collect();
            let last_log = self
                .nodes
                .values()
                .map(|node| node.metrics().last_log_index)
                .max()
                .flatten();
            let same = seen.windows(2).all(|pair| pair[0] == pair[1]);
            if same && seen[0].0.map(|log_id| log_id.index) >= last_log {
                return seen[0].1;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nodes did not converge: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn shutdown(mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}
