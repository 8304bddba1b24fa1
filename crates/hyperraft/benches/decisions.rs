//! Decision latency on a 3-node embedded cluster (fsync'd logs, QUIC between
//! nodes, the gRPC API on loopback), with the floor and the baseline it is
//! compared with, measured in the same run:
//!
//! 1. `fdatasync` of a 4 KiB write in the cluster's directory (the disk);
//! 2. one KV put through the leader's API (one replicated, fsync'd commit),
//!    and where its time goes, from the nodes' own metrics: each node's log
//!    fsync, the leader's batcher from proposing to the answer (commit by a
//!    majority and apply), and the API call as the server saw it;
//! 3. decisions: each round proposes, then the voters (in this process)
//!    all vote the moment the proposal's answer says it committed. Reported
//!    split into propose → committed (the proposal's answer), first vote →
//!    decided (the answer of the vote that decided it), and end to end.
//!
//! `cargo bench -p hyperraft --bench decisions [-- ROUNDS]`
//!
//! Low is the majority fast path (unsigned); Critical the signed 2/3 path
//! (each voter signs with its registered ed25519 key; every replica
//! verifies).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey};
use hdrhistogram::Histogram;
use hyperraft_api::proto::decisions_client::DecisionsClient;
use hyperraft_api::proto::kv_client::KvClient;
use hyperraft_api::proto::{
    Criticality, ProposalOutcome, ProposeRequest, PutRequest, RegisterVoterKeyRequest, VoteChoice, VoteRequest,
};
use hyperraft_api::{ApiConfig, ApiServer};
use hyperraft_node::{EmbeddedCluster, Node, RaftTuning};
use hyperraft_wire::decisions::vote_message;
use hyperraft_wire::Choice;
use tonic::transport::Channel;

const VOTERS_MAX: u64 = 100;

fn key(voter: u64) -> SigningKey {
    let mut seed = [3u8; 32];
    seed[..8].copy_from_slice(&voter.to_le_bytes());
    SigningKey::from_bytes(&seed)
}

async fn leader_client(addresses: &[String]) -> DecisionsClient<Channel> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for address in addresses {
            let channel = Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
            let mut client = DecisionsClient::new(channel);
            let probe = ProposeRequest { action: "probe".into(), electorate: vec![1], ..Default::default() };
            if client.propose(probe).await.is_ok() {
                return client;
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The times of one decision.
struct Round {
    /// From sending the proposal to its answer (committed and applied).
    propose: Duration,
    /// From sending the first vote to the answer that reports the decision.
    votes: Duration,
    /// From sending the proposal to that answer.
    total: Duration,
}

async fn round(
    client: &DecisionsClient<Channel>,
    voters: u64,
    criticality: Criticality,
    signers: &[SigningKey],
) -> Round {
    let electorate: Vec<u64> = (1..=voters).collect();
    let request = ProposeRequest {
        action: "bench".into(),
        criticality: criticality as i32,
        electorate: electorate.clone(),
        ..Default::default()
    };
    let start = Instant::now();
    let id = client.clone().propose(request).await.expect("propose").into_inner().proposal_id;
    let committed = Instant::now();
    let signed = criticality == Criticality::Critical;
    // Each voter signs its own vote as it learns of the proposal; the
    // signing is part of the time to decide.
    let first_vote = Instant::now();
    let votes = electorate.into_iter().map(|voter| {
        let mut client = client.clone();
        let signer = signed.then(|| signers[voter as usize - 1].clone());
        async move {
            let signature = match signer {
                Some(signer) => signer.sign(&vote_message(id, Choice::Approve, voter)).to_bytes().to_vec(),
                None => Vec::new(),
            };
            let vote = VoteRequest {
                proposal_id: id,
                voter_id: voter,
                choice: VoteChoice::Approve as i32,
                signature: signature.into(),
            };
            match client.vote(vote).await {
                Ok(response) if response.get_ref().outcome == ProposalOutcome::Approved as i32 => Some(Instant::now()),
                Ok(_) => None,
                // The votes after the deciding one are refused as late; anything else is a failure.
                Err(status) if status.code() == tonic::Code::FailedPrecondition => None,
                Err(status) => panic!("vote {voter}: {status}"),
            }
        }
    });
    let decided = futures_min(votes).await.expect("some vote decides it");
    Round { propose: committed - start, votes: decided - first_vote, total: decided - start }
}

/// Milliseconds at `quantile` of a histogram of microseconds.
fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

fn micros() -> Histogram<u64> {
    Histogram::<u64>::new(3).expect("3 significant digits is valid")
}

/// `fdatasync` after a 4 KiB write, `rounds` times, in `dir`.
fn fsync_floor(dir: &std::path::Path, rounds: usize) -> Histogram<u64> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.join("fsync-probe"))
        .unwrap();
    let block = vec![0x5au8; 4096];
    let mut histogram = micros();
    for index in 0..rounds as u64 {
        file.write_all_at(&block, index * 4096).unwrap();
        let start = Instant::now();
        file.sync_data().unwrap();
        histogram.record(start.elapsed().as_micros() as u64).unwrap();
    }
    histogram
}

/// One KV put's latency through the leader's API, `rounds` times in a row.
async fn put_latency(channel: Channel, rounds: usize) -> Histogram<u64> {
    let mut kv = KvClient::new(channel);
    let mut histogram = micros();
    for index in 0..rounds {
        let put = PutRequest {
            key: format!("/bench/{}", index % 64).into_bytes().into(),
            value: vec![7; 64].into(),
            ..Default::default()
        };
        let start = Instant::now();
        kv.put(put).await.expect("put");
        histogram.record(start.elapsed().as_micros() as u64).unwrap();
    }
    histogram
}

/// The median and p99 lines of the metrics that split one commit.
fn commit_breakdown(rendered: &str) -> Vec<String> {
    let wanted = [
        "hyperraft_log_fsync_seconds{",
        "hyperraft_raft_append_seconds{",
        "hyperraft_commit_apply_seconds{",
        "hyperraft_api_request_seconds{",
    ];
    rendered
        .lines()
        .filter(|line| wanted.iter().any(|name| line.starts_with(name)))
        .filter(|line| line.contains("quantile=\"0.5\"") || line.contains("quantile=\"0.99\""))
        .filter(|line| !line.starts_with("hyperraft_api_request_seconds") || line.contains("Put"))
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').unwrap_or((line, "0"));
            let seconds: f64 = value.parse().unwrap_or(f64::NAN);
            format!("  {name} {:.3} ms", seconds * 1000.0)
        })
        .collect()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map_or_else(|_| "unknown".to_string(), |text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// The earliest instant any of the futures returns.
async fn futures_min(
    futures: impl Iterator<Item = impl std::future::Future<Output = Option<Instant>> + Send + 'static>,
) -> Option<Instant> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut earliest = None;
    for handle in handles {
        if let Some(at) = handle.await.expect("vote task") {
            earliest = Some(earliest.map_or(at, |earliest: Instant| earliest.min(at)));
        }
    }
    earliest
}

fn main() {
    let rounds: usize = std::env::args().skip(1).find_map(|arg| arg.parse().ok()).unwrap_or(200);
    let metrics = hyperraft_node::telemetry::install().expect("the only metrics recorder");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let setup = EmbeddedCluster::new(root.path(), 3, RaftTuning::default(), 1).unwrap();
        let mut nodes = Vec::new();
        for config in setup.configs().values() {
            nodes.push(Arc::new(Node::start(config.clone()).await.unwrap()));
        }
        let mut listeners = Vec::new();
        let mut addresses = Vec::new();
        for _ in &nodes {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addresses.push(listener.local_addr().unwrap().to_string());
            listeners.push(listener);
        }
        let api_addresses: std::collections::BTreeMap<u64, String> =
            nodes.iter().zip(&addresses).map(|(node, address)| (node.id(), address.clone())).collect();
        let servers: Vec<ApiServer> = nodes
            .iter()
            .zip(listeners)
            .map(|(node, listener)| {
                let config = ApiConfig { api_addresses: api_addresses.clone(), ..ApiConfig::default() };
                hyperraft_api::serve_on(node.clone(), listener, config).unwrap()
            })
            .collect();
        let client = leader_client(&addresses).await;
        println!("load average at start: {}", load_average());
        let fsync = fsync_floor(root.path(), rounds);
        println!("fdatasync of 4 KiB, {rounds} rounds: p50 {:.3} ms, p99 {:.3} ms", ms(&fsync, 0.5), ms(&fsync, 0.99));
        let leader_address = {
            let mut address = None;
            for candidate in &addresses {
                let channel = Channel::from_shared(format!("http://{candidate}")).unwrap().connect().await.unwrap();
                let mut kv = KvClient::new(channel);
                let probe = PutRequest { key: b"/bench/probe".to_vec().into(), ..Default::default() };
                if kv.put(probe).await.is_ok() {
                    address = Some(candidate.clone());
                    break;
                }
            }
            address.expect("one node leads")
        };
        let leader_channel = Channel::from_shared(format!("http://{leader_address}")).unwrap().connect().await.unwrap();
        let puts = put_latency(leader_channel, rounds).await;
        println!("KV put (one commit), {rounds} rounds: p50 {:.3} ms, p99 {:.3} ms", ms(&puts, 0.5), ms(&puts, 0.99));
        println!(
            "where a put's time goes (node metrics: fsyncs, the leader's AppendEntries round trips, batcher, API):"
        );
        for line in commit_breakdown(&metrics.render()) {
            println!("{line}");
        }
        let signers: Vec<SigningKey> = (1..=VOTERS_MAX).map(key).collect();
        for (voter, signer) in (1..).zip(&signers) {
            let public_key = signer.verifying_key().to_bytes().to_vec().into();
            client.clone().register_voter_key(RegisterVoterKeyRequest { voter_id: voter, public_key }).await.unwrap();
        }
        println!("decision latency, 3 nodes, {rounds} rounds each (100 voters: a quarter); milliseconds p50 / p99");
        println!(
            "{:<10} {:>7} {:>22} {:>22} {:>22} {:>8} {:>9}",
            "policy", "voters", "propose→committed", "first vote→decided", "end to end", "max", "entries"
        );
        let leader = &nodes[addresses.iter().position(|address| *address == leader_address).expect("a node's")];
        for criticality in [Criticality::Low, Criticality::Critical] {
            for voters in [5, 7, VOTERS_MAX] {
                let (mut propose, mut votes, mut total) = (micros(), micros(), micros());
                let rounds = if voters == VOTERS_MAX { rounds / 4 } else { rounds }.max(1);
                let proposals_before = leader.batcher_stats().proposals;
                for _ in 0..rounds {
                    let round = round(&client, voters, criticality, &signers).await;
                    propose.record(round.propose.as_micros() as u64).unwrap();
                    votes.record(round.votes.as_micros() as u64).unwrap();
                    total.record(round.total.as_micros() as u64).unwrap();
                }
                let name = if criticality == Criticality::Low { "low" } else { "critical" };
                let pair =
                    |histogram: &Histogram<u64>| format!("{:.2} / {:.2}", ms(histogram, 0.5), ms(histogram, 0.99));
                // Log entries the leader proposed per decision: the proposal's and the votes'.
                let entries = (leader.batcher_stats().proposals - proposals_before) as f64 / rounds as f64;
                println!(
                    "{name:<10} {voters:>7} {:>22} {:>22} {:>22} {:>8.2} {entries:>9.1}",
                    pair(&propose),
                    pair(&votes),
                    pair(&total),
                    total.max() as f64 / 1000.0
                );
            }
        }
        println!("load average at end: {}", load_average());
        drop(client);
        for server in servers {
            server.shutdown().await.unwrap();
        }
        for node in nodes {
            if let Ok(node) = Arc::try_unwrap(node) {
                node.shutdown().await.unwrap();
            }
        }
    });
}
