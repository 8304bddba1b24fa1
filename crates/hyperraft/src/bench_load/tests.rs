//! Unit tests of the bench load: error kinds and the etcd requests.

use prost::Message;

use super::{scatter, variant_name, Load};
use crate::bench::{Ids, Workload};
use crate::bench_etcd::{Request, RequestOp, TxnRequest};
use hyperraft_load::Skew;

/// Proves error kinds are the variant names in snake case, payloads dropped.
#[test]
fn error_kinds_are_snake_case_variant_names() {
    #[derive(Debug)]
    #[allow(dead_code)]
    enum Example {
        NotLeader { leader: Option<u64> },
        Overloaded(usize),
    }
    assert_eq!(variant_name(&Example::NotLeader { leader: Some(2) }), "not_leader");
    assert_eq!(variant_name(&Example::Overloaded(7)), "overloaded");
}

/// Proves one put becomes etcd's `Put` with field 1 the key and field 2 the
/// 64-byte value, and several become one `Txn` whose success branch holds
/// every put in order (field numbers as in etcd's rpc.proto).
#[test]
fn etcd_requests_carry_the_generated_puts() {
    let mut load = Load::new(Workload::KvPut, Ids::Sequential, 1000, Skew::Uniform, 7, 1);
    load.next(1);
    let put = load.etcd_put().expect("one put is a Put");
    assert!(put.key.starts_with(b"key-") && put.key.len() == 16);
    let bytes = put.encode_to_vec();
    assert_eq!(bytes[0], 0x0a, "field 1, length-delimited");
    assert_eq!(bytes[1] as usize, put.key.len());
    assert_eq!(bytes[2 + put.key.len()], 0x12, "field 2, length-delimited");
    assert_eq!(put.value.len(), 64);

    load.next(3);
    assert!(load.etcd_put().is_none(), "three puts are not one Put");
    let txn = TxnRequest::decode(load.etcd_txn().encode_to_vec().as_slice()).expect("round trip");
    assert_eq!(txn.success.len(), 3);
    assert!(txn.success.iter().all(|op| matches!(op, RequestOp { request: Some(Request::Put(_)) })));
}

/// Proves scattered ids stay distinct and nonzero, and that neighbours
/// among a writer's counted ids land in different 16-id runs.
#[test]
fn scattered_ids_are_distinct_and_apart() {
    let first = (12_345u128 << 64) | (3 << 48) | 1;
    let ids: Vec<u128> = (first..first + 100_000).map(scatter).collect();
    let distinct: std::collections::HashSet<u128> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len());
    assert!(ids.iter().all(|&id| id != 0));
    let same_run = ids.windows(2).filter(|pair| pair[0] >> 4 == pair[1] >> 4).count();
    assert_eq!(same_run, 0, "neighbours share a run");
    let mut load = Load::new(Workload::Transfers, Ids::Scattered, 10, Skew::Uniform, 7, first);
    load.next(2);
    assert_eq!(load.transfers[0].id.get(), scatter(first));
    assert_eq!(load.transfers[1].id.get(), scatter(first + 1));
}
