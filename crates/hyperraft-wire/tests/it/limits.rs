//! Frame size and count bounds, at the decoder and at the writer.

use hyperraft_wire::frame::HEADER_BYTES;
use hyperraft_wire::kv::{KEY_BYTES_MAX, TXN_OPS_MAX, VALUE_BYTES_MAX};
use hyperraft_wire::{
    encode_frame, encode_records, Compare, CompareOp, CompareTarget, DecodeError, DeleteView, EncodeError, Frame, Kind,
    KvBatchWriter, KvDecodeError, KvOp, Limits, PutView, RangeView, ResultRecord,
};

use crate::support::kv_commands;

fn put<'a>(key: &'a [u8], value: &'a [u8]) -> PutView<'a> {
    PutView { key, value, lease: 0, prev_kv: false }
}

#[test]
fn decoder_bounds_are_inclusive() {
    // Proves a frame exactly at both limits decodes and one byte or one record more does not.
    let mut frame = Vec::new();
    encode_records(Kind::Results, &[ResultRecord::default(); 4], &mut frame);
    let exact = Limits { frame_bytes_max: frame.len() as u32, count_max: 4 };
    assert!(Frame::decode(&frame, &exact).is_ok());
    let short = Limits { frame_bytes_max: exact.frame_bytes_max - 1, ..exact };
    assert_eq!(Frame::decode(&frame, &short).unwrap_err(), DecodeError::Oversize { bytes: 56, max: 55 });
    let fewer = Limits { count_max: 3, ..exact };
    assert_eq!(Frame::decode(&frame, &fewer).unwrap_err(), DecodeError::CountTooLarge { count: 4, max: 3 });
}

#[test]
fn default_limits_reject_oversize_and_overcount() {
    // Proves Limits::default() caps frames at 8 MiB and 65 536 records.
    let mut frame = Vec::new();
    encode_frame(Kind::Kv, 0, &vec![0; (8 << 20) - HEADER_BYTES + 1], &mut frame);
    let error = Frame::decode(&frame, &Limits::default()).unwrap_err();
    assert_eq!(error, DecodeError::Oversize { bytes: (8 << 20) + 1, max: 8 << 20 });
    frame.clear();
    encode_records(Kind::Results, &vec![ResultRecord::default(); 65_537], &mut frame);
    let error = Frame::decode(&frame, &Limits::default()).unwrap_err();
    assert_eq!(error, DecodeError::CountTooLarge { count: 65_537, max: 65_536 });
}

#[test]
fn writer_stops_at_the_count_limit() {
    // Proves the default writer takes 65 536 commands, refuses the next, and still seals a valid frame.
    let mut out = Vec::new();
    let mut writer = KvBatchWriter::new(&mut out);
    for _ in 0..65_536 {
        writer.put(put(b"k", b"")).expect("within the count limit");
    }
    let error = writer.put(put(b"k", b"")).unwrap_err();
    assert_eq!(error, EncodeError::CountTooLarge { count: 65_537, max: 65_536 });
    writer.finish();
    let frame = Frame::decode(&out, &Limits::default()).expect("sealed frame decodes");
    assert_eq!(kv_commands(frame.body()).len(), 65_536);
}

#[test]
fn writer_stops_at_the_size_limit() {
    // Proves the default writer refuses the command that would push the frame past 8 MiB, and keeps the rest.
    let value = vec![0; VALUE_BYTES_MAX];
    let mut out = Vec::new();
    let mut writer = KvBatchWriter::new(&mut out);
    for _ in 0..7 {
        writer.put(put(b"k", &value)).expect("within the size limit");
    }
    let frame_bytes = writer.frame_bytes() as u64;
    let error = writer.put(put(b"k", &value)).unwrap_err();
    let bytes = frame_bytes + 16 + 1 + VALUE_BYTES_MAX as u64;
    assert_eq!(error, EncodeError::Oversize { bytes, max: 8 << 20 });
    assert_eq!(writer.frame_bytes() as u64, frame_bytes);
    assert_eq!(writer.finish() as u64, frame_bytes);
    let frame = Frame::decode(&out, &Limits::default()).expect("sealed frame decodes");
    assert_eq!(kv_commands(frame.body()).len(), 7);
}

#[test]
fn writer_honours_custom_limits() {
    // Proves with_limits bounds the frame: a command that would overflow it is refused, a smaller one fits.
    let limits = Limits { frame_bytes_max: (HEADER_BYTES + 16 + 2) as u32, count_max: 10 };
    let mut out = Vec::new();
    let mut writer = KvBatchWriter::with_limits(&mut out, limits);
    let error = writer.put(put(b"k", b"vv")).unwrap_err();
    assert_eq!(error, EncodeError::Oversize { bytes: limits.frame_bytes_max as u64 + 1, max: limits.frame_bytes_max });
    writer.put(put(b"k", b"v")).expect("fits exactly");
    assert_eq!(writer.finish(), limits.frame_bytes_max as usize);
    assert!(Frame::decode(&out, &limits).is_ok());
}

#[test]
fn writer_rejects_what_the_decoder_rejects() {
    // Proves the writer refuses every out-of-bounds command with the decoder's reason and the command's index.
    use KvDecodeError::*;
    let long_key = vec![b'k'; KEY_BYTES_MAX + 1];
    let long_value = vec![0; VALUE_BYTES_MAX + 1];
    let compare = |key, target| Compare { key, op: CompareOp::Equal, target };
    let version = compare(&b"k"[..], CompareTarget::Version(1));
    let ops = vec![KvOp::Put(put(b"k", b"")); TXN_OPS_MAX + 1];
    let compares = vec![version; TXN_OPS_MAX + 1];
    let delete = DeleteView { key: b"k", range_end: &long_key, prev_kv: false };
    let range = RangeView { key: b"", range_end: b"", limit: 0, keys_only: false, count_only: false };
    let mut out = Vec::new();
    let mut writer = KvBatchWriter::new(&mut out);
    writer.put(put(b"first", b"")).expect("valid put");
    let results = [
        (writer.put(put(b"", b"")), EmptyKey),
        (writer.put(put(&long_key, b"")), KeyTooLong(KEY_BYTES_MAX + 1)),
        (writer.put(put(b"k", &long_value)), ValueTooLong(VALUE_BYTES_MAX + 1)),
        (writer.delete_range(delete), KeyTooLong(KEY_BYTES_MAX + 1)),
        (writer.range(range), EmptyKey),
        (writer.txn(&compares, &[], &[]), TooManyOps(TXN_OPS_MAX + 1)),
        (writer.txn(&[], &[], &ops), TooManyOps(TXN_OPS_MAX + 1)),
        (writer.txn(&[compare(b"", CompareTarget::Lease(0))], &[], &[]), EmptyKey),
        (writer.txn(&[compare(b"k", CompareTarget::Value(&long_value))], &[], &[]), ValueTooLong(VALUE_BYTES_MAX + 1)),
        (writer.txn(&[], &[KvOp::DeleteRange(delete)], &[]), KeyTooLong(KEY_BYTES_MAX + 1)),
    ];
    for (row, (result, reason)) in results.into_iter().enumerate() {
        assert_eq!(result, Err(EncodeError::Kv { index: 1, reason }), "row {row}");
    }
    assert_eq!(writer.len(), 1);
}
