//! The Lease service: grants, keep-alives, revokes, expiry by the leader,
//! and its refusals.

use std::time::Duration;

use hyperraft_api::proto::lease_client::LeaseClient;
use hyperraft_api::proto::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest,
    PutRequest, RangeRequest,
};
use hyperraft_api::ApiConfig;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::Code;

use crate::harness::{ApiCluster, PATIENCE};

fn leased_put(key: &str, lease: u64) -> PutRequest {
    PutRequest { key: key.as_bytes().to_vec().into(), value: b"v".to_vec().into(), lease, prev_kv: false }
}

fn get(key: &str) -> RangeRequest {
    RangeRequest { key: key.as_bytes().to_vec().into(), ..Default::default() }
}

async fn keys_present(cluster: &ApiCluster, node: u64, keys: &[&str]) -> Vec<bool> {
    let mut kv = cluster.kv(node).await;
    let mut present = Vec::new();
    for key in keys {
        present.push(kv.range(get(key)).await.expect("range").into_inner().count == 1);
    }
    present
}

async fn lease_ids(lease: &mut LeaseClient<Channel>) -> Vec<u64> {
    lease.leases(LeaseLeasesRequest {}).await.expect("leases").into_inner().ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_holds_its_keys_while_kept_alive_and_revoke_deletes_exactly_them() {
    // Proves grant (chosen and given ids), TimeToLive with keys, Leases, a keep-alive stream answering each renewal with the full TTL and keeping the keys past the TTL, and revoke deleting the lease's keys and nothing else.
    let cluster = ApiCluster::start(3, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let mut lease = LeaseClient::new(cluster.channel(leader).await);
    let chosen = lease.grant(LeaseGrantRequest { ttl_ms: 1_000, id: 0 }).await.expect("grant").into_inner();
    assert!(chosen.id > 0);
    assert_eq!(chosen.ttl_ms, 1_000);
    let given = lease.grant(LeaseGrantRequest { ttl_ms: 60_000, id: 777 }).await.expect("grant 777").into_inner();
    assert_eq!(given.id, 777);
    let mut kv = cluster.kv(leader).await;
    kv.put(leased_put("a", chosen.id)).await.expect("put a");
    kv.put(leased_put("b", chosen.id)).await.expect("put b");
    kv.put(leased_put("c", 777)).await.expect("put c");
    kv.put(leased_put("d", 0)).await.expect("put d");

    let ttl = lease
        .time_to_live(LeaseTimeToLiveRequest { id: chosen.id, keys: true })
        .await
        .expect("time to live")
        .into_inner();
    assert_eq!(ttl.granted_ttl_ms, 1_000);
    assert!(ttl.remaining_ms <= 1_000);
    assert_eq!(ttl.keys, vec![bytes::Bytes::from("a"), bytes::Bytes::from("b")]);
    let mut ids = lease_ids(&mut lease).await;
    ids.sort_unstable();
    assert_eq!(ids, vec![chosen.id.min(777), chosen.id.max(777)]);

    // Renew every 200 ms for three TTLs: the keys must stay.
    let (requests, receiver) = tokio::sync::mpsc::channel(4);
    let mut renewals = lease
        .keep_alive(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .expect("keep-alive stream")
        .into_inner();
    let kept_until = Instant::now() + Duration::from_millis(3_000);
    while Instant::now() < kept_until {
        requests.send(LeaseKeepAliveRequest { id: chosen.id }).await.expect("stream open");
        let renewed = renewals.message().await.expect("renewed").expect("an answer per request");
        assert_eq!((renewed.id, renewed.ttl_ms), (chosen.id, 1_000));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(keys_present(&cluster, leader, &["a", "b", "c", "d"]).await, [true; 4]);
    drop(requests);

    let revoked = lease.revoke(LeaseRevokeRequest { id: 777 }).await.expect("revoke").into_inner();
    assert_eq!(revoked.deleted, 1);
    assert_eq!(keys_present(&cluster, leader, &["a", "b", "c", "d"]).await, [true, true, false, true]);
    let gone = lease.time_to_live(LeaseTimeToLiveRequest { id: 777, keys: false }).await.expect_err("revoked");
    assert_eq!(gone.code(), Code::NotFound);
    drop((lease, kv, renewals));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_removes_its_keys_on_every_node() {
    // Proves expiry: a lease not kept alive is expired by the leader, and its keys (only its keys) vanish on every node; the lease is gone afterwards.
    let cluster = ApiCluster::start(3, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let mut lease = LeaseClient::new(cluster.channel(leader).await);
    let granted = lease.grant(LeaseGrantRequest { ttl_ms: 1_000, id: 0 }).await.expect("grant").into_inner();
    let mut kv = cluster.kv(leader).await;
    kv.put(leased_put("session/1", granted.id)).await.expect("leased put");
    kv.put(leased_put("config", 0)).await.expect("plain put");
    let deadline = Instant::now() + PATIENCE;
    while lease_ids(&mut lease).await.contains(&granted.id) {
        assert!(Instant::now() < deadline, "lease {} never expired", granted.id);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for node in 1..=3 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut kv = cluster.kv(node).await;
            let mut serializable = get("session/1");
            serializable.serializable = true;
            if kv.range(serializable).await.expect("range").into_inner().count == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "node {node} kept the expired key");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(keys_present(&cluster, leader, &["session/1", "config"]).await, [false, true]);
    drop((lease, kv));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_refusals_name_their_cause_and_change_nothing() {
    // Proves the documented lease errors: a TTL out of bounds and id 0 are INVALID_ARGUMENT naming the field, an unknown lease is NOT_FOUND for revoke, time-to-live, keep-alive and a leased put (which writes nothing), a granted id again is FAILED_PRECONDITION; the store's revision and leases stay as they were.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let mut lease = LeaseClient::new(cluster.channel(leader).await);
    let mut kv = cluster.kv(leader).await;
    lease.grant(LeaseGrantRequest { ttl_ms: 60_000, id: 5 }).await.expect("grant");
    let revision = |response: hyperraft_api::proto::RangeResponse| response.header.expect("header").revision;
    let before = revision(kv.range(get("x")).await.expect("range").into_inner());

    for ttl_ms in [0, 999, 86_400_001] {
        let refused = lease.grant(LeaseGrantRequest { ttl_ms, id: 0 }).await.expect_err("bad ttl");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains("ttl_ms"), "{refused:?}");
    }
    let refused = lease.revoke(LeaseRevokeRequest { id: 0 }).await.expect_err("id 0");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(lease.revoke(LeaseRevokeRequest { id: 6 }).await.expect_err("unknown").code(), Code::NotFound);
    let unknown = LeaseTimeToLiveRequest { id: 6, keys: false };
    assert_eq!(lease.time_to_live(unknown).await.expect_err("unknown").code(), Code::NotFound);
    assert_eq!(kv.put(leased_put("x", 6)).await.expect_err("unknown lease").code(), Code::NotFound);
    let again = lease.grant(LeaseGrantRequest { ttl_ms: 60_000, id: 5 }).await.expect_err("granted twice");
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");

    let (requests, receiver) = tokio::sync::mpsc::channel(1);
    let mut renewals = lease
        .keep_alive(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .expect("keep-alive stream")
        .into_inner();
    requests.send(LeaseKeepAliveRequest { id: 6 }).await.expect("stream open");
    assert_eq!(renewals.message().await.expect_err("unknown lease").code(), Code::NotFound);

    let after = kv.range(get("x")).await.expect("range").into_inner();
    assert_eq!((after.count, revision(after)), (0, before));
    assert_eq!(lease_ids(&mut lease).await, vec![5]);
    drop((lease, kv, renewals, requests));
    cluster.shutdown().await;
}
