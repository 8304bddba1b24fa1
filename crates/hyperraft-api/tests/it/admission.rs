//! Admission control seen from a client.

use hyperraft_api::errors::RETRY_AFTER_MS_KEY;
use hyperraft_api::proto::kv_client::KvClient;
use hyperraft_api::proto::{PutRequest, StatusRequest};
use hyperraft_api::ApiConfig;
use tonic::Code;

use crate::harness::{channel, ApiCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_gate_refuses_with_resource_exhausted_and_a_retry_hint_while_the_node_keeps_serving() {
    // Proves a server whose in-flight bound is full (0) refuses every call with RESOURCE_EXHAUSTED and the configured retry hint, writes nothing, and a second server of the same node with room still serves.
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
    let mut refused_cluster = hyperraft_api::proto::cluster_client::ClusterClient::new(channel(&address).await);
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
