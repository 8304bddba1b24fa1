//! The durable log through its public API: reopen, torn tails, corruption,
//! segment roll and purge, bounds, and a model-checked random history.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use hyperraft_raft::log::{LogConfig, LogError, LogStore};
use hyperraft_raft::state_machine::StateMachineStore;
use hyperraft_raft::{Batch, TypeConfig};
use hyperraft_state::StateConfig;
use openraft::storage::RaftLogStorage;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LeaderId, LogId, RaftLogReader, StorageError, Vote};
use proptest::prelude::*;
use tempfile::TempDir;

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
    entry_of_len(term, index, 100)
}

fn entry_of_len(term: u64, index: u64, len: u64) -> Entry<TypeConfig> {
    let frame: Vec<u8> = (0..len).map(|byte: u64| (byte ^ index ^ term) as u8).collect();
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Batch { timestamp_ns: index, frame: frame.into() }),
    }
}

/// Segments of a few records each, so rolls and purges happen in small tests.
fn small_segments() -> LogConfig {
    LogConfig { segment_bytes_max: 400, ..LogConfig::default() }
}

async fn append(store: &mut LogStore, term: u64, indexes: std::ops::Range<u64>) {
    let entries = indexes.map(|index| entry(term, index));
    store.submit_append(entries).await.unwrap().flushed().await.unwrap();
}

async fn read_all(store: &mut LogStore) -> Vec<(u64, u64)> {
    let entries = store.try_get_log_entries(..).await.unwrap();
    entries.iter().map(|entry| (entry.log_id.index, entry.log_id.leader_id.term)).collect()
}

fn segment_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".log"))
        .collect();
    names.sort();
    names
}

fn segment(dir: &Path, first_index: u64) -> PathBuf {
    dir.join(format!("{first_index:020}.log"))
}

fn flip_byte(path: &Path, offset_from_end: u64) {
    let mut bytes = fs::read(path).unwrap();
    let at = bytes.len() - offset_from_end as usize;
    bytes[at] ^= 0x5A;
    fs::write(path, bytes).unwrap();
}

/// Builds a fresh log and state machine in a temporary directory per test;
/// the directory lives as long as the stores (the guard).
struct FreshStores;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for FreshStores {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = LogStore::open(&dir.path().join("log"), LogConfig::default()).expect("log opens");
        let state =
            StateMachineStore::open(&dir.path().join("state"), StateConfig::default()).expect("state machine opens");
        Ok((dir, log, state))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    // Proves LogStore (with the state machine) meets openraft's own storage
    // conformance suite: log state, reads, vote, truncate, purge, append.
    Suite::test_all(FreshStores).unwrap();
}

#[tokio::test]
async fn reopen_restores_entries_vote_purged_and_committed() {
    // Proves everything the store reports survives close and reopen: entries
    // after a truncate and re-append, the purged id, the vote and the
    // committed id.
    let dir = tempfile::tempdir().unwrap();
    let vote = Vote::new_committed(3, 1);
    let (state, entries) = {
        let mut store = LogStore::open(dir.path(), small_segments()).unwrap();
        append(&mut store, 1, 0..40).await;
        store.save_vote(&vote).await.unwrap();
        store.truncate(log_id(1, 30)).await.unwrap();
        append(&mut store, 2, 30..35).await;
        store.purge(log_id(1, 10)).await.unwrap();
        store.save_committed(Some(log_id(2, 33))).await.unwrap();
        (store.log_state(), read_all(&mut store).await)
    };
    assert_eq!(state.last_log_id, Some(log_id(2, 34)));
    assert_eq!(entries.first(), Some(&(11, 1)));
    let mut store = LogStore::open(dir.path(), small_segments()).unwrap();
    assert_eq!(store.log_state(), state);
    assert_eq!(read_all(&mut store).await, entries);
    assert_eq!(store.read_vote().await.unwrap(), Some(vote));
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(2, 33)));
}

#[tokio::test]
async fn torn_tail_is_cut_and_earlier_entries_survive() {
    // Proves a last record cut short by a crash is removed on open, the
    // entries before it are intact, and the log accepts that index again.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
        append(&mut store, 1, 0..5).await;
    }
    let path = segment(dir.path(), 0);
    let length = fs::metadata(&path).unwrap().len();
    OpenOptions::new().write(true).open(&path).unwrap().set_len(length - 10).unwrap();
    let mut store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(read_all(&mut store).await, (0..4).map(|index| (index, 1)).collect::<Vec<_>>());
    assert_eq!(fs::metadata(&path).unwrap().len(), length / 5 * 4, "cut at the torn record");
    append(&mut store, 2, 4..5).await;
    drop(store);
    let mut store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(read_all(&mut store).await.last(), Some(&(4, 2)));
}

#[tokio::test]
async fn flipped_byte_in_the_last_record_is_cut() {
    // Proves a last record whose checksum fails is treated as a torn write:
    // cut off, with every earlier entry kept.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
        append(&mut store, 1, 0..5).await;
    }
    flip_byte(&segment(dir.path(), 0), 3);
    let mut store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(read_all(&mut store).await.len(), 4);
    assert_eq!(store.log_state().last_log_id, Some(log_id(1, 3)));
}

#[tokio::test]
async fn damage_followed_by_valid_records_is_an_error() {
    // Proves a damaged record in the middle of the last segment is reported
    // as corruption at its offset, never cut off with the records after it.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
        append(&mut store, 1, 0..5).await;
    }
    let path = segment(dir.path(), 0);
    let record_bytes = fs::metadata(&path).unwrap().len() / 5;
    flip_byte(&path, record_bytes * 3 - 40);
    let error = LogStore::open(dir.path(), LogConfig::default()).err().expect("open refuses");
    match error {
        LogError::Corrupt { segment, offset, .. } => {
            assert_eq!(segment, path);
            assert_eq!(offset, record_bytes * 2);
        }
        other => panic!("expected Corrupt, got {other}"),
    }
}

#[tokio::test]
async fn damage_in_an_older_segment_is_an_error() {
    // Proves damage to the last record of a segment that is not the newest
    // is corruption: only the newest segment can hold an unsynced write.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path(), small_segments()).unwrap();
        append(&mut store, 1, 0..10).await;
    }
    let names = segment_names(dir.path());
    assert!(names.len() >= 3, "{names:?}");
    flip_byte(&dir.path().join(&names[0]), 3);
    let error = LogStore::open(dir.path(), small_segments()).err().expect("open refuses");
    assert!(matches!(error, LogError::Corrupt { .. }), "{error}");
}

#[tokio::test]
async fn missing_middle_segment_is_a_gap() {
    // Proves a deleted middle segment is reported as a hole in the log.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path(), small_segments()).unwrap();
        append(&mut store, 1, 0..10).await;
    }
    let names = segment_names(dir.path());
    fs::remove_file(dir.path().join(&names[1])).unwrap();
    let error = LogStore::open(dir.path(), small_segments()).err().expect("open refuses");
    assert!(matches!(error, LogError::Gap { .. }), "{error}");
}

#[tokio::test]
async fn segments_roll_and_purge_removes_only_whole_segments() {
    // Proves appends roll into segments named by their first index, purge
    // deletes exactly the segments wholly at or below the purged id, and
    // purged entries are never served, before or after reopen.
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path(), small_segments()).unwrap();
    append(&mut store, 1, 0..10).await;
    let names = segment_names(dir.path());
    let firsts: Vec<u64> = names.iter().map(|name| name[..20].parse().unwrap()).collect();
    assert!(firsts.len() >= 3 && firsts[0] == 0, "{firsts:?}");
    let purge_at = firsts[1];
    store.purge(log_id(1, purge_at)).await.unwrap();
    assert_eq!(segment_names(dir.path()), names[1..], "only the first segment is whole below");
    assert_eq!(read_all(&mut store).await.first(), Some(&(purge_at + 1, 1)));
    assert!(store.try_get_log_entries(0..=purge_at).await.unwrap().is_empty());
    drop(store);
    let mut store = LogStore::open(dir.path(), small_segments()).unwrap();
    assert_eq!(store.log_state().last_purged_log_id, Some(log_id(1, purge_at)));
    assert!(store.try_get_log_entries(purge_at..=purge_at).await.unwrap().is_empty());
    assert_eq!(read_all(&mut store).await.len() as u64, 9 - purge_at);
}

#[tokio::test]
async fn purge_past_the_end_empties_the_log_and_appends_continue() {
    // Proves purging beyond the last entry deletes every segment, reports
    // the purged id as the last log id, and appends resume after it.
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path(), small_segments()).unwrap();
    append(&mut store, 1, 0..10).await;
    store.purge(log_id(1, 20)).await.unwrap();
    assert!(segment_names(dir.path()).is_empty());
    assert_eq!(store.log_state().last_log_id, Some(log_id(1, 20)));
    append(&mut store, 2, 21..23).await;
    drop(store);
    let mut store = LogStore::open(dir.path(), small_segments()).unwrap();
    assert_eq!(read_all(&mut store).await, vec![(21, 2), (22, 2)]);
}

#[tokio::test]
async fn interrupted_purge_is_finished_on_open() {
    // Proves a segment a purge had recorded but not yet deleted (a crash in
    // between) is deleted on open and its entries are not served.
    let dir = tempfile::tempdir().unwrap();
    let first = segment(dir.path(), 0);
    let saved = {
        let mut store = LogStore::open(dir.path(), small_segments()).unwrap();
        append(&mut store, 1, 0..10).await;
        let saved = fs::read(&first).unwrap();
        store.purge(log_id(1, 5)).await.unwrap();
        saved
    };
    fs::write(&first, saved).unwrap();
    let mut store = LogStore::open(dir.path(), small_segments()).unwrap();
    assert!(!first.exists());
    assert_eq!(read_all(&mut store).await.first(), Some(&(6, 1)));
}

#[tokio::test]
async fn oversized_record_is_refused_and_nothing_is_appended() {
    // Proves a batch holding one record over record_bytes_max fails as a
    // whole with RecordTooLarge and leaves the log unchanged and usable.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { record_bytes_max: 150, ..LogConfig::default() };
    let mut store = LogStore::open(dir.path(), config).unwrap();
    append(&mut store, 1, 0..2).await;
    let mut large = entry(1, 3);
    large.payload = EntryPayload::Normal(Batch { timestamp_ns: 0, frame: vec![7; 500].into() });
    let result = store.submit_append([entry(1, 2), large]).await;
    assert!(matches!(result, Err(LogError::RecordTooLarge { index: 3, .. })), "{:?}", result.err());
    assert_eq!(store.log_state().last_log_id, Some(log_id(1, 1)));
    append(&mut store, 1, 2..3).await;
    assert_eq!(read_all(&mut store).await.len(), 3);
}

#[tokio::test]
async fn append_that_leaves_a_hole_is_refused() {
    // Proves entries must continue the log: a gap is refused with
    // NotContiguous and nothing is appended.
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
    append(&mut store, 1, 0..3).await;
    let result = store.submit_append([entry(1, 4)]).await;
    assert!(matches!(result, Err(LogError::NotContiguous { expected: 3, got: 4 })), "{:?}", result.err());
    assert_eq!(store.log_state().last_log_id, Some(log_id(1, 2)));
}

#[tokio::test]
async fn entries_at_or_below_the_purged_id_are_skipped() {
    // Proves an append reaching back past the purged id stores only the
    // entries after it, leaving no hole, and that survives reopen.
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
    store.purge(log_id(1, 4)).await.unwrap();
    append(&mut store, 1, 3..7).await;
    assert_eq!(read_all(&mut store).await, vec![(5, 1), (6, 1)]);
    drop(store);
    let mut store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(read_all(&mut store).await, vec![(5, 1), (6, 1)]);
}

#[tokio::test]
async fn limited_read_stops_at_the_byte_bound() {
    // Proves limited_get_log_entries honours read_bytes_max but always
    // returns at least one entry.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { read_bytes_max: 300, ..LogConfig::default() };
    let mut store = LogStore::open(dir.path(), config).unwrap();
    append(&mut store, 1, 0..10).await;
    let entries = store.limited_get_log_entries(0, 10).await.unwrap();
    assert_eq!(entries.len(), 2, "records of ~130 bytes, 300 allowed");
    let mut reader = store.get_log_reader().await;
    assert_eq!(reader.limited_get_log_entries(5, 10).await.unwrap().len(), 2);
    assert_eq!(reader.limited_get_log_entries(9, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn reads_come_from_disk_once_the_cache_is_spent() {
    // Proves entries evicted from the cache are read back from the segment
    // files intact, through a reader that outlives later appends.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { cache_bytes_max: 0, ..small_segments() };
    let mut store = LogStore::open(dir.path(), config).unwrap();
    let mut reader = store.get_log_reader().await;
    append(&mut store, 1, 0..20).await;
    let entries = reader.try_get_log_entries(3..17).await.unwrap();
    let expected: Vec<_> = (3..17).map(|index| entry(1, index)).collect();
    assert_eq!(entries.len(), expected.len());
    for (got, want) in entries.iter().zip(&expected) {
        assert_eq!((got.log_id, &got.payload), (want.log_id, &want.payload));
    }
}

#[tokio::test]
async fn vote_survives_reopen_and_the_latest_wins() {
    // Proves save_vote persists and a later vote replaces an earlier one.
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
        store.save_vote(&Vote::new(1, 2)).await.unwrap();
        store.save_vote(&Vote::new(2, 3)).await.unwrap();
    }
    let mut store = LogStore::open(dir.path(), LogConfig::default()).unwrap();
    let vote = store.read_vote().await.unwrap().unwrap();
    assert_eq!(vote.leader_id, LeaderId::new(2, 3));
}

/// One step of a random history.
#[derive(Clone, Debug)]
enum Step {
    Append { count: u64 },
    Truncate { back: u64 },
    Purge { ahead: u64 },
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1..6u64).prop_map(|count| Step::Append { count }),
        1 => (0..5u64).prop_map(|back| Step::Truncate { back }),
        1 => (0..8u64).prop_map(|ahead| Step::Purge { ahead }),
        1 => Just(Step::Reopen),
    ]
}

/// What the log should hold: (index, term) of present entries and the
/// purged index.
#[derive(Default)]
struct Model {
    entries: Vec<(u64, u64)>,
    purged: Option<u64>,
    term: u64,
}

impl Model {
    fn next_index(&self) -> u64 {
        self.entries.last().map(|last| last.0 + 1).or(self.purged.map(|purged| purged + 1)).unwrap_or(0)
    }
}

async fn run_step(store: &mut Option<LogStore>, dir: &Path, model: &mut Model, step: &Step) {
    let log = store.as_mut().unwrap();
    match *step {
        Step::Append { count } => {
            model.term += 1;
            let first = model.next_index();
            // Unequal sizes, so the cache's byte count must follow each entry.
            let entries = (first..first + count).map(|index| entry_of_len(model.term, index, 40 + index * 37 % 90));
            log.submit_append(entries).await.unwrap().flushed().await.unwrap();
            model.entries.extend((first..first + count).map(|index| (index, model.term)));
        }
        Step::Truncate { back } => {
            let at = model.next_index().saturating_sub(back).max(model.purged.map_or(0, |purged| purged + 1));
            log.truncate(log_id(0, at)).await.unwrap();
            model.entries.retain(|entry| entry.0 < at);
        }
        Step::Purge { ahead } => {
            let at = model.purged.map_or(0, |purged| purged + 1) + ahead;
            log.purge(log_id(0, at)).await.unwrap();
            model.purged = Some(model.purged.map_or(at, |purged| purged.max(at)));
            model.entries.retain(|entry| entry.0 > at);
        }
        Step::Reopen => {
            store.take();
            *store = Some(LogStore::open(dir, small_segments()).unwrap());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn random_history_matches_a_model(steps in proptest::collection::vec(step(), 1..40)) {
        // Proves any sequence of appends, truncates, purges and reopens
        // leaves the log holding exactly the entries and purged id a plain
        // in-memory model predicts, with segments rolling underneath.
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Some(LogStore::open(dir.path(), small_segments()).unwrap());
        let mut model = Model::default();
        for step in &steps {
            runtime.block_on(run_step(&mut store, dir.path(), &mut model, step));
            let log = store.as_mut().unwrap();
            prop_assert_eq!(runtime.block_on(read_all(log)), model.entries.clone());
            prop_assert_eq!(log.log_state().last_purged_log_id.map(|purged| purged.index), model.purged);
        }
    }
}
