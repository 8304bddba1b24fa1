//! Key/value batches: writer → decode gives the same commands, and pushing
//! the decoded views into a new writer gives the same bytes.

use hyperraft_wire::{Frame, KvBatchWriter, KvCommand, Limits};
use proptest::collection::vec;
use proptest::prelude::*;

use crate::support::{command, kv_commands, write_batch, OwnedCommand};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn batches_round_trip(commands in vec(command(), 0..=24)) {
        // Proves random batches (txns included) decode to the written commands and re-encode byte-identically.
        let mut out = Vec::new();
        let frame_bytes = write_batch(&commands, &mut out);
        prop_assert_eq!(frame_bytes, out.len());
        let frame = Frame::decode(&out, &Limits::default()).expect("written frame decodes");
        let decoded = kv_commands(frame.body());
        prop_assert_eq!(decoded.len(), commands.len());
        prop_assert_eq!(decoded.iter().len(), commands.len());
        for (owned, view) in commands.iter().zip(decoded) {
            owned.assert_matches(&view);
        }
        let mut again = Vec::new();
        let mut writer = KvBatchWriter::new(&mut again);
        for view in &decoded {
            writer.push(&view).expect("decoded commands are within bounds");
        }
        prop_assert_eq!(writer.finish(), frame_bytes);
        prop_assert_eq!(&again, &out);
        let again = Frame::decode(&again, &Limits::default()).expect("re-encoded frame decodes");
        prop_assert!(kv_commands(again.body()).iter().eq(decoded.iter()));
    }
}

#[test]
fn empty_batch_is_a_valid_frame() {
    // Proves a writer finished with no commands yields a header-only frame that decodes to nothing.
    let mut out = Vec::new();
    let frame_bytes = KvBatchWriter::new(&mut out).finish();
    assert_eq!(frame_bytes, hyperraft_wire::frame::HEADER_BYTES);
    let frame = Frame::decode(&out, &Limits::default()).expect("empty frame decodes");
    assert!(kv_commands(frame.body()).is_empty());
}

#[test]
fn txn_views_are_copied_verbatim() {
    // Proves push copies a decoded txn's bytes so the copy equals the original view.
    let txn = OwnedCommand::Txn { compares: Vec::new(), success: Vec::new(), failure: Vec::new() };
    let mut out = Vec::new();
    write_batch(&[txn], &mut out);
    let frame = Frame::decode(&out, &Limits::default()).expect("valid frame");
    let Some(KvCommand::Txn(view)) = kv_commands(frame.body()).iter().next() else { panic!("not a txn") };
    assert_eq!(view.as_bytes(), &out[hyperraft_wire::frame::HEADER_BYTES..]);
    let mut copy = Vec::new();
    let mut writer = KvBatchWriter::new(&mut copy);
    writer.push(&KvCommand::Txn(view)).expect("push txn");
    writer.finish();
    assert_eq!(copy, out);
}
