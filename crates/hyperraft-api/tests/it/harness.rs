//! A cluster of real nodes, each serving its gRPC API on 127.0.0.1:0.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyperraft_api::proto::cluster_client::ClusterClient;
use hyperraft_api::proto::kv_client::KvClient;
use hyperraft_api::proto::ledger_client::LedgerClient;
use hyperraft_api::{ApiConfig, ApiServer, ApiTls};
use hyperraft_node::{EmbeddedCluster, Node, NodeConfig, RaftTuning};
use tokio::time::Instant;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct ApiCluster {
    // Dropped last: the nodes' data lives there.
    _dir: tempfile::TempDir,
    /// The CA and configurations; makes nodes started later.
    setup: EmbeddedCluster,
    config: ApiConfig,
    /// Whether each API speaks TLS with its node's certificate.
    tls: bool,
    pub nodes: BTreeMap<u64, Arc<Node>>,
    servers: BTreeMap<u64, ApiServer>,
    /// "127.0.0.1:port" of each node's API.
    pub addresses: BTreeMap<u64, String>,
}

fn fast_raft() -> RaftTuning {
    RaftTuning {
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        ..RaftTuning::default()
    }
}

impl ApiCluster {
    /// Starts nodes `1..=count` and serves each one's API with `config`
    /// (its `api_addresses` filled in with every node's address).
    pub async fn start(count: u64, config: ApiConfig) -> ApiCluster {
        ApiCluster::start_with(count, config, |node| node).await
    }

    /// Like [`ApiCluster::start`], each node's configuration passed through `tune` first.
    pub async fn start_with(count: u64, config: ApiConfig, tune: impl Fn(NodeConfig) -> NodeConfig) -> ApiCluster {
        ApiCluster::start_full(count, config, tune, false).await
    }

    /// Like [`ApiCluster::start`], each API speaking TLS with its node's
    /// certificate (issued by the cluster CA for 127.0.0.1 and
    /// `node-{id}.hyperraft`); clients trust [`ApiCluster::ca_pem`].
    pub async fn start_tls(count: u64, config: ApiConfig) -> ApiCluster {
        ApiCluster::start_full(count, config, |node| node, true).await
    }

    async fn start_full(
        count: u64,
        config: ApiConfig,
        tune: impl Fn(NodeConfig) -> NodeConfig,
        tls: bool,
    ) -> ApiCluster {
        let dir = tempfile::tempdir().expect("temporary folder");
        let setup = EmbeddedCluster::new(dir.path(), count, fast_raft(), 1).expect("cluster setup");
        let mut nodes = BTreeMap::new();
        for (&id, node_config) in setup.configs() {
            nodes.insert(id, Arc::new(Node::start(tune(node_config.clone())).await.expect("node starts")));
        }
        let mut listeners = BTreeMap::new();
        let mut addresses = BTreeMap::new();
        for &id in nodes.keys() {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addresses.insert(id, listener.local_addr().expect("address").to_string());
            listeners.insert(id, listener);
        }
        let config = ApiConfig { api_addresses: addresses.clone(), ..config };
        let mut servers = BTreeMap::new();
        for (id, listener) in listeners {
            let node_config = ApiConfig { tls: tls.then(|| node_tls(&setup, id)), ..config.clone() };
            let server = hyperraft_api::serve_on(nodes[&id].clone(), listener, node_config).expect("serve");
            servers.insert(id, server);
        }
        ApiCluster { _dir: dir, setup, config, tls, nodes, servers, addresses }
    }

    /// Starts node `id` outside the cluster (no members; it waits to be
    /// added) and serves its API; answers its peer address.
    pub async fn start_outsider(&mut self, id: u64) -> SocketAddr {
        let peer = hyperraft_node::embedded::free_loopback_addr().expect("a free port");
        let node_config = self.setup.config(id, peer, BTreeMap::new(), fast_raft(), 1).expect("node configuration");
        let node = Arc::new(Node::start(node_config).await.expect("node starts"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        self.addresses.insert(id, listener.local_addr().expect("address").to_string());
        let tls = self.tls.then(|| node_tls(&self.setup, id));
        let config = ApiConfig { api_addresses: self.addresses.clone(), tls, ..self.config.clone() };
        let server = hyperraft_api::serve_on(node.clone(), listener, config).expect("serve");
        self.nodes.insert(id, node);
        self.servers.insert(id, server);
        peer
    }

    /// The leader, once one leads and every node agrees.
    pub async fn leader(&self) -> u64 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let leaders: Vec<Option<u64>> = self.nodes.values().map(|node| node.metrics().current_leader).collect();
            if let Some(Some(leader)) = leaders.first() {
                let leading = self.nodes[leader].metrics().state.is_leader();
                if leading && leaders.iter().all(|seen| *seen == Some(*leader)) {
                    return *leader;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader within {PATIENCE:?}: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Some node other than the leader.
    pub async fn follower(&self) -> u64 {
        let leader = self.leader().await;
        *self.nodes.keys().find(|id| **id != leader).expect("a cluster of more than one node")
    }

    /// The cluster CA's certificate (PEM), which the API certificates chain to.
    pub fn ca_pem(&self) -> String {
        self.setup.ca().certificate_pem().to_string()
    }

    pub async fn channel(&self, id: u64) -> Channel {
        channel(&self.addresses[&id]).await
    }

    pub async fn ledger(&self, id: u64) -> LedgerClient<Channel> {
        LedgerClient::new(self.channel(id).await)
    }

    pub async fn kv(&self, id: u64) -> KvClient<Channel> {
        KvClient::new(self.channel(id).await)
    }

    pub async fn cluster(&self, id: u64) -> ClusterClient<Channel> {
        ClusterClient::new(self.channel(id).await)
    }

    /// Stops the API servers, then the nodes. Drop every client first.
    pub async fn shutdown(self) {
        for (_, server) in self.servers {
            server.shutdown().await.expect("API server stops cleanly");
        }
        for (id, mut node) in self.nodes {
            // Connection tasks may hold the node a moment after the server ends.
            let deadline = Instant::now() + PATIENCE;
            let node = loop {
                match Arc::try_unwrap(node) {
                    Ok(node) => break node,
                    Err(shared) => node = shared,
                }
                assert!(Instant::now() < deadline, "node {id} is still held after its API server stopped");
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            node.shutdown().await.expect("clean shutdown");
        }
    }
}

pub async fn channel(address: &str) -> Channel {
    Channel::from_shared(format!("http://{address}")).expect("uri").connect().await.expect("connect")
}

/// A TLS channel to `address` that trusts `ca_pem` and expects `domain`.
pub async fn tls_channel(address: &str, ca_pem: &str, domain: &str) -> Result<Channel, tonic::transport::Error> {
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)).domain_name(domain);
    Channel::from_shared(format!("https://{address}")).expect("uri").tls_config(tls)?.connect().await
}

/// Node `id`'s own certificate and key, as its API's TLS identity.
fn node_tls(setup: &EmbeddedCluster, id: u64) -> ApiTls {
    let read = |name: String| std::fs::read_to_string(setup.certs_dir().join(name)).expect("a node certificate file");
    ApiTls { certificate_pem: read(format!("node-{id}.pem")), key_pem: read(format!("node-{id}.key")) }
}
