//! Any bytes given to `Frame::decode` give a frame or a typed error, never a
//! panic; an accepted frame's body reads without failing (key/value, task and
//! bus commands re-encode to the same bytes), and applying it to
//! a state machine neither panics nor breaks the ledger's balance.
//!
//! Half of the inputs are taken as whole frames; the other half as a kind,
//! a count and a body that get a valid header and checksums, so the fuzzer
//! reaches the body validation instead of stopping at the checksum.
#![no_main]

use hyperraft_state::{BatchOutput, StateConfig, StateMachine};
use hyperraft_wire::{encode_frame, Body, BusBatchWriter, Frame, Kind, KvBatchWriter, Limits, TaskBatchWriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let framed;
    let input = match bytes.split_first() {
        Some((&selector, rest)) if selector & 1 == 0 && rest.len() >= 4 => {
            let kind = Kind::ALL[usize::from(selector >> 1) % Kind::ALL.len()];
            let count = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) % 4096;
            let mut frame = Vec::new();
            encode_frame(kind, count, &rest[4..], &mut frame);
            framed = frame;
            &framed[..]
        }
        _ => bytes,
    };
    let Ok(frame) = Frame::decode(input, &Limits::default()) else { return };
    match frame.body() {
        Body::Kv(commands) => {
            // Canonical: every accepted command re-encodes to the same bytes.
            assert_eq!(commands.iter().count(), commands.len());
            let mut again = Vec::new();
            let mut writer = KvBatchWriter::new(&mut again);
            for command in commands.iter() {
                writer.push(&command).expect("an accepted command re-encodes");
            }
            writer.finish();
            assert_eq!(again, input);
        }
        Body::Tasks(commands) => {
            let mut again = Vec::new();
            let mut writer = TaskBatchWriter::new(&mut again);
            for command in commands.iter() {
                writer.push(&command).expect("an accepted task command re-encodes");
            }
            writer.finish();
            assert_eq!(again, input);
        }
        Body::Bus(commands) => {
            let mut again = Vec::new();
            let mut writer = BusBatchWriter::new(&mut again);
            for command in commands.iter() {
                writer.push(&command).expect("an accepted bus command re-encodes");
            }
            writer.finish();
            assert_eq!(again, input);
        }
        Body::CreateAccounts(records) => assert_eq!(records.len(), frame.count() as usize),
        Body::CreateTransfers(records) => assert_eq!(records.len(), frame.count() as usize),
        _ => {}
    }
    let config = StateConfig { apply_threads: std::num::NonZeroUsize::MIN, ..StateConfig::default() };
    let mut state = StateMachine::new(config).expect("state machine");
    let mut output = BatchOutput::default();
    let _ = state.apply(&frame, 1, &mut output);
    let (debits, credits) = state.ledger().totals();
    assert_eq!(debits, credits);
});
