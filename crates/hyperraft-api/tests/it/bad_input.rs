//! The bad input table: malformed and hostile requests, each with the clear
//! answer it must get, after each of which the node's state is unchanged
//! and the node still serves; then slow clients that never finish a request
//! and a flood of connections.
//!
//! Cases covered elsewhere are not repeated here: over-long and empty keys,
//! a compare without a target, a 17-bit code, both request forms at once,
//! an empty batch, a damaged body checksum and a mistyped frame
//! (`routing.rs`); a full admission gate and a connection bound of one
//! (`admission.rs`); lease refusals (`lease.rs`); tokens (`auth.rs`).

use std::time::Duration;

use hyperraft_api::proto::compare::{Result as CompareResult, Target};
use hyperraft_api::proto::request_op::Request as Op;
use hyperraft_api::proto::{
    Compare, CreateAccountResult, CreateAccountsRequest, CreateTransferResult, CreateTransfersRequest,
    LookupAccountsRequest, PutRequest, RequestOp, StatusRequest, TxnRequest,
};
use hyperraft_api::ApiConfig;
use hyperraft_wire::frame::HEADER_BYTES;
use hyperraft_wire::kv::{TXN_OPS_MAX, VALUE_BYTES_MAX};
use hyperraft_wire::{encode_records, AccountRecord, Kind, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tonic::Code;
use zerocopy::byteorder::little_endian::{U128, U16, U32};

use crate::harness::{channel, ApiCluster, PATIENCE};
use crate::kv::put;
use crate::ledger::{account, id, transfer};

/// A valid `Bus` frame (one append), which no ledger request may carry.
fn bus_append_frame() -> Vec<u8> {
    let mut frame = Vec::new();
    let mut writer = hyperraft_wire::BusBatchWriter::new(&mut frame);
    writer.append(b"topic", b"publisher", 1, &[b"payload"]).expect("a valid append");
    writer.finish();
    frame
}

/// What a case must get back.
#[derive(Debug)]
enum Expect {
    /// A gRPC error with this code; when a field is given, the message names it first.
    Refused(Code, Option<&'static str>),
    /// An answered create batch whose only item failed with this code.
    ItemFailed(i32),
}

/// A request as a client would send it.
enum Request {
    Accounts(CreateAccountsRequest),
    Transfers(CreateTransfersRequest),
    Lookup(LookupAccountsRequest),
    Put(PutRequest),
    Txn(TxnRequest),
}

/// A frame creating account 900, valid.
fn account_frame() -> Vec<u8> {
    let record = AccountRecord { id: U128::new(900), ledger: U32::new(1), code: U16::new(1), ..Default::default() };
    let mut frame = Vec::new();
    encode_records(Kind::CreateAccounts, &[record], &mut frame);
    frame
}

/// `frame` with header bytes `at` replaced by `bytes` and the header checksum made right again.
fn reheadered(mut frame: Vec<u8>, at: usize, bytes: &[u8]) -> Vec<u8> {
    frame[at..at + bytes.len()].copy_from_slice(bytes);
    let checksum = crc32c::crc32c(&frame[..HEADER_BYTES - 4]);
    frame[HEADER_BYTES - 4..HEADER_BYTES].copy_from_slice(&checksum.to_le_bytes());
    frame
}

fn packed(frame: Vec<u8>) -> Request {
    Request::Accounts(CreateAccountsRequest { frame: frame.into(), ..Default::default() })
}

fn put_op() -> RequestOp {
    RequestOp { request: Some(Op::Put(PutRequest { key: b"t".to_vec().into(), ..Default::default() })) }
}

/// The table.
fn cases() -> Vec<(&'static str, Request, Expect)> {
    use Expect::{ItemFailed, Refused};
    let invalid = |field| Refused(Code::InvalidArgument, Some(field));
    let frame = account_frame();
    let too_many = vec![account(1); Limits::default().count_max as usize + 1];
    let mut bad_header_checksum = frame.clone();
    bad_header_checksum[HEADER_BYTES - 1] ^= 0x01;
    vec![
        (
            "account id zero",
            Request::Accounts(CreateAccountsRequest { accounts: vec![account(0)], ..Default::default() }),
            ItemFailed(CreateAccountResult::IdMustNotBeZero as i32),
        ),
        (
            "transfer id zero",
            Request::Transfers(CreateTransfersRequest { transfers: vec![transfer(0, 1, 2, 5)], ..Default::default() }),
            ItemFailed(CreateTransferResult::IdMustNotBeZero as i32),
        ),
        (
            "transfer from account zero",
            Request::Transfers(CreateTransfersRequest { transfers: vec![transfer(77, 0, 2, 5)], ..Default::default() }),
            ItemFailed(CreateTransferResult::DebitAccountIdMustNotBeZero as i32),
        ),
        (
            "more accounts than one batch may hold",
            Request::Accounts(CreateAccountsRequest { accounts: too_many, ..Default::default() }),
            invalid("accounts"),
        ),
        ("a lookup of no ids", Request::Lookup(LookupAccountsRequest::default()), Refused(Code::InvalidArgument, None)),
        (
            "a frame header claiming 4 billion items",
            packed(reheadered(frame.clone(), 8, &u32::MAX.to_le_bytes())),
            invalid("frame"),
        ),
        (
            "a frame header claiming a 1 GiB body",
            packed(reheadered(frame.clone(), 12, &(1u32 << 30).to_le_bytes())),
            invalid("frame"),
        ),
        ("a truncated frame", packed(frame[..frame.len() - 10].to_vec()), invalid("frame")),
        ("a frame shorter than its header", packed(frame[..10].to_vec()), invalid("frame")),
        ("a frame with trailing bytes", packed([frame.clone(), vec![0; 16]].concat()), invalid("frame")),
        ("an unknown frame version", packed(reheadered(frame.clone(), 4, &99u16.to_le_bytes())), invalid("frame")),
        ("an unknown frame kind", packed(reheadered(frame.clone(), 6, &99u16.to_le_bytes())), invalid("frame")),
        ("a durable bus frame where accounts are expected", packed(bus_append_frame()), invalid("frame")),
        ("a bad frame magic", packed(reheadered(frame.clone(), 0, b"XXXX")), invalid("frame")),
        ("a bad header checksum", packed(bad_header_checksum), invalid("frame")),
        (
            "a value over the bound",
            Request::Put(PutRequest {
                key: b"v".to_vec().into(),
                value: vec![0; VALUE_BYTES_MAX + 1].into(),
                ..Default::default()
            }),
            invalid("value"),
        ),
        (
            "an unknown compare operator",
            Request::Txn(TxnRequest {
                compare: vec![Compare { result: 99, key: b"t".to_vec().into(), target: Some(Target::Version(1)) }],
                ..Default::default()
            }),
            invalid("compare[0].result"),
        ),
        (
            "a transaction over the op bound",
            Request::Txn(TxnRequest { success: vec![put_op(); TXN_OPS_MAX + 1], ..Default::default() }),
            invalid("success"),
        ),
        (
            "a protobuf message over the size bound",
            Request::Put(PutRequest {
                key: b"big".to_vec().into(),
                value: vec![0; 10 << 20].into(),
                ..Default::default()
            }),
            Refused(Code::OutOfRange, None),
        ),
        (
            "an equal compare with an unset branch op",
            Request::Txn(TxnRequest {
                compare: vec![Compare {
                    result: CompareResult::Equal as i32,
                    key: b"t".to_vec().into(),
                    target: Some(Target::Version(0)),
                }],
                success: vec![RequestOp { request: None }],
                ..Default::default()
            }),
            invalid("success[0].request"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_request_gets_its_clear_answer_and_changes_nothing() {
    // Proves each row of the table: zero ids get their per-item code, over-large counts, lying or damaged frame headers (count, body length, version, kind, magic, checksum), a durable bus frame in a ledger request, truncated and padded frames, an over-large value, an unknown compare operator, too many transaction ops and an over-size protobuf message are refused with the expected code naming the field; after every row the node's state digest is what it was and the node still answers.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let channel = cluster.channel(leader).await;
    let mut ledger = hyperraft_api::proto::ledger_client::LedgerClient::new(channel.clone())
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);
    let mut kv = hyperraft_api::proto::kv_client::KvClient::new(channel.clone()).max_encoding_message_size(64 << 20);
    let mut status = hyperraft_api::proto::cluster_client::ClusterClient::new(channel);
    // Accounts 1 and 2 exist, so transfers are refused for their ids, not for missing accounts.
    let setup = CreateAccountsRequest { accounts: vec![account(1), account(2)], ..Default::default() };
    assert!(ledger.create_accounts(setup).await.unwrap().into_inner().results.is_empty());
    let digest = |cluster: &ApiCluster| cluster.nodes[&leader].state().digest();
    let before = digest(&cluster);

    for (name, request, expect) in cases() {
        let answer = match request {
            Request::Accounts(request) => ledger
                .create_accounts(request)
                .await
                .map(|answer| answer.into_inner().results.iter().map(|r| r.code).collect()),
            Request::Transfers(request) => ledger
                .create_transfers(request)
                .await
                .map(|answer| answer.into_inner().results.iter().map(|r| r.code).collect()),
            Request::Lookup(request) => ledger.lookup_accounts(request).await.map(|_| Vec::new()),
            Request::Put(request) => kv.put(request).await.map(|_| Vec::new()),
            Request::Txn(request) => kv.txn(request).await.map(|_| Vec::new()),
        };
        match (&expect, answer) {
            (Expect::ItemFailed(code), Ok(codes)) => assert_eq!(codes, vec![*code], "{name}"),
            (Expect::Refused(code, field), Err(refusal)) => {
                assert_eq!(refusal.code(), *code, "{name}: {refusal:?}");
                if let Some(field) = field {
                    assert!(refusal.message().starts_with(&format!("{field}:")), "{name}: {refusal:?}");
                }
            }
            (expect, answer) => panic!("{name}: expected {expect:?}, got {answer:?}"),
        }
        assert_eq!(digest(&cluster), before, "{name} changed the state");
        status
            .status(StatusRequest {})
            .await
            .unwrap_or_else(|error| panic!("{name}: the node stopped serving: {error}"));
    }
    let lookup = LookupAccountsRequest { ids: vec![id(900).unwrap(), id(77).unwrap()], ..Default::default() };
    assert!(ledger.lookup_accounts(lookup).await.unwrap().into_inner().accounts.is_empty());
    kv.put(put("after", "ok")).await.expect("the node still writes");
    drop((ledger, kv, status));
    cluster.shutdown().await;
}

/// The HTTP/2 client preface, cut short.
const PARTIAL_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM";

/// Whether the server has closed `stream` (end of stream or an error),
/// waiting up to `within`.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_that_never_finish_a_request_cannot_starve_the_api() {
    // Proves connections that send half an HTTP/2 preface and never finish it are closed by the server within its opening timeout (keepalive_timeout), even when they hold every connection permit, and an honest client is served again afterwards.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let config = ApiConfig {
        connections_max: 4,
        keepalive_interval: Duration::from_millis(200),
        keepalive_timeout: Duration::from_millis(500),
        ..ApiConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = hyperraft_api::serve_on(cluster.nodes[&leader].clone(), listener, config).unwrap();

    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(PARTIAL_PREFACE).await.unwrap();
        slow.push(stream);
    }
    for stream in &mut slow {
        assert!(closed_by_server(stream, PATIENCE).await, "a connection that never finished its preface stayed open");
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut client = hyperraft_api::proto::cluster_client::ClusterClient::new(channel(&address).await);
        if client.status(StatusRequest {}).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the API never served again after the slow clients");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_is_bounded_and_the_node_serves_after_it() {
    // Proves a flood of 200 connections against a bound of 16 keeps at most 16 open (the others are closed at once, not queued) and that the node serves calls again when the flood ends.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let leader = cluster.leader().await;
    let config = ApiConfig { connections_max: 16, ..ApiConfig::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = hyperraft_api::serve_on(cluster.nodes[&leader].clone(), listener, config).unwrap();

    let mut flood = Vec::new();
    for _ in 0..200 {
        if let Ok(stream) = TcpStream::connect(&address).await {
            flood.push(stream);
        }
    }
    let mut closed = 0;
    for stream in &mut flood {
        if closed_by_server(stream, Duration::from_millis(20)).await {
            closed += 1;
        }
    }
    assert!(closed >= flood.len() - 16, "{} of {} flood connections stayed open", flood.len() - closed, flood.len());
    drop(flood);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut client = hyperraft_api::proto::cluster_client::ClusterClient::new(channel(&address).await);
        if client.status(StatusRequest {}).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the API never served again after the flood");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await.unwrap();
    cluster.shutdown().await;
}
