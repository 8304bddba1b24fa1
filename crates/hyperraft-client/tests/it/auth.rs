//! Tokens and TLS through the SDK.

use std::time::Duration;

use hyperraft_api::{ApiConfig, ApiToken, Role};
use hyperraft_client::{prefix_end, Client, ClientTls, Error};
use tokio_stream::StreamExt;

use crate::harness::{TestCluster, PATIENCE};
use crate::ledger::account;

const READER: &str = "reader-secret";
const WRITER: &str = "writer-secret";

fn secured() -> ApiConfig {
    ApiConfig {
        tokens: vec![
            ApiToken::from_secret("reader", Role::Read, READER),
            ApiToken::from_secret("writer", Role::Write, WRITER),
        ],
        ..ApiConfig::default()
    }
}

async fn client_with(cluster: &TestCluster, ids: &[u64], token: Option<&str>) -> Result<Client, Error> {
    let mut config = cluster.client_config(ids);
    config.token = token.map(str::to_string);
    Client::connect(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_goes_with_every_call_health_check_and_watch() {
    // Proves ClientConfig::token is sent everywhere: a write client given one endpoint learns the other nodes (health checks' Status calls pass), creates accounts, puts and reads keys, and its watch delivers the change.
    let cluster = TestCluster::start_with_api(3, secured()).await;
    let client = client_with(&cluster, &[1], Some(WRITER)).await.expect("connects with a token");
    assert_eq!(client.endpoints().len(), 3, "the other nodes were learned from Status: {:?}", client.endpoints());
    assert!(client.create_accounts(&[account(1)]).await.expect("create").is_empty());
    let mut watch = client.watch("auth/", prefix_end(b"auth/"), 0).await.expect("watch");
    client.put("auth/key", "value").await.expect("put");
    assert_eq!(client.get("auth/key").await.expect("get").expect("present").value.as_ref(), b"value");
    let event = tokio::time::timeout(PATIENCE, watch.next()).await.expect("an event").expect("open").expect("ok");
    assert_eq!(event.kv.expect("a key").key.as_ref(), b"auth/key");
    drop((watch, client));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_token_or_a_role_too_low_fails_at_once_and_changes_nothing() {
    // Proves the SDK errors: connecting without a token or with an unknown one is Error::Unauthenticated; a read client reads, but its put, account create and leader transfer are Error::PermissionDenied after one attempt each (never retried) and leave nothing behind.
    let cluster = TestCluster::start_with_api(1, secured()).await;
    for token in [None, Some("guess")] {
        let refused = client_with(&cluster, &[1], token).await.err().expect("refused");
        assert!(matches!(refused, Error::Unauthenticated(_)), "{refused:?}");
    }
    let reader = client_with(&cluster, &[1], Some(READER)).await.expect("a read token connects");
    assert_eq!(reader.get("k").await.expect("a read token reads"), None);
    let attempts = reader.stats().attempts;
    let denied = reader.put("k", "v").await.expect_err("a read token cannot write");
    assert!(matches!(&denied, Error::PermissionDenied(message) if message.contains("write")), "{denied:?}");
    assert_eq!(reader.stats().attempts, attempts + 1, "a refused token is not retried");
    let denied = reader.create_accounts(&[account(9)]).await.expect_err("a read token cannot create");
    assert!(matches!(denied, Error::PermissionDenied(_)), "{denied:?}");
    let denied = reader.transfer_leader(1, Duration::ZERO).await.expect_err("a read token cannot transfer");
    assert!(matches!(&denied, Error::PermissionDenied(message) if message.contains("admin")), "{denied:?}");
    assert_eq!(reader.get("k").await.expect("get"), None, "the refused put wrote nothing");
    assert!(reader.lookup_accounts(&[9]).await.expect("lookup").is_empty(), "the refused create created nothing");
    drop(reader);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_client_trusting_the_cluster_ca_is_served_and_others_fail_clearly() {
    // Proves TLS through the SDK: a client with the cluster's ca.pem (and a token) connects, writes and reads; a client trusting another CA fails to connect with an error naming the certificate; a plaintext client fails to connect to the TLS port.
    let cluster = TestCluster::start_tls(1, secured()).await;
    let client = client_with(&cluster, &[1], Some(WRITER)).await.expect("connects over TLS");
    client.put("tls", "yes").await.expect("put over TLS");
    assert_eq!(client.get("tls").await.expect("get").expect("present").value.as_ref(), b"yes");
    drop(client);

    let dir = tempfile::tempdir().unwrap();
    let stranger = hyperraft_node::EmbeddedCluster::new(dir.path(), 1, Default::default(), 1).unwrap();
    let mut config = cluster.client_config(&[1]);
    config.token = Some(WRITER.to_string());
    config.tls = Some(ClientTls { ca_pem: stranger.ca().certificate_pem().to_string(), domain: None });
    let refused = Client::connect(config).await.err().expect("another CA is not trusted");
    assert!(refused.to_string().contains("certificate"), "the error names the certificate: {refused}");

    let mut plaintext = cluster.client_config(&[1]);
    plaintext.token = Some(WRITER.to_string());
    plaintext.tls = None;
    let refused = Client::connect(plaintext).await.err().expect("a plaintext client is not served");
    assert!(matches!(refused, Error::Unavailable(_)), "{refused:?}");
    cluster.shutdown().await;
}
