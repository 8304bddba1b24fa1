//! Followers, leader hints, and bad input.

use std::time::Duration;

use hyperraft_api::errors::{LEADER_ADDRESS_KEY, LEADER_ID_KEY, RETRY_SAFE_KEY};
use hyperraft_api::proto::compare::Result as CompareResult;
use hyperraft_api::proto::{
    Account, Compare, CreateAccountsRequest, CreateTransfersRequest, LookupAccountsRequest, PutRequest, RangeRequest,
    StatusRequest, TxnRequest,
};
use hyperraft_api::ApiConfig;
use hyperraft_wire::kv::KEY_BYTES_MAX;
use hyperraft_wire::{encode_records, AccountRecord, Kind};
use tokio::time::Instant;
use tonic::Code;
use zerocopy::byteorder::little_endian::{U128, U16, U32};

use crate::harness::{ApiCluster, PATIENCE};
use crate::kv::{put, range};
use crate::ledger::{account, id};

fn metadata(status: &tonic::Status, key: &str) -> Option<String> {
    status.metadata().get(key).and_then(|value| value.to_str().ok()).map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_refuses_writes_and_linearizable_reads_with_a_leader_hint() {
    // Proves followers answer UNAVAILABLE with the leader's id and API address (and the retry-safe mark) in the metadata for writes and linearizable reads, serve serializable reads, and report the leader in Status.
    let cluster = ApiCluster::start(3, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let follower = cluster.follower().await;
    let mut kv = cluster.kv(follower).await;

    let refused = kv.put(put("k", "v")).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(metadata(&refused, LEADER_ID_KEY), Some(leader.to_string()));
    assert_eq!(metadata(&refused, LEADER_ADDRESS_KEY).as_ref(), Some(&cluster.addresses[&leader]));
    assert_eq!(metadata(&refused, RETRY_SAFE_KEY).as_deref(), Some("true"), "refused before proposing");

    let refused = kv.range(range("k", b"")).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(metadata(&refused, LEADER_ID_KEY), Some(leader.to_string()));

    let mut ledger = cluster.ledger(follower).await;
    let refused = ledger.create_accounts(CreateAccountsRequest { accounts: vec![account(1)], ..Default::default() });
    assert_eq!(refused.await.unwrap_err().code(), Code::Unavailable);

    // Following the hint works, and the follower catches up for serializable reads.
    let mut leader_kv = cluster.kv(leader).await;
    leader_kv.put(put("k", "v")).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = kv.range(RangeRequest { serializable: true, ..range("k", b"") }).await.unwrap().into_inner();
        if seen.kvs.len() == 1 {
            assert_eq!(seen.kvs[0].value.as_ref(), b"v");
            break;
        }
        assert!(Instant::now() < deadline, "the follower never applied the put");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let status = cluster.cluster(follower).await.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!((status.node_id, status.leader_id, status.is_leader), (follower, Some(leader), false));
    assert_eq!(status.voters.len(), 3);
    let leader_member = status.voters.iter().find(|member| member.id == leader).expect("the leader is a voter");
    assert_eq!(&leader_member.api_address, &cluster.addresses[&leader]);
    drop((kv, ledger, leader_kv));
    cluster.shutdown().await;
}

fn assert_invalid(status: tonic::Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with(&format!("{field}:")), "expected the field {field} named: {status:?}");
    assert_eq!(metadata(&status, RETRY_SAFE_KEY).as_deref(), Some("true"), "bad input is refused before proposing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_fields_and_damaged_frames_are_refused_naming_the_field_and_change_nothing() {
    // Proves INVALID_ARGUMENT names the bad field and is marked retry-safe (key too long or empty, a 17-bit code, both forms given, a compare without target, a damaged or mistyped frame) and none of those requests changed the state.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let mut kv = cluster.kv(leader).await;
    let mut ledger = cluster.ledger(leader).await;

    let long_key = PutRequest { key: vec![b'k'; KEY_BYTES_MAX + 1].into(), ..Default::default() };
    assert_invalid(kv.put(long_key).await.unwrap_err(), "key");
    assert_invalid(kv.put(PutRequest::default()).await.unwrap_err(), "key");
    let long_end = RangeRequest { range_end: vec![b'z'; KEY_BYTES_MAX + 1].into(), ..range("a", b"") };
    assert_invalid(kv.range(long_end).await.unwrap_err(), "range_end");
    let no_target = Compare { result: CompareResult::Equal as i32, key: b"k".to_vec().into(), target: None };
    let txn = TxnRequest { compare: vec![no_target], ..Default::default() };
    assert_invalid(kv.txn(txn).await.unwrap_err(), "compare[0].target");

    let wide_code = Account { code: 70_000, ..account(5) };
    let request = CreateAccountsRequest { accounts: vec![account(4), wide_code], ..Default::default() };
    assert_invalid(ledger.create_accounts(request).await.unwrap_err(), "accounts[1].code");
    assert_invalid(ledger.create_accounts(CreateAccountsRequest::default()).await.unwrap_err(), "accounts");

    let record = AccountRecord { id: U128::new(6), ledger: U32::new(1), code: U16::new(1), ..Default::default() };
    let mut frame = Vec::new();
    encode_records(Kind::CreateAccounts, &[record], &mut frame);
    let both = CreateAccountsRequest { accounts: vec![account(7)], frame: frame.clone().into() };
    assert_invalid(ledger.create_accounts(both).await.unwrap_err(), "accounts");
    let mut damaged = frame.clone();
    *damaged.last_mut().unwrap() ^= 0x40;
    let request = CreateAccountsRequest { frame: damaged.into(), ..Default::default() };
    assert_invalid(ledger.create_accounts(request).await.unwrap_err(), "frame");
    let mistyped = CreateTransfersRequest { frame: frame.into(), ..Default::default() };
    assert_invalid(ledger.create_transfers(mistyped).await.unwrap_err(), "frame");

    let ids = [4, 5, 6, 7].map(|n| id(n).unwrap()).to_vec();
    let found = ledger.lookup_accounts(LookupAccountsRequest { ids, ..Default::default() }).await.unwrap();
    assert_eq!(found.into_inner().accounts, vec![], "a refused request created an account");
    let keys = kv.range(RangeRequest { count_only: true, ..range("\0", b"\0") }).await.unwrap().into_inner();
    assert_eq!(keys.count, 0, "a refused request wrote a key");
    drop((kv, ledger));
    cluster.shutdown().await;
}
