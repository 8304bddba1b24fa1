//! Replication on a real 3-node cluster: election, agreement, failover,
//! catch-up through the log and through snapshots, membership, and mutual TLS.

use std::time::Duration;

use hyperraft_load::{PutGenerator, Skew, TransferGenerator};
use hyperraft_raft::BatchResponse;
use hyperraft_wire::{Frame, Limits, TransferRecord};

use crate::harness::{fast_raft, free_loopback_addr, Cluster, PATIENCE};

const ACCOUNTS: u64 = 100;

/// Creates the accounts, then returns a generator of transfer frames.
async fn with_accounts(cluster: &Cluster) -> TransferGenerator {
    let mut frames = Vec::new();
    hyperraft_load::account_frames(ACCOUNTS, 1000, &mut frames);
    for frame in &frames {
        let response = cluster.write(frame).await;
        assert!(matches!(&response, BatchResponse::Codes(codes) if codes.iter().all(|c| *c == 0)), "{response:?}");
    }
    TransferGenerator::new(ACCOUNTS, Skew::Uniform, 1)
}

/// Writes `batches` transfer frames; returns the ids of the acknowledged transfers.
async fn write_transfers(cluster: &Cluster, generator: &mut TransferGenerator, batches: usize) -> Vec<u128> {
    let mut acknowledged = Vec::new();
    let mut frame = Vec::new();
    for _ in 0..batches {
        generator.next_frame(50, &mut frame);
        let response = cluster.write(&frame).await;
        let BatchResponse::Codes(codes) = response else { panic!("unexpected response {response:?}") };
        let decoded = Frame::decode(&frame, &Limits::default()).unwrap();
        let hyperraft_wire::Body::CreateTransfers(records) = decoded.body() else { unreachable!() };
        assert_eq!(codes.len(), records.len());
        acknowledged.extend(
            records.iter().zip(&codes).filter(|(_, code)| **code == 0).map(|(r, _): (&TransferRecord, _)| r.id.get()),
        );
    }
    acknowledged
}

/// Every write in these tests is acknowledged, so the bank checker's
/// "attempted" set is the acknowledged one: a stored transfer outside it
/// would be a phantom, one missing from the ledger a lost write.
fn assert_bank_holds(cluster: &Cluster, node: u64, acknowledged: &[u128]) {
    let ids: std::collections::BTreeSet<u128> = acknowledged.iter().copied().collect();
    let record = hyperraft_check::bank::ClientRecord { acknowledged: ids.clone(), attempted: ids };
    let violations = cluster.node(node).state().read(|state| {
        let transfers: Vec<_> = state.ledger().transfers().copied().collect();
        hyperraft_check::bank::check(state.ledger().accounts(), &transfers, &record)
    });
    assert!(violations.is_empty(), "node {node} breaks the bank invariant: {violations:?}");
}

fn missing(cluster: &Cluster, node: u64, ids: &[u128]) -> usize {
    cluster.node(node).state().read(|state| ids.iter().filter(|id| state.ledger().transfer(**id).is_none()).count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_a_leader_and_agree_on_ledger_and_kv_state() {
    // Proves a 3-node cluster over QUIC+mTLS elects one leader, replicates ledger and key/value batches, and every node reaches the same state digest.
    let mut cluster = Cluster::new(3, fast_raft());
    cluster.start_all().await;
    let mut transfers = with_accounts(&cluster).await;
    let acknowledged = write_transfers(&cluster, &mut transfers, 10).await;
    let mut puts = PutGenerator::new(200, Skew::Uniform, 32, 5);
    let mut frame = Vec::new();
    for _ in 0..5 {
        puts.next_frame(40, &mut frame);
        assert!(matches!(cluster.write(&frame).await, BatchResponse::Kv(results) if results.len() == 40));
    }
    cluster.converged().await;
    for node in [1, 2, 3] {
        assert_eq!(missing(&cluster, node, &acknowledged), 0, "node {node} lacks acknowledged transfers");
        assert!(cluster.node(node).state().read(|state| state.kv().len()) > 0);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leader_stops_a_new_one_is_elected_and_no_acknowledged_write_is_lost() {
    // Proves failover: after the leader stops, another node leads within the election timeout, and every write acknowledged before and after is present.
    let mut cluster = Cluster::new(3, fast_raft());
    cluster.start_all().await;
    let mut transfers = with_accounts(&cluster).await;
    let mut acknowledged = write_transfers(&cluster, &mut transfers, 5).await;
    let old = cluster.leader().await;
    cluster.stop(old).await;
    let new = cluster.leader().await;
    assert_ne!(new, old);
    acknowledged.extend(write_transfers(&cluster, &mut transfers, 5).await);
    assert_eq!(missing(&cluster, new, &acknowledged), 0);
    cluster.start(old).await;
    cluster.converged().await;
    assert_eq!(missing(&cluster, old, &acknowledged), 0, "the old leader did not catch up");
    for node in [1, 2, 3] {
        assert_bank_holds(&cluster, node, &acknowledged);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_catches_up_through_the_log_and_through_a_snapshot() {
    // Proves catch-up both ways: a short outage replays the log; a long one (log purged behind a snapshot) installs the snapshot.
    let raft = hyperraft_node::RaftTuning { snapshot_after_entries: 8, entries_kept_after_snapshot: 0, ..fast_raft() };
    let mut cluster = Cluster::new(3, raft);
    cluster.start_all().await;
    let mut transfers = with_accounts(&cluster).await;
    let mut acknowledged = write_transfers(&cluster, &mut transfers, 2).await;
    let leader = cluster.leader().await;
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    cluster.stop(follower).await;
    acknowledged.extend(write_transfers(&cluster, &mut transfers, 3).await);
    cluster.start(follower).await;
    cluster.converged().await;
    assert_eq!(missing(&cluster, follower, &acknowledged), 0);
    cluster.stop(follower).await;
    acknowledged.extend(write_transfers(&cluster, &mut transfers, 40).await);
    let purged = cluster.node(leader).metrics().purged;
    assert!(purged.is_some(), "the leader should have purged its log behind a snapshot");
    cluster.start(follower).await;
    cluster.converged().await;
    assert_eq!(missing(&cluster, follower, &acknowledged), 0);
    let snapshot = cluster.node(follower).metrics().snapshot;
    assert!(snapshot.is_some(), "the follower should hold the installed snapshot");
    assert_bank_holds(&cluster, follower, &acknowledged);
    cluster.shutdown().await;
}

/// Waits until node `id` holds a snapshot and has purged its log behind it;
/// returns its metrics then.
async fn compacted(cluster: &Cluster, id: u64) -> openraft::RaftMetrics<u64, openraft::BasicNode> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let metrics = cluster.node(id).metrics();
        if metrics.snapshot.is_some() && metrics.purged.is_some() {
            return metrics;
        }
        assert!(tokio::time::Instant::now() < deadline, "node {id} never compacted its log: {metrics:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Proves the byte bound compacts the log on its own: with the entry bound
/// out of reach, once about 64 KiB of batches were written every replica
/// builds a snapshot and purges its log behind it, and restarting a node
/// from that snapshot and the rest of its log loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_compacted_after_a_byte_bound_alone() {
    let raft = hyperraft_node::RaftTuning {
        snapshot_after_entries: 1_000_000,
        snapshot_after_log_bytes: 64 * 1024,
        entries_kept_after_snapshot: 0,
        ..fast_raft()
    };
    let mut cluster = Cluster::new(3, raft);
    cluster.start_all().await;
    let mut transfers = with_accounts(&cluster).await;
    // 30 entries of 50 transfers (about 5 KB each): about 150 KB of log.
    let mut acknowledged = write_transfers(&cluster, &mut transfers, 30).await;
    cluster.converged().await;
    let last_index = cluster.node(cluster.leader().await).metrics().last_log_index;
    assert!(last_index < Some(1_000), "the entry bound is out of reach");
    for id in 1..=3 {
        compacted(&cluster, id).await;
    }
    let leader = cluster.leader().await;
    cluster.stop(leader).await;
    cluster.start(leader).await;
    acknowledged.extend(write_transfers(&cluster, &mut transfers, 2).await);
    cluster.converged().await;
    assert_eq!(missing(&cluster, leader, &acknowledged), 0);
    assert_bank_holds(&cluster, leader, &acknowledged);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_waits_for_its_port_to_be_released() {
    // Proves EmbeddedCluster::start rides out a peer port that another socket still holds (as a node stopped a moment ago does until its endpoint's task lets go): the node starts once the holder releases it.
    let mut cluster = Cluster::new(1, fast_raft());
    let address = cluster.configs()[&1].peer_listen;
    let holder = std::net::UdpSocket::bind(address).expect("the node's port is free before it starts");
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(holder);
    });
    cluster.start(1).await;
    release.await.unwrap();
    cluster.leader().await;
    cluster.shutdown().await;
}

/// Proves the kept entries are bounded by bytes as well as by count: with
/// 1,000 entries allowed behind a snapshot but only 8 KiB (one entry of 50
/// transfers), every replica purges its log to within a couple of entries
/// of its snapshot, where the count alone would purge nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_kept_behind_a_snapshot_is_bounded_by_bytes() {
    let raft = hyperraft_node::RaftTuning {
        snapshot_after_entries: 1_000_000,
        snapshot_after_log_bytes: 64 * 1024,
        entries_kept_after_snapshot: 1_000,
        log_bytes_kept_after_snapshot: 8 * 1024,
        ..fast_raft()
    };
    let mut cluster = Cluster::new(3, raft);
    cluster.start_all().await;
    let mut transfers = with_accounts(&cluster).await;
    write_transfers(&cluster, &mut transfers, 30).await;
    for id in 1..=3 {
        let metrics = compacted(&cluster, id).await;
        let (snapshot, purged) = (metrics.snapshot.unwrap().index, metrics.purged.unwrap().index);
        assert!(snapshot < 1_000, "the count alone would keep every entry");
        assert!(purged + 2 >= snapshot, "node {id} kept entries {purged}..{snapshot} behind its snapshot");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_node_joins_then_a_node_is_removed() {
    // Proves membership change: a new node is added as learner then voter and catches up; removing a voter shrinks the membership and the cluster keeps serving.
    let mut cluster = Cluster::new(3, fast_raft());
    cluster.start_all().await;
    let mut transfers = with_accounts(&cluster).await;
    let mut acknowledged = write_transfers(&cluster, &mut transfers, 3).await;
    let addr = free_loopback_addr().unwrap();
    let config = cluster.config(4, addr, Default::default(), fast_raft(), 2).unwrap();
    cluster.set_config(config);
    cluster.start(4).await;
    let leader = cluster.leader().await;
    cluster.node(leader).add_node(4, addr, PATIENCE).await.expect("add node 4");
    cluster.converged().await;
    let voters: Vec<u64> = cluster.node(leader).metrics().membership_config.voter_ids().collect();
    assert_eq!(voters, [1, 2, 3, 4]);
    let removed = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    cluster.node(leader).remove_node(removed).await.expect("remove a node");
    cluster.stop(removed).await;
    acknowledged.extend(write_transfers(&cluster, &mut transfers, 3).await);
    cluster.converged().await;
    let voters: Vec<u64> = cluster.node(leader).metrics().membership_config.voter_ids().collect();
    assert!(!voters.contains(&removed) && voters.len() == 3, "{voters:?}");
    assert_eq!(missing(&cluster, 4, &acknowledged), 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_certificate_from_another_ca_cannot_join() {
    // Proves mutual TLS at the cluster level: a node whose certificate another CA signed never receives the log, and the cluster is unaffected.
    let mut cluster = Cluster::new(3, fast_raft());
    cluster.start_all().await;
    let mut transfers = with_accounts(&cluster).await;
    write_transfers(&cluster, &mut transfers, 2).await;
    let impostor_ca = hyperraft_transport::ClusterCa::generate("impostor").unwrap();
    let addr = free_loopback_addr().unwrap();
    let mut config = cluster.config(4, addr, Default::default(), fast_raft(), 2).unwrap();
    let certs = cluster.dir.path().join("impostor");
    std::fs::create_dir_all(&certs).unwrap();
    impostor_ca.save(&certs).unwrap();
    impostor_ca.issue_node(4, &["127.0.0.1".to_string()]).unwrap().save(&certs).unwrap();
    config.tls = hyperraft_node::TlsPaths {
        ca_cert: certs.join("ca.pem"),
        node_cert: certs.join("node-4.pem"),
        node_key: certs.join("node-4.key"),
    };
    cluster.set_config(config);
    cluster.start(4).await;
    let leader = cluster.leader().await;
    let joined = cluster.node(leader).add_node(4, addr, Duration::from_secs(3)).await;
    assert!(joined.is_err(), "a foreign node was added");
    assert!(cluster.node(4).state().last_applied().is_none(), "the foreign node received entries");
    let members = cluster.node(leader).metrics().membership_config;
    assert!(!members.membership().nodes().any(|(id, _)| *id == 4), "the foreign node stayed a member");
    write_transfers(&cluster, &mut transfers, 2).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_to_the_chosen_node_and_writes_continue() {
    // Proves leader transfer: the chosen follower becomes leader (not just any node), and acknowledged writes before and after stay present.
    let mut cluster = Cluster::new(3, fast_raft());
    cluster.start_all().await;
    let mut transfers = with_accounts(&cluster).await;
    let mut acknowledged = write_transfers(&cluster, &mut transfers, 3).await;
    for _ in 0..2 {
        let leader = cluster.leader().await;
        let target = [1, 2, 3].into_iter().rev().find(|id| *id != leader).unwrap();
        cluster.node(leader).transfer_leader(target, Duration::from_secs(5)).await.expect("transfer");
        assert_eq!(cluster.leader().await, target);
        acknowledged.extend(write_transfers(&cluster, &mut transfers, 3).await);
    }
    cluster.converged().await;
    for node in [1, 2, 3] {
        assert_eq!(missing(&cluster, node, &acknowledged), 0);
    }
    cluster.shutdown().await;
}
