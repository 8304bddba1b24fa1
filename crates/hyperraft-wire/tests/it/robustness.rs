//! Hostile bytes: random input, random bodies behind valid headers, and
//! corrupted valid frames never panic, and single-bit corruption is
//! always caught.

use hyperraft_wire::frame::HEADER_BYTES;
use hyperraft_wire::{
    encode_frame, Body, BusBatchWriter, DecisionBatchWriter, DecodeError, Frame, Kind, KvBatchWriter, KvCommand,
    Limits, TaskBatchWriter,
};
use proptest::collection::vec;
use proptest::prelude::*;

use crate::support::{command, reseal, write_batch};

/// Reads everything a decoded frame offers, so a decoder that accepted
/// something its views cannot read would trip the iterators' assertions.
/// For Kv frames, also checks the encoding is canonical: pushing every view
/// into a new writer reproduces the frame byte for byte.
fn read_all(frame: &Frame<'_>, bytes: &[u8]) {
    match frame.body() {
        Body::CreateAccounts(records) => assert_eq!(records.len(), frame.count() as usize),
        Body::CreateTransfers(records) => assert_eq!(records.len(), frame.count() as usize),
        Body::LookupAccounts(ids) | Body::LookupTransfers(ids) => {
            assert_eq!(ids.len(), frame.count() as usize)
        }
        Body::Results(records) => assert_eq!(records.len(), frame.count() as usize),
        Body::Kv(commands) => {
            let mut again = Vec::new();
            let mut writer = KvBatchWriter::new(&mut again);
            for command in commands {
                if let KvCommand::Txn(txn) = command {
                    assert_eq!(txn.compares().count(), txn.compare_count());
                    assert_eq!(txn.success().count(), txn.success_count());
                    assert_eq!(txn.failure().count(), txn.failure_count());
                }
                writer.push(&command).expect("an accepted command re-encodes");
            }
            writer.finish();
            assert_eq!(again, bytes);
        }
        Body::Tasks(commands) => {
            let mut again = Vec::new();
            let mut writer = TaskBatchWriter::new(&mut again);
            for command in commands.iter() {
                writer.push(&command).expect("an accepted command re-encodes");
            }
            writer.finish();
            assert_eq!(again, bytes);
        }
        Body::Decisions(commands) => {
            let mut again = Vec::new();
            let mut writer = DecisionBatchWriter::new(&mut again);
            for command in commands.iter() {
                writer.push(&command).expect("an accepted command re-encodes");
            }
            writer.finish();
            assert_eq!(again, bytes);
        }
        Body::Bus(commands) => {
            let mut again = Vec::new();
            let mut writer = BusBatchWriter::new(&mut again);
            for command in commands.iter() {
                writer.push(&command).expect("an accepted command re-encodes");
            }
            writer.finish();
            assert_eq!(again, bytes);
        }
    }
}

fn any_kind() -> impl Strategy<Value = Kind> {
    proptest::sample::select(Kind::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..=256)) {
        // Proves arbitrary bytes decode to Ok or a typed error, never a panic.
        if let Ok((frame, length)) = Frame::decode_prefix(&bytes, &Limits::default()) {
            read_all(&frame, &bytes[..length]);
        }
    }

    #[test]
    fn random_bodies_behind_valid_headers_never_panic(
        kind in any_kind(),
        count in 0u32..=6,
        body in vec(any::<u8>(), 0..=192),
    ) {
        // Proves bodies of random bytes, with correct checksums so the body parsers run, never panic.
        let mut frame = Vec::new();
        encode_frame(kind, count, &body, &mut frame);
        match Frame::decode(&frame, &Limits::default()) {
            Ok(decoded) => read_all(&decoded, &frame),
            Err(error) => {
                let structural = matches!(
                    error,
                    DecodeError::CountMismatch { .. }
                        | DecodeError::Kv { .. }
                        | DecodeError::Tasks { .. }
                        | DecodeError::Decisions { .. }
                        | DecodeError::Bus { .. }
                );
                prop_assert!(structural, "unexpected error {:?}", error);
            }
        }
    }

    #[test]
    fn mutated_batches_never_panic(
        commands in vec(command(), 1..=6),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        // Proves a valid batch with one body byte overwritten and checksums fixed up is rejected or canonical.
        let mut frame = Vec::new();
        write_batch(&commands, &mut frame);
        let at = HEADER_BYTES + position.index(frame.len() - HEADER_BYTES);
        frame[at] = byte;
        reseal(&mut frame);
        if let Ok(decoded) = Frame::decode(&frame, &Limits::default()) {
            read_all(&decoded, &frame);
        }
    }

    #[test]
    fn single_bit_flips_are_always_caught(
        commands in vec(command(), 0..=6),
        position in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        // Proves flipping any one bit of a valid frame is rejected, and in the body as a checksum mismatch.
        let mut frame = Vec::new();
        write_batch(&commands, &mut frame);
        let at = position.index(frame.len());
        frame[at] ^= 1 << bit;
        let error = Frame::decode(&frame, &Limits::default()).expect_err("a flipped bit is caught");
        if at >= HEADER_BYTES {
            prop_assert_eq!(error, DecodeError::BodyChecksumMismatch);
        }
    }
}

#[test]
fn corrupted_body_byte_is_a_checksum_mismatch() {
    // Proves changing one body byte of a transfer frame yields BodyChecksumMismatch, not a misread.
    let mut frame = Vec::new();
    hyperraft_wire::encode_records(Kind::CreateTransfers, &[hyperraft_wire::TransferRecord::default(); 2], &mut frame);
    frame[HEADER_BYTES + 50] = 0xFF;
    assert_eq!(Frame::decode(&frame, &Limits::default()).unwrap_err(), DecodeError::BodyChecksumMismatch);
}
