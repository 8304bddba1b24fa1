//! A cluster of real nodes, each serving its gRPC API on 127.0.0.1:0, and
//! SDK clients for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hyperraft_api::{ApiConfig, ApiServer, ApiTls};
use hyperraft_client::{Client, ClientConfig, ClientTls};
use hyperraft_node::{EmbeddedCluster, Node, NodeConfig, RaftTuning};
use tokio::time::Instant;

pub const PATIENCE: Duration = Duration::from_secs(30);

pub struct TestCluster {
    // Dropped last: the nodes' data lives there.
    _dir: tempfile::TempDir,
    setup: EmbeddedCluster,
    api: ApiConfig,
    /// Whether each API speaks TLS with its node's certificate.
    tls: bool,
    nodes: BTreeMap<u64, Arc<Node>>,
    servers: BTreeMap<u64, ApiServer>,
    /// "127.0.0.1:port" of each node's API, stopped nodes included.
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

impl TestCluster {
    /// Starts nodes `1..=count`, each serving its API (with every node's
    /// address, for leader hints).
    pub async fn start(count: u64) -> TestCluster {
        TestCluster::start_with(count, |node| node).await
    }

    /// Like [`TestCluster::start`], each node's configuration passed through `tune` first.
    pub async fn start_with(count: u64, tune: impl Fn(NodeConfig) -> NodeConfig) -> TestCluster {
        TestCluster::start_full(count, ApiConfig::default(), tune, false).await
    }

    /// Like [`TestCluster::start`], every API served with `api` (its
    /// addresses filled in).
    pub async fn start_with_api(count: u64, api: ApiConfig) -> TestCluster {
        TestCluster::start_full(count, api, |node| node, false).await
    }

    /// Like [`TestCluster::start_with_api`], each API speaking TLS with its
    /// node's certificate (issued by the cluster CA for 127.0.0.1);
    /// [`TestCluster::client_config`] trusts the CA.
    pub async fn start_tls(count: u64, api: ApiConfig) -> TestCluster {
        TestCluster::start_full(count, api, |node| node, true).await
    }

    async fn start_full(count: u64, api: ApiConfig, tune: impl Fn(NodeConfig) -> NodeConfig, tls: bool) -> TestCluster {
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
        let config = ApiConfig { api_addresses: addresses.clone(), ..api };
        let mut servers = BTreeMap::new();
        for (id, listener) in listeners {
            let node_config = ApiConfig { tls: tls.then(|| node_tls(&setup, id)), ..config.clone() };
            let server = hyperraft_api::serve_on(nodes[&id].clone(), listener, node_config).expect("serve");
            servers.insert(id, server);
        }
        let cluster = TestCluster { _dir: dir, setup, api: config, tls, nodes, servers, addresses };
        cluster.leader().await;
        cluster
    }

    /// Starts node `id` outside the cluster (no members: it waits to be
    /// added) and serves its API; answers its peer address.
    pub async fn start_outsider(&mut self, id: u64) -> std::net::SocketAddr {
        let peer = hyperraft_node::embedded::free_loopback_addr().expect("a free port");
        let node_config = self.setup.config(id, peer, BTreeMap::new(), fast_raft(), 1).expect("node configuration");
        let node = Arc::new(Node::start(node_config).await.expect("node starts"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        self.addresses.insert(id, listener.local_addr().expect("address").to_string());
        let tls = self.tls.then(|| node_tls(&self.setup, id));
        let config = ApiConfig { api_addresses: self.addresses.clone(), tls, ..self.api.clone() };
        let server = hyperraft_api::serve_on(node.clone(), listener, config).expect("serve");
        self.nodes.insert(id, node);
        self.servers.insert(id, server);
        peer
    }

    /// The leader, once one leads and every running node agrees.
    pub async fn leader(&self) -> u64 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let leaders: Vec<Option<u64>> = self.nodes.values().map(|node| node.metrics().current_leader).collect();
            if let Some(Some(leader)) = leaders.first() {
                let leading = self.nodes.get(leader).is_some_and(|node| node.metrics().state.is_leader());
                if leading && leaders.iter().all(|seen| *seen == Some(*leader)) {
                    return *leader;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader within {PATIENCE:?}: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The running nodes other than the leader.
    pub async fn followers(&self) -> Vec<u64> {
        let leader = self.leader().await;
        self.nodes.keys().copied().filter(|id| *id != leader).collect()
    }

    /// The node serving the API at `address`.
    pub fn node_at(&self, address: &str) -> u64 {
        *self.addresses.iter().find(|(_, known)| *known == address).expect("a node's address").0
    }

    /// A client of the nodes `ids`, in that order, retrying patiently
    /// enough to outlast an election on a slow machine.
    pub async fn client(&self, ids: &[u64]) -> Client {
        Client::connect(self.client_config(ids)).await.expect("client connects")
    }

    /// The configuration of [`TestCluster::client`]: patient retries, and
    /// trust in the cluster CA when the APIs speak TLS.
    pub fn client_config(&self, ids: &[u64]) -> ClientConfig {
        let mut config = ClientConfig::new(ids.iter().map(|id| self.addresses[id].clone()));
        config.retry.attempts = 30;
        config.tls = self.tls.then(|| ClientTls { ca_pem: self.ca_pem(), domain: None });
        config
    }

    /// The cluster CA's certificate (PEM), which the API certificates chain to.
    pub fn ca_pem(&self) -> String {
        self.setup.ca().certificate_pem().to_string()
    }

    /// Stops node `id`: its API server first (its clients see the
    /// connection close), then the node.
    pub async fn stop(&mut self, id: u64) {
        let server = self.servers.remove(&id).expect("a running node");
        server.shutdown().await.expect("API server stops cleanly");
        let node = self.nodes.remove(&id).expect("a running node");
        shutdown_node(id, node).await;
    }

    /// Stops every node. Drop every client first.
    pub async fn shutdown(mut self) {
        for (_, server) in std::mem::take(&mut self.servers) {
            server.shutdown().await.expect("API server stops cleanly");
        }
        for (id, node) in std::mem::take(&mut self.nodes) {
            shutdown_node(id, node).await;
        }
    }
}

async fn shutdown_node(id: u64, mut node: Arc<Node>) {
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

/// Node `id`'s own certificate and key, as its API's TLS identity.
fn node_tls(setup: &EmbeddedCluster, id: u64) -> ApiTls {
    let read = |name: String| std::fs::read_to_string(setup.certs_dir().join(name)).expect("a node certificate file");
    ApiTls { certificate_pem: read(format!("node-{id}.pem")), key_pem: read(format!("node-{id}.key")) }
}
