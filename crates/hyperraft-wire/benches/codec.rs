//! Codec micro benchmarks.
//!
//! - `transfer_one`: one transfer, plain struct → bytes → plain struct,
//!   through our fixed layout and through serde_json in the same run, so
//!   the ratio between the two is the number to quote.
//! - `transfer_frame`: `Frame::decode` plus reading every record of an
//!   8192-transfer frame, reported per record.
//! - `kv_frame`: `Frame::decode` plus iterating a frame of 1000 puts with
//!   16-byte keys and 64-byte values, reported per command.
//!
//! Run: `cargo bench -p hyperraft-wire --bench codec`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hyperraft_wire::{encode_records, Body, Frame, Kind, KvBatchWriter, KvCommand, Limits, PutView, TransferRecord};
use serde::{Deserialize, Serialize};
use zerocopy::byteorder::little_endian::{U128, U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

/// The same fields as [`TransferRecord`], as plain integers, for serde.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
struct PlainTransfer {
    id: u128,
    debit_account_id: u128,
    credit_account_id: u128,
    amount: u128,
    user_data: u128,
    timestamp: u64,
    ledger: u32,
    code: u16,
    flags: u16,
}

/// Realistic values: ids and amounts use more than 64 bits.
fn plain_transfer(seed: u128) -> PlainTransfer {
    PlainTransfer {
        id: seed << 64 | 0x1234_5678,
        debit_account_id: (seed + 1) << 70,
        credit_account_id: (seed + 2) << 70,
        amount: 1_000_000_000_000_000_000_000 + seed,
        user_data: u128::MAX / 3,
        timestamp: 1_700_000_000_000_000_000,
        ledger: 700,
        code: 10,
        flags: 1,
    }
}

fn to_record(plain: &PlainTransfer) -> TransferRecord {
    TransferRecord {
        id: U128::new(plain.id),
        debit_account_id: U128::new(plain.debit_account_id),
        credit_account_id: U128::new(plain.credit_account_id),
        amount: U128::new(plain.amount),
        user_data: U128::new(plain.user_data),
        timestamp: U64::new(plain.timestamp),
        ledger: U32::new(plain.ledger),
        code: U16::new(plain.code),
        flags: U16::new(plain.flags),
    }
}

fn from_record(record: &TransferRecord) -> PlainTransfer {
    PlainTransfer {
        id: record.id.get(),
        debit_account_id: record.debit_account_id.get(),
        credit_account_id: record.credit_account_id.get(),
        amount: record.amount.get(),
        user_data: record.user_data.get(),
        timestamp: record.timestamp.get(),
        ledger: record.ledger.get(),
        code: record.code.get(),
        flags: record.flags.get(),
    }
}

fn transfer_one(c: &mut Criterion) {
    let plain = plain_transfer(42);
    // Both paths must round-trip, or the comparison is meaningless.
    let json = serde_json::to_vec(&plain).expect("serializes");
    let decoded: PlainTransfer = serde_json::from_slice(&json).expect("deserializes");
    assert_eq!(decoded, plain);
    assert_eq!(from_record(&to_record(&plain)), plain);
    let mut group = c.benchmark_group("transfer_one");
    group.throughput(Throughput::Elements(1));
    let mut buffer = [0u8; size_of::<TransferRecord>()];
    group.bench_function("fixed_layout", |b| {
        b.iter(|| {
            to_record(black_box(&plain)).write_to(&mut buffer).expect("buffer is one record long");
            let record = TransferRecord::ref_from_bytes(black_box(&buffer[..])).expect("one record");
            from_record(record)
        })
    });
    let mut json = Vec::with_capacity(json.len());
    group.bench_function("serde_json", |b| {
        b.iter(|| {
            json.clear();
            serde_json::to_writer(&mut json, black_box(&plain)).expect("serializes");
            serde_json::from_slice::<PlainTransfer>(black_box(&json)).expect("deserializes")
        })
    });
    group.finish();
}

fn transfer_frame(c: &mut Criterion) {
    const TRANSFERS: usize = 8192;
    let records: Vec<TransferRecord> = (0..TRANSFERS as u128).map(|seed| to_record(&plain_transfer(seed))).collect();
    let mut frame = Vec::new();
    encode_records(Kind::CreateTransfers, &records, &mut frame);
    let limits = Limits::default();
    let mut group = c.benchmark_group("transfer_frame");
    group.throughput(Throughput::Elements(TRANSFERS as u64));
    group.bench_function("decode_and_read_8192", |b| {
        b.iter(|| {
            let frame = Frame::decode(black_box(&frame), &limits).expect("valid frame");
            let Body::CreateTransfers(transfers) = frame.body() else { unreachable!("encoded as transfers") };
            let mut checksum = 0u128;
            for transfer in transfers {
                let plain = from_record(transfer);
                checksum = checksum.wrapping_add(plain.amount ^ plain.id ^ plain.debit_account_id);
                checksum ^= plain.credit_account_id ^ plain.user_data ^ u128::from(plain.timestamp);
                checksum += u128::from(plain.ledger) + u128::from(plain.code) + u128::from(plain.flags);
            }
            checksum
        })
    });
    group.finish();
}

fn kv_frame(c: &mut Criterion) {
    const PUTS: usize = 1000;
    let mut frame = Vec::new();
    let mut writer = KvBatchWriter::new(&mut frame);
    for index in 0..PUTS {
        let key = format!("key-{index:012}");
        let value = [index as u8; 64];
        let put = PutView { key: key.as_bytes(), value: &value, lease: 0, prev_kv: false };
        writer.put(put).expect("within bounds");
    }
    writer.finish();
    let limits = Limits::default();
    let mut group = c.benchmark_group("kv_frame");
    group.throughput(Throughput::Elements(PUTS as u64));
    group.bench_function("decode_and_iterate_1000_puts", |b| {
        b.iter(|| {
            let frame = Frame::decode(black_box(&frame), &limits).expect("valid frame");
            let Body::Kv(commands) = frame.body() else { unreachable!("encoded as key/value") };
            let mut total = 0usize;
            for command in commands {
                if let KvCommand::Put(put) = command {
                    total += usize::from(black_box(put.key)[0]) + black_box(put.value).len();
                }
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, transfer_one, transfer_frame, kv_frame);
criterion_main!(benches);
