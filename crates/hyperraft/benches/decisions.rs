//! Decision latency on a 3-node embedded cluster (fsync'd logs, QUIC between
//! nodes, the gRPC API on loopback): voters in this process, each round a
//! proposal and then every voter's approval sent at once; the latency is
//! from sending the proposal to the vote answer that reports it approved.
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
use hyperraft_api::proto::{
    Criticality, ProposalOutcome, ProposeRequest, RegisterVoterKeyRequest, VoteChoice, VoteRequest,
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

async fn round(
    client: &DecisionsClient<Channel>,
    voters: u64,
    criticality: Criticality,
    signers: &[SigningKey],
) -> Duration {
    let electorate: Vec<u64> = (1..=voters).collect();
    let request = ProposeRequest {
        action: "bench".into(),
        criticality: criticality as i32,
        electorate: electorate.clone(),
        ..Default::default()
    };
    let start = Instant::now();
    let id = client.clone().propose(request).await.expect("propose").into_inner().proposal_id;
    let signed = criticality == Criticality::Critical;
    let votes = electorate.into_iter().map(|voter| {
        let mut client = client.clone();
        let signature = if signed {
            signers[voter as usize - 1].sign(&vote_message(id, Choice::Approve, voter)).to_bytes().to_vec()
        } else {
            Vec::new()
        };
        async move {
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
    decided - start
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
        let signers: Vec<SigningKey> = (1..=VOTERS_MAX).map(key).collect();
        for (voter, signer) in (1..).zip(&signers) {
            let public_key = signer.verifying_key().to_bytes().to_vec().into();
            client.clone().register_voter_key(RegisterVoterKeyRequest { voter_id: voter, public_key }).await.unwrap();
        }
        println!("decision latency, 3 nodes, {rounds} rounds each (from the proposal to the deciding vote's answer)");
        println!("{:<10} {:>7} {:>10} {:>10} {:>10}", "policy", "voters", "p50 ms", "p99 ms", "max ms");
        for criticality in [Criticality::Low, Criticality::Critical] {
            for voters in [5, 7, VOTERS_MAX] {
                let mut histogram = Histogram::<u64>::new(3).unwrap();
                let rounds = if voters == VOTERS_MAX { rounds / 4 } else { rounds };
                for _ in 0..rounds.max(1) {
                    let latency = round(&client, voters, criticality, &signers).await;
                    histogram.record(latency.as_micros() as u64).unwrap();
                }
                let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
                let name = if criticality == Criticality::Low { "low" } else { "critical" };
                println!(
                    "{name:<10} {voters:>7} {:>10.2} {:>10.2} {:>10.2}",
                    ms(0.5),
                    ms(0.99),
                    histogram.max() as f64 / 1000.0
                );
            }
        }
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
