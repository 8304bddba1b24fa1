//! Leases through the SDK.

use std::time::Duration;

use hyperraft_client::proto::PutRequest;
use hyperraft_client::KeepAliveState;

use crate::harness::{TestCluster, PATIENCE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_grant_keep_alive_list_and_revoke_with_their_keys() {
    // Proves each lease call: grant (cluster-chosen id), a key attached to it, time_to_live with keys, leases listing it, keep_alive renewing it, and revoke deleting the lease with its key.
    let cluster = TestCluster::start(3).await;
    let client = cluster.client(&[1, 2, 3]).await;
    let granted = client.lease_grant(Duration::from_secs(5), 0).await.expect("grant");
    assert!(granted.id > 0);
    assert_eq!(granted.ttl_ms, 5000);
    let put = PutRequest { key: "leased".into(), value: "v".into(), lease: granted.id, prev_kv: false };
    client.put_request(put).await.expect("put with lease");
    let ttl = client.lease_time_to_live(granted.id, true).await.expect("ttl");
    assert_eq!(ttl.granted_ttl_ms, 5000);
    assert!(ttl.remaining_ms <= 5000);
    assert_eq!(ttl.keys, vec![bytes::Bytes::from("leased")]);
    assert!(client.leases().await.expect("leases").contains(&granted.id));

    let mut keep_alive = client.keep_alive(granted.id);
    let renewed = tokio::time::timeout(PATIENCE, keep_alive.changed()).await.expect("a renewal").expect("running");
    assert!(matches!(renewed, KeepAliveState::Alive { ttl, .. } if ttl == Duration::from_secs(5)), "{renewed:?}");
    drop(keep_alive);

    assert_eq!(client.lease_revoke(granted.id).await.expect("revoke").deleted, 1);
    assert_eq!(client.get("leased").await.expect("get"), None);
    assert!(matches!(client.lease_time_to_live(granted.id, false).await, Err(hyperraft_client::Error::NotFound(_))));
    drop(client);
    cluster.shutdown().await;
}
