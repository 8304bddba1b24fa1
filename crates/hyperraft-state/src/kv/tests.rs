//! Unit tests of the key/value store's internals and the property that
//! parallel apply equals sequential apply. Behaviour seen through the
//! public API (etcd semantics, bounds, snapshots) is tested in
//! `tests/it/kv.rs`.

use std::sync::OnceLock;

use hyperraft_wire::{
    Body, Compare, CompareOp, CompareTarget, DeleteView, Frame, KvBatchWriter, KvCommand, KvCommands, KvOp,
    LeaseExpireView, LeaseGrantView, LeaseKeepAliveView, LeaseRevokeView, Limits, PutView, RangeView,
};
use proptest::prelude::*;

use super::history::History;
use super::key_range::KeyRange;
use super::lanes::LaneTuning;
use super::route::Route;
use super::shard::shard_of;
use super::{Event, EventKind, KeyValue, KvConfig, KvError, KvResponse, KvStore, LeaseInfo};

// ---------------------------------------------------------------------------
// Owned commands, so proptest can generate and shrink them.

#[derive(Clone, Debug)]
enum OpSpec {
    Put { key: Vec<u8>, value: Vec<u8>, lease: u64, prev_kv: bool },
    Delete { key: Vec<u8>, range_end: Vec<u8>, prev_kv: bool },
    Range { key: Vec<u8>, range_end: Vec<u8>, limit: u32, keys_only: bool, count_only: bool },
}

impl OpSpec {
    fn view(&self) -> KvOp<'_> {
        match self {
            OpSpec::Put { key, value, lease, prev_kv } => {
                KvOp::Put(PutView { key, value, lease: *lease, prev_kv: *prev_kv })
            }
            OpSpec::Delete { key, range_end, prev_kv } => {
                KvOp::DeleteRange(DeleteView { key, range_end, prev_kv: *prev_kv })
            }
            OpSpec::Range { key, range_end, limit, keys_only, count_only } => {
                KvOp::Range(RangeView { key, range_end, limit: *limit, keys_only: *keys_only, count_only: *count_only })
            }
        }
    }
}

#[derive(Clone, Debug)]
enum TargetSpec {
    Value(Vec<u8>),
    Version(u64),
    CreateRevision(u64),
    ModRevision(u64),
    Lease(u64),
}

#[derive(Clone, Debug)]
struct CompareSpec {
    key: Vec<u8>,
    op: CompareOp,
    target: TargetSpec,
}

impl CompareSpec {
    fn view(&self) -> Compare<'_> {
        let target = match &self.target {
            TargetSpec::Value(value) => CompareTarget::Value(value),
            TargetSpec::Version(version) => CompareTarget::Version(*version),
            TargetSpec::CreateRevision(revision) => CompareTarget::CreateRevision(*revision),
            TargetSpec::ModRevision(revision) => CompareTarget::ModRevision(*revision),
            TargetSpec::Lease(lease) => CompareTarget::Lease(*lease),
        };
        Compare { key: &self.key, op: self.op, target }
    }
}

#[derive(Clone, Debug)]
enum CommandSpec {
    Op(OpSpec),
    Txn {
        compares: Vec<CompareSpec>,
        success: Vec<OpSpec>,
        failure: Vec<OpSpec>,
    },
    /// A lease command; its view owns nothing.
    Lease(KvCommand<'static>),
}

/// Encodes `commands` as one `Kv` frame.
fn encode_batch(commands: &[CommandSpec]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = KvBatchWriter::new(&mut out);
    for command in commands {
        let written = match command {
            CommandSpec::Op(op) => writer.push(&KvCommand::from(op.view())),
            CommandSpec::Txn { compares, success, failure } => {
                let compares: Vec<Compare<'_>> = compares.iter().map(CompareSpec::view).collect();
                let success: Vec<KvOp<'_>> = success.iter().map(OpSpec::view).collect();
                let failure: Vec<KvOp<'_>> = failure.iter().map(OpSpec::view).collect();
                writer.txn(&compares, &success, &failure)
            }
            CommandSpec::Lease(lease) => writer.push(lease),
        };
        written.expect("generated commands are within the wire bounds");
    }
    writer.finish();
    out
}

/// The commands of an encoded `Kv` frame.
fn commands_of(frame: &[u8]) -> KvCommands<'_> {
    match Frame::decode(frame, &Limits::default()).expect("the test frame decodes").body() {
        Body::Kv(commands) => commands,
        other => panic!("expected a Kv body, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Strategies.

/// 16 keys over 6 of the 8 shards: commands collide often.
fn small_key() -> impl Strategy<Value = Vec<u8>> {
    (0u8..16).prop_map(|index| vec![b'k', index])
}

/// Keys of 1..6 arbitrary bytes: collisions are rare, shards are uniform.
fn big_key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..6)
}

fn range_end(key: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![6 => Just(Vec::new()), 1 => Just(vec![0]), 2 => key]
}

fn op(key: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = OpSpec> {
    let value = prop::collection::vec(any::<u8>(), 0..4);
    let put = (key.clone(), value, 0u64..3, any::<bool>()).prop_map(|(key, value, lease, prev_kv)| OpSpec::Put {
        key,
        value,
        lease,
        prev_kv,
    });
    let delete = (key.clone(), range_end(key.clone()), any::<bool>())
        .prop_map(|(key, range_end, prev_kv)| OpSpec::Delete { key, range_end, prev_kv });
    let range = (key.clone(), range_end(key), 0u32..4, any::<bool>(), any::<bool>()).prop_map(
        |(key, range_end, limit, keys_only, count_only)| OpSpec::Range { key, range_end, limit, keys_only, count_only },
    );
    prop_oneof![5 => put, 2 => delete, 2 => range]
}

fn compare(key: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = CompareSpec> {
    let target = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3).prop_map(TargetSpec::Value),
        (0u64..4).prop_map(TargetSpec::Version),
        (0u64..40).prop_map(TargetSpec::CreateRevision),
        (0u64..40).prop_map(TargetSpec::ModRevision),
        (0u64..3).prop_map(TargetSpec::Lease),
    ];
    let op = prop::sample::select(vec![CompareOp::Equal, CompareOp::NotEqual, CompareOp::Less, CompareOp::Greater]);
    (key, op, target).prop_map(|(key, op, target)| CompareSpec { key, op, target })
}

fn command(key: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = CommandSpec> {
    let txn = (
        prop::collection::vec(compare(key.clone()), 0..3),
        prop::collection::vec(op(key.clone()), 0..4),
        prop::collection::vec(op(key.clone()), 0..3),
    )
        .prop_map(|(compares, success, failure)| CommandSpec::Txn { compares, success, failure });
    prop_oneof![
        8 => op(key.clone()).prop_map(CommandSpec::Op),
        2 => txn,
        2 => compare_and_set(key),
        2 => lease_command(),
    ]
}

/// Lease commands over the ids that puts name (1 and 2; 0 lets the store
/// choose), with TTLs of 1 to 3 seconds so that batch clocks 0 to 3
/// seconds apart make some leases expire and leave others live.
fn lease_command() -> impl Strategy<Value = CommandSpec> {
    let id = 0u64..3;
    let ttl_ms = prop::sample::select(vec![1_000u64, 2_000, 3_000]);
    let command = prop_oneof![
        3 => (id.clone(), ttl_ms).prop_map(|(id, ttl_ms)| KvCommand::LeaseGrant(LeaseGrantView { id, ttl_ms })),
        1 => id.clone().prop_map(|id| KvCommand::LeaseRevoke(LeaseRevokeView { id })),
        1 => id.clone().prop_map(|id| KvCommand::LeaseKeepAlive(LeaseKeepAliveView { id })),
        2 => id.prop_map(|id| KvCommand::LeaseExpire(LeaseExpireView { id })),
    ];
    command.prop_map(CommandSpec::Lease)
}

/// The common one-key transaction: compare a key, put it on success, read
/// it on failure. Its keys share a shard, so it runs in a lane.
fn compare_and_set(key: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = CommandSpec> {
    let value = prop::collection::vec(any::<u8>(), 0..3);
    (compare(key), value).prop_map(|(compare, value)| {
        let key = compare.key.clone();
        let put = OpSpec::Put { key: key.clone(), value, lease: 0, prev_kv: true };
        let read = OpSpec::Range { key, range_end: Vec::new(), limit: 0, keys_only: false, count_only: false };
        CommandSpec::Txn { compares: vec![compare], success: vec![put], failure: vec![read] }
    })
}

/// A few batches whose keys all come from the small space, all from the
/// big one, or from either.
fn batches() -> impl Strategy<Value = Vec<Batch>> {
    (0..3).prop_flat_map(|space| {
        let key = match space {
            0 => small_key().boxed(),
            1 => big_key().boxed(),
            _ => prop_oneof![small_key(), big_key()].boxed(),
        };
        let batch = prop::collection::vec(command(key), 0..160);
        let clock_step_ms = prop::sample::select(vec![0u64, 500, 1_000, 3_000]);
        prop::collection::vec((clock_step_ms, batch), 1..4).prop_map(stamp)
    })
}

/// One timestamp per batch: the steps added up, in nanoseconds.
#[derive(Clone, Debug)]
struct Batch {
    now_ns: u64,
    commands: Vec<CommandSpec>,
}

fn stamp(steps: Vec<(u64, Vec<CommandSpec>)>) -> Vec<Batch> {
    let mut now_ns = 1_000_000_000;
    let stamped = steps.into_iter().map(|(step_ms, commands)| {
        now_ns += step_ms * 1_000_000;
        Batch { now_ns, commands }
    });
    stamped.collect()
}

fn config() -> impl Strategy<Value = KvConfig> {
    // Small bounds make the key limit and history drops happen.
    let leases_max = prop::sample::select(vec![1, 100]);
    (prop::sample::select(vec![3, 12, 1_000]), prop::sample::select(vec![0, 7, 100_000]), leases_max)
        .prop_map(|(keys_max, history_events_max, leases_max)| KvConfig { keys_max, history_events_max, leases_max })
}

fn pool(threads: usize) -> &'static rayon::ThreadPool {
    static POOLS: [OnceLock<rayon::ThreadPool>; 4] = [const { OnceLock::new() }; 4];
    POOLS[threads]
        .get_or_init(|| rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("the test pool starts"))
}

/// Tuning that sends every barrier-free run through lanes.
const FORCE_LANES: LaneTuning = LaneTuning { segment_commands_min: 1, lane_share_max_percent: 100 };

/// Revision, key count, snapshot bytes, history, and every lease with its keys.
type Observed = (u64, usize, Vec<u8>, Result<Vec<Event>, KvError>, Vec<(LeaseInfo, Vec<Vec<u8>>)>);

/// Everything observable about a store, for comparing two of them: the
/// snapshot holds the lease table, and the leases' key lists show the
/// shards' lease indexes.
fn observe(store: &KvStore) -> Observed {
    let mut snapshot = Vec::new();
    store.encode_snapshot(&mut snapshot);
    let events = store.events_since(0).map(|events| events.cloned().collect());
    let leases = store
        .lease_ids()
        .map(|id| (store.lease(id).expect("listed leases are live"), store.lease_keys(id, usize::MAX)))
        .collect();
    (store.revision(), store.len(), snapshot, events, leases)
}

// ---------------------------------------------------------------------------
// Parallel apply equals sequential apply.

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Proves C5: for random batches over a colliding and a sparse key
    /// space, with lease grants, keep-alives, revokes and expiries among
    /// leased puts at advancing batch clocks, apply on 2- and 3-thread pools
    /// (lanes forced, and measured defaults) gives the responses, revision,
    /// snapshot bytes, events and lease attachments of sequential apply,
    /// batch after batch; and every snapshot decodes to a store that
    /// re-encodes to the same bytes.
    #[test]
    fn parallel_apply_equals_sequential(config in config(), batches in batches()) {
        let mut sequential = KvStore::new(config);
        let mut parallel = [
            (KvStore::with_lane_tuning(config, FORCE_LANES), pool(2)),
            (KvStore::with_lane_tuning(config, FORCE_LANES), pool(3)),
            (KvStore::new(config), pool(2)),
        ];
        for batch in &batches {
            let frame = encode_batch(&batch.commands);
            let mut expected = Vec::new();
            sequential.apply_batch_sequential(commands_of(&frame), batch.now_ns, &mut expected);
            prop_assert_eq!(expected.len(), batch.commands.len());
            for (store, pool) in &mut parallel {
                let mut results = Vec::new();
                store.apply_batch(commands_of(&frame), batch.now_ns, Some(pool), &mut results);
                prop_assert_eq!(&results, &expected);
                prop_assert_eq!(observe(store), observe(&sequential));
            }
            let (.., snapshot, _, _) = observe(&sequential);
            let decoded = KvStore::decode_snapshot(&snapshot, config).expect("a store's own snapshot decodes");
            prop_assert_eq!(observe(&decoded), observe(&sequential));
        }
    }

    /// Proves the revision rules: command i that wrote (it has events)
    /// carries revision base + i + 1, every other command carries the
    /// revision of the last write before it, and the store revision ends at
    /// the last write.
    #[test]
    fn revisions_follow_positions(batches in batches()) {
        let config = KvConfig { keys_max: 1_000, history_events_max: 100_000, leases_max: 100 };
        let mut store = KvStore::with_lane_tuning(config, FORCE_LANES);
        for batch in &batches {
            let base = store.revision();
            let frame = encode_batch(&batch.commands);
            let mut results = Vec::new();
            store.apply_batch(commands_of(&frame), batch.now_ns, Some(pool(2)), &mut results);
            let written: Vec<u64> = store.events_since(base).expect("history is large").map(Event::revision).collect();
            let mut current = base;
            for (index, response) in results.iter().enumerate() {
                let own = base + index as u64 + 1;
                if written.contains(&own) {
                    current = own;
                }
                if let Some(revision) = response.revision() {
                    prop_assert_eq!(revision, current, "response {} of {:?}", index, response);
                }
            }
            prop_assert_eq!(store.revision(), current);
            prop_assert!(store.revision() >= base);
        }
    }
}

/// Proves lanes really run (not only the fallback): a 3-thread batch of
/// 4096 puts on uniform keys under the default tuning gives the same
/// results as sequential apply, and every put got its positional revision.
#[test]
fn large_uniform_batch_in_lanes_matches_sequential() {
    let batch: Vec<CommandSpec> = (0u32..4096)
        .map(|index| {
            let key = index.wrapping_mul(2_654_435_761).to_le_bytes().to_vec();
            CommandSpec::Op(OpSpec::Put { key, value: index.to_le_bytes().to_vec(), lease: 0, prev_kv: true })
        })
        .collect();
    let frame = encode_batch(&batch);
    let mut sequential = KvStore::new(KvConfig::default());
    let mut parallel = KvStore::new(KvConfig::default());
    let (mut expected, mut results) = (Vec::new(), Vec::new());
    sequential.apply_batch_sequential(commands_of(&frame), 0, &mut expected);
    parallel.apply_batch(commands_of(&frame), 0, Some(pool(3)), &mut results);
    assert_eq!(results, expected);
    assert_eq!(observe(&parallel), observe(&sequential));
    for (index, response) in results.iter().enumerate() {
        assert_eq!(response, &KvResponse::Put { revision: index as u64 + 1, prev: None });
    }
}

// ---------------------------------------------------------------------------
// Internals.

/// Proves the key → shard map is pinned: changing it would split keys
/// differently on nodes running different builds, so these values must
/// never change.
#[test]
fn shard_of_is_stable() {
    let pinned: [(&[u8], usize); 6] =
        [(b"a", 7), (b"b", 2), (b"foo", 6), (b"123456789", 7), (b"key-0", 6), (b"key-1", 1)];
    for (key, shard) in pinned {
        assert_eq!(shard_of(key), shard, "key {key:?}");
    }
}

/// Proves the multiply spreads keys that differ in one character: the 26
/// keys `/config/a`..`/config/z` reach at least 6 shards (7 in fact),
/// where crc32c mod 8 alone, being linear, puts them in only 4.
#[test]
fn shard_of_spreads_similar_keys() {
    let mut used = [false; super::shard::SHARDS];
    for letter in b'a'..=b'z' {
        used[shard_of(&[b"/config/".as_slice(), &[letter]].concat())] = true;
    }
    let used_count = used.iter().filter(|&&used| used).count();
    assert!(used_count >= 6, "shards used: {used:?}");
}

/// Proves the range_end conventions: empty is one key, `[0]` is every key
/// from `key` on, otherwise `[key, range_end)`, empty when the end is not
/// after the start.
#[test]
fn key_range_conventions() {
    let single = KeyRange::new(b"b", b"");
    assert!(single.contains(b"b") && !single.contains(b"ba") && !single.contains(b"a"));
    let from = KeyRange::new(b"b", &[0]);
    assert!(from.contains(b"b") && from.contains(b"zzz") && !from.contains(b"a"));
    let between = KeyRange::new(b"b", b"d");
    assert!(between.contains(b"b") && between.contains(b"cz") && !between.contains(b"d"));
    assert_eq!(KeyRange::new(b"d", b"b").bounds(), None);
    assert_eq!(KeyRange::new(b"d", b"d").bounds(), None);
}

fn put_command<'a>(key: &'a [u8]) -> KvCommand<'a> {
    KvCommand::Put(PutView { key, value: b"", lease: 0, prev_kv: false })
}

/// Proves routing: single-key commands go to their key's shard, leased
/// puts included; ranges, transactions over keys of two shards and every
/// lease command are barriers; a transaction over keys of one shard runs in
/// that lane.
#[test]
fn routes_follow_keys() {
    assert_eq!(Route::of(&put_command(b"a")), Route { lane: 7, puts: 1 });
    let range = RangeView { key: b"a", range_end: b"b", limit: 0, keys_only: false, count_only: false };
    assert!(Route::of(&KvCommand::Range(range)).is_barrier());
    let single = RangeView { range_end: b"", ..range };
    assert_eq!(Route::of(&KvCommand::Range(single)).lane, 7);
    // "a" and "123456789" share shard 7; "b" is in shard 2.
    let txn = |other: &'static [u8]| {
        let compare = Compare { key: b"a", op: CompareOp::Equal, target: CompareTarget::Version(0) };
        let put = KvOp::Put(PutView { key: other, value: b"", lease: 0, prev_kv: false });
        encode_batch_views(&[compare], &[put])
    };
    let same_shard = txn(b"123456789");
    let route = Route::of(&commands_of(&same_shard).iter().next().expect("one command"));
    assert_eq!(route, Route { lane: 7, puts: 1 });
    let two_shards = txn(b"b");
    assert!(Route::of(&commands_of(&two_shards).iter().next().expect("one command")).is_barrier());
    let leased = KvCommand::Put(PutView { key: b"a", value: b"", lease: 5, prev_kv: false });
    assert_eq!(Route::of(&leased), Route { lane: 7, puts: 1 }, "a leased put runs in its key's lane");
    for lease in [
        KvCommand::LeaseGrant(LeaseGrantView { id: 0, ttl_ms: 1_000 }),
        KvCommand::LeaseRevoke(LeaseRevokeView { id: 1 }),
        KvCommand::LeaseKeepAlive(LeaseKeepAliveView { id: 1 }),
        KvCommand::LeaseExpire(LeaseExpireView { id: 1 }),
    ] {
        assert_eq!(Route::of(&lease), Route { lane: Route::BARRIER, puts: 0 }, "{lease:?}");
    }
}

fn encode_batch_views(compares: &[Compare<'_>], success: &[KvOp<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = KvBatchWriter::new(&mut out);
    writer.txn(compares, success, &[]).expect("a valid transaction");
    writer.finish();
    out
}

fn put_event(key: &[u8], revision: u64) -> Event {
    let kv = KeyValue {
        key: key.to_vec(),
        create_revision: revision,
        mod_revision: revision,
        version: 1,
        ..KeyValue::default()
    };
    Event { kind: EventKind::Put, kv, prev: None }
}

/// Proves the history bound: past `events_max` the oldest events go, the
/// compacted revision names the newest dropped one, and a revision whose
/// events were only partly dropped can no longer be asked for.
#[test]
fn history_drops_oldest_and_reports_compaction() {
    let mut history = History::new(3);
    let mut dropped = Vec::new();
    for (key, revision) in [(b"a", 1), (b"b", 2), (b"c", 2), (b"d", 3)] {
        dropped.extend(history.push(put_event(key, revision)));
    }
    assert_eq!(dropped, [put_event(b"a", 1)], "the dropped event comes back for reuse");
    assert_eq!(history.compacted_revision(), 1);
    assert_eq!(history.since(0).err(), Some(KvError::Compacted { oldest: 1 }));
    let since_one: Vec<u64> = history.since(1).expect("revision 1 is kept").map(Event::revision).collect();
    assert_eq!(since_one, [2, 2, 3]);
    assert_eq!(history.push(put_event(b"e", 4)), Some(put_event(b"b", 2)));
    // One event of revision 2 was dropped, so asking from 1 is refused.
    assert_eq!(history.since(1).err(), Some(KvError::Compacted { oldest: 2 }));
    assert_eq!(history.since(2).expect("kept").count(), 2);
    assert_eq!(history.since(9).expect("future revisions are empty").count(), 0);
}

/// Proves a zero history bound keeps nothing and still reports what was
/// dropped.
#[test]
fn history_with_zero_bound_keeps_nothing() {
    let mut history = History::new(0);
    assert_eq!(history.push(put_event(b"a", 5)), Some(put_event(b"a", 5)));
    assert_eq!(history.events().len(), 0);
    assert_eq!(history.since(4).err(), Some(KvError::Compacted { oldest: 5 }));
    assert_eq!(history.since(5).expect("nothing after 5").count(), 0);
}
