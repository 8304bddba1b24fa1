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
    let bytes = std::fs::read(dir.join(SNAPSHOT_FILE)).unwrap();
    decode_snapshot_file(&bytes).unwrap().0
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
    let current = store.get_current_snapshot().await.unwrap().expect("the built snapshot is kept");
    assert_eq!(current.meta, built.meta);
    assert_eq!(current.snapshot.into_inner(), built.snapshot.into_inner());
}

/// Proves a build that ends after a newer snapshot was installed leaves the
/// newer one on disk and kept: the build's copy is taken at index 4, a
/// snapshot at index 9 is installed, then the build writes its stream.
#[tokio::test]
async fn a_build_that_ends_after_a_newer_install_does_not_replace_it() {
    let (source_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut source = store_at(source_dir.path(), 9).await;
    let newer = source.get_snapshot_builder().await.build_snapshot().await.unwrap();
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
    store.install_snapshot(&newer.meta, newer.snapshot).await.unwrap();
    let built = store.write_built(&older_meta, copy).unwrap();
    assert!(built.kept.is_none(), "the older build is not kept");
    assert_eq!(meta_on_disk(dir.path()).last_log_id, Some(log_id(9)));
    let current = store.get_current_snapshot().await.unwrap().expect("the installed snapshot is kept");
    assert_eq!(current.meta.last_log_id, Some(log_id(9)));
    assert_eq!(store.applied_digest(), source.applied_digest());
}
