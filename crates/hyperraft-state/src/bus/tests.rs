use proptest::prelude::*;

use super::*;
use hyperraft_wire::{Body, BusBatchWriter, ConfigureTopicView, Frame, Limits};

/// A command as owned data for generated sequences.
#[derive(Clone, Debug)]
enum Command {
    Configure { topic: &'static str, messages_max: u64, bytes_max: u64 },
    Append { topic: &'static str, publisher: &'static str, sequence: u64, payloads: Vec<Vec<u8>> },
}

fn frame(commands: &[Command]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = BusBatchWriter::new(&mut out);
    for command in commands {
        match command {
            Command::Configure { topic, messages_max, bytes_max } => writer
                .configure(&ConfigureTopicView {
                    topic: topic.as_bytes(),
                    messages_max: *messages_max,
                    bytes_max: *bytes_max,
                })
                .expect("valid configure"),
            Command::Append { topic, publisher, sequence, payloads } => {
                writer.append(topic.as_bytes(), publisher.as_bytes(), *sequence, payloads).expect("valid append")
            }
        }
    }
    writer.finish();
    out
}

fn apply(store: &mut BusStore, commands: &[Command]) -> Vec<BusResponse> {
    let bytes = frame(commands);
    let Body::Bus(commands) = Frame::decode(&bytes, &Limits::default()).expect("valid frame").body() else {
        panic!("not a bus frame");
    };
    let mut out = Vec::new();
    store.apply_batch(&commands, &mut out);
    out
}

fn configure(topic: &'static str, messages_max: u64, bytes_max: u64) -> Command {
    Command::Configure { topic, messages_max, bytes_max }
}

fn append(topic: &'static str, payloads: &[&[u8]]) -> Command {
    Command::Append { topic, publisher: "p", sequence: 1, payloads: payloads.iter().map(|p| p.to_vec()).collect() }
}

fn snapshot(store: &BusStore) -> Vec<u8> {
    let mut bytes = Vec::new();
    store.encode_snapshot(&mut bytes);
    bytes
}

fn offsets(store: &BusStore, topic: &str, from: u64) -> Vec<u64> {
    let mut out = Vec::new();
    store.read(topic, from, usize::MAX, usize::MAX, &mut out);
    out.iter().map(|message| message.offset).collect()
}

#[test]
fn appends_get_dense_offsets_from_zero() {
    // Proves successive appends get consecutive offsets starting at 0 and a read from the middle starts there.
    let mut store = BusStore::new(BusStoreConfig::default());
    let responses = apply(&mut store, &[configure("t", 100, 1000), append("t", &[b"a", b"b"]), append("t", &[b"c"])]);
    assert_eq!(responses[1], BusResponse::Appended { first_offset: 0, count: 2 });
    assert_eq!(responses[2], BusResponse::Appended { first_offset: 2, count: 1 });
    assert_eq!(offsets(&store, "t", 0), [0, 1, 2]);
    assert_eq!(offsets(&store, "t", 1), [1, 2]);
    assert_eq!(store.range("t"), Some(TopicRange { first_offset: 0, next_offset: 3 }));
}

#[test]
fn retention_trims_the_oldest_by_count_and_by_bytes() {
    // Proves the oldest messages go once a topic passes its message or byte bound, and lowering the bound trims at once.
    let mut store = BusStore::new(BusStoreConfig::default());
    apply(&mut store, &[configure("t", 3, 1000), append("t", &[b"a", b"b", b"c"]), append("t", &[b"d"])]);
    assert_eq!(offsets(&store, "t", 0), Vec::<u64>::new(), "offset 0 was trimmed");
    assert_eq!(offsets(&store, "t", 1), [1, 2, 3]);
    apply(&mut store, &[configure("t", 3, 2)]);
    assert_eq!(store.range("t"), Some(TopicRange { first_offset: 2, next_offset: 4 }));
    apply(&mut store, &[append("t", &[b"xy"])]);
    assert_eq!(store.range("t"), Some(TopicRange { first_offset: 4, next_offset: 5 }));
}

#[test]
fn refused_commands_change_nothing() {
    // Proves an append to an unknown topic, one over the retention, too many topics and too much retention are refused and leave the snapshot unchanged.
    let config = BusStoreConfig { topics_max: 1, messages_max_limit: 10, bytes_max_limit: 100, bytes_total_max: 100 };
    let mut store = BusStore::new(config);
    apply(&mut store, &[configure("t", 2, 10), append("t", &[b"a"])]);
    let before = snapshot(&store);
    let responses = apply(
        &mut store,
        &[
            append("other", &[b"a"]),
            append("t", &[b"a", b"b", b"c"]),
            append("t", &[b"0123456789a"]),
            configure("u", 1, 1),
            configure("t", 11, 10),
            configure("t", 1, 101),
        ],
    );
    for response in &responses {
        assert!(matches!(response, BusResponse::Refused(_)), "{response:?}");
    }
    assert_eq!(snapshot(&store), before);
}

#[test]
fn read_stops_at_its_bounds() {
    // Proves a read takes at most its message count and byte budget, but always one message.
    let mut store = BusStore::new(BusStoreConfig::default());
    apply(&mut store, &[configure("t", 100, 1000), append("t", &[b"aaaa", b"bbbb", b"cccc"])]);
    let mut out = Vec::new();
    store.read("t", 0, 2, 1000, &mut out);
    assert_eq!(out.len(), 2);
    out.clear();
    store.read("t", 0, 100, 1, &mut out);
    assert_eq!(out.len(), 1, "one message even over the byte budget");
    out.clear();
    store.read("t", 0, 100, 8, &mut out);
    assert_eq!(out.len(), 2);
}

#[test]
fn hostile_snapshots_are_refused() {
    // Proves cut, extended and over-bound snapshot bytes are refused with an error, never a panic.
    let mut store = BusStore::new(BusStoreConfig::default());
    apply(&mut store, &[configure("a", 5, 100), configure("b", 5, 100), append("a", &[b"x", b"yy"])]);
    let bytes = snapshot(&store);
    for cut in 0..bytes.len() {
        assert!(BusStore::decode_snapshot(&bytes[..cut], store.config).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(BusStore::decode_snapshot(&longer, store.config).is_err());
    let tight = BusStoreConfig { topics_max: 1, ..store.config };
    assert!(BusStore::decode_snapshot(&bytes, tight).is_err());
}

fn command() -> impl Strategy<Value = Command> {
    let topic = proptest::sample::select(vec!["a", "b", "c"]);
    let publisher = proptest::sample::select(vec!["p", "q"]);
    let payloads = proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 1..5);
    prop_oneof![
        (topic.clone(), 1u64..8, 1u64..64).prop_map(|(topic, messages_max, bytes_max)| Command::Configure {
            topic,
            messages_max,
            bytes_max
        }),
        (topic, publisher, any::<u64>(), payloads).prop_map(|(topic, publisher, sequence, payloads)| {
            Command::Append { topic, publisher, sequence, payloads }
        }),
    ]
}

proptest! {
    #[test]
    fn replicas_agree_and_snapshots_round_trip(
        batches in proptest::collection::vec(proptest::collection::vec(command(), 1..6), 1..8),
    ) {
        // Proves two stores fed the same batches write the same snapshot, a snapshot restores to a store that writes it again, and every topic stays within its retention with dense offsets.
        let mut first = BusStore::new(BusStoreConfig::default());
        let mut second = BusStore::new(BusStoreConfig::default());
        for batch in &batches {
            prop_assert_eq!(apply(&mut first, batch), apply(&mut second, batch));
        }
        let bytes = snapshot(&first);
        prop_assert_eq!(&bytes, &snapshot(&second));
        let restored = BusStore::decode_snapshot(&bytes, BusStoreConfig::default()).expect("restores");
        prop_assert_eq!(&snapshot(&restored), &bytes);
        for name in first.topic_names() {
            let range = first.range(name).expect("durable");
            let (messages_max, bytes_max) = first.retention(name).expect("durable");
            let mut messages = Vec::new();
            first.read(name, range.first_offset, usize::MAX, usize::MAX, &mut messages);
            prop_assert!(messages.len() as u64 <= messages_max);
            prop_assert!(messages.iter().map(|m| m.payload.len() as u64).sum::<u64>() <= bytes_max);
            let expected: Vec<u64> = (range.first_offset..range.next_offset).collect();
            prop_assert_eq!(messages.iter().map(|m| m.offset).collect::<Vec<_>>(), expected);
        }
    }
}
