//! `hyperraft cert`: the cluster CA and node certificates for mutual TLS.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use hyperraft_transport::{ClusterCa, NodeIdentity};

#[derive(Args, Debug)]
pub struct CertArgs {
    #[command(subcommand)]
    command: CertCommand,
}

#[derive(Subcommand, Debug)]
enum CertCommand {
    /// Create a new cluster CA (`ca.pem`, `ca.key`) in `--dir`.
    Init {
        /// Folder for the CA files; created if missing.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// The CA's name.
        #[arg(long, default_value = "hyperraft cluster CA")]
        name: String,
    },
    /// Issue `node-N.pem` / `node-N.key`, signed by the CA in `--dir`. The
    /// pair also serves the node's gRPC API over TLS (`[api.tls]`): name
    /// the API's host names and addresses with `--host`, and give clients
    /// `ca.pem` (`hyperraft ctl --ca`, `ClientTls::ca_pem`).
    Issue {
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// The node id the certificate names (clients get ids of their own too).
        #[arg(long)]
        node_id: u64,
        /// DNS names or IP addresses the node is reached at (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
}

pub fn run(args: &CertArgs) -> anyhow::Result<()> {
    match &args.command {
        CertCommand::Init { dir, name } => {
            anyhow::ensure!(
                !dir.join("ca.key").exists(),
                "{} already holds a CA key; refusing to replace it",
                dir.display()
            );
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            let ca = ClusterCa::generate(name)?;
            ca.save(dir)?;
            println!("created the cluster CA in {}", dir.display());
        }
        CertCommand::Issue { dir, node_id, hosts } => {
            anyhow::ensure!(*node_id != 0, "--node-id must not be 0");
            let ca = ClusterCa::load(dir).with_context(|| format!("load the CA from {}", dir.display()))?;
            let identity: NodeIdentity = ca.issue_node(*node_id, hosts)?;
            identity.save(dir)?;
            println!(
                "issued {} and {} in {}",
                NodeIdentity::certificate_file_name(*node_id),
                NodeIdentity::key_file_name(*node_id),
                dir.display()
            );
        }
    }
    Ok(())
}
