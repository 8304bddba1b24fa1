use proptest::prelude::*;

use super::*;
use crate::frame::{Body, DecodeError, Frame, Limits, HEADER_BYTES};

/// A command as owned data, so property tests can generate and compare it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Owned {
    Configure { topic: Vec<u8>, messages_max: u64, bytes_max: u64 },
    Append { topic: Vec<u8>, publisher: Vec<u8>, first_sequence: u64, payloads: Vec<Vec<u8>> },
}

fn owned(command: &BusCommand<'_>) -> Owned {
    match command {
        BusCommand::Configure(view) => {
            Owned::Configure { topic: view.topic.to_vec(), messages_max: view.messages_max, bytes_max: view.bytes_max }
        }
        BusCommand::Append(view) => Owned::Append {
            topic: view.topic.to_vec(),
            publisher: view.publisher.to_vec(),
            first_sequence: view.first_sequence,
            payloads: view.payloads().map(<[u8]>::to_vec).collect(),
        },
    }
}

fn write(commands: &[Owned], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut writer = BusBatchWriter::new(out);
    for command in commands {
        match command {
            Owned::Configure { topic, messages_max, bytes_max } => {
                writer.configure(&ConfigureTopicView { topic, messages_max: *messages_max, bytes_max: *bytes_max })?
            }
            Owned::Append { topic, publisher, first_sequence, payloads } => {
                writer.append(topic, publisher, *first_sequence, payloads)?
            }
        }
    }
    writer.finish();
    Ok(())
}

fn decode(frame: &[u8]) -> Result<Vec<Owned>, DecodeError> {
    match Frame::decode(frame, &Limits::default())?.body() {
        Body::Bus(commands) => Ok(commands.iter().map(|command| owned(&command)).collect()),
        other => panic!("wrong body {other:?}"),
    }
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 1..=24)
}

fn command() -> impl Strategy<Value = Owned> {
    prop_oneof![
        (name(), 1..u64::MAX, 1..u64::MAX).prop_map(|(topic, messages_max, bytes_max)| Owned::Configure {
            topic,
            messages_max,
            bytes_max
        }),
        (name(), name(), any::<u64>(), proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6))
            .prop_map(|(topic, publisher, first_sequence, payloads)| Owned::Append {
                topic,
                publisher,
                first_sequence,
                payloads
            }),
    ]
}

proptest! {
    #[test]
    fn encode_then_decode_round_trips(commands in proptest::collection::vec(command(), 0..12)) {
        // Proves any valid sequence of bus commands decodes to exactly the commands written.
        let mut out = Vec::new();
        write(&commands, &mut out).expect("valid commands");
        prop_assert_eq!(decode(&out).expect("valid frame"), commands);
    }

    #[test]
    fn hostile_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200), count in 0u32..8) {
        // Proves random bodies under a valid header are refused or accepted, never a panic.
        let mut out = Vec::new();
        crate::frame::encode_frame(Kind::Bus, count, &body, &mut out);
        if let Ok(commands) = decode(&out) {
            prop_assert_eq!(commands.len(), count as usize);
        }
    }
}

#[test]
fn append_has_the_documented_layout() {
    // Proves an Append is encoded byte for byte as the module doc describes.
    let mut out = Vec::new();
    let mut writer = BusBatchWriter::new(&mut out);
    writer.append(b"t", b"pq", 7, &[b"xyz"]).expect("append");
    assert_eq!(writer.finish(), HEADER_BYTES + 18 + 1 + 2 + 4 + 3);
    let body = &out[HEADER_BYTES..];
    assert_eq!(&body[..6], &[2, 0, 1, 0, 2, 0]);
    assert_eq!(&body[6..10], &1u32.to_le_bytes());
    assert_eq!(&body[10..18], &7u64.to_le_bytes());
    assert_eq!(&body[18..21], b"tpq");
    assert_eq!(&body[21..25], &3u32.to_le_bytes());
    assert_eq!(&body[25..], b"xyz");
}

#[test]
fn bad_commands_are_refused_and_leave_the_writer_unchanged() {
    // Proves the writer refuses each bound (empty or long names, no payloads, zero retention) and writes nothing for it.
    let long = vec![b'x'; TOPIC_BYTES_MAX + 1];
    let none: [&[u8]; 0] = [];
    let mut out = Vec::new();
    let mut writer = BusBatchWriter::new(&mut out);
    let refused = [
        writer.append(b"", b"p", 0, &[b"a"]),
        writer.append(&long, b"p", 0, &[b"a"]),
        writer.append(b"t", b"", 0, &[b"a"]),
        writer.append(b"t", b"p", 0, &none),
        writer.configure(&ConfigureTopicView { topic: b"t", messages_max: 0, bytes_max: 1 }),
        writer.configure(&ConfigureTopicView { topic: b"t", messages_max: 1, bytes_max: 0 }),
    ];
    for result in refused {
        assert!(matches!(result, Err(EncodeError::Bus { index: 0, .. })), "{result:?}");
    }
    assert!(writer.is_empty());
    writer.finish();
    assert_eq!(out.len(), HEADER_BYTES);
}

#[test]
fn decoder_refuses_what_the_writer_would_not_write() {
    // Proves hand-made bodies with a zero count, an oversize payload length, reserved flags or trailing bytes are refused with their reason.
    let cases: [(&[u8], u32, BusDecodeError); 4] = [
        (&[2, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b't', b'p'], 1, BusDecodeError::MessageCount(0)),
        (
            &[2, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b't', b'p', 0, 0, 0x20, 0],
            1,
            BusDecodeError::PayloadTooLong(0x20_0000),
        ),
        (&[1, 4], 1, BusDecodeError::ReservedFlags(4)),
        (&[9], 0, BusDecodeError::TrailingBytes(1)),
    ];
    for (body, count, reason) in cases {
        let mut out = Vec::new();
        crate::frame::encode_frame(Kind::Bus, count, body, &mut out);
        let index = if matches!(reason, BusDecodeError::TrailingBytes(_)) { count } else { 0 };
        assert_eq!(decode(&out).unwrap_err(), DecodeError::Bus { index, reason });
    }
}
