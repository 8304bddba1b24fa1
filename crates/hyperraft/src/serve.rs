//! `hyperraft serve`: run one node until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use hyperraft_api::{ApiConfig, ApiTls, ApiToken, DecisionPolicy, Role};
use hyperraft_node::config::{ApiRole, ApiSection};
use hyperraft_node::{MetricsServer, Node, NodeConfig, PoolManager};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The node's TOML configuration (see `hyperraft_node::config` for the keys).
    #[arg(long)]
    config: PathBuf,
    /// Overrides `node_id`.
    #[arg(long)]
    node_id: Option<u64>,
    /// Overrides `peer_listen`.
    #[arg(long)]
    peer_listen: Option<SocketAddr>,
    /// Overrides `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let mut config = NodeConfig::load(&args.config)?;
    if let Some(node_id) = args.node_id {
        config.node_id = node_id;
    }
    if let Some(peer_listen) = args.peer_listen {
        config.peer_listen = peer_listen;
    }
    if let Some(data_dir) = &args.data_dir {
        config.data_dir = data_dir.clone();
    }
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: NodeConfig) -> anyhow::Result<()> {
    let (id, listen, client_listen) = (config.node_id, config.peer_listen, config.client_listen);
    // Before the node starts, so that its series are recorded from the first one.
    let metrics = match config.metrics_listen {
        Some(addr) => Some(MetricsServer::start(addr).await.context("start the metrics listener")?),
        None => None,
    };
    if let Some(metrics) = &metrics {
        println!("node {id} serving Prometheus metrics on http://{}/metrics", metrics.local_addr());
    }
    let mut api_addresses = config.client_addresses.clone();
    if let Some(addr) = client_listen {
        api_addresses.insert(id, addr.to_string());
    }
    let (tokens, tls) = api_security(&config.api)?;
    let decisions = DecisionPolicy::from_section(&config.decisions).map_err(anyhow::Error::msg)?;
    let secured = tls.is_some();
    if client_listen.is_some() && tokens.is_empty() {
        tracing::warn!("no [[api.tokens]] configured: anyone who reaches the gRPC API can read and write everything");
    }
    let agents = config.agents.clone();
    let fault_file = config.testing.fault_control.then(|| config.data_dir.join(PARTITION_FILE));
    let node = Arc::new(Node::start(config).await.context("start the node")?);
    let faults = fault_file.map(|path| {
        tracing::warn!(path = %path.display(), "[testing] fault_control is on: this node partitions itself from the peers listed in the file");
        tokio::spawn(follow_partition_file(node.clone(), path))
    });
    let api = match client_listen {
        Some(addr) => {
            let api_config =
                ApiConfig { api_addresses, tokens, tls, decisions, agents: agents.clone(), ..ApiConfig::default() };
            Some(hyperraft_api::serve(node.clone(), addr, api_config).await.context("start the gRPC API")?)
        }
        None => None,
    };
    // Agent processes connect to this node's API (validated: pools need one).
    let pools = match client_listen {
        Some(addr) if !agents.pools.is_empty() => {
            Some(PoolManager::start(&node, &agents, &addr.to_string()).map_err(anyhow::Error::msg)?)
        }
        _ => None,
    };
    tracing::info!(node_id = id, %listen, ?client_listen, "serving");
    match client_listen {
        Some(addr) if secured => println!("node {id} serving peers on {listen}, the gRPC API on {addr} (TLS)"),
        Some(addr) => println!("node {id} serving peers on {listen}, the gRPC API on {addr}"),
        None => println!("node {id} serving peers on {listen}"),
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    if let Some(pools) = pools {
        pools.shutdown().await;
    }
    if let Some(faults) = faults {
        faults.abort();
        let _ = faults.await;
    }
    if let Some(api) = api {
        api.shutdown().await.context("stop the gRPC API")?;
    }
    let node = Arc::try_unwrap(node).map_err(|_| anyhow::anyhow!("the node is still in use at shutdown"))?;
    node.shutdown().await.context("shut down")?;
    if let Some(metrics) = metrics {
        metrics.shutdown().await;
    }
    println!("node {id} stopped");
    Ok(())
}

/// The file in the data directory that lists, one id per line, the peers
/// this node is partitioned from (read only with `[testing] fault_control`).
pub const PARTITION_FILE: &str = "partitioned";

/// Peers a chaos run may list; more lines than this are a broken file.
const PARTITION_LINES_MAX: usize = 64;

/// Applies the partition file every 50 ms: peers listed are cut, peers no
/// longer listed are healed. A missing file means no partition; a line that
/// is not a node id is ignored with a warning.
async fn follow_partition_file(node: Arc<Node>, path: PathBuf) {
    let mut cut = std::collections::BTreeSet::new();
    let mut interval = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        interval.tick().await;
        let text = tokio::fs::read_to_string(&path).await.unwrap_or_default();
        let mut wanted = std::collections::BTreeSet::new();
        for line in text.lines().map(str::trim).filter(|line| !line.is_empty()).take(PARTITION_LINES_MAX) {
            match line.parse::<u64>() {
                Ok(peer) if peer != 0 && peer != node.id() => {
                    wanted.insert(peer);
                }
                _ => tracing::warn!(path = %path.display(), line, "not a peer's node id"),
            }
        }
        for peer in wanted.symmetric_difference(&cut) {
            let partitioned = wanted.contains(peer);
            if let Err(error) = node.set_partitioned(*peer, partitioned) {
                tracing::warn!(peer, partitioned, %error, "cannot change the partition");
            }
        }
        cut = wanted;
    }
}

/// The API's tokens and TLS identity from the `[api]` section: digests
/// parsed, certificate and key read.
fn api_security(section: &ApiSection) -> anyhow::Result<(Vec<ApiToken>, Option<ApiTls>)> {
    let mut tokens = Vec::with_capacity(section.tokens.len());
    for entry in &section.tokens {
        let role = match entry.role {
            ApiRole::Read => Role::Read,
            ApiRole::Write => Role::Write,
            ApiRole::Admin => Role::Admin,
        };
        tokens.push(ApiToken::from_sha256_hex(&entry.name, role, &entry.sha256).map_err(anyhow::Error::msg)?);
    }
    let tls = match &section.tls {
        Some(paths) => {
            let read =
                |path: &PathBuf| std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()));
            Some(ApiTls { certificate_pem: read(&paths.cert)?, key_pem: read(&paths.key)? })
        }
        None => None,
    };
    Ok((tokens, tls))
}
