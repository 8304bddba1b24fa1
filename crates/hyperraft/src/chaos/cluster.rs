//! The cluster under test: `hyperraft serve` processes on loopback, each
//! with its own data directory, certificates and a partition file.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use hyperraft_transport::{ClusterCa, TlsIdentity};

/// The node id the checker's native client (digests) uses for its certificate.
pub const CHECKER_ID: u64 = 1000;

/// One node's addresses and its process, when running.
struct Member {
    peer: SocketAddr,
    api: SocketAddr,
    child: Option<Child>,
    paused: bool,
}

/// The processes of a chaos run and the files they use.
pub struct Processes {
    dir: PathBuf,
    binary: PathBuf,
    members: BTreeMap<u64, Member>,
}

fn free_udp() -> anyhow::Result<SocketAddr> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?)
}

fn free_tcp() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn signal(pid: u32, signal: libc::c_int) -> anyhow::Result<()> {
    let pid = libc::pid_t::try_from(pid).context("process id")?;
    // SAFETY: kill(2) only sends a signal; `pid` is a child this runner spawned and has not reaped.
    let result = unsafe { libc::kill(pid, signal) };
    anyhow::ensure!(result == 0, "kill({pid}, {signal}): {}", std::io::Error::last_os_error());
    Ok(())
}

impl Processes {
    /// Writes certificates and configurations for `nodes` nodes under `dir`.
    pub fn prepare(dir: &Path, nodes: u64, binary: PathBuf) -> anyhow::Result<Processes> {
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs)?;
        let ca = ClusterCa::generate("chaos")?;
        ca.save(&certs)?;
        for id in (1..=nodes).chain([CHECKER_ID]) {
            ca.issue_node(id, &["127.0.0.1".to_string()])?.save(&certs)?;
        }
        let mut members = BTreeMap::new();
        for id in 1..=nodes {
            members.insert(id, Member { peer: free_udp()?, api: free_tcp()?, child: None, paused: false });
        }
        let initial: String = members.iter().map(|(id, member)| format!("{id} = \"{}\"\n", member.peer)).collect();
        let apis: String = members.iter().map(|(id, member)| format!("{id} = \"{}\"\n", member.api)).collect();
        for (id, member) in &members {
            let data = dir.join(format!("data-{id}"));
            std::fs::create_dir_all(&data)?;
            let text = format!(
                "node_id = {id}\npeer_listen = \"{peer}\"\nclient_listen = \"{api}\"\ndata_dir = \"{data}\"\n\
                 apply_threads = 1\n\n[client_addresses]\n{apis}\n[tls]\nca_cert = \"{ca}\"\n\
                 node_cert = \"{cert}\"\nnode_key = \"{key}\"\n\n[initial_members]\n{initial}\n\
                 [raft]\nheartbeat_interval_ms = 50\nelection_timeout_min_ms = 300\n\
                 election_timeout_max_ms = 600\nsnapshot_after_entries = 200\nentries_kept_after_snapshot = 50\n\n\
                 [testing]\nfault_control = true\n",
                peer = member.peer,
                api = member.api,
                data = data.display(),
                ca = certs.join("ca.pem").display(),
                cert = certs.join(format!("node-{id}.pem")).display(),
                key = certs.join(format!("node-{id}.key")).display(),
            );
            std::fs::write(dir.join(format!("node-{id}.toml")), text)?;
        }
        Ok(Processes { dir: dir.to_path_buf(), binary, members })
    }

    /// Node ids, ascending.
    pub fn ids(&self) -> Vec<u64> {
        self.members.keys().copied().collect()
    }

    /// `http://` addresses of every node's gRPC API.
    pub fn api_endpoints(&self) -> Vec<String> {
        self.members.values().map(|member| format!("http://{}", member.api)).collect()
    }

    /// Peer addresses, for the checker's native client.
    pub fn peer_endpoints(&self) -> Vec<(u64, SocketAddr)> {
        self.members.iter().map(|(id, member)| (*id, member.peer)).collect()
    }

    /// The checker's certificate, from the cluster CA.
    pub fn checker_identity(&self) -> anyhow::Result<TlsIdentity> {
        Ok(TlsIdentity::load(&self.dir.join("certs"), CHECKER_ID)?)
    }

    /// Starts node `id` (appending to its log file).
    pub fn start(&mut self, id: u64) -> anyhow::Result<()> {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("node-{id}.log")))?;
        let child = Command::new(&self.binary)
            .args(["serve", "--config"])
            .arg(self.dir.join(format!("node-{id}.toml")))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start node {id}"))?;
        let member = self.members.get_mut(&id).context("no such node")?;
        member.child = Some(child);
        member.paused = false;
        Ok(())
    }

    /// SIGKILL; the node stays down until [`Processes::start`].
    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let member = self.members.get_mut(&id).context("no such node")?;
        if let Some(mut child) = member.child.take() {
            child.kill()?;
            child.wait()?;
        }
        member.paused = false;
        Ok(())
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn pause(&mut self, id: u64, paused: bool) -> anyhow::Result<()> {
        let member = self.members.get_mut(&id).context("no such node")?;
        if let Some(child) = &member.child {
            signal(child.id(), if paused { libc::SIGSTOP } else { libc::SIGCONT })?;
            member.paused = paused;
        }
        Ok(())
    }

    /// Cuts every link between `side` and the other nodes (both ways);
    /// an empty `side` heals every partition.
    pub fn partition(&self, side: &BTreeSet<u64>) -> anyhow::Result<()> {
        for id in self.members.keys() {
            let cut: Vec<String> = self
                .members
                .keys()
                .filter(|other| side.contains(id) != side.contains(other))
                .map(u64::to_string)
                .collect();
            let path = self.dir.join(format!("data-{id}")).join(crate::serve::PARTITION_FILE);
            let temporary = path.with_extension("tmp");
            std::fs::write(&temporary, cut.join("\n"))?;
            std::fs::rename(&temporary, &path)?;
        }
        Ok(())
    }

    /// Every node running and resumed, no partition.
    pub fn heal_all(&mut self) -> anyhow::Result<()> {
        self.partition(&BTreeSet::new())?;
        for id in self.ids() {
            let member = &self.members[&id];
            if member.child.is_none() {
                self.start(id)?;
            } else if member.paused {
                self.pause(id, false)?;
            }
        }
        Ok(())
    }

    /// SIGTERM to every node, then waits up to 20 s each; ids that did not exit cleanly.
    pub fn terminate_all(&mut self) -> Vec<u64> {
        let mut unclean = Vec::new();
        for (id, member) in &mut self.members {
            let Some(mut child) = member.child.take() else { continue };
            if member.paused {
                let _ = signal(child.id(), libc::SIGCONT);
            }
            if signal(child.id(), libc::SIGTERM).is_err() {
                unclean.push(*id);
                continue;
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Some(status),
                    Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                    _ => break None,
                }
            };
            if !status.is_some_and(|status| status.success()) {
                let _ = child.kill();
                let _ = child.wait();
                unclean.push(*id);
            }
        }
        unclean
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for member in self.members.values_mut() {
            if let Some(mut child) = member.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
