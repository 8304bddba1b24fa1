//! Compressed calls through the SDK.

use hyperraft_client::{Client, ClientConfig, Compression};

use crate::harness::TestCluster;
use crate::ledger::account;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_calls_round_trip() {
    // Proves the compression option: with zstd and with gzip, packed ledger frames and key/value calls reach the server and their answers read back.
    let cluster = TestCluster::start(3).await;
    for (index, compression) in [Compression::Zstd, Compression::Gzip].into_iter().enumerate() {
        let mut config = ClientConfig::new(cluster.addresses.values().cloned());
        config.compression = Some(compression);
        let client = Client::connect(config).await.expect("connect");
        let id = 1 + index as u128;
        assert!(client.create_accounts(&[account(id)]).await.expect("create").is_empty(), "{compression:?}");
        assert_eq!(client.lookup_accounts(&[id]).await.expect("lookup").len(), 1, "{compression:?}");
        client.put("compressed", vec![b'x'; 4096]).await.expect("put");
        let pair = client.get("compressed").await.expect("get").expect("present");
        assert_eq!(pair.value.len(), 4096, "{compression:?}");
    }
    cluster.shutdown().await;
}
