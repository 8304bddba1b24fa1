//! The log's decoders of on-disk bytes (segments and metadata files) over
//! arbitrary and damaged input: typed outcomes, never a panic.

use hyperraft_raft::log::decoders::{decode_meta, encode_segment, scan_segment};
use hyperraft_raft::{Batch, TypeConfig};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use proptest::collection::vec;
use proptest::prelude::*;

fn entries(first: u64, frames: &[Vec<u8>]) -> Vec<Entry<TypeConfig>> {
    frames
        .iter()
        .enumerate()
        .map(|(offset, frame)| {
            let index = first + offset as u64;
            Entry {
                log_id: LogId::new(CommittedLeaderId::new(3, 1), index),
                payload: EntryPayload::Normal(Batch { timestamp_ns: index, frame: frame.clone().into() }),
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_segment_scan_or_the_metadata_decoders(
        bytes in vec(any::<u8>(), 0..512),
        first_index in prop_oneof![Just(0u64), Just(1), any::<u64>()],
    ) {
        // Proves a segment or metadata file of any content is read as some valid records and a reason, or refused, without a panic or an allocation sized by a hostile length.
        let scan = scan_segment(&bytes, first_index);
        prop_assert!(scan.entries.len() <= bytes.len() / 24);
        let _ = decode_meta(&bytes);
    }

    #[test]
    fn segments_round_trip_and_damage_stops_the_scan_at_the_damaged_record(
        frames in vec(vec(any::<u8>(), 0..64), 1..6),
        first_index in 1u64..1000,
        flip in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        // Proves encoded records read back as the same entries, a cut segment yields exactly the whole records before the cut (and reports damage unless the cut falls between records), and a flipped byte is never read as a valid entry different from what was written.
        let written = entries(first_index, &frames);
        let bytes = encode_segment(&written);
        let scan = scan_segment(&bytes, first_index);
        prop_assert_eq!(scan.stopped, None);
        prop_assert_eq!(&scan.entries, &written);

        let cut = cut.index(bytes.len());
        let scan = scan_segment(&bytes[..cut], first_index);
        prop_assert!(written.starts_with(&scan.entries));
        // Clean exactly when the cut falls between records.
        prop_assert_eq!(scan.stopped.is_none(), encode_segment(&scan.entries).len() == cut);

        let mut damaged = bytes.clone();
        damaged[flip.index(bytes.len())] ^= 0x40;
        let scan = scan_segment(&damaged, first_index);
        prop_assert!(scan.stopped.is_some());
        prop_assert!(written.starts_with(&scan.entries));
    }
}
