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
//! Building a snapshot serializes the state under the lock, so apply pauses
//! for that long; writing the file happens after the lock is released.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use hyperraft_state::{BatchOutput, StateConfig, StateMachine};
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

/// The state machine side of a replica's storage. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct StateMachineStore {
    applied: Arc<Mutex<Applied>>,
    dir: PathBuf,
    config: StateConfig,
}

impl StateMachineStore {
    /// Opens (creating if needed) `dir`, restoring the latest snapshot in it.
    pub fn open(dir: &Path, config: StateConfig) -> Result<StateMachineStore, StateMachineError> {
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
        Ok(StateMachineStore { applied: Arc::new(Mutex::new(applied)), dir: dir.to_path_buf(), config })
    }

    fn lock(&self) -> MutexGuard<'_, Applied> {
        self.applied.lock().expect("a panic while applying poisons the state machine")
    }

    /// Digest of the applied state (equal on replicas at the same applied index).
    pub fn digest(&self) -> u64 {
        self.lock().state.digest()
    }

    /// The last applied log id and the digest of the state at it, taken together.
    pub fn applied_digest(&self) -> (Option<LogId<NodeId>>, u64) {
        let applied = self.lock();
        (applied.last_applied, applied.state.digest())
    }

    /// The last applied log id.
    pub fn last_applied(&self) -> Option<LogId<NodeId>> {
        self.lock().last_applied
    }

    /// Runs `read` against the applied state (for serializable reads).
    pub fn read<T>(&self, read: impl FnOnce(&StateMachine) -> T) -> T {
        read(&self.lock().state)
    }

    fn persist(&self, meta: &Meta, state_bytes: &[u8]) -> std::io::Result<()> {
        let bytes = encode_snapshot_file(meta, state_bytes);
        let temporary = self.dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, self.dir.join(SNAPSHOT_FILE))?;
        std::fs::File::open(&self.dir)?.sync_all()
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
        let state = StateMachine::read_snapshot(bytes.as_slice(), self.config.clone())
            .map_err(|error| StorageIOError::read_snapshot(Some(meta.signature()), &error))?;
        self.persist(meta, &bytes).map_err(|error| StorageIOError::write_snapshot(Some(meta.signature()), &error))?;
        let mut applied = self.lock();
        applied.state = state;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        applied.snapshot = Some((meta.clone(), Arc::new(bytes)));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let applied = self.lock();
        Ok(applied.snapshot.as_ref().map(|(meta, bytes)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(bytes.as_ref().clone())),
        }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (meta, bytes) = {
            let mut applied = self.lock();
            let mut bytes = Vec::new();
            applied.state.write_snapshot(&mut bytes).map_err(|error| StorageIOError::read_state_machine(&error))?;
            applied.snapshots_built += 1;
            let snapshot_id = match applied.last_applied {
                Some(log_id) => format!("{}-{}-{}", log_id.leader_id, log_id.index, applied.snapshots_built),
                None => format!("empty-{}", applied.snapshots_built),
            };
            let meta =
                Meta { last_log_id: applied.last_applied, last_membership: applied.membership.clone(), snapshot_id };
            (meta, bytes)
        };
        self.persist(&meta, &bytes).map_err(|error| StorageIOError::write_snapshot(Some(meta.signature()), &error))?;
        let bytes = Arc::new(bytes);
        self.lock().snapshot = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(bytes.as_ref().clone())) })
    }
}

fn encode_snapshot_file(meta: &Meta, state_bytes: &[u8]) -> Vec<u8> {
    let meta_bytes = postcard::to_stdvec(meta).expect("snapshot metadata serializes");
    let mut bytes = Vec::with_capacity(12 + meta_bytes.len() + state_bytes.len());
    bytes.extend_from_slice(SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&(meta_bytes.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&meta_bytes);
    bytes.extend_from_slice(state_bytes);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
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
