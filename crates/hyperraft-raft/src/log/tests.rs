//! Unit tests of the log's pure parts (record framing, segment scan, index
//! planning) and of group commit, which needs the writer's test pause.

use std::path::PathBuf;

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use proptest::prelude::*;

use super::config::LogConfig;
use super::index::{LogIndex, Source};
use super::record::{self, Parsed, RecordHead, HEADER_BYTES};
use super::segment::{self, ScanEnd};
use super::store::LogStore;
use crate::{Batch, TypeConfig};

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64, frame_bytes: usize) -> Entry<TypeConfig> {
    let frame: Vec<u8> = (0..frame_bytes).map(|byte| (byte as u64 ^ index) as u8).collect();
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Batch { timestamp_ns: index * 7, frame: frame.into() }),
    }
}

/// Encodes records for indexes `first..first + count` back to back.
fn segment_bytes(first: u64, count: u64, frame_bytes: usize) -> (Vec<u8>, Vec<RecordHead>) {
    let mut bytes = Vec::new();
    let heads = (first..first + count)
        .map(|index| record::encode(&mut bytes, &entry(2, index, frame_bytes), u32::MAX).unwrap())
        .collect();
    (bytes, heads)
}

proptest! {
    #[test]
    fn record_round_trips(term in any::<u64>(), index in any::<u64>(), frame in proptest::collection::vec(any::<u8>(), 0..2048)) {
        // Proves encode→parse→decode returns the same entry, with the header
        // and the cheap log-id decode agreeing, for any ids and payload.
        let original = Entry::<TypeConfig> {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(Batch { timestamp_ns: term ^ index, frame: frame.into() }),
        };
        let mut buffer = vec![0xAB; 3];
        let head = record::encode(&mut buffer, &original, u32::MAX).unwrap();
        prop_assert_eq!(head.len as usize, buffer.len() - 3);
        let Parsed::Valid { index: parsed_index, term: parsed_term, payload, record_bytes } = record::parse(&buffer[3..]) else {
            panic!("encoded record parses");
        };
        prop_assert_eq!((parsed_index, parsed_term, record_bytes), (index, term, head.len as usize));
        prop_assert_eq!(record::decode_log_id(payload), Some(original.log_id));
        let decoded = record::decode_entry(payload).unwrap();
        prop_assert_eq!(decoded.log_id, original.log_id);
        prop_assert_eq!(decoded.payload, original.payload);
    }
}

#[test]
fn parse_names_each_kind_of_damage() {
    // Proves the framing tells a short record, an impossible length and a
    // flipped byte apart, and never calls any of them valid.
    let (bytes, _) = segment_bytes(0, 1, 100);
    assert_eq!(record::parse(&bytes[..5]), Parsed::Short);
    assert_eq!(record::parse(&bytes[..bytes.len() - 1]), Parsed::Short);
    let mut small = bytes.clone();
    small[0..4].copy_from_slice(&3u32.to_le_bytes());
    assert_eq!(record::parse(&small), Parsed::BadLength);
    let mut flipped = bytes.clone();
    flipped[HEADER_BYTES + 10] ^= 0x40;
    assert_eq!(record::parse(&flipped), Parsed::BadChecksum);
}

#[test]
fn encode_refuses_an_oversized_record_and_leaves_the_buffer() {
    // Proves record_bytes_max is enforced on the whole record and that the
    // refused record leaves no bytes behind.
    let mut buffer = vec![1, 2, 3];
    let error = record::encode(&mut buffer, &entry(1, 9, 1000), 500).unwrap_err();
    assert!(matches!(error, super::LogError::RecordTooLarge { index: 9, max: 500, .. }), "{error}");
    assert_eq!(buffer, vec![1, 2, 3]);
}

#[test]
fn scan_reads_a_clean_segment() {
    // Proves a scan of intact records returns each one's index, offset and
    // length, and ends clean.
    let (bytes, heads) = segment_bytes(10, 4, 50);
    let (records, end) = segment::scan(&bytes, 10).unwrap();
    assert_eq!(end, ScanEnd::Clean);
    assert_eq!(records.iter().map(|record| record.head).collect::<Vec<_>>(), heads);
    assert_eq!(records[1].offset, u64::from(heads[0].len));
}

#[test]
fn scan_calls_a_cut_last_record_a_torn_tail() {
    // Proves a record cut short at the end is damage with nothing valid
    // after it, so recovery may cut it off.
    let (bytes, heads) = segment_bytes(0, 3, 200);
    let cut = bytes.len() - 7;
    let (records, end) = segment::scan(&bytes[..cut], 0).unwrap();
    assert_eq!(records.len(), 2);
    let offset = u64::from(heads[0].len + heads[1].len);
    assert!(matches!(end, ScanEnd::Damaged { offset: at, valid_after: false, .. } if at == offset), "{end:?}");
}

#[test]
fn scan_sees_valid_records_after_a_damaged_one() {
    // Proves a damaged record followed by intact ones is reported with
    // valid_after, even when its length field is garbage and cannot be used
    // to find the next record.
    let (mut bytes, heads) = segment_bytes(0, 4, 100);
    let second = heads[0].len as usize;
    bytes[second..second + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let (records, end) = segment::scan(&bytes, 0).unwrap();
    assert_eq!(records.len(), 1);
    assert!(matches!(end, ScanEnd::Damaged { valid_after: true, .. }), "{end:?}");
}

#[test]
fn scan_faults_on_an_index_out_of_sequence() {
    // Proves a valid record with the wrong index (a segment misnamed, or a
    // hole) is a fault, not a torn tail.
    let (bytes, _) = segment_bytes(5, 2, 10);
    let fault = segment::scan(&bytes, 4).unwrap_err();
    assert_eq!(fault.offset, 0);
}

fn index_with(segment_bytes_max: u64, cache_bytes_max: u64) -> LogIndex {
    let config = LogConfig { segment_bytes_max, cache_bytes_max, ..LogConfig::default() };
    LogIndex::new(PathBuf::from("/nonexistent"), &config, None)
}

fn append_to(index: &mut LogIndex, first: u64, count: u64, frame_bytes: usize) -> Vec<super::index::Chunk> {
    let (_, heads) = segment_bytes(first, count, frame_bytes);
    let entries = (first..first + count).map(|at| entry(2, at, frame_bytes)).collect();
    index.append(&heads, entries)
}

#[test]
fn index_rolls_segments_and_splits_chunks() {
    // Proves an append that crosses segment_bytes_max is split into one
    // chunk per segment, the new one created at the right first index.
    let mut index = index_with(250, u64::MAX);
    let chunks = append_to(&mut index, 0, 4, 60);
    let record_len = chunks[0].buffer_end / 2;
    assert!(record_len * 2 <= 250 && record_len * 3 > 250, "record length {record_len} suits the test");
    assert_eq!(chunks.len(), 2);
    assert!(chunks[0].create && chunks[1].create);
    assert_eq!((chunks[1].offset, chunks[1].buffer_start), (0, 2 * record_len));
    assert_eq!(index.segment_first_indexes(), vec![0, 2]);
}

#[test]
fn index_truncate_deletes_newer_segments_and_cuts_one() {
    // Proves truncate plans to delete whole later segments newest first and
    // to cut the segment holding the first removed entry at its offset.
    let mut index = index_with(250, u64::MAX);
    append_to(&mut index, 0, 7, 60);
    assert_eq!(index.segment_first_indexes(), vec![0, 2, 4, 6]);
    let plan = index.truncate(3).unwrap();
    let deleted: Vec<_> = plan.delete.iter().map(|path| path.file_name().unwrap().to_owned()).collect();
    assert_eq!(deleted, ["00000000000000000006.log", "00000000000000000004.log"]);
    let (cut_path, cut_offset) = plan.cut.unwrap();
    assert!(cut_path.ends_with("00000000000000000002.log"));
    assert!(cut_offset > 0);
    assert_eq!(index.last_index(), Some(2));
    assert!(index.truncate(3).is_none(), "nothing left to truncate");
}

#[test]
fn index_purge_deletes_only_whole_segments() {
    // Proves purge forgets entries up to the id but deletes a segment only
    // when every entry in it is purged.
    let mut index = index_with(250, u64::MAX);
    append_to(&mut index, 0, 7, 60);
    let plan = index.purge(log_id(2, 4)).unwrap();
    assert_eq!(plan.delete.len(), 2, "segments 0 and 2 hold only entries <= 4");
    assert_eq!(index.segment_first_indexes(), vec![4, 6]);
    assert_eq!(index.first_present_index(), Some(5));
    assert!(index.plan_read(0, 5, u64::MAX).is_empty(), "purged entries are not served");
    let everything = index.purge(log_id(2, 20)).unwrap();
    assert_eq!(everything.delete.len(), 2);
    assert_eq!((index.last_index(), index.next_index()), (None, Some(21)));
}

/// Proves the suffix within a byte budget counts whole records back from
/// its last entry: it takes as many as fit, none when the last alone is
/// larger, all when all fit, and knows nothing of absent entries.
#[test]
fn the_suffix_within_a_byte_budget_counts_whole_records() {
    let mut index = index_with(u64::MAX, u64::MAX);
    let chunks = append_to(&mut index, 10, 6, 60);
    let record_len = (chunks[0].buffer_end / 6) as u64;
    assert_eq!(index.suffix_start_within(14, 2 * record_len), Some(13));
    assert_eq!(index.suffix_start_within(14, 3 * record_len - 1), Some(13));
    assert_eq!(index.suffix_start_within(15, record_len - 1), Some(16));
    assert_eq!(index.suffix_start_within(15, u64::MAX), Some(10));
    assert_eq!(index.suffix_start_within(16, u64::MAX), None);
    assert_eq!(index.suffix_start_within(9, u64::MAX), None);
}

#[test]
fn cache_keeps_unsynced_entries_and_evicts_synced_ones() {
    // Proves the cache never drops an entry the disk cannot serve yet, and
    // drops synced entries beyond its budget, oldest first.
    let mut index = index_with(u64::MAX, 0);
    append_to(&mut index, 0, 5, 10);
    assert_eq!(index.cached_len(), 5, "nothing synced, everything cached");
    index.mark_durable(index.epoch(), 2);
    assert_eq!(index.cached_len(), 2, "entries 0..=2 synced and evicted");
    let sources = index.plan_read(0, 5, u64::MAX);
    let cached = sources.iter().filter(|source| matches!(source, Source::Cached(_))).count();
    assert_eq!(cached, 2);
}

#[test]
fn durability_reports_from_before_a_truncate_are_ignored() {
    // Proves a writer report for records planned before a truncate cannot
    // mark the entries that replaced them as synced.
    let mut index = index_with(u64::MAX, 0);
    append_to(&mut index, 0, 5, 10);
    let stale_epoch = index.epoch();
    index.truncate(2).unwrap();
    append_to(&mut index, 2, 3, 10);
    index.mark_durable(stale_epoch, 4);
    assert_eq!(index.cached_len(), 5, "replacements 2..=4 stay cached");
}

#[tokio::test]
async fn queued_appends_share_one_sync() {
    // Proves group commit: 32 appends queued while the writer is busy are
    // made durable by a single fdatasync, and each receipt then resolves.
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
    let release = store.pause_writer().await;
    let before = store.metrics();
    let mut receipts = Vec::new();
    for index in 0..32 {
        receipts.push(store.submit_append([entry(1, index, 4096)]).await.unwrap());
    }
    drop(release);
    for receipt in receipts {
        receipt.flushed().await.unwrap();
    }
    let after = store.metrics();
    assert_eq!(after.appends - before.appends, 32);
    assert_eq!(after.data_syncs - before.data_syncs, 1);
}

#[tokio::test]
async fn appends_without_sync_skip_fdatasync_and_stay_readable() {
    // Proves `sync_appends: false` (the benchmark's unsafe comparison mode)
    // acknowledges appends without any fdatasync, and the entries still read back.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { sync_appends: false, ..LogConfig::default() };
    let mut store = LogStore::open(dir.path(), config).unwrap();
    let before = store.metrics();
    for index in 0..8 {
        store.submit_append([entry(1, index, 4096)]).await.unwrap().flushed().await.unwrap();
    }
    let after = store.metrics();
    assert_eq!(after.appends - before.appends, 8);
    assert_eq!(after.data_syncs, before.data_syncs, "no fdatasync for appends");
    assert_eq!(store.reader().read(0, 8, u64::MAX).unwrap().len(), 8);
}

proptest! {
    /// The in-place committed record round-trips any log id, and any single
    /// damaged byte, as a torn write would leave, reads as damaged, not as
    /// another log id.
    #[test]
    fn committed_record_round_trips_and_damage_is_caught(
        term in any::<u64>(), node in any::<u64>(), index in any::<u64>(), damaged in 0..super::meta::IN_PLACE_BYTES, flip in 1..=255u8,
    ) {
        let committed = Some(LogId::new(CommittedLeaderId::new(term, node), index));
        let mut record = super::meta::encode_in_place(&committed);
        prop_assert_eq!(super::meta::decode_in_place_or_whole::<Option<LogId<u64>>>(&record), Some(committed));
        record[damaged] ^= flip;
        prop_assert_eq!(super::meta::decode_in_place_or_whole::<Option<LogId<u64>>>(&record), None);
    }
}

#[tokio::test]
async fn committed_log_id_of_either_file_format_is_read_back() {
    // Proves a store reads the committed log id it wrote in place, and one
    // left by a version that wrote the whole file by rename.
    use openraft::storage::RaftLogStorage;
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
        store.save_committed(Some(log_id(3, 40))).await.unwrap();
        // A group after the save writes it.
        store.save_vote(&openraft::Vote::new(3, 1)).await.unwrap();
    }
    let path = dir.path().join("committed.meta");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), super::meta::IN_PLACE_BYTES as u64);
    let mut store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(3, 40)));
    drop(store);
    std::fs::write(&path, super::meta::encode(&Some(log_id(2, 17)))).unwrap();
    let mut store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(2, 17)));
}
