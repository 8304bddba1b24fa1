//! Admission control seen from a client.

use std::time::Duration;

use hyperraft_api::errors::{RETRY_AFTER_MS_KEY, RETRY_SAFE_KEY};
use hyperraft_api::proto::cluster_client::ClusterClient;
use hyperraft_api::proto::kv_client::KvClient;
use hyperraft_api::proto::{PutRequest, StatusRequest};
use hyperraft_api::ApiConfig;
use tokio::time::Instant;
use tonic::Code;

use crate::harness::{channel, ApiCluster, PATIENCE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_gate_refuses_with_resource_exhausted_and_a_retry_hint_while_the_node_keeps_serving() {
    // Proves a server whose in-flight bound is full (0) refuses every call with RESOURCE_EXHAUSTED, the configured retry hint and the retry-safe mark, writes nothing, and a second server of the same node with room still serves.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let full = ApiConfig { requests_in_flight_max: 0, ..ApiConfig::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let gated = hyperraft_api::serve_on(cluster.nodes[&leader].clone(), listener, full.clone()).unwrap();

    let mut refused_kv = KvClient::new(channel(&address).await);
    let put = PutRequest { key: b"k".to_vec().into(), value: b"v".to_vec().into(), ..Default::default() };
    let refused = refused_kv.put(put.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let retry_after_ms = full.retry_after.as_millis().to_string();
    assert_eq!(refused.metadata().get(RETRY_AFTER_MS_KEY).and_then(|v| v.to_str().ok()), Some(&*retry_after_ms));
    assert_eq!(refused.metadata().get(RETRY_SAFE_KEY).and_then(|v| v.to_str().ok()), Some("true"));
    let mut refused_cluster = ClusterClient::new(channel(&address).await);
    assert_eq!(refused_cluster.status(StatusRequest {}).await.unwrap_err().code(), Code::ResourceExhausted);

    let mut kv = cluster.kv(leader).await;
    let range = hyperraft_api::proto::RangeRequest { key: b"k".to_vec().into(), ..Default::default() };
    assert_eq!(kv.range(range.clone()).await.unwrap().into_inner().count, 0, "the refused put wrote nothing");
    kv.put(put).await.unwrap();
    assert_eq!(kv.range(range).await.unwrap().into_inner().count, 1);
    drop((refused_kv, refused_cluster, kv));
    gated.shutdown().await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_bound_are_closed_and_room_returns_when_one_closes() {
    // Proves connections_max: with room for one connection, a second client's call fails while the first stays open, and once the first client is gone a new client is served.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let one = ApiConfig { connections_max: 1, ..ApiConfig::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let bounded = hyperraft_api::serve_on(cluster.nodes[&leader].clone(), listener, one).unwrap();

    let mut first = ClusterClient::new(channel(&address).await);
    first.status(StatusRequest {}).await.expect("the first connection is served");
    // The second connection may complete its TCP handshake, but the server closes it at once.
    let second = tonic::transport::Channel::from_shared(format!("http://{address}")).unwrap().connect().await;
    if let Ok(second) = second {
        let refused = ClusterClient::new(second).status(StatusRequest {}).await;
        assert!(refused.is_err(), "a second connection was served: {refused:?}");
    }
    first.status(StatusRequest {}).await.expect("the first connection is still served");

    drop(first);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let connected = tonic::transport::Channel::from_shared(format!("http://{address}")).unwrap().connect().await;
        if let Ok(channel) = connected {
            if ClusterClient::new(channel).status(StatusRequest {}).await.is_ok() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the closed connection's room never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bounded.shutdown().await.unwrap();
    cluster.shutdown().await;
}
