//! Prometheus /metrics, scraped over plain HTTP.

use hyperraft_api::proto::StatusRequest;
use hyperraft_api::ApiConfig;
use hyperraft_node::MetricsServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::ApiCluster;
use crate::kv::put;
use crate::watch::{next, watch_request};

/// The status line and body of `GET path`.
async fn get(address: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(address).await.expect("connect to the metrics listener");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

/// The sum of the samples of `name` whose labels include every one of `labels`.
fn sample(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let values: Vec<f64> = body
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_over_http_and_grow_with_requests() {
    // Proves the /metrics listener: its text names the request, batch, log fsync, replication, Raft, queue and watch series labelled by node, request and fsync counts grow after writes, and other paths answer 404.
    let metrics = MetricsServer::start("127.0.0.1:0".parse().unwrap()).await.expect("metrics listener");
    let cluster = ApiCluster::start(3, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let node = format!("node=\"{leader}\"");
    let mut kv = cluster.kv(leader).await;
    kv.put(put("m", "1")).await.unwrap();
    cluster.cluster(leader).await.status(StatusRequest {}).await.unwrap();
    let mut watch = kv.watch(watch_request("m", b"", 1)).await.unwrap().into_inner();
    next(&mut watch).await.unwrap().expect("the first put");

    let (status, before) = get(metrics.local_addr(), "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let puts = ["rpc=\"Kv/Put\"", "code=\"0\"", node.as_str()];
    let puts_before = sample(&before, "hyperraft_api_requests_total", &puts).expect("put requests counted");
    let fsyncs = ["kind=\"data\"", node.as_str()];
    let fsyncs_before = sample(&before, "hyperraft_log_fsyncs_total", &fsyncs).expect("fsyncs counted");
    assert!(sample(&before, "hyperraft_api_requests_total", &["rpc=\"Cluster/Status\"", &node]).is_some());
    assert!(sample(&before, "hyperraft_api_request_seconds_count", &["rpc=\"Kv/Put\"", &node]).is_some());
    for name in
        ["hyperraft_batch_requests_count", "hyperraft_batch_items_count", "hyperraft_commit_apply_seconds_count"]
    {
        assert!(sample(&before, name, &[&node]).is_some(), "{name} missing:\n{before}");
    }
    assert!(sample(&before, "hyperraft_log_fsync_seconds_count", &[&node]).is_some());
    let appends = sample(&before, "hyperraft_raft_append_seconds_count", &[&node, "peer=\""]);
    assert!(appends.is_some_and(|count| count >= 1.0), "the leader's AppendEntries round trips:\n{before}");
    assert!(sample(&before, "hyperraft_watches_active", &[&node]).is_some_and(|open| open >= 1.0));
    let gauges = ["hyperraft_raft_term", "hyperraft_raft_last_log_index", "hyperraft_raft_applied_index"];
    for name in gauges.into_iter().chain(["hyperraft_raft_is_leader", "hyperraft_write_queue_depth"]) {
        assert!(sample(&before, name, &[&node]).is_some(), "{name} missing:\n{before}");
    }

    for value in 0..5 {
        kv.put(put("m", &value.to_string())).await.unwrap();
    }
    let (_, after) = get(metrics.local_addr(), "/metrics").await;
    let puts_after = sample(&after, "hyperraft_api_requests_total", &puts).unwrap();
    assert!(puts_after >= puts_before + 5.0, "{puts_before} puts, then {puts_after}");
    assert!(sample(&after, "hyperraft_log_fsyncs_total", &fsyncs).unwrap() > fsyncs_before);

    assert_eq!(get(metrics.local_addr(), "/other").await.0, "HTTP/1.1 404 Not Found");
    drop((watch, kv));
    cluster.shutdown().await;
    metrics.shutdown().await;
}
