//! The Kv service: put, range, delete-range and transactions, etcd-style.

use hyperraft_api::proto::compare::{Result as CompareResult, Target};
use hyperraft_api::proto::request_op::Request as Op;
use hyperraft_api::proto::response_op::Response as OpResponse;
use hyperraft_api::proto::{Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};
use hyperraft_api::ApiConfig;

use crate::harness::ApiCluster;

pub fn put(key: &str, value: &str) -> PutRequest {
    PutRequest { key: key.as_bytes().to_vec().into(), value: value.as_bytes().to_vec().into(), ..Default::default() }
}

pub fn range(key: &str, range_end: &[u8]) -> RangeRequest {
    RangeRequest { key: key.as_bytes().to_vec().into(), range_end: range_end.to_vec().into(), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_range_and_delete_follow_etcd_semantics() {
    // Proves puts bump revision and version and return the previous pair when asked, ranges honour range_end, limit and count, serializable reads see committed writes, and delete-range removes exactly its range.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let mut kv = cluster.kv(leader).await;
    let first = kv.put(put("a", "1")).await.unwrap().into_inner();
    let first_revision = first.header.unwrap().revision;
    assert_eq!(first.header.unwrap().node_id, leader);
    let second = kv.put(PutRequest { prev_kv: true, ..put("a", "2") }).await.unwrap().into_inner();
    assert!(second.header.unwrap().revision > first_revision);
    assert_eq!(second.prev_kv.unwrap().value.as_ref(), b"1");
    for key in ["b", "c", "d"] {
        kv.put(put(key, key)).await.unwrap();
    }

    let single = kv.range(range("a", b"")).await.unwrap().into_inner();
    assert_eq!(single.kvs.len(), 1);
    let a = &single.kvs[0];
    assert_eq!((a.value.as_ref(), a.version, a.create_revision), (&b"2"[..], 2, first_revision));

    let limited = kv.range(RangeRequest { limit: 2, ..range("a", b"d") }).await.unwrap().into_inner();
    let keys: Vec<&[u8]> = limited.kvs.iter().map(|pair| pair.key.as_ref()).collect();
    assert_eq!((keys, limited.count, limited.more), (vec![&b"a"[..], b"b"], 3, true));
    let serializable = RangeRequest { serializable: true, count_only: true, ..range("a", b"\0") };
    assert_eq!(kv.range(serializable).await.unwrap().into_inner().count, 4);

    let delete = DeleteRangeRequest { key: b"b".to_vec().into(), range_end: b"d".to_vec().into(), prev_kv: true };
    let deleted = kv.delete_range(delete).await.unwrap().into_inner();
    assert_eq!(deleted.deleted, 2);
    assert_eq!(deleted.prev_kvs.iter().map(|pair| pair.key.as_ref()).collect::<Vec<_>>(), vec![&b"b"[..], b"c"]);
    let left = kv.range(range("a", b"\0")).await.unwrap().into_inner();
    assert_eq!(left.kvs.iter().map(|pair| pair.key.as_ref()).collect::<Vec<_>>(), vec![&b"a"[..], b"d"]);
    drop(kv);
    cluster.shutdown().await;
}

fn value_equals(key: &str, value: &str) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        key: key.as_bytes().to_vec().into(),
        target: Some(Target::Value(value.as_bytes().to_vec().into())),
    }
}

fn op(request: Op) -> RequestOp {
    RequestOp { request: Some(request) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_runs_success_when_compares_hold_and_failure_when_not() {
    // Proves compare-and-set: a holding compare runs the success branch, a failing one runs the failure branch and answers succeeded=false (not an error), and each branch's responses come back in order.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let mut kv = cluster.kv(cluster.leader().await).await;
    let created = kv.put(put("lock", "free")).await.unwrap().into_inner().header.unwrap().revision;

    let take = TxnRequest {
        compare: vec![value_equals("lock", "free")],
        success: vec![op(Op::Put(put("lock", "taken"))), op(Op::Range(range("lock", b"")))],
        failure: vec![op(Op::Range(range("lock", b"")))],
    };
    let taken = kv.txn(take.clone()).await.unwrap().into_inner();
    assert!(taken.succeeded);
    assert_eq!(taken.responses.len(), 2);
    assert!(matches!(&taken.responses[0].response, Some(OpResponse::Put(_))));
    let Some(OpResponse::Range(seen)) = &taken.responses[1].response else { panic!("{:?}", taken.responses) };
    assert_eq!(seen.kvs[0].value.as_ref(), b"taken");

    let again = kv.txn(take).await.unwrap().into_inner();
    assert!(!again.succeeded, "the lock is taken, so the compare fails");
    assert_eq!(again.responses.len(), 1);
    let Some(OpResponse::Range(seen)) = &again.responses[0].response else { panic!("{:?}", again.responses) };
    assert_eq!(seen.kvs[0].value.as_ref(), b"taken");

    let stale = Compare {
        result: CompareResult::Equal as i32,
        key: b"lock".to_vec().into(),
        target: Some(Target::ModRevision(created)),
    };
    let guarded =
        TxnRequest { compare: vec![stale], success: vec![op(Op::Put(put("lock", "stolen")))], failure: vec![] };
    assert!(!kv.txn(guarded).await.unwrap().into_inner().succeeded);
    let now = kv.range(range("lock", b"")).await.unwrap().into_inner();
    assert_eq!(now.kvs[0].value.as_ref(), b"taken", "a failed compare changed nothing");
    drop(kv);
    cluster.shutdown().await;
}
