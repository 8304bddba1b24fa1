//! The documented refusals, through the SDK: each bad request gets its
//! error and changes nothing.

use std::time::Duration;

use hyperraft_client::proto::{PutRequest, RangeRequest};
use hyperraft_client::wire::AccountRecord;
use hyperraft_client::{CreateAccountResult, Error, Op, Txn};

use crate::harness::TestCluster;

/// The store's revision, read through a linearizable range.
async fn revision(client: &hyperraft_client::Client) -> u64 {
    let range = client.range(RangeRequest { key: "probe".into(), ..RangeRequest::default() }).await.expect("range");
    range.header.expect("header").revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_refusal_names_its_cause_and_changes_nothing() {
    // Proves INVALID_ARGUMENT (naming `key`, `ttl_ms`), FAILED_PRECONDITION (a transaction writing one key twice; a lease granted twice), NOT_FOUND (a put on an unknown lease; revoking one) and per-item ledger codes (not errors) each reach the SDK as their own variant, and afterwards the revision, keys, leases and accounts are as before.
    let cluster = TestCluster::start(3).await;
    let client = cluster.client(&[1, 2, 3]).await;
    client.put("kept", "1").await.expect("put");
    client.lease_grant(Duration::from_secs(60), 9).await.expect("grant");
    let before = revision(&client).await;

    match client.put("", "x").await {
        Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "key"),
        other => panic!("an empty key: {other:?}"),
    }
    match client.lease_grant(Duration::from_millis(10), 0).await {
        Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "ttl_ms"),
        other => panic!("a 10 ms lease: {other:?}"),
    }
    let twice = Txn::new().and_then([Op::put("dup", "a"), Op::put("dup", "b")]);
    assert!(matches!(client.txn(twice).await, Err(Error::FailedPrecondition(_))), "a key written twice in one branch");
    assert!(matches!(client.lease_grant(Duration::from_secs(60), 9).await, Err(Error::FailedPrecondition(_))));
    let unknown_lease = PutRequest { key: "leased".into(), value: "v".into(), lease: 404, prev_kv: false };
    assert!(matches!(client.put_request(unknown_lease).await, Err(Error::NotFound(_))));
    assert!(matches!(client.lease_revoke(404).await, Err(Error::NotFound(_))));

    // A ledger item that breaks a rule is a result code, not an error.
    let zero = AccountRecord { ledger: 1.into(), code: 1.into(), ..AccountRecord::default() };
    let failures = client.create_accounts(&[zero]).await.expect("the call succeeds");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].code, CreateAccountResult::IdMustNotBeZero);

    assert_eq!(revision(&client).await, before, "a refusal wrote");
    for key in ["dup", "leased"] {
        assert_eq!(client.get(key).await.expect("get"), None, "{key} was written");
    }
    assert_eq!(client.get("kept").await.expect("get").expect("present").value, bytes::Bytes::from("1"));
    assert_eq!(client.leases().await.expect("leases"), vec![9]);
    drop(client);
    cluster.shutdown().await;
}
