use super::*;
use crate::frame::{Body, Frame, Limits, HEADER_BYTES};

fn decode(frame: &[u8]) -> KvCommands<'_> {
    match Frame::decode(frame, &Limits::default()).expect("valid frame").body() {
        Body::Kv(commands) => commands,
        other => panic!("wrong body {other:?}"),
    }
}

#[test]
fn put_has_the_documented_layout() {
    // Proves a Put is encoded byte for byte as the module doc describes.
    let mut out = Vec::new();
    let mut writer = KvBatchWriter::new(&mut out);
    writer.put(PutView { key: b"k", value: b"vv", lease: 9, prev_kv: true }).expect("valid put");
    assert_eq!(writer.finish(), HEADER_BYTES + 16 + 3);
    let body = &out[HEADER_BYTES..];
    assert_eq!(&body[..8], &[1, 1, 1, 0, 2, 0, 0, 0]);
    assert_eq!(&body[8..16], &9u64.to_le_bytes());
    assert_eq!(&body[16..], b"kvv");
}

#[test]
fn every_command_round_trips() {
    // Proves each of the four commands decodes to the view it was written from.
    let put = PutView { key: b"a", value: b"1", lease: 0, prev_kv: false };
    let delete = DeleteView { key: b"b", range_end: b"c", prev_kv: true };
    let range = RangeView { key: b"d", range_end: &[0], limit: 5, keys_only: true, count_only: true };
    let compare = Compare { key: b"a", op: CompareOp::Greater, target: CompareTarget::ModRevision(3) };
    let value_compare = Compare { key: b"a", op: CompareOp::Equal, target: CompareTarget::Value(b"1") };
    let mut out = Vec::new();
    let mut writer = KvBatchWriter::new(&mut out);
    writer.put(put).expect("put");
    writer.delete_range(delete).expect("delete");
    writer.range(range).expect("range");
    writer
        .txn(&[compare, value_compare], &[KvOp::Put(put)], &[KvOp::Range(range), KvOp::DeleteRange(delete)])
        .expect("txn");
    writer.finish();
    let commands: Vec<KvCommand<'_>> = decode(&out).iter().collect();
    assert_eq!(commands.len(), 4);
    assert_eq!(commands[0], KvCommand::Put(put));
    assert_eq!(commands[1], KvCommand::DeleteRange(delete));
    assert_eq!(commands[2], KvCommand::Range(range));
    let KvCommand::Txn(txn) = commands[3] else { panic!("not a txn") };
    assert_eq!((txn.compare_count(), txn.success_count(), txn.failure_count()), (2, 1, 2));
    assert_eq!(txn.compares().collect::<Vec<_>>(), [compare, value_compare]);
    assert_eq!(txn.success().collect::<Vec<_>>(), [KvOp::Put(put)]);
    assert_eq!(txn.failure().collect::<Vec<_>>(), [KvOp::Range(range), KvOp::DeleteRange(delete)]);
}

#[test]
fn rejected_command_leaves_writer_usable() {
    // Proves a bad command returns its index and writes nothing, and later commands still land.
    let mut out = Vec::new();
    let mut writer = KvBatchWriter::new(&mut out);
    writer.put(PutView { key: b"a", value: b"", lease: 0, prev_kv: false }).expect("put");
    let error = writer.put(PutView { key: b"", value: b"", lease: 0, prev_kv: false }).unwrap_err();
    assert_eq!(error, crate::EncodeError::Kv { index: 1, reason: KvDecodeError::EmptyKey });
    writer.put(PutView { key: b"b", value: b"", lease: 0, prev_kv: false }).expect("put");
    writer.finish();
    assert_eq!(decode(&out).len(), 2);
}

#[test]
fn unfinished_writer_leaves_no_bytes() {
    // Proves dropping a writer without finish removes its partial frame.
    let mut out = vec![7];
    let mut writer = KvBatchWriter::new(&mut out);
    writer.put(PutView { key: b"a", value: b"x", lease: 0, prev_kv: false }).expect("put");
    drop(writer);
    assert_eq!(out, [7]);
}

#[test]
fn lease_commands_have_the_documented_layout() {
    // Proves LeaseGrant is tag 5, flags, id, ttl_ms (18 bytes) and LeaseRevoke, LeaseKeepAlive
    // and LeaseExpire are tags 6, 7 and 8 with flags and an id (10 bytes each).
    let mut out = Vec::new();
    let mut writer = KvBatchWriter::new(&mut out);
    writer.lease_grant(LeaseGrantView { id: 7, ttl_ms: 5_000 }).expect("grant");
    writer.lease_revoke(LeaseRevokeView { id: 8 }).expect("revoke");
    writer.lease_keep_alive(LeaseKeepAliveView { id: 9 }).expect("keep alive");
    writer.lease_expire(LeaseExpireView { id: 10 }).expect("expire");
    assert_eq!(writer.finish(), HEADER_BYTES + 18 + 3 * 10);
    let body = &out[HEADER_BYTES..];
    assert_eq!(&body[..2], &[5, 0]);
    assert_eq!(&body[2..10], &7u64.to_le_bytes());
    assert_eq!(&body[10..18], &5_000u64.to_le_bytes());
    for (index, (tag, id)) in [(6u8, 8u64), (7, 9), (8, 10)].into_iter().enumerate() {
        let command = &body[18 + index * 10..][..10];
        assert_eq!(&command[..2], &[tag, 0]);
        assert_eq!(&command[2..], &id.to_le_bytes());
    }
    let commands: Vec<KvCommand<'_>> = decode(&out).iter().collect();
    assert_eq!(
        commands,
        [
            KvCommand::LeaseGrant(LeaseGrantView { id: 7, ttl_ms: 5_000 }),
            KvCommand::LeaseRevoke(LeaseRevokeView { id: 8 }),
            KvCommand::LeaseKeepAlive(LeaseKeepAliveView { id: 9 }),
            KvCommand::LeaseExpire(LeaseExpireView { id: 10 }),
        ]
    );
}

#[test]
fn lease_ttl_bounds_are_inclusive_and_enforced() {
    // Proves the writer accepts TTLs exactly at both bounds and refuses one below and one above,
    // naming the TTL, without writing anything.
    let mut out = Vec::new();
    let mut writer = KvBatchWriter::new(&mut out);
    for ttl_ms in [LEASE_TTL_MS_MIN, LEASE_TTL_MS_MAX] {
        writer.lease_grant(LeaseGrantView { id: 0, ttl_ms }).expect("a TTL at a bound");
    }
    for ttl_ms in [0, LEASE_TTL_MS_MIN - 1, LEASE_TTL_MS_MAX + 1, u64::MAX] {
        let error = writer.lease_grant(LeaseGrantView { id: 0, ttl_ms }).unwrap_err();
        let reason = KvDecodeError::LeaseTtlOutOfRange(ttl_ms);
        assert_eq!(error, crate::EncodeError::Kv { index: 2, reason });
    }
    writer.finish();
    assert_eq!(decode(&out).len(), 2);
}
