//! A 3-process cluster under load loses no acknowledged write when a node
//! is killed with SIGKILL and restarted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use hyperraft_load::{Skew, TransferGenerator};
use hyperraft_node::{Client, ClientError};
use hyperraft_raft::BatchResponse;
use hyperraft_transport::TlsIdentity;
use hyperraft_wire::{encode_ids, Body, Frame, Kind, Limits};

use crate::nodes::{issue_certs, spawn_serve, Layout};

const CLIENT_ID: u64 = 1000;
const ACCOUNTS: u64 = 200;

struct Processes {
    dir: PathBuf,
    children: BTreeMap<u64, Child>,
}

impl Processes {
    fn spawn(&mut self, id: u64) {
        let config = self.dir.join(format!("node-{id}.toml"));
        let child = spawn_serve(&config, &self.dir.join(format!("node-{id}.log")));
        self.children.insert(id, child);
    }

    /// Sends SIGTERM to every node and waits: each must shut down cleanly (exit 0).
    fn terminate_all(&mut self) {
        for (id, mut child) in std::mem::take(&mut self.children) {
            let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("run kill");
            assert!(status.success());
            let exit = child.wait().expect("wait for the node");
            if !exit.success() {
                let log = std::fs::read_to_string(self.dir.join(format!("node-{id}.log"))).unwrap_or_default();
                let tail: String =
                    log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
                panic!("node {id} did not shut down cleanly on SIGTERM: {exit:?}; the end of its log:\n{tail}");
            }
        }
    }

    fn kill(&mut self, id: u64) {
        let mut child = self.children.remove(&id).unwrap();
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes one transfer batch; returns the acknowledged ids, or none if the outcome is unknown or refused.
async fn write_batch(client: &Client, generator: &mut TransferGenerator, frame: &mut Vec<u8>) -> Vec<u128> {
    generator.next_frame(20, frame);
    match client.write(frame).await {
        Ok(BatchResponse::Codes(codes)) => {
            let decoded = Frame::decode(frame, &Limits::default()).unwrap();
            let Body::CreateTransfers(records) = decoded.body() else { unreachable!() };
            records.iter().zip(codes).filter(|(_, code)| *code == 0).map(|(record, _)| record.id.get()).collect()
        }
        Ok(other) => panic!("unexpected response {other:?}"),
        Err(ClientError::OutcomeUnknown(_) | ClientError::Exhausted { .. } | ClientError::Transport(_)) => Vec::new(),
        Err(error) => panic!("write failed: {error}"),
    }
}

async fn converged(client: &Client) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = Vec::new();
        for id in 1..=3 {
            seen.push(client.digest(id).await.ok());
        }
        if seen.iter().all(|s| s.is_some()) && seen.windows(2).all(|pair| pair[0] == pair[1]) {
            return seen[0].unwrap().1;
        }
        assert!(tokio::time::Instant::now() < deadline, "no convergence: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_sigkill_under_load_loses_no_acknowledged_write() {
    // Proves durability across kill -9: every transfer acknowledged before, during and after SIGKILLs of the leader and a follower is on every node once they converge; then SIGTERM stops every node cleanly.
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    issue_certs(&certs, [1, 2, 3, CLIENT_ID]);
    let layout = Layout::loopback(3);
    for id in 1..=3 {
        layout.write_config(dir.path(), id, "snapshot_after_entries = 50\n");
    }
    let mut processes = Processes { dir: dir.path().to_path_buf(), children: BTreeMap::new() };
    for id in 1..=3 {
        processes.spawn(id);
    }
    let identity = TlsIdentity::load(&certs, CLIENT_ID).unwrap();
    let endpoints: Vec<(u64, SocketAddr)> = layout.peers.iter().map(|(id, addr)| (*id, *addr)).collect();
    let client = Client::connect(identity, &endpoints).unwrap();
    let mut accounts = Vec::new();
    hyperraft_load::account_frames(ACCOUNTS, 1000, &mut accounts);
    for frame in &accounts {
        client.write(frame).await.expect("create accounts");
    }
    let mut generator = TransferGenerator::new(ACCOUNTS, Skew::Uniform, 9);
    let mut frame = Vec::new();
    let mut acknowledged = Vec::new();
    for round in 0..2 {
        for _ in 0..30 {
            acknowledged.extend(write_batch(&client, &mut generator, &mut frame).await);
        }
        // Kill the leader in the first round and a follower in the second, mid-load.
        let leader = client.status(1).await.ok().and_then(|status| status.leader).unwrap_or(1);
        let victim = if round == 0 { leader } else { [1, 2, 3].into_iter().find(|id| *id != leader).unwrap() };
        processes.kill(victim);
        for _ in 0..30 {
            acknowledged.extend(write_batch(&client, &mut generator, &mut frame).await);
        }
        processes.spawn(victim);
    }
    for _ in 0..10 {
        acknowledged.extend(write_batch(&client, &mut generator, &mut frame).await);
    }
    assert!(acknowledged.len() > 1000, "too few writes were acknowledged: {}", acknowledged.len());
    converged(&client).await;
    for chunk in acknowledged.chunks(1000) {
        let mut lookup = Vec::new();
        encode_ids(Kind::LookupTransfers, chunk, &mut lookup);
        let BatchResponse::Records(records) = client.read(&lookup).await.expect("lookup") else {
            panic!("not records")
        };
        assert_eq!(records.len() / 96, chunk.len(), "acknowledged transfers are missing");
    }
    client.close().await;
    processes.terminate_all();
}
