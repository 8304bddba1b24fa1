use hyperraft_state::kv::KvConfig;
use hyperraft_wire::{Body, DeleteView, Frame, KvBatchWriter, KvOp, Limits, PutView};

use super::*;

fn put<'a>(key: &'a [u8], value: &'a [u8]) -> KvOp<'a> {
    KvOp::Put(PutView { key, value, lease: 0, prev_kv: false })
}

/// Applies one frame holding one command per entry of `commands`; each
/// entry is the operations of one transaction (one revision).
fn apply(store: &mut KvStore, commands: &[Vec<KvOp<'_>>]) {
    let mut frame = Vec::new();
    let mut writer = KvBatchWriter::new(&mut frame);
    for ops in commands {
        writer.txn(&[], ops, &[]).expect("a valid transaction");
    }
    writer.finish();
    let decoded = Frame::decode(&frame, &Limits::default()).expect("the test frame decodes");
    let Body::Kv(commands) = decoded.body() else { panic!("a Kv frame") };
    let mut results = Vec::new();
    store.apply_batch_sequential(commands, 0, &mut results);
}

fn spec(key: &[u8], range_end: &[u8]) -> WatchSpec {
    WatchSpec {
        key: key.to_vec(),
        range_end: range_end.to_vec(),
        prev_kv: true,
        start_revision: 0,
        progress_interval: None,
    }
}

fn keys_and_revisions(collected: &Collected) -> Vec<(Vec<u8>, u64)> {
    collected
        .events
        .iter()
        .map(|event| {
            let kv = event.kv.as_ref().expect("an event has its pair");
            (kv.key.to_vec(), kv.mod_revision)
        })
        .collect()
}

const WIDE: ResponseBounds = ResponseBounds { events_max: 1000, bytes_max: 1 << 20 };

#[test]
fn collect_takes_the_range_only_in_revision_order_and_is_current_to_the_store() {
    // Proves collect filters by key, single key, prefix-like range and "from" range (range_end "\0"), keeps revision order, reports prev_kv, and is current to the store's revision even when the last revisions are outside the range (a start in the future keeps its cursor but reports the store's revision).
    let mut store = KvStore::new(KvConfig::default());
    apply(&mut store, &[vec![put(b"a", b"1")], vec![put(b"b", b"1")], vec![put(b"a", b"2")], vec![put(b"c", b"1")]]);
    let single = collect(&store, 0, &spec(b"a", b""), WIDE).unwrap();
    assert_eq!(keys_and_revisions(&single), vec![(b"a".to_vec(), 1), (b"a".to_vec(), 3)]);
    assert_eq!((single.through, single.caught_up), (4, true));
    let second = &single.events[1];
    assert_eq!(second.prev_kv.as_ref().map(|kv| kv.value.to_vec()), Some(b"1".to_vec()));
    let between = collect(&store, 1, &spec(b"a", b"c"), WIDE).unwrap();
    assert_eq!(keys_and_revisions(&between), vec![(b"b".to_vec(), 2), (b"a".to_vec(), 3)]);
    let from = collect(&store, 0, &spec(b"b", b"\0"), WIDE).unwrap();
    assert_eq!(keys_and_revisions(&from), vec![(b"b".to_vec(), 2), (b"c".to_vec(), 4)]);
    let none = collect(&store, 4, &spec(b"a", b"\0"), WIDE).unwrap();
    assert_eq!((none.events.len(), none.through, none.caught_up), (0, 4, true));
    let future = collect(&store, 9, &spec(b"a", b"\0"), WIDE).unwrap();
    assert_eq!((future.through, future.current), (9, 4), "a future start keeps its cursor, reports the store");
}

#[test]
fn collect_never_splits_a_revision_and_sends_an_oversized_one_alone() {
    // Proves the response bounds: with room for 2 events, a 3-event revision is taken alone (not split), the next response starts at the following revision, and revisions are taken whole until the bound.
    let mut store = KvStore::new(KvConfig::default());
    let three = vec![put(b"x1", b"v"), put(b"x2", b"v"), put(b"x3", b"v")];
    apply(&mut store, &[three, vec![put(b"y", b"v")], vec![put(b"z", b"v")], vec![put(b"w", b"v")]]);
    let bounds = ResponseBounds { events_max: 2, bytes_max: 1 << 20 };
    let all = spec(b"\0", b"\0");
    let first = collect(&store, 0, &all, bounds).unwrap();
    assert_eq!(first.events.len(), 3, "the first revision is taken whole although over the bound");
    assert_eq!((first.through, first.caught_up), (1, false));
    let second = collect(&store, first.through, &all, bounds).unwrap();
    assert_eq!(keys_and_revisions(&second), vec![(b"y".to_vec(), 2), (b"z".to_vec(), 3)]);
    assert_eq!((second.through, second.caught_up), (3, false));
    let third = collect(&store, second.through, &all, bounds).unwrap();
    assert_eq!((keys_and_revisions(&third), third.through, third.caught_up), (vec![(b"w".to_vec(), 4)], 4, true));

    let tiny_bytes = ResponseBounds { events_max: 1000, bytes_max: 1 };
    let by_bytes = collect(&store, 1, &all, tiny_bytes).unwrap();
    assert_eq!((by_bytes.events.len(), by_bytes.through), (1, 2), "the byte bound also ends a response at a revision");
}

#[test]
fn collect_reports_compaction_and_deletes() {
    // Proves a start older than the kept history answers Compacted (with the oldest revision events_since accepts) and a delete event carries the key and the delete's revision.
    let mut store = KvStore::new(KvConfig { keys_max: 100, history_events_max: 2, ..KvConfig::default() });
    apply(&mut store, &[vec![put(b"a", b"1")], vec![put(b"b", b"1")], vec![put(b"c", b"1")]]);
    let delete = KvOp::DeleteRange(DeleteView { key: b"a", range_end: b"", prev_kv: false });
    apply(&mut store, &[vec![delete]]);
    assert_eq!(collect(&store, 0, &spec(b"a", b""), WIDE).unwrap_err(), KvError::Compacted { oldest: 2 });
    let deleted = collect(&store, 3, &spec(b"a", b""), WIDE).unwrap();
    assert_eq!(deleted.events.len(), 1);
    assert_eq!(deleted.events[0].r#type, proto::event::EventType::Delete as i32);
    assert_eq!(keys_and_revisions(&deleted), vec![(b"a".to_vec(), 4)]);
}
