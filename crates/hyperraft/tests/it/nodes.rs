//! What the tests that run real `hyperraft serve` processes share: free
//! loopback ports, certificates made by `hyperraft cert`, node
//! configurations with test timings, and spawning a node.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const BINARY: &str = env!("CARGO_BIN_EXE_hyperraft");

pub fn free_tcp_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

pub fn free_udp_addr() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Runs `hyperraft ARGS` and asserts it succeeded.
fn run(args: &[&str]) {
    let status = Command::new(BINARY).args(args).stdin(Stdio::null()).stdout(Stdio::null()).status();
    assert!(status.expect("run hyperraft").success(), "hyperraft {args:?} failed");
}

/// A cluster CA and a certificate for each of `ids` (for 127.0.0.1) under `certs`.
pub fn issue_certs(certs: &Path, ids: impl IntoIterator<Item = u64>) {
    let certs = certs.to_str().expect("a UTF-8 path");
    run(&["cert", "init", "--dir", certs]);
    for id in ids {
        run(&["cert", "issue", "--dir", certs, "--node-id", &id.to_string(), "--host", "127.0.0.1"]);
    }
}

/// Where the nodes of a loopback cluster listen.
pub struct Layout {
    pub peers: BTreeMap<u64, SocketAddr>,
    pub apis: BTreeMap<u64, SocketAddr>,
}

impl Layout {
    /// Nodes 1..=`nodes` on free loopback ports.
    pub fn loopback(nodes: u64) -> Layout {
        Layout {
            peers: (1..=nodes).map(|id| (id, free_udp_addr())).collect(),
            apis: (1..=nodes).map(|id| (id, free_tcp_addr())).collect(),
        }
    }

    /// Writes `dir/node-ID.toml`: its ports, data under `dir`, node TLS from
    /// `dir/certs`, every node as an initial member, and elections fast
    /// enough for a test. `extra` is TOML appended after the `[raft]` table
    /// (more `[raft]` keys first, then tables of its own).
    pub fn write_config(&self, dir: &Path, id: u64, extra: &str) -> PathBuf {
        let certs = dir.join("certs");
        let members: String = self.peers.iter().map(|(id, addr)| format!("{id} = \"{addr}\"\n")).collect();
        let text = format!(
            "node_id = {id}\npeer_listen = \"{peer}\"\nclient_listen = \"{api}\"\ndata_dir = \"{data}\"\n\
             apply_threads = 1\n\n\
             [tls]\nca_cert = \"{ca}\"\nnode_cert = \"{cert}\"\nnode_key = \"{key}\"\n\n\
             [initial_members]\n{members}\n\
             [raft]\nheartbeat_interval_ms = 50\nelection_timeout_min_ms = 300\nelection_timeout_max_ms = 600\n{extra}",
            peer = self.peers[&id],
            api = self.apis[&id],
            data = dir.join(format!("data-{id}")).display(),
            ca = certs.join("ca.pem").display(),
            cert = certs.join(format!("node-{id}.pem")).display(),
            key = certs.join(format!("node-{id}.key")).display(),
        );
        let config = dir.join(format!("node-{id}.toml"));
        std::fs::write(&config, text).unwrap();
        config
    }
}

/// Starts `hyperraft serve --config CONFIG`, its output going to `log`.
pub fn spawn_serve(config: &Path, log: &Path) -> Child {
    let file = std::fs::File::create(log).unwrap();
    Command::new(BINARY)
        .args(["serve", "--config"])
        .arg(config)
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("spawn a node")
}
