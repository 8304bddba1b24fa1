//! The openraft state machine: committed batches into
//! `hyperraft_state::StateMachine`, snapshots to and from disk.
//!
//! Applied state lives in memory; what survives a restart is the latest
//! snapshot (`dir/snapshot.bin`) plus the Raft log after it, which openraft
//! replays. Snapshots live only in files ([`SnapshotFile`], `file.rs`): a
//! build streams the state into a temporary file, syncs it and renames it
//! into place, so a crash leaves the old or the new one, whole; a follower
//! receives a snapshot into a temporary file and checks it whole before it
//! is renamed into place and used. No snapshot is ever held in memory, so
//! its size is bounded by the disk, not by memory.
//!
//! Building a snapshot stops apply only while it takes a
//! [`SnapshotCopy`] of the state together with the last applied log id and
//! membership (microseconds: the transfer log is shared, not copied). The
//! file is written from the copy after the lock is released, on tokio's
//! blocking pool ([`SnapshotWork`]), so neither the serialization nor the
//! writes hold up apply or a runtime worker.
//!
//! A build runs beside apply and may also run beside the install of a
//! snapshot received from the leader. Whichever ends last must not leave an
//! older snapshot in place of a newer one (the log behind the newer one may
//! already be purged), so a build replaces the file only with one at least
//! as new.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hyperraft_state::{BatchOutput, SnapshotCopy, StateConfig, StateMachine};
use hyperraft_wire::{Frame, Limits};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};

use crate::{BatchResponse, NodeId, TypeConfig};

mod file;

pub use file::SnapshotFile;

const SNAPSHOT_FILE: &str = "snapshot.bin";
/// Temporary files are `snapshot.<kind>.<n>.tmp`; any left by a crash are
/// removed when the directory is opened.
const TEMPORARY_PREFIX: &str = "snapshot.";
const TEMPORARY_SUFFIX: &str = ".tmp";

type Meta = SnapshotMeta<NodeId, BasicNode>;

/// Why a state machine directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StateMachineError {
    #[error("state machine directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("snapshot file {path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error(transparent)]
    State(#[from] hyperraft_state::StateError),
}

struct Applied {
    state: StateMachine,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    output: BatchOutput,
    snapshots_built: u64,
}

/// Where a snapshot's serialization, decoding and file writes run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SnapshotWork {
    /// On tokio's blocking pool, away from the runtime's workers.
    #[default]
    BlockingPool,
    /// On the task that asked for it. For the simulator, whose single
    /// runtime thread must not race another thread to stay deterministic.
    Inline,
}

/// The state machine side of a replica's storage. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct StateMachineStore {
    applied: Arc<Mutex<Applied>>,
    /// The metadata of the snapshot file in place; held while the file is
    /// replaced or opened, so replacements happen one at a time and in
    /// order, and an opened file is the one this names.
    on_disk: Arc<Mutex<Option<Meta>>>,
    /// Numbers temporary files.
    temporaries: Arc<AtomicU64>,
    dir: PathBuf,
    config: StateConfig,
    work: SnapshotWork,
    /// How fast a build writes its file, in bytes per second.
    snapshot_write_rate: u64,
}

/// How fast a snapshot build writes, unless set otherwise: a 1 GiB state
/// takes 8 s. Slower than a disk can write, so that the log's syncs do not
/// queue behind the snapshot (see `file.rs`).
pub const SNAPSHOT_WRITE_RATE_DEFAULT: u64 = 128 << 20;

/// What failed in snapshot work done off the runtime; it becomes openraft's
/// error once back on it (which is too large to pass around by value).
#[derive(Debug)]
enum SnapshotFault {
    /// A received snapshot does not read.
    Decode(String),
    /// Writing or placing the file, or the work could not run.
    Persist(std::io::Error),
}

impl SnapshotFault {
    fn into_storage(self, meta: &Meta) -> StorageError<NodeId> {
        let signature = Some(meta.signature());
        match self {
            SnapshotFault::Decode(reason) => StorageIOError::read_snapshot(signature, &std::io::Error::other(reason)),
            SnapshotFault::Persist(error) => StorageIOError::write_snapshot(signature, &error),
        }
        .into()
    }
}

/// Whether a snapshot replaces an existing newer one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replace {
    /// Installed from the leader: openraft decided it is the state now.
    Always,
    /// Built here: loses to a newer snapshot installed meanwhile.
    IfNotOlder,
}

impl StateMachineStore {
    /// Opens (creating if needed) `dir`, restoring the latest snapshot in it.
    pub fn open(dir: &Path, config: StateConfig) -> Result<StateMachineStore, StateMachineError> {
        StateMachineStore::open_with(dir, config, SnapshotWork::default())
    }

    /// [`Self::open`], with snapshot work run where `work` says.
    pub fn open_with(
        dir: &Path,
        config: StateConfig,
        work: SnapshotWork,
    ) -> Result<StateMachineStore, StateMachineError> {
        let io = |source| StateMachineError::Io { path: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        remove_temporaries(dir).map_err(io)?;
        let mut applied = Applied {
            state: StateMachine::new(config.clone())?,
            last_applied: None,
            membership: StoredMembership::default(),
            output: BatchOutput::default(),
            snapshots_built: 0,
        };
        let path = dir.join(SNAPSHOT_FILE);
        let on_disk = match std::fs::File::open(&path) {
            Ok(file) => {
                let (meta, state) = SnapshotFile::open(file)
                    .read(config.clone())
                    .map_err(|reason| StateMachineError::Damaged { path: path.clone(), reason })?;
                applied.state = state;
                applied.last_applied = meta.last_log_id;
                applied.membership = meta.last_membership.clone();
                Some(meta)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(io(error)),
        };
        Ok(StateMachineStore {
            applied: Arc::new(Mutex::new(applied)),
            on_disk: Arc::new(Mutex::new(on_disk)),
            temporaries: Arc::new(AtomicU64::new(0)),
            dir: dir.to_path_buf(),
            config,
            work,
            snapshot_write_rate: SNAPSHOT_WRITE_RATE_DEFAULT,
        })
    }

    /// Builds write their files at most `bytes_per_second` fast (> 0).
    pub fn with_snapshot_write_rate(mut self, bytes_per_second: u64) -> StateMachineStore {
        assert!(bytes_per_second > 0, "a snapshot write rate is positive");
        self.snapshot_write_rate = bytes_per_second;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Applied> {
        self.applied.lock().expect("a panic while applying poisons the state machine")
    }

    fn lock_on_disk(&self) -> MutexGuard<'_, Option<Meta>> {
        self.on_disk.lock().expect("a panic while persisting poisons the snapshot file")
    }

    /// Digest of the applied state (equal on replicas at the same applied index).
    pub fn digest(&self) -> u64 {
        self.applied_digest().1
    }

    /// The last applied log id and the digest of the state at it, taken
    /// together. The digest reads the whole state, so it is computed from a
    /// copy after the lock is released.
    pub fn applied_digest(&self) -> (Option<LogId<NodeId>>, u64) {
        let (last_applied, copy) = {
            let applied = self.lock();
            (applied.last_applied, applied.state.snapshot_copy())
        };
        (last_applied, copy.digest())
    }

    /// The last applied log id.
    pub fn last_applied(&self) -> Option<LogId<NodeId>> {
        self.lock().last_applied
    }

    /// Runs `read` against the applied state (for serializable reads).
    pub fn read<T>(&self, read: impl FnOnce(&StateMachine) -> T) -> T {
        read(&self.lock().state)
    }

    /// The size of the snapshot file in place, if there is one.
    pub fn snapshot_bytes(&self) -> Option<u64> {
        // A rename replaces the name at once, so the size is of one whole
        // file; no need to wait for a placement's directory sync.
        std::fs::metadata(self.dir.join(SNAPSHOT_FILE)).ok().map(|metadata| metadata.len())
    }

    /// A new temporary file in this directory; `kind` names what it is for.
    fn temporary(&self, kind: &str) -> std::io::Result<SnapshotFile> {
        let number = self.temporaries.fetch_add(1, Ordering::Relaxed);
        SnapshotFile::create_temporary(self.dir.join(format!("{TEMPORARY_PREFIX}{kind}.{number}{TEMPORARY_SUFFIX}")))
    }

    /// Renames the synced temporary `snapshot` into place (then syncs the
    /// directory); answers whether it did, which only
    /// [`Replace::IfNotOlder`] may decline.
    fn place(&self, meta: &Meta, snapshot: &mut SnapshotFile, replace: Replace) -> std::io::Result<bool> {
        let mut on_disk = self.lock_on_disk();
        let newer_in_place = on_disk.as_ref().is_some_and(|in_place| in_place.last_log_id > meta.last_log_id);
        if replace == Replace::IfNotOlder && newer_in_place {
            return Ok(false);
        }
        let temporary = snapshot.temporary_path().expect("only a temporary file is placed");
        std::fs::rename(temporary, self.dir.join(SNAPSHOT_FILE))?;
        snapshot.placed();
        std::fs::File::open(&self.dir)?.sync_all()?;
        *on_disk = Some(meta.clone());
        Ok(true)
    }

    /// Runs `work` where [`SnapshotWork`] says, and answers its result.
    async fn offload<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, SnapshotFault> + Send + 'static,
    ) -> Result<T, SnapshotFault> {
        match self.work {
            SnapshotWork::Inline => work(),
            SnapshotWork::BlockingPool => match tokio::task::spawn_blocking(work).await {
                Ok(result) => result,
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(error) => Err(SnapshotFault::Persist(std::io::Error::other(error))),
            },
        }
    }

    /// Writes the file of `copy` and places it: the part of a build that
    /// runs without the lock. Answers the file, and whether it was placed
    /// (not when a newer snapshot was installed meanwhile).
    fn write_built(&self, meta: &Meta, copy: SnapshotCopy) -> Result<(SnapshotFile, bool), SnapshotFault> {
        let mut snapshot = self.temporary("build").map_err(SnapshotFault::Persist)?;
        file::write_snapshot_file(snapshot.file(), meta, &copy, self.snapshot_write_rate)
            .map_err(SnapshotFault::Persist)?;
        drop(copy);
        let placed = self.place(meta, &mut snapshot, Replace::IfNotOlder).map_err(SnapshotFault::Persist)?;
        Ok((snapshot, placed))
    }

    /// Checks a received snapshot whole, places it and answers its state.
    fn install_received(&self, meta: &Meta, mut received: SnapshotFile) -> Result<StateMachine, SnapshotFault> {
        if received.temporary_path().and_then(Path::parent) != Some(self.dir.as_path()) {
            // Not received through `begin_receiving_snapshot` (openraft's
            // storage contract allows any snapshot data, such as a built
            // one): copy it here first.
            let copied = self.temporary("receive").map_err(SnapshotFault::Persist)?;
            let mut source = received.file();
            std::io::Seek::rewind(&mut source).map_err(SnapshotFault::Persist)?;
            std::io::copy(&mut source, &mut copied.file()).map_err(SnapshotFault::Persist)?;
            received = copied;
        }
        received.file().sync_all().map_err(SnapshotFault::Persist)?;
        let (file_meta, state) = received.read(self.config.clone()).map_err(SnapshotFault::Decode)?;
        if file_meta != *meta {
            return Err(SnapshotFault::Decode(format!(
                "the file's metadata ({file_meta:?}) is not the snapshot's ({meta:?})"
            )));
        }
        self.place(meta, &mut received, Replace::Always).map_err(SnapshotFault::Persist)?;
        Ok(state)
    }
}

/// Removes temporary snapshot files a crash left in `dir`.
fn remove_temporaries(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TEMPORARY_PREFIX) && name.ends_with(TEMPORARY_SUFFIX) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

fn apply_entry(applied: &mut Applied, entry: &Entry<TypeConfig>) -> BatchResponse {
    applied.last_applied = Some(entry.log_id);
    match &entry.payload {
        EntryPayload::Blank => BatchResponse::Empty,
        EntryPayload::Membership(membership) => {
            applied.membership = StoredMembership::new(Some(entry.log_id), membership.clone());
            BatchResponse::Empty
        }
        EntryPayload::Normal(batch) => {
            // The leader validated the frame before proposing it; decoding again here costs
            // a checksum pass and keeps a damaged entry from ever reaching the state.
            let frame = match Frame::decode(&batch.frame, &Limits::default()) {
                Ok(frame) => frame,
                Err(error) => return BatchResponse::Rejected(error.to_string()),
            };
            let Applied { state, output, .. } = applied;
            match state.apply(&frame, batch.timestamp_ns, output) {
                Ok(()) => BatchResponse::from_output(frame.kind(), output),
                Err(error) => BatchResponse::Rejected(error.to_string()),
            }
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>> {
        let applied = self.lock();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut applied = self.lock();
        Ok(entries.into_iter().map(|entry| apply_entry(&mut applied, &entry)).collect())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError<NodeId>> {
        let snapshot = self.temporary("receive").map_err(|error| StorageIOError::write_snapshot(None, &error))?;
        Ok(Box::new(snapshot))
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Box<SnapshotFile>) -> Result<(), StorageError<NodeId>> {
        let (store, work_meta) = (self.clone(), meta.clone());
        let state = self
            .offload(move || store.install_received(&work_meta, *snapshot))
            .await
            .map_err(|fault| fault.into_storage(meta))?;
        let mut applied = self.lock();
        let replaced = std::mem::replace(&mut applied.state, state);
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        drop(applied);
        // The old state may be large; freeing it need not stop apply.
        drop(replaced);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let on_disk = self.lock_on_disk();
        let Some(meta) = on_disk.clone() else { return Ok(None) };
        // Opened under the lock, so the file is the one `meta` describes; a
        // later replacement renames over the name, not over this file.
        let file = std::fs::File::open(self.dir.join(SNAPSHOT_FILE))
            .map_err(|error| StorageIOError::read_snapshot(Some(meta.signature()), &error))?;
        drop(on_disk);
        Ok(Some(Snapshot { meta, snapshot: Box::new(SnapshotFile::open(file)) }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        // The copy, the last applied log id and the membership are taken
        // under one lock, so the snapshot is exactly the state at that id.
        let (meta, copy) = {
            let mut applied = self.lock();
            let copy = applied.state.snapshot_copy();
            applied.snapshots_built += 1;
            let snapshot_id = match applied.last_applied {
                Some(log_id) => format!("{}-{}-{}", log_id.leader_id, log_id.index, applied.snapshots_built),
                None => format!("empty-{}", applied.snapshots_built),
            };
            let meta =
                Meta { last_log_id: applied.last_applied, last_membership: applied.membership.clone(), snapshot_id };
            (meta, copy)
        };
        let (store, work_meta) = (self.clone(), meta.clone());
        let (snapshot, _placed) = self
            .offload(move || store.write_built(&work_meta, copy))
            .await
            .map_err(|fault| fault.into_storage(&meta))?;
        std::io::Seek::rewind(&mut snapshot.file())
            .map_err(|error| StorageIOError::read_snapshot(Some(meta.signature()), &error))?;
        Ok(Snapshot { meta, snapshot: Box::new(snapshot) })
    }
}

#[cfg(test)]
mod tests;
