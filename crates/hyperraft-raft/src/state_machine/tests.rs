//! Snapshots built beside apply and installs: what is kept and on disk.

use hyperraft_load::{Skew, TransferGenerator};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};

use super::*;
use crate::Batch;

fn log_id(index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

/// Entries `first..first + count`: accounts first (at index 1), then
/// transfer batches.
fn entries(first: u64, count: u64) -> Vec<Entry<TypeConfig>> {
    let mut generator = TransferGenerator::new(100, Skew::Uniform, first).with_first_id(u128::from(first) << 32);
    (first..first + count)
        .map(|index| {
            let frame = if index == 1 {
                let mut frames = Vec::new();
                hyperraft_load::account_frames(100, 100, &mut frames);
                frames.remove(0)
            } else {
                let mut frame = Vec::new();
                generator.next_frame(50, &mut frame);
                frame
            };
            let payload = EntryPayload::Normal(Batch { timestamp_ns: index * 1_000, frame: frame.into() });
            Entry { log_id: log_id(index), payload }
        })
        .collect()
}

async fn store_at(dir: &Path, last_index: u64) -> StateMachineStore {
    let mut store = StateMachineStore::open(dir, StateConfig::default()).unwrap();
    store.apply(entries(1, last_index)).await.unwrap();
    store
}

fn meta_on_disk(dir: &Path) -> Meta {
    let file = std::fs::File::open(dir.join(SNAPSHOT_FILE)).unwrap();
    SnapshotFile::open(file).read(StateConfig::default()).unwrap().0
}

/// Every byte of `snapshot` from its start, read as openraft reads it.
async fn bytes_of(snapshot: &mut SnapshotFile) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    snapshot.seek(std::io::SeekFrom::Start(0)).await.unwrap();
    let mut bytes = Vec::new();
    snapshot.read_to_end(&mut bytes).await.unwrap();
    bytes
}

/// Proves a built snapshot is the state at its own last applied id even
/// though apply goes on right after the copy: reopening the directory
/// restores that id and that digest, not the later state.
#[tokio::test]
async fn a_built_snapshot_restores_the_state_at_its_last_applied_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_at(dir.path(), 6).await;
    let at_build = store.applied_digest();
    let built = store.get_snapshot_builder().await.build_snapshot().await.unwrap();
    store.apply(entries(7, 3)).await.unwrap();
    assert_ne!(store.applied_digest().1, at_build.1, "apply went on");
    assert_eq!(built.meta.last_log_id, Some(log_id(6)));
    let reopened = StateMachineStore::open(dir.path(), StateConfig::default()).unwrap();
    assert_eq!(reopened.applied_digest(), at_build);
    let (mut current, mut built) =
        (store.get_current_snapshot().await.unwrap().expect("the built one is in place"), built);
    assert_eq!(current.meta, built.meta);
    assert_eq!(bytes_of(&mut current.snapshot).await, bytes_of(&mut built.snapshot).await);
}

/// Proves a build that ends after a newer snapshot was installed leaves the
/// newer one on disk and kept: the build's copy is taken at index 4, a
/// snapshot at index 9 is installed, then the build writes its stream.
#[tokio::test]
async fn a_build_that_ends_after_a_newer_install_does_not_replace_it() {
    let (source_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (source, mut newer) = sender_at(source_dir.path(), 9).await;
    let mut store = store_at(dir.path(), 4).await;
    let (older_meta, copy) = {
        let applied = store.lock();
        let meta = Meta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
            snapshot_id: "older".into(),
        };
        (meta, applied.state.snapshot_copy())
    };
    let received = receive(&mut store, &mut newer.snapshot, 1 << 16).await;
    store.install_snapshot(&newer.meta, received).await.unwrap();
    let (_file, placed) = store.write_built(&older_meta, copy).unwrap();
    assert!(!placed, "the older build is not placed");
    assert_eq!(meta_on_disk(dir.path()).last_log_id, Some(log_id(9)));
    let current = store.get_current_snapshot().await.unwrap().expect("the installed snapshot is kept");
    assert_eq!(current.meta.last_log_id, Some(log_id(9)));
    assert_eq!(store.applied_digest(), source.applied_digest());
}

/// Streams `from` into a file this store receives into, in `chunk`-byte
/// pieces at explicit offsets, as openraft's chunked transport does.
async fn receive(store: &mut StateMachineStore, from: &mut SnapshotFile, chunk: usize) -> Box<SnapshotFile> {
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    let bytes = bytes_of(from).await;
    let mut received = store.begin_receiving_snapshot().await.unwrap();
    for (index, piece) in bytes.chunks(chunk).enumerate() {
        received.seek(std::io::SeekFrom::Start((index * chunk) as u64)).await.unwrap();
        received.write_all(piece).await.unwrap();
    }
    received.shutdown().await.unwrap();
    received
}

/// A store at `last_index` that has built a snapshot, and that snapshot as
/// it would send it.
async fn sender_at(dir: &Path, last_index: u64) -> (StateMachineStore, Snapshot<TypeConfig>) {
    let mut source = store_at(dir, last_index).await;
    source.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let sent = source.get_current_snapshot().await.unwrap().expect("built");
    (source, sent)
}

fn temporaries_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(TEMPORARY_SUFFIX))
        .collect()
}

/// Proves a snapshot streamed in chunks into a follower's file installs the
/// leader's exact state, is the follower's file in place afterwards (and
/// survives its restart), and leaves no temporary file behind.
#[tokio::test]
async fn a_snapshot_received_in_chunks_installs_the_senders_state() {
    let (source_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (source, mut sent) = sender_at(source_dir.path(), 9).await;
    let mut store = store_at(dir.path(), 3).await;
    let received = receive(&mut store, &mut sent.snapshot, 1000).await;
    store.install_snapshot(&sent.meta, received).await.unwrap();
    assert_eq!(store.applied_digest(), source.applied_digest());
    assert_eq!(meta_on_disk(dir.path()), sent.meta);
    assert!(temporaries_in(dir.path()).is_empty(), "left: {:?}", temporaries_in(dir.path()));
    let reopened = StateMachineStore::open(dir.path(), StateConfig::default()).unwrap();
    assert_eq!(reopened.applied_digest(), source.applied_digest());
}

/// Proves a received snapshot with one flipped byte is refused with a
/// storage error and changes nothing: the state, the file in place, and no
/// temporary file left.
#[tokio::test]
async fn a_damaged_received_snapshot_is_refused_and_changes_nothing() {
    let (source_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_source, mut sent) = sender_at(source_dir.path(), 9).await;
    let mut store = store_at(dir.path(), 4).await;
    store.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let (before, on_disk_before) = (store.applied_digest(), meta_on_disk(dir.path()));
    let length = bytes_of(&mut sent.snapshot).await.len();
    for at in [0, 6, length / 2, length - 1] {
        let mut damaged = bytes_of(&mut sent.snapshot).await;
        damaged[at] ^= 0x40;
        let mut received = store.begin_receiving_snapshot().await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut received, &damaged).await.unwrap();
        let refused = store.install_snapshot(&sent.meta, received).await;
        assert!(refused.is_err(), "a flip at byte {at} of {length} was installed");
        assert_eq!(store.applied_digest(), before);
        assert_eq!(meta_on_disk(dir.path()), on_disk_before);
        assert!(temporaries_in(dir.path()).is_empty());
    }
}

/// Proves temporary files a crash left (a build or a receive cut short) are
/// removed when the directory is opened, and the snapshot in place is used.
#[tokio::test]
async fn temporary_files_left_by_a_crash_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_at(dir.path(), 5).await;
    store.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let at_build = store.applied_digest();
    drop(store);
    for name in ["snapshot.build.7.tmp", "snapshot.receive.2.tmp"] {
        std::fs::write(dir.path().join(name), b"cut short").unwrap();
    }
    let reopened = StateMachineStore::open(dir.path(), StateConfig::default()).unwrap();
    assert!(temporaries_in(dir.path()).is_empty());
    assert_eq!(reopened.applied_digest(), at_build);
}
