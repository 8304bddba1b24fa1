//! gzip and zstd on the wire.

use hyperraft_api::proto::kv_client::KvClient;
use hyperraft_api::ApiConfig;
use tonic::codec::CompressionEncoding;

use crate::harness::ApiCluster;
use crate::kv::{put, range};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_requests_round_trip_and_responses_come_back_compressed() {
    // Proves each encoding (zstd, gzip): a client that compresses its requests and accepts compressed responses writes and reads a large value intact, and the server answers in that encoding (grpc-encoding).
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let value = "compressible ".repeat(10_000);
    for (encoding, name) in [(CompressionEncoding::Zstd, "zstd"), (CompressionEncoding::Gzip, "gzip")] {
        let mut kv = KvClient::new(cluster.channel(leader).await).send_compressed(encoding).accept_compressed(encoding);
        let written = kv.put(put(name, &value)).await.unwrap();
        assert_eq!(written.metadata().get("grpc-encoding").and_then(|v| v.to_str().ok()), Some(name));
        let read = kv.range(range(name, b"")).await.unwrap();
        assert_eq!(read.metadata().get("grpc-encoding").and_then(|v| v.to_str().ok()), Some(name));
        let pairs = read.into_inner().kvs;
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].value.as_ref(), value.as_bytes(), "the {name} round trip changed the value");
    }
    cluster.shutdown().await;
}
