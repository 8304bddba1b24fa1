//! What a CreateTransfers request costs the node before it reaches the
//! batcher, in its two forms: plain protobuf messages (decode every
//! message, convert it to a wire record, build the frame, validate it) and
//! the packed frame (decode the request — the frame field is a view of the
//! received buffer — and validate the frame). Same transfers, same batch
//! sizes; run with `cargo bench -p hyperraft-api --bench requests`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hyperraft_api::proto::{CreateTransfersRequest, Transfer, Uint128};
use hyperraft_wire::{Frame, Limits};
use prost::Message;

fn number(value: u64) -> Option<Uint128> {
    Some(Uint128 { high: 0, low: value })
}

fn transfers(count: u64) -> Vec<Transfer> {
    (1..=count)
        .map(|id| Transfer {
            id: number(id),
            debit_account_id: number(1 + id % 1000),
            credit_account_id: number(1 + (id * 7) % 1000),
            amount: number(1 + id % 100),
            ledger: 1,
            code: 1,
            ..Default::default()
        })
        .collect()
}

fn requests(c: &mut Criterion) {
    let mut group = c.benchmark_group("create_transfers_request");
    for count in [64u64, 8192] {
        let messages = transfers(count);
        let frame = hyperraft_api::transfers_frame(&messages).expect("valid transfers");
        let as_messages =
            Bytes::from(CreateTransfersRequest { transfers: messages, ..Default::default() }.encode_to_vec());
        let packed = Bytes::from(CreateTransfersRequest { frame: frame.into(), ..Default::default() }.encode_to_vec());
        group.throughput(Throughput::Elements(count));
        group.bench_with_input(BenchmarkId::new("protobuf", count), &as_messages, |b, bytes| {
            b.iter(|| {
                let request = CreateTransfersRequest::decode(bytes.clone()).expect("decodes");
                let frame = hyperraft_api::transfers_frame(&request.transfers).expect("converts");
                Frame::decode(&frame, &Limits::default()).expect("valid frame").count()
            })
        });
        group.bench_with_input(BenchmarkId::new("packed", count), &packed, |b, bytes| {
            b.iter(|| {
                let request = CreateTransfersRequest::decode(bytes.clone()).expect("decodes");
                Frame::decode(&request.frame, &Limits::default()).expect("valid frame").count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);
