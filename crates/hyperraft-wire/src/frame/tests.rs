use zerocopy::byteorder::little_endian::{U128, U16, U32, U64};

use super::*;

fn transfer(id: u128) -> TransferRecord {
    TransferRecord {
        id: U128::new(id),
        debit_account_id: U128::new(1),
        credit_account_id: U128::new(2),
        amount: U128::new(u128::MAX - id),
        user_data: U128::new(7),
        timestamp: U64::new(0),
        ledger: U32::new(1),
        code: U16::new(10),
        flags: U16::new(0),
    }
}

#[test]
fn transfers_round_trip_in_place() {
    // Proves encode_records then decode views the very same records, in order.
    let records: Vec<TransferRecord> = (1..=3).map(transfer).collect();
    let mut out = Vec::new();
    encode_records(Kind::CreateTransfers, &records, &mut out);
    assert_eq!(out.len(), HEADER_BYTES + 3 * 96);
    let frame = Frame::decode(&out, &Limits::default()).expect("valid frame");
    assert_eq!(frame.kind(), Kind::CreateTransfers);
    assert_eq!(frame.count(), 3);
    match frame.body() {
        Body::CreateTransfers(decoded) => assert_eq!(decoded, &records[..]),
        other => panic!("wrong body {other:?}"),
    }
}

#[test]
fn ids_round_trip() {
    // Proves encode_ids writes little-endian u128s that decode back unchanged.
    let ids = [0, 1, u128::MAX];
    let mut out = vec![0xAA]; // Appending must leave earlier bytes alone.
    encode_ids(Kind::LookupAccounts, &ids, &mut out);
    assert_eq!(out[0], 0xAA);
    let frame = Frame::decode(&out[1..], &Limits::default()).expect("valid frame");
    let Body::LookupAccounts(decoded) = frame.body() else { panic!("wrong body") };
    let decoded: Vec<u128> = decoded.iter().map(|id| id.get()).collect();
    assert_eq!(decoded, ids);
}

#[test]
fn decode_prefix_reports_length_and_decode_rejects_trailing() {
    // Proves decode_prefix stops at the frame's end while decode refuses extra bytes.
    let mut out = Vec::new();
    encode_ids(Kind::LookupTransfers, &[5], &mut out);
    let frame_bytes = out.len();
    out.push(0);
    let (frame, length) = Frame::decode_prefix(&out, &Limits::default()).expect("valid prefix");
    assert_eq!(length, frame_bytes);
    assert_eq!(frame.count(), 1);
    assert_eq!(Frame::decode(&out, &Limits::default()).unwrap_err(), DecodeError::TrailingBytes { extra: 1 });
}

#[test]
fn kind_converts_both_ways() {
    // Proves every kind survives u16 -> Kind -> u16 and unknown values are typed errors.
    for kind in Kind::ALL {
        assert_eq!(Kind::try_from(u16::from(kind)), Ok(kind));
    }
    assert_eq!(Kind::try_from(0), Err(DecodeError::UnknownKind { found: 0 }));
    assert_eq!(Kind::try_from(10), Err(DecodeError::UnknownKind { found: 10 }));
}

#[test]
fn header_checksum_covers_first_twenty_bytes() {
    // Proves a flipped count byte is caught by the header checksum, not trusted.
    let mut out = Vec::new();
    encode_ids(Kind::LookupAccounts, &[1, 2], &mut out);
    out[8] ^= 1;
    assert_eq!(Frame::decode(&out, &Limits::default()).unwrap_err(), DecodeError::HeaderChecksumMismatch);
}
