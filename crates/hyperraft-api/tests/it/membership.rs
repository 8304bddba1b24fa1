//! Cluster admin: AddNode, RemoveNode, TransferLeader, and member health in Status.

use std::time::Duration;

use hyperraft_api::errors::{LEADER_ID_KEY, RETRY_SAFE_KEY};
use hyperraft_api::proto::{
    AddNodeRequest, RangeRequest, RemoveNodeRequest, StatusRequest, StatusResponse, TransferLeaderRequest,
};
use hyperraft_api::ApiConfig;
use tokio::time::Instant;
use tonic::Code;

use crate::harness::{ApiCluster, PATIENCE};
use crate::kv::{put, range};

fn assert_invalid(status: tonic::Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with(&format!("{field}:")), "expected the field {field} named: {status:?}");
}

fn voter_ids(status: &StatusResponse) -> Vec<u64> {
    status.voters.iter().map(|member| member.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_node_makes_a_started_node_a_voter_that_applies_writes_and_remove_node_takes_it_out() {
    // Proves AddNode on the leader turns a separately started node into a voter (its API address remembered, health reported on the leader), that node then applies new writes, and RemoveNode takes it out of the voters again.
    let mut cluster = ApiCluster::start(3, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let peer = cluster.start_outsider(4).await;
    let mut admin = cluster.cluster(leader).await;
    let request = AddNodeRequest {
        id: 4,
        peer_address: peer.to_string(),
        api_address: cluster.addresses[&4].clone(),
        catch_up_ms: 0,
    };
    let added = admin.add_node(request.clone()).await.unwrap().into_inner().status.expect("a status");
    assert_eq!(voter_ids(&added), vec![1, 2, 3, 4]);
    let member = added.voters.iter().find(|member| member.id == 4).unwrap();
    assert_eq!((&member.peer_address, &member.api_address), (&peer.to_string(), &cluster.addresses[&4]));
    assert!(added.voters.iter().all(|member| member.matched_index.is_some() && member.lag.is_some()), "{added:?}");
    let again = admin.add_node(request).await.unwrap().into_inner().status.unwrap();
    assert_eq!(voter_ids(&again), vec![1, 2, 3, 4], "a retried AddNode changes nothing");

    cluster.kv(leader).await.put(put("after", "4")).await.unwrap();
    let mut newcomer = cluster.kv(4).await;
    let deadline = Instant::now() + PATIENCE;
    while newcomer.range(RangeRequest { serializable: true, ..range("after", b"") }).await.unwrap().into_inner().count
        == 0
    {
        assert!(Instant::now() < deadline, "node 4 never applied a write made after it joined");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let removed = admin.remove_node(RemoveNodeRequest { id: 4 }).await.unwrap().into_inner().status.unwrap();
    assert_eq!(voter_ids(&removed), vec![1, 2, 3]);
    assert!(removed.learners.is_empty(), "{removed:?}");
    drop((admin, newcomer));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_leader_hands_leadership_to_the_target() {
    // Proves TransferLeader makes the target voter the leader: the answer's status and the target's own Status name it.
    let cluster = ApiCluster::start(3, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let target = cluster.follower().await;
    let mut admin = cluster.cluster(leader).await;
    let request = TransferLeaderRequest { target_id: target, timeout_ms: 0 };
    let answered = admin.transfer_leader(request).await.unwrap().into_inner().status.expect("a status");
    assert_eq!(answered.leader_id, Some(target), "{answered:?}");
    assert!(!answered.is_leader);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = cluster.cluster(target).await.status(StatusRequest {}).await.unwrap().into_inner();
        if seen.is_leader {
            assert_eq!(seen.leader_id, Some(target));
            break;
        }
        assert!(Instant::now() < deadline, "node {target} never reported itself leader: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(admin);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_refuse_bad_input_naming_the_field_and_followers_hint_the_leader() {
    // Proves AddNode, RemoveNode and TransferLeader refuse id 0, unparsable addresses and unknown nodes with INVALID_ARGUMENT naming the field, a follower answers UNAVAILABLE with the leader's id, none of it changes the voters, and member health is absent off the leader.
    let cluster = ApiCluster::start(3, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let follower = cluster.follower().await;
    let mut admin = cluster.cluster(leader).await;
    let good = AddNodeRequest { id: 9, peer_address: "127.0.0.1:1".into(), ..Default::default() };
    assert_invalid(admin.add_node(AddNodeRequest { id: 0, ..good.clone() }).await.unwrap_err(), "id");
    let bad_peer = AddNodeRequest { peer_address: "nowhere".into(), ..good.clone() };
    assert_invalid(admin.add_node(bad_peer).await.unwrap_err(), "peer_address");
    let bad_api = AddNodeRequest { api_address: "no port".into(), ..good.clone() };
    assert_invalid(admin.add_node(bad_api).await.unwrap_err(), "api_address");
    let voter_elsewhere = AddNodeRequest { id: follower, ..good.clone() };
    assert_invalid(admin.add_node(voter_elsewhere).await.unwrap_err(), "id");
    assert_invalid(admin.remove_node(RemoveNodeRequest { id: 9 }).await.unwrap_err(), "id");
    assert_invalid(admin.remove_node(RemoveNodeRequest { id: 0 }).await.unwrap_err(), "id");
    let unknown = TransferLeaderRequest { target_id: 9, timeout_ms: 0 };
    assert_invalid(admin.transfer_leader(unknown).await.unwrap_err(), "target_id");

    let refused = cluster.cluster(follower).await.remove_node(RemoveNodeRequest { id: leader }).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let hinted = refused.metadata().get(LEADER_ID_KEY).and_then(|value| value.to_str().ok());
    assert_eq!(hinted, Some(leader.to_string().as_str()));

    let status = admin.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(voter_ids(&status), vec![1, 2, 3]);
    assert!(status.learners.is_empty());
    let elsewhere = cluster.cluster(follower).await.status(StatusRequest {}).await.unwrap().into_inner();
    assert!(
        elsewhere.voters.iter().all(|member| member.matched_index.is_none()),
        "health off the leader: {elsewhere:?}"
    );
    drop(admin);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_while_another_runs_is_refused_with_aborted_and_nothing_is_queued() {
    // Proves one change at a time: while an AddNode of an unreachable node waits for it to catch up, a leader transfer is refused with ABORTED and the retry-safe mark; the failed addition leaves the voters as they were.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let mut adding = cluster.cluster(leader).await;
    let unreachable =
        AddNodeRequest { id: 7, peer_address: "127.0.0.1:9".into(), catch_up_ms: 5_000, ..Default::default() };
    // The transfers below may hold the lock a moment too: then the addition is the one refused, and tries again.
    let addition = tokio::spawn(async move {
        loop {
            match adding.add_node(unreachable.clone()).await {
                Err(status) if status.code() == Code::Aborted => tokio::time::sleep(Duration::from_millis(5)).await,
                outcome => return outcome,
            }
        }
    });
    let mut admin = cluster.cluster(leader).await;
    let to_itself = TransferLeaderRequest { target_id: leader, timeout_ms: 0 };
    let refused = loop {
        match admin.transfer_leader(to_itself).await {
            Err(status) => break status,
            Ok(_) if addition.is_finished() => panic!("the addition ended first: {:?}", addition.await),
            Ok(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(refused.code(), Code::Aborted, "{refused:?}");
    assert_eq!(refused.metadata().get(RETRY_SAFE_KEY).and_then(|value| value.to_str().ok()), Some("true"));
    let failed = addition.await.unwrap().unwrap_err();
    assert_eq!(failed.code(), Code::FailedPrecondition, "{failed:?}");
    let status = admin.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!((voter_ids(&status), status.learners.len()), (vec![leader], 0), "{status:?}");
    drop(admin);
    cluster.shutdown().await;
}
