//! Every `DecodeError` and `KvDecodeError` variant, each reached by a
//! crafted input. The `*_name` functions match exhaustively, so a new
//! variant does not compile until a table row reaches it.

use std::collections::BTreeSet;

use hyperraft_wire::kv::{KEY_BYTES_MAX, LEASE_TTL_MS_MAX, LEASE_TTL_MS_MIN, TXN_OPS_MAX, VALUE_BYTES_MAX};
use hyperraft_wire::{
    encode_frame, encode_ids, BusDecodeError, DecisionDecodeError, DecodeError, Frame, Kind, KvDecodeError, Limits,
    TaskDecodeError,
};
use zerocopy::byteorder::little_endian::{U16, U32};

use crate::support::{patch_header, put_bytes, txn_bytes, Bytes};

fn decode_error_name(error: &DecodeError) -> &'static str {
    match error {
        DecodeError::Truncated { .. } => "Truncated",
        DecodeError::BadMagic { .. } => "BadMagic",
        DecodeError::UnsupportedVersion { .. } => "UnsupportedVersion",
        DecodeError::UnknownKind { .. } => "UnknownKind",
        DecodeError::HeaderChecksumMismatch => "HeaderChecksumMismatch",
        DecodeError::BodyChecksumMismatch => "BodyChecksumMismatch",
        DecodeError::Oversize { .. } => "Oversize",
        DecodeError::CountTooLarge { .. } => "CountTooLarge",
        DecodeError::CountMismatch { .. } => "CountMismatch",
        DecodeError::TrailingBytes { .. } => "TrailingBytes",
        DecodeError::Kv { .. } => "Kv",
        DecodeError::Tasks { .. } => "Tasks",
        DecodeError::Decisions { .. } => "Decisions",
        DecodeError::Bus { .. } => "Bus",
    }
}

const DECODE_ERROR_NAMES: [&str; 14] = [
    "Truncated",
    "BadMagic",
    "UnsupportedVersion",
    "UnknownKind",
    "HeaderChecksumMismatch",
    "BodyChecksumMismatch",
    "Oversize",
    "CountTooLarge",
    "CountMismatch",
    "TrailingBytes",
    "Kv",
    "Tasks",
    "Decisions",
    "Bus",
];

fn kv_error_name(error: &KvDecodeError) -> &'static str {
    match error {
        KvDecodeError::Truncated => "Truncated",
        KvDecodeError::UnknownTag(_) => "UnknownTag",
        KvDecodeError::EmptyKey => "EmptyKey",
        KvDecodeError::KeyTooLong(_) => "KeyTooLong",
        KvDecodeError::ValueTooLong(_) => "ValueTooLong",
        KvDecodeError::TooManyOps(_) => "TooManyOps",
        KvDecodeError::NestedTxn => "NestedTxn",
        KvDecodeError::LeaseInTxn(_) => "LeaseInTxn",
        KvDecodeError::LeaseTtlOutOfRange(_) => "LeaseTtlOutOfRange",
        KvDecodeError::UnknownCompareTarget(_) => "UnknownCompareTarget",
        KvDecodeError::UnknownCompareOp(_) => "UnknownCompareOp",
        KvDecodeError::ReservedFlags(_) => "ReservedFlags",
        KvDecodeError::TrailingBytes(_) => "TrailingBytes",
    }
}

const KV_ERROR_NAMES: [&str; 13] = [
    "Truncated",
    "UnknownTag",
    "EmptyKey",
    "KeyTooLong",
    "ValueTooLong",
    "TooManyOps",
    "NestedTxn",
    "LeaseInTxn",
    "LeaseTtlOutOfRange",
    "UnknownCompareTarget",
    "UnknownCompareOp",
    "ReservedFlags",
    "TrailingBytes",
];

/// A valid two-id lookup frame: 24 header bytes and 32 body bytes.
fn valid_frame() -> Vec<u8> {
    let mut frame = Vec::new();
    encode_ids(Kind::LookupAccounts, &[1, 2], &mut frame);
    frame
}

fn edited(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut frame = valid_frame();
    edit(&mut frame);
    frame
}

type DecodeCase = (&'static str, Vec<u8>, Limits, DecodeError);

// One row per line reads as a table; rustfmt would spread each over ten.
#[rustfmt::skip]
fn decode_cases() -> Vec<DecodeCase> {
    use DecodeError::*;
    let limits = Limits::default();
    let tight = |frame_bytes_max, count_max| Limits { frame_bytes_max, count_max };
    let mut kv_frame = Vec::new();
    encode_frame(Kind::Kv, 1, &[9], &mut kv_frame);
    let mut decisions_frame = Vec::new();
    encode_frame(Kind::Decisions, 1, &[9, 0], &mut decisions_frame);
    let mut tasks_frame = Vec::new();
    encode_frame(Kind::Tasks, 1, &[9, 0], &mut tasks_frame);
    let mut bus_frame = Vec::new();
    encode_frame(Kind::Bus, 1, &[9, 0], &mut bus_frame);
    vec![
        ("header cut short", valid_frame()[..23].to_vec(), limits, Truncated { needed: 24, available: 23 }),
        ("no bytes", Vec::new(), limits, Truncated { needed: 24, available: 0 }),
        ("magic", edited(|f| patch_header(f, |h| h.magic = U32::new(7))), limits, BadMagic { found: 7 }),
        ("version", edited(|f| patch_header(f, |h| h.version = U16::new(2))), limits, UnsupportedVersion { found: 2 }),
        ("checksum field", edited(|f| f[20] ^= 0x10), limits, HeaderChecksumMismatch),
        ("body length field", edited(|f| f[12] ^= 0x01), limits, HeaderChecksumMismatch),
        ("kind 0", edited(|f| patch_header(f, |h| h.kind = U16::new(0))), limits, UnknownKind { found: 0 }),
        ("kind 10", edited(|f| patch_header(f, |h| h.kind = U16::new(10))), limits, UnknownKind { found: 10 }),
        ("frame limit", valid_frame(), tight(55, 2), Oversize { bytes: 56, max: 55 }),
        ("count limit", valid_frame(), tight(56, 1), CountTooLarge { count: 2, max: 1 }),
        ("body cut short", valid_frame()[..55].to_vec(), limits, Truncated { needed: 56, available: 55 }),
        ("body bit", edited(|f| f[40] ^= 0x80), limits, BodyChecksumMismatch),
        ("count", edited(|f| patch_header(f, |h| h.count = U32::new(3))), limits,
            CountMismatch { count: 3, body_len: 32, record_bytes: 16 }),
        ("spare bytes", edited(|f| f.extend_from_slice(&[0; 5])), limits, TrailingBytes { extra: 5 }),
        ("bad command", kv_frame, limits, Kv { index: 0, reason: KvDecodeError::UnknownTag(9) }),
        ("bad task", tasks_frame, limits, Tasks { index: 0, reason: TaskDecodeError::UnknownTag(9) }),
        ("bad decision", decisions_frame, limits, Decisions { index: 0, reason: DecisionDecodeError::UnknownTag(9) }),
        ("bad bus command", bus_frame, limits, Bus { index: 0, reason: BusDecodeError::UnknownTag(9) }),
    ]
}

#[test]
fn every_decode_error_is_reachable() {
    // Proves each DecodeError variant comes from a crafted frame, with the exact fields expected.
    let mut reached = BTreeSet::new();
    for (name, bytes, limits, expected) in decode_cases() {
        let error = Frame::decode(&bytes, &limits).expect_err(name);
        assert_eq!(error, expected, "{name}");
        reached.insert(decode_error_name(&error));
    }
    assert_eq!(reached, BTreeSet::from(DECODE_ERROR_NAMES));
}

#[test]
fn limits_are_checked_before_the_body_is_read() {
    // Proves an oversize header is rejected without the body bytes being present at all.
    let mut frame = valid_frame();
    patch_header(&mut frame, |h| h.body_len = U32::new(u32::MAX));
    let error = Frame::decode(&frame[..24], &Limits::default()).unwrap_err();
    assert_eq!(error, DecodeError::Oversize { bytes: 24 + u64::from(u32::MAX), max: 8 << 20 });
}

/// Wraps `body` in a valid `Kv` frame of `count` commands and decodes it.
fn decode_kv(count: u32, body: &[u8]) -> Result<(), DecodeError> {
    let mut frame = Vec::new();
    encode_frame(Kind::Kv, count, body, &mut frame);
    Frame::decode(&frame, &Limits::default()).map(|_| ())
}

type KvCase = (&'static str, u32, Vec<u8>, u32, KvDecodeError);

/// Malformed commands outside transactions.
#[rustfmt::skip]
fn command_cases() -> Vec<KvCase> {
    use KvDecodeError::*;
    let put = put_bytes(0, b"k", b"v");
    let long_key = vec![b'k'; KEY_BYTES_MAX + 1];
    let long_end = Bytes::default().u8(2).u8(0).u16(1).u16(4097).raw(b"k").raw(&long_key).0;
    let range_flags = Bytes::default().u8(3).u8(0x07).u16(1).u16(0).u32(0).raw(b"k").0;
    let long_value = vec![0; VALUE_BYTES_MAX + 1];
    vec![
        ("empty body, one command", 1, Vec::new(), 0, Truncated),
        ("put header cut short", 1, put[..15].to_vec(), 0, Truncated),
        ("put value cut short", 1, put[..put.len() - 1].to_vec(), 0, Truncated),
        ("second command cut short", 2, [&put[..], &put[..3]].concat(), 1, Truncated),
        ("tag zero", 1, vec![0], 0, UnknownTag(0)),
        ("tag nine after a put", 2, [&put[..], &[9]].concat(), 1, UnknownTag(9)),
        ("lease grant cut short", 1, grant(0, 1_000)[..17].to_vec(), 0, Truncated),
        ("lease revoke cut short", 1, vec![6, 0, 1], 0, Truncated),
        ("lease grant TTL below the bound", 1, grant(0, LEASE_TTL_MS_MIN - 1), 0,
            LeaseTtlOutOfRange(LEASE_TTL_MS_MIN - 1)),
        ("lease grant TTL above the bound", 1, grant(0, LEASE_TTL_MS_MAX + 1), 0,
            LeaseTtlOutOfRange(LEASE_TTL_MS_MAX + 1)),
        ("lease grant flags", 1, grant(0x01, 1_000), 0, ReservedFlags(0x01)),
        ("lease expire flags", 1, Bytes::default().u8(8).u8(0x80).u64(1).0, 0, ReservedFlags(0x80)),
        ("empty put key", 1, put_bytes(0, b"", b"v"), 0, EmptyKey),
        ("put key too long", 1, put_bytes(0, &long_key, b""), 0, KeyTooLong(KEY_BYTES_MAX + 1)),
        ("range end too long", 1, long_end, 0, KeyTooLong(4097)),
        ("value too long", 1, put_bytes(0, b"k", &long_value), 0, ValueTooLong(VALUE_BYTES_MAX + 1)),
        ("put flag bit 7", 1, put_bytes(0x80, b"k", b""), 0, ReservedFlags(0x80)),
        ("put flag bit 1", 1, put_bytes(0x02, &long_key[1..], b""), 0, ReservedFlags(0x02)),
        ("range flag bit 2", 1, range_flags, 0, ReservedFlags(0x04)),
        ("body with a spare command", 1, [&put[..], &put[..]].concat(), 1, TrailingBytes(put.len())),
        ("body with bytes but no commands", 0, vec![1, 2, 3], 0, TrailingBytes(3)),
    ]
}

/// A LeaseGrant: tag 5, flags, id 9, ttl_ms.
fn grant(flags: u8, ttl_ms: u64) -> Vec<u8> {
    Bytes::default().u8(5).u8(flags).u64(9).u64(ttl_ms).0
}

fn compare_bytes(target: u8, op: u8, key: &[u8], operand: &[u8]) -> Vec<u8> {
    let key_len = u16::try_from(key.len()).expect("test key fits u16");
    Bytes::default().u8(target).u8(op).u16(key_len).raw(key).raw(operand).0
}

/// Malformed transactions.
#[rustfmt::skip]
fn txn_cases() -> Vec<KvCase> {
    use KvDecodeError::*;
    let empty_txn = txn_bytes(0, [0, 0, 0], [&[], &[], &[]]);
    let missing_part = Bytes::default().u8(4).u8(0).u16(0).u16(0).u16(0).u32(5).u32(0).u32(0).0;
    let version = 7u64.to_le_bytes();
    let long_value = Bytes::default().u32(VALUE_BYTES_MAX as u32 + 1).0;
    let too_many = TXN_OPS_MAX as u16 + 1;
    let lease_id = Bytes::default().u8(7).u8(0).u64(3).0;
    let with_compare = |compare: &[u8]| txn_bytes(0, [1, 0, 0], [compare, &[], &[]]);
    vec![
        ("txn header cut short", 1, empty_txn[..19].to_vec(), 0, Truncated),
        ("txn part longer than the body", 1, missing_part, 0, Truncated),
        ("too many compares", 1, txn_bytes(0, [too_many, 0, 0], [&[], &[], &[]]), 0, TooManyOps(129)),
        ("too many failure ops", 1, txn_bytes(0, [0, 0, too_many], [&[], &[], &[]]), 0, TooManyOps(129)),
        ("txn in a txn", 1, txn_bytes(0, [0, 1, 0], [&[], &empty_txn, &[]]), 0, NestedTxn),
        ("lease grant in a txn", 1, txn_bytes(0, [0, 1, 0], [&[], &grant(0, 1_000), &[]]), 0, LeaseInTxn(5)),
        ("lease keep-alive in a txn", 1, txn_bytes(0, [0, 0, 1], [&[], &[], &lease_id]), 0, LeaseInTxn(7)),
        ("compare target 5", 1, with_compare(&compare_bytes(5, 0, b"k", &version)), 0, UnknownCompareTarget(5)),
        ("compare op 4", 1, with_compare(&compare_bytes(1, 4, b"k", &version)), 0, UnknownCompareOp(4)),
        ("empty compare key", 1, with_compare(&compare_bytes(1, 0, b"", &version)), 0, EmptyKey),
        ("compare value too long", 1, with_compare(&compare_bytes(0, 0, b"k", &long_value)), 0,
            ValueTooLong(VALUE_BYTES_MAX + 1)),
        ("compare operand cut short", 1, with_compare(&compare_bytes(2, 0, b"k", &version[..7])), 0, Truncated),
        ("txn flags", 1, txn_bytes(0x01, [0, 0, 0], [&[], &[], &[]]), 0, ReservedFlags(0x01)),
        ("txn part with a spare byte", 1, txn_bytes(0, [0, 0, 0], [&[], &[], &[0]]), 0, TrailingBytes(1)),
    ]
}

#[test]
fn every_kv_decode_error_is_reachable() {
    // Proves each KvDecodeError variant comes from a crafted body, at the right command index.
    let mut reached = BTreeSet::new();
    for (name, count, body, index, reason) in command_cases().into_iter().chain(txn_cases()) {
        let error = decode_kv(count, &body).expect_err(name);
        assert_eq!(error, DecodeError::Kv { index, reason: reason.clone() }, "{name}");
        reached.insert(kv_error_name(&reason));
    }
    assert_eq!(reached, BTreeSet::from(KV_ERROR_NAMES));
}

#[test]
fn bounds_are_inclusive() {
    // Proves keys, values and txn parts exactly at their bounds are accepted.
    let key = vec![b'k'; KEY_BYTES_MAX];
    let value = vec![0; VALUE_BYTES_MAX];
    assert_eq!(decode_kv(1, &put_bytes(0, &key, &value)), Ok(()));
    let put = put_bytes(1, b"k", b"v");
    let ops = put.repeat(TXN_OPS_MAX);
    let counts = [0, TXN_OPS_MAX as u16, TXN_OPS_MAX as u16];
    assert_eq!(decode_kv(1, &txn_bytes(0, counts, [&[], &ops, &ops])), Ok(()));
}
