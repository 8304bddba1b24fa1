//! Key/value calls through the SDK.

use bytes::Bytes;
use hyperraft_client::proto::{DeleteRangeRequest, PutRequest, RangeRequest};
use hyperraft_client::{prefix_end, Compare, CompareOp, Error, Op, Txn};

use crate::harness::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_range_delete_and_transactions() {
    // Proves each key/value call of the SDK against a cluster: values and revisions read back, ranges by prefix, deletes, both branches of a transaction, and a bad key named by field.
    let cluster = TestCluster::start(3).await;
    let client = cluster.client(&[1, 2, 3]).await;

    let first = client.put("app/a", "1").await.expect("put");
    let revision = first.header.expect("header").revision;
    assert!(revision > 0);
    let previous = client
        .put_request(PutRequest { key: "app/a".into(), value: "2".into(), prev_kv: true, ..PutRequest::default() })
        .await
        .expect("put");
    assert_eq!(previous.prev_kv.expect("previous pair").value, Bytes::from("1"));
    client.put("app/b", "3").await.expect("put");
    client.put("other", "4").await.expect("put");

    let pair = client.get("app/a").await.expect("get").expect("present");
    assert_eq!((pair.value, pair.version), (Bytes::from("2"), 2));
    assert_eq!(client.get("missing").await.expect("get"), None);
    let range = client
        .range(RangeRequest { key: "app/".into(), range_end: prefix_end(b"app/"), ..RangeRequest::default() })
        .await
        .expect("range");
    let keys: Vec<Bytes> = range.kvs.iter().map(|pair| pair.key.clone()).collect();
    assert_eq!(keys, vec![Bytes::from("app/a"), Bytes::from("app/b")]);
    let serializable = RangeRequest { key: "other".into(), serializable: true, ..RangeRequest::default() };
    assert_eq!(client.range(serializable).await.expect("range").kvs.len(), 1);

    let taken = Txn::new()
        .when([Compare::version("lock", CompareOp::Equal, 0)])
        .and_then([Op::put("lock", "me")])
        .or_else([Op::get("lock")]);
    assert!(client.txn(taken.clone()).await.expect("txn").succeeded);
    let refused = client.txn(taken).await.expect("txn");
    assert!(!refused.succeeded, "the lock is held now");
    assert_eq!(refused.responses.len(), 1, "the failure branch ran");

    let deleted = client
        .delete_range(DeleteRangeRequest { key: "app/".into(), range_end: prefix_end(b"app/"), prev_kv: true })
        .await
        .expect("delete");
    assert_eq!(deleted.deleted, 2);
    assert_eq!(client.delete("other").await.expect("delete").deleted, 1);
    assert_eq!(client.get("app/b").await.expect("get"), None);

    let empty_key = client.put("", "x").await;
    assert!(matches!(empty_key, Err(Error::InvalidArgument { ref field, .. }) if field == "key"), "{empty_key:?}");
    drop(client);
    cluster.shutdown().await;
}
