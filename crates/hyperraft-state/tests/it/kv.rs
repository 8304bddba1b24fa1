//! The key/value store seen through its public API: etcd semantics,
//! revisions, bounds, history and snapshots.

use std::collections::BTreeSet;

use hyperraft_state::kv::{
    Event, EventKind, KeyValue, KvConfig, KvError, KvResponse, KvSnapshotError, KvStore, LeaseInfo,
};
use hyperraft_wire::{
    Body, Compare, CompareOp, CompareTarget, DeleteView, Frame, KvBatchWriter, KvCommand, KvOp, LeaseExpireView,
    LeaseGrantView, LeaseKeepAliveView, LeaseRevokeView, Limits, PutView, RangeView,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Helpers.

/// One command to encode.
enum Command<'a> {
    Op(KvOp<'a>),
    Txn(&'a [Compare<'a>], &'a [KvOp<'a>], &'a [KvOp<'a>]),
    /// A lease command (its view owns nothing).
    Lease(KvCommand<'static>),
}

fn put<'a>(key: &'a [u8], value: &'a [u8]) -> KvOp<'a> {
    KvOp::Put(PutView { key, value, lease: 0, prev_kv: false })
}

fn put_with<'a>(key: &'a [u8], value: &'a [u8], lease: u64, prev_kv: bool) -> KvOp<'a> {
    KvOp::Put(PutView { key, value, lease, prev_kv })
}

fn delete<'a>(key: &'a [u8], range_end: &'a [u8]) -> KvOp<'a> {
    KvOp::DeleteRange(DeleteView { key, range_end, prev_kv: true })
}

fn read<'a>(key: &'a [u8], range_end: &'a [u8]) -> RangeView<'a> {
    RangeView { key, range_end, limit: 0, keys_only: false, count_only: false }
}

fn compare<'a>(key: &'a [u8], op: CompareOp, target: CompareTarget<'a>) -> Compare<'a> {
    Compare { key, op, target }
}

fn frame(commands: &[Command<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = KvBatchWriter::new(&mut out);
    for command in commands {
        let written = match command {
            Command::Op(KvOp::Put(view)) => writer.put(*view),
            Command::Op(KvOp::DeleteRange(view)) => writer.delete_range(*view),
            Command::Op(KvOp::Range(view)) => writer.range(*view),
            Command::Txn(compares, success, failure) => writer.txn(compares, success, failure),
            Command::Lease(lease) => writer.push(lease),
        };
        written.expect("test commands are valid");
    }
    writer.finish();
    out
}

/// Applies `commands` as one batch at clock 0, sequentially; returns the responses.
fn apply(store: &mut KvStore, commands: &[Command<'_>]) -> Vec<KvResponse> {
    apply_at(store, 0, commands)
}

/// Applies `commands` as one batch stamped `now_ns`, sequentially; returns the responses.
fn apply_at(store: &mut KvStore, now_ns: u64, commands: &[Command<'_>]) -> Vec<KvResponse> {
    let bytes = frame(commands);
    let decoded = Frame::decode(&bytes, &Limits::default()).expect("the test frame decodes");
    let Body::Kv(kv_commands) = decoded.body() else { panic!("not a Kv frame") };
    let mut results = Vec::new();
    store.apply_batch_sequential(kv_commands, now_ns, &mut results);
    assert_eq!(results.len(), commands.len());
    results
}

fn grant_command(id: u64, ttl_ms: u64) -> Command<'static> {
    Command::Lease(KvCommand::LeaseGrant(LeaseGrantView { id, ttl_ms }))
}

fn revoke_command(id: u64) -> Command<'static> {
    Command::Lease(KvCommand::LeaseRevoke(LeaseRevokeView { id }))
}

fn keep_alive_command(id: u64) -> Command<'static> {
    Command::Lease(KvCommand::LeaseKeepAlive(LeaseKeepAliveView { id }))
}

fn expire_command(id: u64) -> Command<'static> {
    Command::Lease(KvCommand::LeaseExpire(LeaseExpireView { id }))
}

/// Grants lease `id` with a 10-second TTL at clock 0 and checks it was granted.
fn grant(store: &mut KvStore, id: u64) {
    let response = apply_one(store, grant_command(id, 10_000));
    assert!(matches!(response, KvResponse::LeaseGrant { id: granted, ttl_ms: 10_000, .. } if granted == id));
}

fn apply_one(store: &mut KvStore, command: Command<'_>) -> KvResponse {
    apply(store, &[command]).pop().expect("one response")
}

fn store() -> KvStore {
    KvStore::new(KvConfig::default())
}

fn store_with(keys: &[&[u8]]) -> KvStore {
    let mut store = store();
    let commands: Vec<Command<'_>> = keys.iter().map(|key| Command::Op(put(key, b"v"))).collect();
    apply(&mut store, &commands);
    store
}

fn snapshot(store: &KvStore) -> Vec<u8> {
    let mut bytes = Vec::new();
    store.encode_snapshot(&mut bytes);
    bytes
}

fn keys_of(response: &KvResponse) -> Vec<Vec<u8>> {
    match response {
        KvResponse::Range { kvs, .. } => kvs.iter().map(|kv| kv.key.clone()).collect(),
        other => panic!("expected a range response, got {other:?}"),
    }
}

fn get(store: &KvStore, key: &[u8]) -> Option<KeyValue> {
    match store.range(&read(key, b"")) {
        KvResponse::Range { mut kvs, .. } => kvs.pop(),
        other => panic!("expected a range response, got {other:?}"),
    }
}

fn kv(key: &[u8], value: &[u8], create_revision: u64, mod_revision: u64, version: u64, lease: u64) -> KeyValue {
    KeyValue { key: key.to_vec(), value: value.to_vec(), create_revision, mod_revision, version, lease }
}

// ---------------------------------------------------------------------------
// Puts, deletes and revisions.

/// Proves put metadata: a create sets create = mod = its revision and
/// version 1; an update keeps create, bumps version, sets mod and lease;
/// the previous pair comes back only when asked for.
#[test]
fn put_creates_then_updates() {
    let mut store = store();
    grant(&mut store, 7);
    grant(&mut store, 9);
    assert_eq!(
        apply_one(&mut store, Command::Op(put_with(b"a", b"1", 7, true))),
        KvResponse::Put { revision: 1, prev: None }
    );
    assert_eq!(
        apply_one(&mut store, Command::Op(put_with(b"a", b"2", 0, false))),
        KvResponse::Put { revision: 2, prev: None }
    );
    let third = apply_one(&mut store, Command::Op(put_with(b"a", b"3", 9, true)));
    assert_eq!(third, KvResponse::Put { revision: 3, prev: Some(kv(b"a", b"2", 1, 2, 2, 0)) });
    assert_eq!(get(&store, b"a"), Some(kv(b"a", b"3", 1, 3, 3, 9)));
    assert_eq!((store.revision(), store.len()), (3, 1));
}

/// Proves revisions come from positions: writes get base + i + 1, reads
/// and deletes of missing keys keep the revision of the last write before
/// them and do not advance the store.
#[test]
fn revisions_skip_commands_that_change_nothing() {
    let mut store = store_with(&[b"x"]);
    let results = apply(
        &mut store,
        &[
            Command::Op(KvOp::Range(read(b"x", b""))),
            Command::Op(delete(b"missing", b"")),
            Command::Op(put(b"a", b"1")),
        ],
    );
    let revisions: Vec<Option<u64>> = results.iter().map(KvResponse::revision).collect();
    assert_eq!(revisions, [Some(1), Some(1), Some(4)]);
    assert_eq!(store.revision(), 4);
    let read_only = apply(&mut store, &[Command::Op(KvOp::Range(read(b"a", b"")))]);
    assert_eq!(read_only[0].revision(), Some(4));
    assert_eq!(store.revision(), 4, "a read-only batch leaves the revision");
}

/// Proves deletes: one key, `[key, end)` and `key..` remove exactly the
/// selected keys, report them in key order, and record delete events
/// holding the key, the delete's revision and the removed pair.
#[test]
fn delete_removes_selected_keys_and_records_events() {
    let mut store = store_with(&[b"a", b"b", b"c", b"d", b"e"]);
    let single = apply_one(&mut store, Command::Op(delete(b"a", b"")));
    let prev_a = kv(b"a", b"v", 1, 1, 1, 0);
    assert_eq!(single, KvResponse::DeleteRange { revision: 6, deleted: 1, prev: vec![prev_a.clone()] });
    let between = apply_one(&mut store, Command::Op(delete(b"b", b"d")));
    let KvResponse::DeleteRange { revision: 7, deleted: 2, prev } = between else { panic!("{between:?}") };
    assert_eq!(prev.iter().map(|kv| kv.key.as_slice()).collect::<Vec<_>>(), [b"b", b"c"]);
    let from = apply_one(&mut store, Command::Op(delete(b"d", &[0])));
    assert!(matches!(from, KvResponse::DeleteRange { revision: 8, deleted: 2, .. }), "{from:?}");
    assert!(store.is_empty());
    let events: Vec<&Event> = store.events_since(5).expect("history kept").collect();
    let expected_first = Event {
        kind: EventKind::Delete,
        kv: KeyValue { key: b"a".to_vec(), mod_revision: 6, ..KeyValue::default() },
        prev: Some(prev_a),
    };
    assert_eq!(events[0], &expected_first);
    let keys: Vec<(&[u8], u64)> = events.iter().map(|event| (event.kv.key.as_slice(), event.revision())).collect();
    assert_eq!(keys, [(b"a".as_slice(), 6), (b"b", 7), (b"c", 7), (b"d", 8), (b"e", 8)]);
}

// ---------------------------------------------------------------------------
// Ranges.

/// Proves the range_end conventions on reads: empty selects one key,
/// `[0]` every key from `key` on, otherwise `[key, end)`, and an end not
/// after the start selects nothing.
#[test]
fn range_end_conventions() {
    let store = store_with(&[b"a", b"b", b"ba", b"c", b"d"]);
    let keys = |key: &[u8], end: &[u8]| keys_of(&store.range(&read(key, end)));
    assert_eq!(keys(b"b", b""), [b"b".to_vec()]);
    assert_eq!(keys(b"bb", b""), Vec::<Vec<u8>>::new());
    assert_eq!(keys(b"b", &[0]), [b"b".to_vec(), b"ba".to_vec(), b"c".to_vec(), b"d".to_vec()]);
    assert_eq!(keys(&[0], &[0]).len(), 5, "[0]..[0] is every key");
    assert_eq!(keys(b"b", b"c"), [b"b".to_vec(), b"ba".to_vec()]);
    assert_eq!(keys(b"c", b"b"), Vec::<Vec<u8>>::new());
    assert_eq!(keys(b"b", b"b"), Vec::<Vec<u8>>::new());
}

/// Proves `limit`, `keys_only` and `count_only`: limit cuts the answer
/// and sets `more` while `count` counts every match; keys_only drops
/// values but keeps metadata; count_only returns only the count.
#[test]
fn range_limit_keys_only_count_only() {
    let store = store_with(&[b"a", b"b", b"c", b"d"]);
    let all = read(b"a", &[0]);
    let limited = store.range(&RangeView { limit: 2, ..all });
    assert_eq!(keys_of(&limited), [b"a".to_vec(), b"b".to_vec()]);
    assert!(matches!(limited, KvResponse::Range { count: 4, more: true, .. }), "{limited:?}");
    for limit in [4, 5, 0] {
        let whole = store.range(&RangeView { limit, ..all });
        assert!(matches!(&whole, KvResponse::Range { kvs, count: 4, more: false, .. } if kvs.len() == 4), "{whole:?}");
    }
    let keys_only = store.range(&RangeView { keys_only: true, ..read(b"b", b"") });
    let KvResponse::Range { kvs, count: 1, .. } = keys_only else { panic!("{keys_only:?}") };
    assert_eq!(kvs, [kv(b"b", b"", 2, 2, 1, 0)]);
    let count_only = store.range(&RangeView { count_only: true, limit: 1, ..all });
    assert_eq!(count_only, KvResponse::Range { revision: 4, kvs: Vec::new(), count: 4, more: false });
}

/// Proves a range spanning every shard comes back in key order: the
/// shards' sorted runs are merged correctly.
#[test]
fn range_over_many_keys_is_sorted() {
    let keys: Vec<Vec<u8>> =
        (0u32..300).map(|index| index.wrapping_mul(2_654_435_761).to_be_bytes().to_vec()).collect();
    let key_refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let store = store_with(&key_refs);
    let expected: Vec<Vec<u8>> = keys.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    assert_eq!(keys_of(&store.range(&read(&[0], &[0]))), expected);
    let middle = keys_of(&store.range(&read(&[0x40], &[0xc0])));
    let expected_middle: Vec<Vec<u8>> =
        expected.iter().filter(|key| key[0] >= 0x40 && key[0] < 0xc0).cloned().collect();
    assert_eq!(middle, expected_middle);
}

// ---------------------------------------------------------------------------
// Transactions.

fn txn_succeeds(store: &mut KvStore, condition: Compare<'_>) -> bool {
    match apply_one(store, Command::Txn(&[condition], &[], &[])) {
        KvResponse::Txn { succeeded, .. } => succeeded,
        other => panic!("expected a transaction response, got {other:?}"),
    }
}

/// Proves etcd's compare table on a present key: for every target, each
/// operator against an operand below, equal to and above the key's value.
#[test]
fn txn_compares_on_present_key() {
    // "k" ends with value "m", version 2, create 1, mod 3, lease 5.
    let mut store = store_with(&[b"k", b"other"]);
    grant(&mut store, 5);
    apply_one(&mut store, Command::Op(put_with(b"k", b"m", 5, false)));
    assert_eq!(get(&store, b"k"), Some(kv(b"k", b"m", 1, 3, 2, 5)));
    type Operands<'a> = [CompareTarget<'a>; 3];
    let targets: [Operands<'_>; 5] = [
        [CompareTarget::Value(b"l"), CompareTarget::Value(b"m"), CompareTarget::Value(b"n")],
        [CompareTarget::Version(1), CompareTarget::Version(2), CompareTarget::Version(3)],
        [CompareTarget::CreateRevision(0), CompareTarget::CreateRevision(1), CompareTarget::CreateRevision(2)],
        [CompareTarget::ModRevision(2), CompareTarget::ModRevision(3), CompareTarget::ModRevision(4)],
        [CompareTarget::Lease(4), CompareTarget::Lease(5), CompareTarget::Lease(6)],
    ];
    // Expected results for operands [below, equal, above] the key's value.
    let table = [
        (CompareOp::Equal, [false, true, false]),
        (CompareOp::NotEqual, [true, false, true]),
        (CompareOp::Less, [false, false, true]),
        (CompareOp::Greater, [true, false, false]),
    ];
    for operands in targets {
        for (op, expected) in table {
            for (operand, expected) in operands.into_iter().zip(expected) {
                let holds = txn_succeeds(&mut store, compare(b"k", op, operand));
                assert_eq!(holds, expected, "{op:?} {operand:?}");
            }
        }
    }
}

/// Proves etcd's compare table on a missing key: version, revisions and
/// lease read as 0, and every value compare fails whatever the operator.
#[test]
fn txn_compares_on_missing_key() {
    let mut store = store_with(&[b"other"]);
    let numbers: [fn(u64) -> CompareTarget<'static>; 4] =
        [CompareTarget::Version, CompareTarget::CreateRevision, CompareTarget::ModRevision, CompareTarget::Lease];
    let table = [
        (CompareOp::Equal, 0, true),
        (CompareOp::Equal, 1, false),
        (CompareOp::NotEqual, 0, false),
        (CompareOp::NotEqual, 1, true),
        (CompareOp::Less, 1, true),
        (CompareOp::Less, 0, false),
        (CompareOp::Greater, 0, false),
    ];
    for target in numbers {
        for (op, operand, expected) in table {
            let holds = txn_succeeds(&mut store, compare(b"missing", op, target(operand)));
            assert_eq!(holds, expected, "{op:?} {:?}", target(operand));
        }
    }
    for op in [CompareOp::Equal, CompareOp::NotEqual, CompareOp::Less, CompareOp::Greater] {
        for operand in [b"".as_slice(), b"x"] {
            let holds = txn_succeeds(&mut store, compare(b"missing", op, CompareTarget::Value(operand)));
            assert!(!holds, "value {op:?} {operand:?} on a missing key must fail");
        }
    }
}

/// Proves transaction operations run in order and later ones see earlier
/// writes; all writes share the transaction's revision, as do the inner
/// responses, and the events keep the operations' order.
#[test]
fn txn_ops_see_earlier_writes_and_share_revision() {
    let mut store = store_with(&[b"c"]);
    let condition = [compare(b"a", CompareOp::Equal, CompareTarget::Version(0))];
    let success = [put(b"a", b"1"), KvOp::Range(read(b"a", b"")), put(b"b", b"2"), delete(b"c", b"")];
    let response =
        apply(&mut store, &[Command::Op(KvOp::Range(read(b"a", b""))), Command::Txn(&condition, &success, &[])]);
    let KvResponse::Txn { revision: 3, succeeded: true, responses } = &response[1] else { panic!("{response:?}") };
    assert_eq!(
        responses[1],
        KvResponse::Range { revision: 3, kvs: vec![kv(b"a", b"1", 3, 3, 1, 0)], count: 1, more: false }
    );
    assert!(responses.iter().all(|inner| inner.revision() == Some(3)), "{responses:?}");
    let events: Vec<(EventKind, &[u8], u64)> = store
        .events_since(1)
        .expect("kept")
        .map(|event| (event.kind, event.kv.key.as_slice(), event.revision()))
        .collect();
    assert_eq!(events, [(EventKind::Put, b"a".as_slice(), 3), (EventKind::Put, b"b", 3), (EventKind::Delete, b"c", 3)]);
}

/// Proves the failure branch runs when a compare fails, and that a
/// transaction whose branch only reads does not advance the revision.
#[test]
fn txn_failure_branch_and_read_only_txn() {
    let mut store = store_with(&[b"a"]);
    let condition = [compare(b"a", CompareOp::Equal, CompareTarget::Value(b"nope"))];
    let failure = [KvOp::Range(read(b"a", b""))];
    let response = apply_one(&mut store, Command::Txn(&condition, &[put(b"a", b"x")], &failure));
    let KvResponse::Txn { revision: 1, succeeded: false, responses } = response else { panic!("{response:?}") };
    assert_eq!(keys_of(&responses[0]), [b"a".to_vec()]);
    assert_eq!(store.revision(), 1);
    assert_eq!(get(&store, b"a").map(|kv| kv.value), Some(b"v".to_vec()));
}

/// Proves the duplicate-key rule: a branch that puts a key twice, or puts
/// a key one of its deletes covers (single, range or `[0]`), is refused
/// whole even when it is not the branch that would run, and changes
/// nothing; overlapping deletes, and a put beside a read, are allowed.
#[test]
fn txn_duplicate_keys_are_refused_whole() {
    let mut store = store_with(&[b"a", b"b"]);
    let before = snapshot(&store);
    let refused: [&[KvOp<'_>]; 4] = [
        &[put(b"a", b"1"), put(b"a", b"2")],
        &[put(b"c", b"1"), delete(b"c", b"")],
        &[delete(b"a", b"c"), put(b"b", b"1")],
        &[put(b"z", b"1"), delete(b"x", &[0])],
    ];
    for ops in refused {
        assert_eq!(apply_one(&mut store, Command::Txn(&[], ops, &[])), KvResponse::Error(KvError::TxnDuplicateKey));
        assert_eq!(apply_one(&mut store, Command::Txn(&[], &[], ops)), KvResponse::Error(KvError::TxnDuplicateKey));
    }
    assert_eq!(snapshot(&store), before, "refused transactions changed the store");
    let allowed = [delete(b"a", b"c"), delete(b"b", b""), put(b"c", b"1"), KvOp::Range(read(b"c", b""))];
    let response = apply_one(&mut store, Command::Txn(&[], &allowed, &[]));
    assert!(matches!(response, KvResponse::Txn { succeeded: true, .. }), "{response:?}");
    assert_eq!(store.len(), 1);
}

// ---------------------------------------------------------------------------
// Bounds.

fn small_store(keys_max: usize, keys: &[&[u8]]) -> KvStore {
    let mut store = KvStore::new(KvConfig { keys_max, history_events_max: 100, ..KvConfig::default() });
    let commands: Vec<Command<'_>> = keys.iter().map(|key| Command::Op(put(key, b"v"))).collect();
    apply(&mut store, &commands);
    store
}

/// Proves the key bound on puts: at `keys_max` a put of a new key is
/// refused with StoreFull and changes nothing (state, revision, history),
/// while updates still work and a delete makes room again.
#[test]
fn store_full_refuses_new_keys_only() {
    let mut store = small_store(2, &[b"a", b"b"]);
    let before = snapshot(&store);
    let full = apply_one(&mut store, Command::Op(put(b"c", b"v")));
    assert_eq!(full, KvResponse::Error(KvError::StoreFull { keys_max: 2 }));
    assert_eq!(full.revision(), None);
    assert_eq!(snapshot(&store), before);
    assert!(matches!(apply_one(&mut store, Command::Op(put(b"a", b"2"))), KvResponse::Put { revision: 3, .. }));
    let results = apply(&mut store, &[Command::Op(delete(b"a", b"")), Command::Op(put(b"c", b"v"))]);
    assert!(matches!(results[1], KvResponse::Put { revision: 5, .. }), "{results:?}");
    assert_eq!(store.len(), 2);
}

/// Proves the key bound on transactions: a branch that would create a key
/// with no room is refused whole before any write, replaying its
/// operations in order (a delete before the put makes room, after it not).
#[test]
fn store_full_refuses_whole_transactions() {
    let mut store = small_store(2, &[b"a", b"b"]);
    let before = snapshot(&store);
    let update_then_create = [put(b"a", b"2"), put(b"c", b"v")];
    let full = KvResponse::Error(KvError::StoreFull { keys_max: 2 });
    assert_eq!(apply_one(&mut store, Command::Txn(&[], &update_then_create, &[])), full);
    let create_then_delete = [put(b"c", b"v"), delete(b"a", b"")];
    assert_eq!(apply_one(&mut store, Command::Txn(&[], &create_then_delete, &[])), full);
    assert_eq!(snapshot(&store), before, "a refused transaction wrote");
    let delete_then_create = [delete(b"a", b""), put(b"c", b"v")];
    let response = apply_one(&mut store, Command::Txn(&[], &delete_then_create, &[]));
    assert!(matches!(response, KvResponse::Txn { revision: 3, succeeded: true, .. }), "{response:?}");
    assert_eq!(keys_of(&store.range(&read(b"a", &[0]))), [b"b".to_vec(), b"c".to_vec()]);
}

// ---------------------------------------------------------------------------
// History.

/// Proves the history bound and `events_since`: only the newest
/// `history_events_max` events stay, asking from before them is refused
/// with the oldest revision still askable, and from it every later event
/// comes back in order.
#[test]
fn history_is_bounded_and_reports_compaction() {
    let mut store = KvStore::new(KvConfig { keys_max: 100, history_events_max: 3, leases_max: 10 });
    apply(&mut store, &[Command::Op(put(b"a", b"1")), Command::Op(put(b"b", b"1")), Command::Op(put(b"a", b"2"))]);
    apply(&mut store, &[Command::Op(delete(b"a", b"")), Command::Op(put(b"c", b"1"))]);
    assert_eq!(store.events_since(0).err(), Some(KvError::Compacted { oldest: 2 }));
    assert_eq!(store.events_since(1).err(), Some(KvError::Compacted { oldest: 2 }));
    let events: Vec<(EventKind, u64)> =
        store.events_since(2).expect("kept").map(|event| (event.kind, event.revision())).collect();
    assert_eq!(events, [(EventKind::Put, 3), (EventKind::Delete, 4), (EventKind::Put, 5)]);
    assert_eq!(store.events_since(4).expect("kept").count(), 1);
    assert_eq!(store.events_since(5).expect("kept").count(), 0);
}

// ---------------------------------------------------------------------------
// Leases.

const SECOND_NS: u64 = 1_000_000_000;

/// Proves grants: id 0 takes the next free id from the counter (skipping
/// ids granted explicitly), an explicit id is kept, a live id is refused
/// with `LeaseExists`, the deadline is the batch timestamp plus the TTL,
/// and a grant writes no key so it takes no revision.
#[test]
fn lease_grant_chooses_ids_and_refuses_live_ones() {
    let mut store = store_with(&[b"x"]);
    let results = apply_at(
        &mut store,
        5 * SECOND_NS,
        &[grant_command(0, 1_000), grant_command(2, 3_000), grant_command(0, 1_000), grant_command(2, 1_000)],
    );
    assert_eq!(
        results,
        [
            KvResponse::LeaseGrant { revision: 1, id: 1, ttl_ms: 1_000 },
            KvResponse::LeaseGrant { revision: 1, id: 2, ttl_ms: 3_000 },
            KvResponse::LeaseGrant { revision: 1, id: 3, ttl_ms: 1_000 },
            KvResponse::Error(KvError::LeaseExists { id: 2 }),
        ]
    );
    assert_eq!(store.revision(), 1);
    assert_eq!(store.lease_ids().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(store.lease(2), Some(LeaseInfo { id: 2, ttl_ms: 3_000, deadline_ns: 8 * SECOND_NS, keys: 0 }));
    assert_eq!(store.lease(4), None);
}

/// Proves keep-alive: it moves the deadline to the batch timestamp plus
/// the full TTL (later or earlier than before), answers the TTL, and an
/// unknown lease is `LeaseNotFound`.
#[test]
fn lease_keep_alive_renews_from_the_batch_clock() {
    let mut store = store();
    apply_at(&mut store, SECOND_NS, &[grant_command(7, 2_000)]);
    let renewed = apply_at(&mut store, 2 * SECOND_NS, &[keep_alive_command(7), keep_alive_command(8)]);
    assert_eq!(
        renewed,
        [
            KvResponse::LeaseKeepAlive { revision: 0, id: 7, ttl_ms: 2_000 },
            KvResponse::Error(KvError::LeaseNotFound { id: 8 }),
        ]
    );
    assert_eq!(store.lease(7).map(|lease| lease.deadline_ns), Some(4 * SECOND_NS));
}

/// Puts "a", "b", "foo" (shards 7, 2, 6) on lease 1, "key-1" on lease 2,
/// "plain" on no lease, then "b" again on no lease: lease 1 ends holding
/// "a" and "foo". Revision 6.
fn leased_store() -> KvStore {
    let mut store = store();
    apply(&mut store, &[grant_command(1, 1_000), grant_command(2, 1_000)]);
    apply(
        &mut store,
        &[
            Command::Op(put_with(b"a", b"1", 1, false)),
            Command::Op(put_with(b"b", b"1", 1, false)),
            Command::Op(put_with(b"foo", b"1", 1, false)),
            Command::Op(put_with(b"key-1", b"1", 2, false)),
            Command::Op(put(b"plain", b"1")),
            Command::Op(put(b"b", b"2")),
        ],
    );
    store
}

/// Proves a put moves its key between leases: putting a key on another
/// lease detaches it from the old one, lease 0 detaches it, and a delete
/// detaches it; the attachments are listed in key order and bounded.
#[test]
fn puts_and_deletes_move_keys_between_leases() {
    let mut store = leased_store();
    assert_eq!(store.lease_keys(1, 10), [b"a".to_vec(), b"foo".to_vec()]);
    assert_eq!(store.lease_keys(1, 1), [b"a".to_vec()], "the listing is bounded");
    apply(&mut store, &[Command::Op(put_with(b"a", b"2", 2, false)), Command::Op(delete(b"key-1", b""))]);
    assert_eq!(store.lease_keys(1, 10), [b"foo".to_vec()]);
    assert_eq!(store.lease_keys(2, 10), [b"a".to_vec()]);
    assert_eq!(store.lease(2).map(|lease| lease.keys), Some(1));
    assert_eq!(get(&store, b"a").map(|kv| kv.lease), Some(2));
    assert!(store.lease_keys(9, 10).is_empty());
}

/// Proves revoke deletes exactly the keys attached to the lease, all at
/// the revoke's revision, emitting one delete event per key in key order
/// (as a delete-range would); the lease is gone, other keys stay, and a
/// second revoke is `LeaseNotFound`.
#[test]
fn lease_revoke_deletes_exactly_its_keys_at_one_revision() {
    let mut store = leased_store();
    let base = store.revision();
    let results = apply(&mut store, &[Command::Op(put(b"z", b"1")), revoke_command(1), revoke_command(1)]);
    assert_eq!(
        results,
        [
            KvResponse::Put { revision: base + 1, prev: None },
            KvResponse::LeaseRevoke { revision: base + 2, deleted: 2 },
            KvResponse::Error(KvError::LeaseNotFound { id: 1 }),
        ]
    );
    let events: Vec<(EventKind, Vec<u8>, u64)> = store
        .events_since(base + 1)
        .expect("kept")
        .map(|event| (event.kind, event.kv.key.clone(), event.revision()))
        .collect();
    assert_eq!(events, [(EventKind::Delete, b"a".to_vec(), base + 2), (EventKind::Delete, b"foo".to_vec(), base + 2)]);
    let left = keys_of(&store.range(&read(&[0], &[0])));
    assert_eq!(left, [b"b".to_vec(), b"key-1".to_vec(), b"plain".to_vec(), b"z".to_vec()]);
    assert_eq!(store.lease(1), None);
    assert_eq!(store.lease_ids().collect::<Vec<_>>(), [2]);
    assert_eq!(store.revision(), base + 2);
}

/// Proves expiry: before the deadline it changes nothing and says so; a
/// keep-alive pushes the deadline so an expiry that would have fired no
/// longer does; at the deadline it revokes the lease and deletes its keys;
/// an expiry of an unknown lease is a no-op, not an error. The listing of
/// expired leases follows the same deadlines.
#[test]
fn lease_expire_fires_only_at_the_deadline() {
    let mut store = store();
    apply_at(&mut store, 0, &[grant_command(1, 1_000), grant_command(2, 5_000)]);
    apply_at(&mut store, 0, &[Command::Op(put_with(b"a", b"1", 1, false))]);
    let not_yet = KvResponse::LeaseExpire { revision: 1, expired: false, deleted: 0 };
    assert_eq!(apply_at(&mut store, SECOND_NS - 1, &[expire_command(1)]), std::slice::from_ref(&not_yet));
    assert_eq!(store.expired_leases(SECOND_NS - 1, 10), Vec::<u64>::new());
    assert_eq!(store.expired_leases(SECOND_NS, 10), [1]);
    apply_at(&mut store, SECOND_NS / 2, &[keep_alive_command(1)]);
    assert_eq!(apply_at(&mut store, SECOND_NS, &[expire_command(1)]), [not_yet]);
    assert_eq!(store.expired_leases(SECOND_NS, 10), Vec::<u64>::new());
    assert_eq!(store.expired_leases(5 * SECOND_NS, 10), [1, 2]);
    assert_eq!(store.expired_leases(5 * SECOND_NS, 1), [1], "the listing is bounded");
    let due = SECOND_NS * 3 / 2;
    let results = apply_at(&mut store, due, &[expire_command(1), expire_command(1), expire_command(9)]);
    assert_eq!(
        results,
        [
            KvResponse::LeaseExpire { revision: 2, expired: true, deleted: 1 },
            KvResponse::LeaseExpire { revision: 2, expired: false, deleted: 0 },
            KvResponse::LeaseExpire { revision: 2, expired: false, deleted: 0 },
        ]
    );
    assert_eq!((store.len(), store.lease_ids().collect::<Vec<_>>()), (0, vec![2]));
}

/// Proves etcd's rule for leased puts: a put naming a lease that does not
/// exist (never granted, or revoked) is refused with `LeaseNotFound`, on
/// its own or in the branch a transaction runs, and the store (snapshot
/// bytes) is unchanged; a bad lease in the branch that does not run is
/// not checked.
#[test]
fn leased_put_of_unknown_lease_is_refused_and_changes_nothing() {
    let mut store = leased_store();
    apply(&mut store, &[revoke_command(2)]);
    let before = snapshot(&store);
    let not_found = |id| KvResponse::Error(KvError::LeaseNotFound { id });
    assert_eq!(apply_one(&mut store, Command::Op(put_with(b"new", b"1", 5, false))), not_found(5));
    assert_eq!(apply_one(&mut store, Command::Op(put_with(b"a", b"1", 2, false))), not_found(2));
    let ops = [put(b"c", b"1"), put_with(b"d", b"1", 1, false), put_with(b"e", b"1", 6, false)];
    assert_eq!(apply_one(&mut store, Command::Txn(&[], &ops, &[])), not_found(6));
    assert_eq!(snapshot(&store), before);
    let never = [compare(b"a", CompareOp::Equal, CompareTarget::Version(99))];
    let response = apply_one(&mut store, Command::Txn(&never, &ops, &[put(b"c", b"1")]));
    assert!(matches!(response, KvResponse::Txn { succeeded: false, .. }), "{response:?}");
}

/// Proves the lease bound: a grant while `leases_max` leases are live is
/// refused with `LeasesFull` and changes nothing; a revoke makes room.
#[test]
fn grants_beyond_leases_max_are_refused() {
    let mut store = KvStore::new(KvConfig { leases_max: 2, ..KvConfig::default() });
    let results = apply(&mut store, &[grant_command(0, 1_000), grant_command(0, 1_000), grant_command(0, 1_000)]);
    assert_eq!(results[2], KvResponse::Error(KvError::LeasesFull { leases_max: 2 }));
    let before = snapshot(&store);
    assert_eq!(
        apply_one(&mut store, grant_command(9, 1_000)),
        KvResponse::Error(KvError::LeasesFull { leases_max: 2 })
    );
    assert_eq!(snapshot(&store), before);
    apply(&mut store, &[revoke_command(1)]);
    assert!(matches!(apply_one(&mut store, grant_command(0, 1_000)), KvResponse::LeaseGrant { id: 3, .. }));
    assert_eq!(store.leases_len(), 2);
}

// ---------------------------------------------------------------------------
// Snapshots.

/// Keys a..f over two batches, history full; leases 3 (its key "a" moved
/// off it later), 4 (holding "c" and "f") and 8 (no keys).
fn busy_store() -> KvStore {
    let mut store = KvStore::new(KvConfig { keys_max: 100, history_events_max: 6, leases_max: 10 });
    apply(&mut store, &[grant_command(3, 1_000), grant_command(4, 2_000), grant_command(8, 86_400_000)]);
    apply(
        &mut store,
        &[
            Command::Op(put_with(b"a", b"1", 3, false)),
            Command::Op(put(b"b", b"")),
            Command::Op(put_with(b"c", b"3", 4, false)),
        ],
    );
    apply(
        &mut store,
        &[Command::Op(put(b"a", b"2")), Command::Op(delete(b"b", b"")), Command::Op(put(b"d\xff", b"4"))],
    );
    apply(&mut store, &[Command::Op(put(b"e", b"5")), Command::Op(put_with(b"f", b"6", 4, false))]);
    store
}

/// Every lease with its attached keys, for comparing two stores.
fn leases_of(store: &KvStore) -> Vec<(LeaseInfo, Vec<Vec<u8>>)> {
    let lease = |id| (store.lease(id).expect("listed leases are live"), store.lease_keys(id, usize::MAX));
    store.lease_ids().map(lease).collect()
}

/// Proves snapshots round-trip: decode(encode(s)) encodes to the same
/// bytes, keeps revision, keys, history, leases (TTL, deadline, attached
/// keys) and the lease id counter, and then behaves like the original on
/// the next batch (a grant of id 0, a revoke, a leased put).
#[test]
fn snapshot_round_trips() {
    let mut original = busy_store();
    let bytes = snapshot(&original);
    let mut decoded = KvStore::decode_snapshot(&bytes, *original.config()).expect("a valid snapshot");
    assert_eq!(snapshot(&decoded), bytes);
    assert_eq!((decoded.revision(), decoded.len()), (original.revision(), original.len()));
    assert_eq!(decoded.events_since(0).err(), original.events_since(0).err());
    assert_eq!(leases_of(&decoded), leases_of(&original));
    let lease_four = LeaseInfo { id: 4, ttl_ms: 2_000, deadline_ns: 2_000_000_000, keys: 2 };
    assert_eq!(decoded.lease(4), Some(lease_four));
    assert_eq!(decoded.lease_keys(4, 10), [b"c".to_vec(), b"f".to_vec()]);
    assert_eq!(decoded.lease(3).map(|lease| lease.keys), Some(0), "\"a\" was put again without a lease");
    let batch = [
        Command::Op(put(b"a", b"x")),
        Command::Op(KvOp::Range(read(&[0], &[0]))),
        grant_command(0, 5_000),
        revoke_command(4),
        Command::Op(put_with(b"g", b"7", 8, false)),
    ];
    let results = apply_at(&mut decoded, 7, &batch);
    assert_eq!(results, apply_at(&mut original, 7, &batch));
    assert!(matches!(results[2], KvResponse::LeaseGrant { id: 1, .. }), "{:?}", results[2]);
    assert_eq!(snapshot(&decoded), snapshot(&original));
    assert_eq!(leases_of(&decoded), leases_of(&original));
}

/// Proves decode refuses lease sections that break an invariant, each
/// with its typed error: more leases than `leases_max`, a TTL outside the
/// wire bounds, a repeated lease id, a zero id counter, and a key attached
/// to a lease missing from the table.
#[test]
fn snapshot_decode_refuses_bad_leases() {
    let store = busy_store();
    let bytes = snapshot(&store);
    let config = *store.config();
    let decode = |bytes: &[u8]| KvStore::decode_snapshot(bytes, config).err();
    let fewer_leases = KvConfig { leases_max: 2, ..config };
    assert_eq!(
        KvStore::decode_snapshot(&bytes, fewer_leases).err(),
        Some(KvSnapshotError::TooManyLeases { count: 3, max: 2 })
    );
    // Offsets: the counter, then leases of (id, ttl_ms, deadline_ns).
    let counter = 4 + 2 + 8 + 8;
    let lease = |index: usize| counter + 16 + index * 24;
    let edit = |at: usize, number: u64| {
        let mut edited = bytes.clone();
        edited[at..at + 8].copy_from_slice(&number.to_le_bytes());
        reseal(&mut edited);
        edited
    };
    assert_eq!(u64::from_le_bytes(bytes[lease(1)..lease(1) + 8].try_into().expect("8 bytes")), 4);
    let invalid_lease = |index| move |error: Option<KvSnapshotError>| matches!(error, Some(KvSnapshotError::InvalidLease { index: found, .. }) if found == index);
    assert!(invalid_lease(1)(decode(&edit(lease(1) + 8, 999))), "a TTL below the bound");
    assert!(invalid_lease(1)(decode(&edit(lease(1), 3))), "a repeated id");
    assert!(invalid_lease(3)(decode(&edit(counter, 0))), "a zero id counter");
    // Lease 4 renamed 5: keys "c" (index 1, after "a") and "f" still name 4.
    let error = decode(&edit(lease(1), 5));
    assert!(matches!(error, Some(KvSnapshotError::InvalidKey { index: 1, .. })), "{error:?}");
}

fn reseal(bytes: &mut [u8]) {
    let body_end = bytes.len() - 4;
    let checksum = crc32c::crc32c(&bytes[..body_end]);
    bytes[body_end..].copy_from_slice(&checksum.to_le_bytes());
}

/// Proves decode refuses damaged or out-of-bounds snapshots with the
/// matching typed error: truncation, wrong magic, a flipped bit, trailing
/// bytes, and more keys or events than the configuration allows.
#[test]
fn snapshot_decode_refuses_bad_bytes() {
    let store = busy_store();
    let bytes = snapshot(&store);
    let config = *store.config();
    let decode = |bytes: &[u8], config| KvStore::decode_snapshot(bytes, config).err();
    assert_eq!(decode(&bytes[..2], config), Some(KvSnapshotError::Truncated { offset: 0, needed: 4 }));
    assert_eq!(decode(b"NOPE....", config), Some(KvSnapshotError::BadMagic { found: u32::from_le_bytes(*b"NOPE") }));
    let mut flipped = bytes.clone();
    flipped[20] ^= 1;
    assert_eq!(decode(&flipped, config), Some(KvSnapshotError::ChecksumMismatch));
    let mut trailing = bytes.clone();
    trailing.insert(bytes.len() - 4, 0);
    reseal(&mut trailing);
    assert_eq!(decode(&trailing, config), Some(KvSnapshotError::TrailingBytes { extra: 1 }));
    let fewer_keys = KvConfig { keys_max: 4, ..config };
    assert_eq!(decode(&bytes, fewer_keys), Some(KvSnapshotError::TooManyKeys { count: 5, max: 4 }));
    let fewer_events = KvConfig { history_events_max: 5, ..config };
    assert_eq!(decode(&bytes, fewer_events), Some(KvSnapshotError::TooManyEvents { count: 6, max: 5 }));
    let mut unordered = bytes.clone();
    // Header, lease counter and count, three leases of 24 bytes, key count, key length.
    let first_key = 4 + 2 + 8 + 8 + 8 + 8 + 3 * 24 + 8 + 4;
    assert_eq!(unordered[first_key], b'a');
    unordered[first_key] = b'z';
    reseal(&mut unordered);
    assert!(matches!(decode(&unordered, config), Some(KvSnapshotError::InvalidKey { index: 1, .. })));
}

proptest! {
    /// Proves hostile snapshot bytes never panic: arbitrary bytes, and a
    /// valid snapshot with bytes overwritten and the checksum recomputed
    /// (so validation past the checksum is reached), decode to an error or
    /// to a store that re-encodes to exactly the same bytes.
    #[test]
    fn hostile_snapshots_never_panic(
        random in prop::collection::vec(any::<u8>(), 0..200),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let config = KvConfig { keys_max: 100, history_events_max: 6, leases_max: 10 };
        let _ = KvStore::decode_snapshot(&random, config);
        let mut bytes = snapshot(&busy_store());
        for (index, byte) in edits {
            let position = index.index(bytes.len() - 4);
            bytes[position] = byte;
        }
        let length = bytes.len() - cut.index(8);
        let mut cut_bytes = bytes[..length].to_vec();
        for candidate in [&mut bytes, &mut cut_bytes] {
            if candidate.len() >= 8 {
                reseal(candidate);
            }
            if let Ok(store) = KvStore::decode_snapshot(candidate, config) {
                prop_assert_eq!(snapshot(&store), candidate.clone());
            }
        }
    }
}
