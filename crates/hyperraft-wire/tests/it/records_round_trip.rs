//! Fixed-size record frames: encode → decode gives the same records in
//! place, and re-encoding the decoded view gives the same bytes.

use hyperraft_wire::frame::HEADER_BYTES;
use hyperraft_wire::{
    encode_ids, encode_records, AccountRecord, Body, Frame, Kind, Limits, ResultRecord, TransferRecord,
};
use proptest::collection::vec;
use proptest::prelude::*;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Records of any bit pattern, built from raw bytes so every field and
/// reserved bit is exercised.
fn records<T: FromBytes + Clone + std::fmt::Debug>(count_max: usize) -> impl Strategy<Value = Vec<T>> {
    vec(vec(any::<u8>(), size_of::<T>()), 0..=count_max).prop_map(|raw| {
        raw.iter().map(|bytes| T::read_from_bytes(bytes).expect("exactly one record of bytes")).collect()
    })
}

/// Encodes `records`, decodes them, and checks the view and the re-encoding.
fn round_trip<T>(kind: Kind, records: &[T], view: impl Fn(Body<'_>) -> Option<&[T]>)
where
    T: IntoBytes + Immutable + PartialEq + std::fmt::Debug,
{
    let mut out = Vec::new();
    encode_records(kind, records, &mut out);
    assert_eq!(out.len(), HEADER_BYTES + size_of_val(records));
    let frame = Frame::decode(&out, &Limits::default()).expect("encoded frame decodes");
    assert_eq!(frame.kind(), kind);
    assert_eq!(frame.count() as usize, records.len());
    let decoded = view(frame.body()).expect("body has the frame's kind");
    assert_eq!(decoded, records);
    let mut again = Vec::new();
    encode_records(kind, decoded, &mut again);
    assert_eq!(again, out);
}

proptest! {
    #[test]
    fn accounts_round_trip(accounts in records::<AccountRecord>(64)) {
        // Proves account frames decode to the encoded records and re-encode byte-identically.
        round_trip(Kind::CreateAccounts, &accounts, |body| match body {
            Body::CreateAccounts(records) => Some(records),
            _ => None,
        });
    }

    #[test]
    fn transfers_round_trip(transfers in records::<TransferRecord>(64)) {
        // Proves transfer frames decode to the encoded records and re-encode byte-identically.
        round_trip(Kind::CreateTransfers, &transfers, |body| match body {
            Body::CreateTransfers(records) => Some(records),
            _ => None,
        });
    }

    #[test]
    fn results_round_trip(results in records::<ResultRecord>(64)) {
        // Proves result frames decode to the encoded records and re-encode byte-identically.
        round_trip(Kind::Results, &results, |body| match body {
            Body::Results(records) => Some(records),
            _ => None,
        });
    }

    #[test]
    fn ids_round_trip(ids in vec(any::<u128>(), 0..=64), transfers in any::<bool>()) {
        // Proves lookup frames carry u128 ids little-endian and re-encode byte-identically.
        let kind = if transfers { Kind::LookupTransfers } else { Kind::LookupAccounts };
        let mut out = Vec::new();
        encode_ids(kind, &ids, &mut out);
        let frame = Frame::decode(&out, &Limits::default()).expect("encoded frame decodes");
        prop_assert_eq!(frame.kind(), kind);
        let decoded: Vec<u128> = match frame.body() {
            Body::LookupAccounts(ids) | Body::LookupTransfers(ids) => ids.iter().map(|id| id.get()).collect(),
            other => panic!("wrong body {other:?}"),
        };
        prop_assert_eq!(&decoded, &ids);
        let mut again = Vec::new();
        encode_ids(kind, &decoded, &mut again);
        prop_assert_eq!(again, out);
    }
}

#[test]
fn frames_decode_back_to_back() {
    // Proves decode_prefix walks a stream of frames of different kinds, each to its exact end.
    let mut stream = Vec::new();
    encode_ids(Kind::LookupAccounts, &[1, 2, 3], &mut stream);
    encode_records(Kind::Results, &[ResultRecord::default()], &mut stream);
    encode_records::<TransferRecord>(Kind::CreateTransfers, &[], &mut stream);
    let mut kinds = Vec::new();
    let mut rest = &stream[..];
    while !rest.is_empty() {
        let (frame, length) = Frame::decode_prefix(rest, &Limits::default()).expect("valid frame");
        kinds.push((frame.kind(), frame.count()));
        rest = &rest[length..];
    }
    assert_eq!(kinds, [(Kind::LookupAccounts, 3), (Kind::Results, 1), (Kind::CreateTransfers, 0)]);
}
