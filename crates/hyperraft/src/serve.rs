//! `hyperraft serve`: run one node until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hyperraft_node::{Node, NodeConfig};

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
    let (id, listen) = (config.node_id, config.peer_listen);
    let node = Node::start(config).await.context("start the node")?;
    tracing::info!(node_id = id, %listen, "serving");
    println!("node {id} serving on {listen}");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    node.shutdown().await.context("shut down")?;
    println!("node {id} stopped");
    Ok(())
}
