//! The openraft state machine: committed batches into
//! `hyperraft_state::StateMachine`, snapshots to and from disk.
//!
//! Applied state lives in memory; what survives a restart is the latest
//! snapshot (`dir/snapshot.bin`) plus the Raft log after it, which openraft
//! replays. A snapshot file is `magic "HRSM" · meta_len u32 · meta
//! (postcard of `SnapshotMeta`) · state bytes (`StateMachine::write_snapshot`)
//! · crc32c u32` of everything before, written to a temporary file, synced,
//! and renamed into place so a crash leaves the old or the new one, whole.
//!
//! Building a snapshot stops apply only while it takes a
//! [`SnapshotCopy`] of the state together with the last applied log id and
//! membership (microseconds: the transfer log is shared, not copied). The
//! stream is written from the copy and the file persisted after the lock is
//! released, on tokio's blocking pool ([`SnapshotWork`]), so neither the
//! serialization nor the fsync holds up apply or a runtime worker.
//!
//! A build runs beside apply and may also run beside the install of a
//! snapshot received from the leader. Whichever ends last must not leave an
//! older snapshot in place of a newer one (the log behind the newer one may
//! already be purged), so the file and the kept snapshot are replaced by a
//! build only with one at least as new.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use hyperraft_state::{BatchOutput, SnapshotCopy, StateConfig, StateMachine};
use hyperraft_wire::{Frame, Limits};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};

use crate::{BatchResponse, NodeId, TypeConfig};

const SNAPSHOT_MAGIC: &[u8; 4] = b"HRSM";
const SNAPSHOT_FILE: &str = "snapshot.bin";

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
    /// The latest snapshot, kept whole to serve followers that need it.
    snapshot: Option<(Meta, Arc<Vec<u8>>)>,
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
    /// The last log id of the snapshot file on disk; held while the file is
    /// replaced, so replacements happen one at a time and in order.
    on_disk: Arc<Mutex<Option<LogId<NodeId>>>>,
    dir: PathBuf,
    config: StateConfig,
    work: SnapshotWork,
}

/// What failed in snapshot work done off the runtime; it becomes openraft's
/// error once back on it (which is too large to pass around by value).
#[derive(Debug)]
enum SnapshotFault {
    /// Writing the stream of the state.
    Serialize(std::io::Error),
    /// A received snapshot does not decode.
    Decode(hyperraft_state::SnapshotError),
    /// Writing the file, or the work could not run.
    Persist(std::io::Error),
}

impl SnapshotFault {
    fn into_storage(self, meta: &Meta) -> StorageError<NodeId> {
        let signature = Some(meta.signature());
        match self {
            SnapshotFault::Serialize(error) => StorageIOError::read_state_machine(&error),
            SnapshotFault::Decode(error) => StorageIOError::read_snapshot(signature, &error),
            SnapshotFault::Persist(error) => StorageIOError::write_snapshot(signature, &error),
        }
        .into()
    }
}

/// What a build's work off the lock gives back.
struct Built {
    /// The bytes to keep as the latest snapshot; none when a newer one
    /// was installed meanwhile.
    kept: Option<Arc<Vec<u8>>>,
    /// The bytes handed to openraft, which takes them by value.
    returned: Vec<u8>,
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
        let mut applied = Applied {
            state: StateMachine::new(config.clone())?,
            last_applied: None,
            membership: StoredMembership::default(),
            output: BatchOutput::default(),
            snapshot: None,
            snapshots_built: 0,
        };
        let path = dir.join(SNAPSHOT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let (meta, state_bytes) = decode_snapshot_file(&bytes)
                    .map_err(|reason| StateMachineError::Damaged { path: path.clone(), reason })?;
                applied.state = StateMachine::read_snapshot(state_bytes, config.clone())
                    .map_err(|error| StateMachineError::Damaged { path: path.clone(), reason: error.to_string() })?;
                applied.last_applied = meta.last_log_id;
                applied.membership = meta.last_membership.clone();
                applied.snapshot = Some((meta, Arc::new(state_bytes.to_vec())));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io(error)),
        }
        let on_disk = applied.last_applied;
        Ok(StateMachineStore {
            applied: Arc::new(Mutex::new(applied)),
            on_disk: Arc::new(Mutex::new(on_disk)),
            dir: dir.to_path_buf(),
            config,
            work,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Applied> {
        self.applied.lock().expect("a panic while applying poisons the state machine")
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

    /// Writes the snapshot file (temporary file, sync, rename, directory
    /// sync); answers whether it did, which only [`Replace::IfNotOlder`] may
    /// decline.
    fn persist(&self, meta: &Meta, state_bytes: &[u8], replace: Replace) -> std::io::Result<bool> {
        let mut on_disk = self.on_disk.lock().expect("a panic while persisting poisons the snapshot file");
        if replace == Replace::IfNotOlder && meta.last_log_id < *on_disk {
            return Ok(false);
        }
        let head = snapshot_file_head(meta);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&head), state_bytes);
        let temporary = self.dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&head)?;
        file.write_all(state_bytes)?;
        file.write_all(&crc.to_le_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, self.dir.join(SNAPSHOT_FILE))?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        *on_disk = meta.last_log_id;
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

    /// Writes the stream of `copy` and persists it: the part of a build
    /// that runs without the lock.
    fn write_built(&self, meta: &Meta, copy: SnapshotCopy) -> Result<Built, SnapshotFault> {
        let mut bytes = Vec::new();
        copy.write_snapshot(&mut bytes).map_err(SnapshotFault::Serialize)?;
        drop(copy);
        let persisted = self.persist(meta, &bytes, Replace::IfNotOlder).map_err(SnapshotFault::Persist)?;
        // openraft takes the snapshot's data by value, and the latest one is
        // kept to serve followers: two copies, made here, not under the lock.
        let returned = bytes.clone();
        Ok(Built { kept: persisted.then(|| Arc::new(bytes)), returned })
    }

    /// Keeps `snapshot` as the latest one unless a newer one is kept
    /// already; the one it replaces is freed after the lock is released.
    fn keep_latest(&self, meta: &Meta, bytes: Arc<Vec<u8>>) {
        let mut applied = self.lock();
        if applied.snapshot.as_ref().is_some_and(|(kept, _)| kept.last_log_id > meta.last_log_id) {
            return;
        }
        let replaced = applied.snapshot.replace((meta.clone(), bytes));
        drop(applied);
        drop(replaced);
    }
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

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = snapshot.into_inner();
        let (store, work_meta) = (self.clone(), meta.clone());
        let (state, bytes) = self
            .offload(move || {
                let state = StateMachine::read_snapshot(bytes.as_slice(), store.config.clone())
                    .map_err(SnapshotFault::Decode)?;
                store.persist(&work_meta, &bytes, Replace::Always).map_err(SnapshotFault::Persist)?;
                Ok((state, bytes))
            })
            .await
            .map_err(|fault| fault.into_storage(meta))?;
        let mut applied = self.lock();
        let replaced = std::mem::replace(&mut applied.state, state);
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        let replaced_snapshot = applied.snapshot.replace((meta.clone(), Arc::new(bytes)));
        drop(applied);
        // The old state may be large; freeing it need not stop apply.
        drop((replaced, replaced_snapshot));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let kept = self.lock().snapshot.clone();
        // The copy openraft takes by value is made after the lock is released.
        Ok(kept.map(|(meta, bytes)| Snapshot { meta, snapshot: Box::new(Cursor::new(bytes.as_ref().clone())) }))
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
        let built = self
            .offload(move || store.write_built(&work_meta, copy))
            .await
            .map_err(|fault| fault.into_storage(&meta))?;
        if let Some(kept) = built.kept {
            self.keep_latest(&meta, kept);
        }
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(built.returned)) })
    }
}

/// Everything of a snapshot file before the state bytes: magic, metadata
/// length, metadata. The file is this, the state bytes, and the crc32c of
/// both.
fn snapshot_file_head(meta: &Meta) -> Vec<u8> {
    let meta_bytes = postcard::to_stdvec(meta).expect("snapshot metadata serializes");
    let mut head = Vec::with_capacity(8 + meta_bytes.len());
    head.extend_from_slice(SNAPSHOT_MAGIC);
    head.extend_from_slice(&(meta_bytes.len() as u32).to_le_bytes());
    head.extend_from_slice(&meta_bytes);
    head
}

fn decode_snapshot_file(bytes: &[u8]) -> Result<(Meta, &[u8]), String> {
    if bytes.len() < 12 || &bytes[..4] != SNAPSHOT_MAGIC {
        return Err("not a snapshot file".to_string());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err("checksum mismatch".to_string());
    }
    let meta_len = u32::from_le_bytes(body[4..8].try_into().expect("4 bytes")) as usize;
    let meta_end = 8usize.checked_add(meta_len).filter(|end| *end <= body.len()).ok_or("truncated metadata")?;
    let meta: Meta = postcard::from_bytes(&body[8..meta_end]).map_err(|error| error.to_string())?;
    Ok((meta, &body[meta_end..]))
}

#[cfg(test)]
mod tests;
