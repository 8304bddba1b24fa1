use hyperraft_wire::kv::{KEY_BYTES_MAX, TXN_OPS_MAX};
use hyperraft_wire::{Body, Frame, Kind, Limits};
use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message;
use tonic::Code;

use super::*;

/// A validated request must give a frame the node accepts, holding exactly
/// one key/value command; a refused one must be `INVALID_ARGUMENT`.
fn judge(result: Result<Vec<u8>, Status>) {
    match result {
        Ok(frame) => {
            let decoded = Frame::decode(&frame, &Limits::default()).expect("a validated request decodes");
            let Body::Kv(commands) = decoded.body() else { panic!("not a key/value frame") };
            assert_eq!(commands.iter().count(), 1);
        }
        Err(status) => assert_eq!(status.code(), Code::InvalidArgument, "{status:?}"),
    }
}

/// Keys around the bounds: empty, short, the longest allowed, one too long.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        vec(any::<u8>(), 1..8),
        Just(vec![b'k'; KEY_BYTES_MAX]),
        Just(vec![b'k'; KEY_BYTES_MAX + 1]),
    ]
}

fn compare() -> impl Strategy<Value = proto::Compare> {
    use proto::compare::Target;
    let target = prop_oneof![
        Just(None),
        vec(any::<u8>(), 0..8).prop_map(|value| Some(Target::Value(value.into()))),
        any::<u64>().prop_map(|version| Some(Target::Version(version))),
        any::<u64>().prop_map(|lease| Some(Target::Lease(lease))),
    ];
    (key(), -1i32..6, target).prop_map(|(key, result, target)| proto::Compare { key: key.into(), result, target })
}

fn op() -> impl Strategy<Value = proto::RequestOp> {
    use proto::request_op::Request;
    let request = prop_oneof![
        Just(None),
        (key(), vec(any::<u8>(), 0..8)).prop_map(|(key, value)| Some(Request::Put(proto::PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }))),
        (key(), key()).prop_map(|(key, range_end)| Some(Request::Range(proto::RangeRequest {
            key: key.into(),
            range_end: range_end.into(),
            ..Default::default()
        }))),
        key().prop_map(|key| Some(Request::DeleteRange(proto::DeleteRangeRequest {
            key: key.into(),
            ..Default::default()
        }))),
    ];
    request.prop_map(|request| proto::RequestOp { request })
}

/// A durable publish is refused with `INVALID_ARGUMENT`, or becomes a
/// `Bus` frame holding one append of exactly the request's payloads.
fn judge_durable(request: &proto::PublishRequest, config: &crate::BusConfig) {
    match durable_append_frame(config, "p", 1, request) {
        Ok(frame) => {
            let decoded = Frame::decode(&frame, &Limits::default()).expect("a validated publish decodes");
            let Body::Bus(commands) = decoded.body() else { panic!("not a bus frame") };
            let commands: Vec<_> = commands.iter().collect();
            let [hyperraft_wire::BusCommand::Append(append)] = commands[..] else { panic!("not one append") };
            assert_eq!(append.topic, request.topic.as_bytes());
            let payloads: Vec<&[u8]> = append.payloads().collect();
            let expected: Vec<&[u8]> = request.payloads.iter().map(|payload| &payload[..]).collect();
            assert_eq!(payloads, expected);
        }
        Err(status) => assert_eq!(status.code(), Code::InvalidArgument, "{status:?}"),
    }
}

proptest! {
    #[test]
    fn durable_publishes_are_refused_or_become_one_append(
        topic in prop_oneof![Just(String::new()), "[a-z]{1,12}", Just("t".repeat(300)), Just("a\u{7}b".to_string())],
        payloads in vec(vec(any::<u8>(), 0..80), 0..12),
    ) {
        // Proves a publish to a durable topic with any topic name and payloads (empty, too many, too large) is refused with INVALID_ARGUMENT or becomes exactly one append of its payloads.
        let config = crate::BusConfig { message_bytes_max: 64, publish_batch_max: 10, ..crate::BusConfig::default() };
        let payloads = payloads.into_iter().map(bytes::Bytes::from).collect();
        judge_durable(&proto::PublishRequest { publisher: "p".into(), topic, payloads }, &config);
    }
}

proptest! {
    #[test]
    fn arbitrary_protobuf_bytes_are_refused_or_become_valid_frames(bytes in vec(any::<u8>(), 0..256)) {
        // Proves the request checks never panic on whatever a client's bytes decode to, and that whatever they accept decodes as a one-command frame.
        if let Ok(request) = proto::PutRequest::decode(&bytes[..]) { judge(put_frame(&request)); }
        if let Ok(request) = proto::RangeRequest::decode(&bytes[..]) { judge(range_frame(&request)); }
        if let Ok(request) = proto::DeleteRangeRequest::decode(&bytes[..]) { judge(delete_range_frame(&request)); }
        if let Ok(request) = proto::TxnRequest::decode(&bytes[..]) { judge(txn_frame(&request)); }
        if let Ok(request) = proto::CreateTransfersRequest::decode(&bytes[..]) {
            if let Err(status) = transfers_frame(&request.transfers) { prop_assert_eq!(status.code(), Code::InvalidArgument); }
            if let Err(status) = check_packed(&request.frame, Kind::CreateTransfers) { prop_assert_eq!(status.code(), Code::InvalidArgument); }
        }
        if let Ok(request) = proto::CreateAccountsRequest::decode(&bytes[..]) {
            if let Err(status) = accounts_frame(&request.accounts) { prop_assert_eq!(status.code(), Code::InvalidArgument); }
        }
    }

    #[test]
    fn structured_transactions_are_refused_or_become_valid_frames(
        compares in vec(compare(), 0..4),
        success in vec(op(), 0..4),
        failure in vec(op(), 0..4),
    ) {
        // Proves transactions with keys at and past their bound, unset or unknown compare fields and unset ops are refused as INVALID_ARGUMENT or give a valid one-command frame.
        judge(txn_frame(&proto::TxnRequest { compare: compares, success, failure }));
    }
}

#[test]
fn a_transaction_over_the_op_bound_is_refused() {
    // Proves a transaction with more than TXN_OPS_MAX operations in a branch is refused, naming the branch.
    let put = proto::RequestOp {
        request: Some(proto::request_op::Request::Put(proto::PutRequest {
            key: b"k".to_vec().into(),
            ..Default::default()
        })),
    };
    let status =
        txn_frame(&proto::TxnRequest { success: vec![put; TXN_OPS_MAX + 1], ..Default::default() }).unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("success"), "{status:?}");
}
