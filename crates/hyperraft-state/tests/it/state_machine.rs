//! The state machine as a replica runs it: frames in, results and state out.

use std::num::NonZeroUsize;

use hyperraft_load::{PutGenerator, Skew, TransferGenerator};
use hyperraft_state::ledger::{CreateTransferResult, LedgerConfig};
use hyperraft_state::{ApplyError, BatchOutput, SnapshotError, StateConfig, StateMachine};
use hyperraft_wire::{encode_ids, encode_records, Frame, Kind, Limits, ResultRecord};
use proptest::prelude::*;

fn config(threads: usize) -> StateConfig {
    StateConfig { apply_threads: NonZeroUsize::new(threads).unwrap(), ..StateConfig::default() }
}

fn apply(state: &mut StateMachine, bytes: &[u8], timestamp: u64, output: &mut BatchOutput) {
    let frame = Frame::decode(bytes, &Limits::default()).expect("valid frame");
    state.apply(&frame, timestamp, output).expect("a command");
}

/// A mixed history: accounts, transfer batches (uniform and skewed) and key/value batches.
fn history(seed: u64, batches: usize) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    hyperraft_load::account_frames(300, 128, &mut frames);
    let mut uniform = TransferGenerator::new(300, Skew::Uniform, seed);
    let mut skewed = TransferGenerator::new(300, Skew::Zipf(1.2), seed + 1);
    let mut puts = PutGenerator::new(500, Skew::Uniform, 24, seed + 2);
    for index in 0..batches {
        let mut frame = Vec::new();
        match index % 3 {
            0 => uniform.next_frame(700, &mut frame),
            1 => skewed.next_frame(500, &mut frame),
            _ => puts.next_frame(600, &mut frame),
        }
        frames.push(frame);
    }
    frames
}

fn replay(frames: &[Vec<u8>], threads: usize) -> StateMachine {
    let mut state = StateMachine::new(config(threads)).unwrap();
    let mut output = BatchOutput::default();
    for (index, frame) in frames.iter().enumerate() {
        apply(&mut state, frame, 1_000 * index as u64, &mut output);
    }
    state
}

#[test]
fn replicas_with_any_thread_count_reach_the_same_state() {
    // Proves determinism end to end: the same frames give the same digest and snapshot bytes with 1, 2 and 3 apply threads.
    let frames = history(5, 12);
    let states: Vec<_> = [1, 2, 3].iter().map(|&threads| replay(&frames, threads)).collect();
    let snapshots: Vec<Vec<u8>> = states
        .iter()
        .map(|state| {
            let mut bytes = Vec::new();
            state.write_snapshot(&mut bytes).unwrap();
            bytes
        })
        .collect();
    assert!(states[0].ledger().transfers_len() > 0 && !states[0].kv().is_empty());
    assert!(snapshots.windows(2).all(|pair| pair[0] == pair[1]));
    assert!(states.windows(2).all(|pair| pair[0].digest() == pair[1].digest()));
}

#[test]
fn a_snapshot_restores_the_same_state_and_it_keeps_applying_identically() {
    // Proves snapshot round-trip: restore gives the same bytes, and applying more frames to both gives equal digests.
    let frames = history(9, 9);
    let mut original = replay(&frames[..frames.len() - 3], 2);
    let mut bytes = Vec::new();
    original.write_snapshot(&mut bytes).unwrap();
    let mut restored = StateMachine::read_snapshot(bytes.as_slice(), config(1)).unwrap();
    let mut again = Vec::new();
    restored.write_snapshot(&mut again).unwrap();
    assert_eq!(bytes, again);
    let mut output = BatchOutput::default();
    for frame in &frames[frames.len() - 3..] {
        apply(&mut original, frame, 0, &mut output);
        apply(&mut restored, frame, 0, &mut output);
    }
    assert_eq!(original.digest(), restored.digest());
}

/// Proves a snapshot copy is the state of the moment it was taken: while
/// more frames are applied to the live state, the copy still writes the
/// bytes `write_snapshot` wrote at that moment and has that moment's
/// digest, and the live state ends equal to a replica that never made a
/// copy.
#[test]
fn a_snapshot_copy_keeps_its_moment_while_apply_goes_on() {
    let frames = history(13, 12);
    let copy_at = frames.len() / 2;
    let mut state = StateMachine::new(config(2)).unwrap();
    let mut output = BatchOutput::default();
    let (mut copy, mut at_copy, mut digest_at_copy) = (None, Vec::new(), 0);
    for (index, frame) in frames.iter().enumerate() {
        if index == copy_at {
            state.write_snapshot(&mut at_copy).unwrap();
            digest_at_copy = state.digest();
            copy = Some(state.snapshot_copy());
        }
        apply(&mut state, frame, 1_000 * index as u64, &mut output);
    }
    let copy = copy.expect("a copy was taken");
    let mut from_copy = Vec::new();
    copy.write_snapshot(&mut from_copy).unwrap();
    assert_eq!(from_copy, at_copy);
    assert_eq!(copy.digest(), digest_at_copy);
    assert_ne!(state.digest(), digest_at_copy, "apply went on after the copy");
    let restored = StateMachine::read_snapshot(from_copy.as_slice(), config(1)).unwrap();
    assert!(restored.ledger().transfers_len() > 0, "the copy holds transfers");
    assert!(restored.ledger().transfers_len() < state.ledger().transfers_len(), "apply went on after the copy");
    assert_eq!(state.digest(), replay(&frames, 1).digest());
}

#[test]
fn a_damaged_snapshot_is_rejected_with_a_clear_error() {
    // Proves every kind of damage is detected: flipped bytes, truncation, wrong magic, and counts over the configured bounds.
    let mut bytes = Vec::new();
    replay(&history(3, 4), 1).write_snapshot(&mut bytes).unwrap();
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    assert!(matches!(StateMachine::read_snapshot(flipped.as_slice(), config(1)), Err(SnapshotError::ChecksumMismatch)));
    let truncated = &bytes[..bytes.len() - 9];
    assert!(matches!(StateMachine::read_snapshot(truncated, config(1)), Err(SnapshotError::Truncated)));
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert!(matches!(StateMachine::read_snapshot(magic.as_slice(), config(1)), Err(SnapshotError::BadMagic { .. })));
    let small = StateConfig { ledger: LedgerConfig { accounts_max: 10, ..LedgerConfig::default() }, ..config(1) };
    assert!(matches!(StateMachine::read_snapshot(bytes.as_slice(), small), Err(SnapshotError::TooMany { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn hostile_snapshot_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), prefix in any::<bool>()) {
        // Proves reading arbitrary bytes (optionally behind a valid header) returns an error instead of panicking.
        let mut input = Vec::new();
        if prefix {
            input.extend_from_slice(b"HRSS\x04\x00\x00\x00");
        }
        input.extend_from_slice(&bytes);
        prop_assert!(StateMachine::read_snapshot(input.as_slice(), config(1)).is_err());
    }
}

#[test]
fn item_timestamps_increase_strictly_even_when_the_leader_clock_goes_back() {
    // Proves batch timestamps are made strictly increasing across batches, whatever the proposed clock says.
    let mut state = StateMachine::new(config(1)).unwrap();
    let mut output = BatchOutput::default();
    let mut frames = Vec::new();
    hyperraft_load::account_frames(10, 4, &mut frames);
    let mut last = 0;
    for (frame, proposed) in frames.iter().zip([500, 100, 100]) {
        apply(&mut state, frame, proposed, &mut output);
        let stamps: Vec<u64> = state.ledger().accounts().iter().map(|a| a.timestamp).collect();
        assert!(stamps.windows(2).all(|pair| pair[0] < pair[1]), "{stamps:?}");
        assert!(*stamps.last().unwrap() > last);
        last = *stamps.last().unwrap();
    }
    assert_eq!(state.timestamp_last(), last);
}

#[test]
fn lookups_return_found_records_in_order_and_results_frames_are_refused() {
    // Proves lookups read without changing state, skip missing ids, and a Results frame is not a command.
    let mut state = replay(&history(1, 3), 1);
    let digest = state.digest();
    let mut output = BatchOutput::default();
    let mut frame = Vec::new();
    encode_ids(Kind::LookupAccounts, &[7, 100_000, 3], &mut frame);
    apply(&mut state, &frame, 0, &mut output);
    let ids: Vec<u128> = output.accounts.iter().map(|a| a.id.get()).collect();
    assert_eq!(ids, [7, 3]);
    frame.clear();
    encode_ids(Kind::LookupTransfers, &[1, 2], &mut frame);
    apply(&mut state, &frame, 0, &mut output);
    assert_eq!(output.transfers.len(), 2);
    assert_eq!(output.transfers[0].id.get(), 1);
    frame.clear();
    encode_records(Kind::Results, &[ResultRecord::default()], &mut frame);
    let results = Frame::decode(&frame, &Limits::default()).unwrap();
    assert!(matches!(state.apply(&results, 0, &mut output), Err(ApplyError::NotACommand(Kind::Results))));
    assert_eq!(digest, state.digest());
}

#[test]
fn a_transfer_batch_reports_one_result_per_item() {
    // Proves the transfer path through the state machine returns a dense result per item, Ok for valid transfers.
    let mut state = StateMachine::new(config(2)).unwrap();
    let mut output = BatchOutput::default();
    let mut frames = Vec::new();
    hyperraft_load::account_frames(50, 50, &mut frames);
    apply(&mut state, &frames[0], 1, &mut output);
    let mut frame = Vec::new();
    TransferGenerator::new(50, Skew::Uniform, 3).next_frame(1000, &mut frame);
    apply(&mut state, &frame, 2, &mut output);
    assert_eq!(output.transfer_results.len(), 1000);
    assert!(output.transfer_results.iter().all(|r| *r == CreateTransferResult::Ok));
}

#[test]
fn reads_answer_lookups_and_ranges_and_refuse_writes() {
    // Proves `read` serves lookups and range-only key/value frames without changing state, and refuses frames that write.
    use hyperraft_wire::{KvBatchWriter, PutView, RangeView};
    let state = replay(&history(2, 3), 1);
    let digest = state.digest();
    let mut output = BatchOutput::default();
    let mut frame = Vec::new();
    let mut writer = KvBatchWriter::new(&mut frame);
    let everything = RangeView { key: b"\0", range_end: b"\0", limit: 0, keys_only: true, count_only: false };
    writer.range(everything).unwrap();
    writer.finish();
    let decoded = Frame::decode(&frame, &Limits::default()).unwrap();
    state.read(&decoded, &mut output).unwrap();
    assert_eq!(output.kv.len(), 1);
    let expected = state.kv().len() as u64;
    assert!(matches!(&output.kv[0], hyperraft_state::kv::KvResponse::Range { count, .. } if *count == expected));
    frame.clear();
    let mut writer = KvBatchWriter::new(&mut frame);
    writer.put(PutView { key: b"k", value: b"v", lease: 0, prev_kv: false }).unwrap();
    writer.finish();
    let put = Frame::decode(&frame, &Limits::default()).unwrap();
    assert!(matches!(state.read(&put, &mut output), Err(ApplyError::NotARead(Kind::Kv))));
    assert_eq!(digest, state.digest());
}

#[test]
fn lease_deadlines_follow_the_batch_clock_and_leases_are_in_the_digest() {
    // Proves a key/value batch's timestamp reaches the store as the lease clock, made monotonic like item
    // timestamps (a batch proposed with an older clock uses the last one plus 1 ns), that a grant alone changes
    // the digest, and that the state machine snapshot carries the lease table.
    use hyperraft_wire::{KvBatchWriter, LeaseGrantView, LeaseKeepAliveView};
    let mut state = StateMachine::new(config(2)).unwrap();
    let mut output = BatchOutput::default();
    let empty_digest = state.digest();
    let mut frame = Vec::new();
    let mut writer = KvBatchWriter::new(&mut frame);
    writer.lease_grant(LeaseGrantView { id: 4, ttl_ms: 2_000 }).unwrap();
    writer.finish();
    apply(&mut state, &frame, 5_000, &mut output);
    assert!(matches!(output.kv[0], hyperraft_state::kv::KvResponse::LeaseGrant { id: 4, .. }), "{:?}", output.kv);
    assert_eq!(state.kv().lease(4).map(|lease| lease.deadline_ns), Some(5_000 + 2_000_000_000));
    assert_ne!(state.digest(), empty_digest);
    frame.clear();
    let mut writer = KvBatchWriter::new(&mut frame);
    writer.lease_keep_alive(LeaseKeepAliveView { id: 4 }).unwrap();
    writer.finish();
    apply(&mut state, &frame, 100, &mut output);
    assert_eq!(state.kv().lease(4).map(|lease| lease.deadline_ns), Some(5_001 + 2_000_000_000));
    let mut bytes = Vec::new();
    state.write_snapshot(&mut bytes).unwrap();
    let restored = StateMachine::read_snapshot(bytes.as_slice(), config(2)).unwrap();
    assert_eq!(restored.kv().lease(4), state.kv().lease(4));
    assert_eq!(restored.digest(), state.digest());
}

/// Rewrites a version 4 snapshot of a state with no durable topic as the
/// version 3 bytes of the same state: no `bus_bytes` word, version 3.
fn as_version_3(v4: &[u8]) -> Vec<u8> {
    assert_eq!(&v4[56..64], &4u64.to_le_bytes(), "an empty bus section is its topic count alone");
    let mut v3 = v4[..56].to_vec();
    v3[4..6].copy_from_slice(&3u16.to_le_bytes());
    v3.extend_from_slice(&v4[64..v4.len() - 8]);
    let crc = crc32c::crc32c(&v3);
    v3.extend_from_slice(&crc.to_le_bytes());
    v3
}

#[test]
fn a_version_3_snapshot_is_still_read() {
    // Proves a snapshot written before durable topics (version 3) restores to the same state, which then writes version 4.
    let original = replay(&history(5, 6), 1);
    let mut v4 = Vec::new();
    original.write_snapshot(&mut v4).unwrap();
    let restored = StateMachine::read_snapshot(as_version_3(&v4).as_slice(), config(1)).unwrap();
    let mut again = Vec::new();
    restored.write_snapshot(&mut again).unwrap();
    assert_eq!(again, v4);
    assert_eq!(restored.bus().topic_names().count(), 0);
}

#[test]
fn durable_topics_travel_in_the_snapshot() {
    // Proves a durable topic's retention, offsets and messages survive a snapshot round trip and keep counting from there.
    let mut state = StateMachine::new(config(1)).unwrap();
    let mut output = BatchOutput::default();
    let mut frame = Vec::new();
    let mut writer = hyperraft_wire::BusBatchWriter::new(&mut frame);
    let configure = hyperraft_wire::ConfigureTopicView { topic: b"orders", messages_max: 3, bytes_max: 100 };
    writer.configure(&configure).unwrap();
    writer.append(b"orders", b"desk", 1, &[b"a", b"b", b"c", b"d"][..2]).unwrap();
    writer.append(b"orders", b"desk", 3, &[b"c", b"d"]).unwrap();
    writer.finish();
    apply(&mut state, &frame, 1, &mut output);
    let mut bytes = Vec::new();
    state.write_snapshot(&mut bytes).unwrap();
    let mut restored = StateMachine::read_snapshot(bytes.as_slice(), config(1)).unwrap();
    assert_eq!(restored.bus().range("orders"), state.bus().range("orders"));
    let range = restored.bus().range("orders").unwrap();
    assert_eq!((range.first_offset, range.next_offset), (1, 4));
    let mut messages = Vec::new();
    restored.bus().read("orders", 1, 10, 1000, &mut messages);
    let payloads: Vec<&[u8]> = messages.iter().map(|message| &message.payload[..]).collect();
    assert_eq!(payloads, [b"b", b"c", b"d"]);
    let mut next = Vec::new();
    let mut writer = hyperraft_wire::BusBatchWriter::new(&mut next);
    writer.append(b"orders", b"desk", 5, &[b"e"]).unwrap();
    writer.finish();
    apply(&mut restored, &next, 2, &mut output);
    assert_eq!(output.bus, [hyperraft_state::bus::BusResponse::Appended { first_offset: 4, count: 1 }]);
}
