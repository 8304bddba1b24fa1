//! [`LogStore`]: the log as openraft sees it, plus an inherent API for
//! pipelined appends and metrics.

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::config::LogConfig;
use super::error::LogError;
use super::meta;
use super::reader::LogReader;
use super::record::{self, RecordHead};
use super::recovery;
use super::shared::Shared;
use super::writer::{self, AppendOp, Flushed, LogMetrics, WriteOp};
use crate::{NodeId, TypeConfig};

/// The writer queue's byte budget is counted in units of this many bytes,
/// so a semaphore of `u32` permits covers any sensible budget.
const BUDGET_UNIT_BYTES: u64 = 1024;

/// The durable Raft log of one node. See the module documentation for the
/// format and the guarantees.
pub struct LogStore {
    shared: Arc<Shared>,
    config: LogConfig,
    /// `None` only while dropping, to close the queue before joining.
    sender: Option<mpsc::Sender<WriteOp>>,
    budget: Arc<Semaphore>,
    budget_units_max: u32,
    writer: Option<thread::JoinHandle<()>>,
    reader: LogReader,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

/// Resolves when the entries of one [`LogStore::submit_append`] are durable.
#[must_use = "an append is durable only once its receipt resolves"]
pub struct AppendReceipt {
    receiver: oneshot::Receiver<io::Result<()>>,
}

impl AppendReceipt {
    /// Waits until the entries are synced to disk, or the write failed.
    pub async fn flushed(self) -> Result<(), LogError> {
        match self.receiver.await {
            Ok(result) => result.map_err(LogError::Write),
            Err(_) => Err(LogError::WriterStopped),
        }
    }
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, recovering what is on disk, and
    /// starts its writer thread. Blocks on file IO; see [`Self::open_async`].
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, LogError> {
        config.validate()?;
        let recovered = recovery::recover(dir, &config)?;
        let shared = Arc::new(Shared::new(dir.to_owned(), recovered.index, config.read_bytes_max));
        let (sender, receiver) = mpsc::channel(config.queue_depth_max);
        let writer = writer::spawn(shared.clone(), receiver, &config).map_err(|error| LogError::io(dir, error))?;
        let budget_units_max = (config.queue_bytes_max / BUDGET_UNIT_BYTES).min(u64::from(u32::MAX)) as u32;
        Ok(Self {
            reader: LogReader::new(shared.clone()),
            shared,
            config,
            sender: Some(sender),
            budget: Arc::new(Semaphore::new(budget_units_max as usize)),
            budget_units_max,
            writer: Some(writer),
            vote: recovered.vote,
            committed: recovered.committed,
        })
    }

    /// [`Self::open`] on tokio's blocking pool, for callers on a runtime.
    pub async fn open_async(dir: PathBuf, config: LogConfig) -> Result<Self, LogError> {
        match tokio::task::spawn_blocking(move || Self::open(&dir, config)).await {
            Ok(result) => result,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    /// Queues entries for the writer and returns once they are readable,
    /// without waiting for the disk; the receipt resolves when they are
    /// durable. Appends issued back to back share syncs (group commit).
    ///
    /// Entries at or below the purged log id are skipped: they are already
    /// covered by a snapshot, and storing them would leave a hole before the
    /// entries after the purge. (openraft's storage suite appends such
    /// entries after purging to match a state machine that is ahead.)
    pub async fn submit_append<I>(&mut self, entries: I) -> Result<AppendReceipt, LogError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>>,
    {
        let (sender, receiver) = oneshot::channel();
        self.submit(entries.into_iter().collect(), Flushed::Receipt(sender)).await?;
        Ok(AppendReceipt { receiver })
    }

    /// What the writer did since open: appends, groups, syncs.
    pub fn metrics(&self) -> LogMetrics {
        self.shared.counters.snapshot()
    }

    /// Every sync (of data, metadata or the directory) issued since open.
    pub fn sync_count(&self) -> u64 {
        self.metrics().syncs()
    }

    /// A new reader sharing this log.
    pub fn reader(&self) -> LogReader {
        LogReader::new(self.shared.clone())
    }

    /// The purged log id and the last log id, without a runtime.
    pub fn log_state(&self) -> LogState<TypeConfig> {
        let index = self.shared.index();
        LogState { last_purged_log_id: index.purged(), last_log_id: index.last_log_id() }
    }

    /// Encodes and plans an append, then queues it. Every step that can fail
    /// or wait comes before the index changes, so an error or a cancelled
    /// call leaves the log as it was.
    async fn submit(&mut self, mut entries: Vec<Entry<TypeConfig>>, flushed: Flushed) -> Result<(), LogError> {
        if let Some(purged) = self.shared.index().purged() {
            entries.retain(|entry| entry.log_id.index > purged.index);
        }
        let mut buffer = self.shared.take_buffer();
        let heads = match encode_all(&mut buffer, &entries, self.config.record_bytes_max) {
            Ok(heads) => heads,
            Err(error) => {
                self.shared.recycle(buffer);
                return Err(error);
            }
        };
        self.check_continues(heads.first())?;
        let budget = self.reserve_budget(buffer.len()).await?;
        let sender = self.sender.as_ref().ok_or(LogError::WriterStopped)?;
        let permit = sender.reserve().await.map_err(|_| LogError::WriterStopped)?;
        let (chunks, epoch) = {
            let mut index = self.shared.index_mut();
            (index.append(&heads, entries), index.epoch())
        };
        permit.send(WriteOp::Append(AppendOp {
            buffer,
            chunks,
            entries: heads.len() as u64,
            last_index: heads.last().map(|head| head.index),
            epoch,
            flushed,
            budget,
        }));
        Ok(())
    }

    fn check_continues(&self, first: Option<&RecordHead>) -> Result<(), LogError> {
        let (Some(first), Some(expected)) = (first, self.shared.index().next_index()) else {
            return Ok(());
        };
        if first.index != expected {
            return Err(LogError::NotContiguous { expected, got: first.index });
        }
        Ok(())
    }

    /// Waits for room for `bytes` in the writer queue. One append larger
    /// than the whole budget waits for the queue to empty, then goes alone.
    async fn reserve_budget(&self, bytes: usize) -> Result<OwnedSemaphorePermit, LogError> {
        let units = (bytes as u64).div_ceil(BUDGET_UNIT_BYTES).clamp(1, u64::from(self.budget_units_max));
        let budget = self.budget.clone().acquire_many_owned(units as u32).await;
        budget.map_err(|_| LogError::WriterStopped)
    }

    async fn truncate_from(&mut self, index: u64) -> Result<(), LogError> {
        let sender = self.sender.as_ref().ok_or(LogError::WriterStopped)?;
        let permit = sender.reserve().await.map_err(|_| LogError::WriterStopped)?;
        let Some(plan) = self.shared.index_mut().truncate(index) else {
            return Ok(());
        };
        let (reply, done) = oneshot::channel();
        permit.send(WriteOp::Truncate { plan, reply });
        wait(done).await
    }

    async fn purge_upto(&mut self, log_id: LogId<NodeId>) -> Result<(), LogError> {
        let purged_meta = meta::encode(&log_id);
        let sender = self.sender.as_ref().ok_or(LogError::WriterStopped)?;
        let permit = sender.reserve().await.map_err(|_| LogError::WriterStopped)?;
        let Some(plan) = self.shared.index_mut().purge(log_id) else {
            return Ok(());
        };
        let (reply, done) = oneshot::channel();
        permit.send(WriteOp::Purge { plan, meta: purged_meta, reply });
        wait(done).await
    }

    async fn write_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), LogError> {
        let (reply, done) = oneshot::channel();
        self.send(WriteOp::SaveVote { meta: meta::encode(vote), reply }).await?;
        wait(done).await?;
        self.vote = Some(*vote);
        Ok(())
    }

    async fn send(&self, op: WriteOp) -> Result<(), LogError> {
        let sender = self.sender.as_ref().ok_or(LogError::WriterStopped)?;
        sender.send(op).await.map_err(|_| LogError::WriterStopped)
    }

    /// Lets a test hold the writer: once this returns, the writer is idle
    /// inside the pause, and writes queue up behind it until the returned
    /// sender is dropped. They then form one group.
    #[cfg(test)]
    pub(crate) async fn pause_writer(&self) -> std::sync::mpsc::Sender<()> {
        let (release, released) = std::sync::mpsc::channel();
        let (paused, is_paused) = oneshot::channel();
        let pause = writer::Pause { paused, released };
        self.send(WriteOp::Pause(pause)).await.expect("writer running");
        is_paused.await.expect("writer reports the pause");
        release
    }
}

fn encode_all(
    buffer: &mut Vec<u8>,
    entries: &[Entry<TypeConfig>],
    record_bytes_max: u32,
) -> Result<Vec<RecordHead>, LogError> {
    let mut heads: Vec<RecordHead> = Vec::with_capacity(entries.len());
    for entry in entries {
        if let Some(previous) = heads.last() {
            let expected = previous.index + 1;
            if entry.log_id.index != expected {
                return Err(LogError::NotContiguous { expected, got: entry.log_id.index });
            }
        }
        heads.push(record::encode(buffer, entry, record_bytes_max)?);
    }
    Ok(heads)
}

async fn wait(done: oneshot::Receiver<io::Result<()>>) -> Result<(), LogError> {
    match done.await {
        Ok(result) => result.map_err(LogError::Write),
        Err(_) => Err(LogError::WriterStopped),
    }
}

impl Drop for LogStore {
    /// Closes the queue and waits for the writer to finish what was queued,
    /// so a store reopened on the same directory never races the old writer.
    fn drop(&mut self) {
        self.sender.take();
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("log writer thread panicked");
            }
        }
    }
}

fn write_error(error: LogError) -> StorageError<NodeId> {
    StorageIOError::write_logs(AnyError::new(&error)).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        self.reader.try_get_log_entries(range).await
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        self.reader.limited_get_log_entries(start, end).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        Ok(self.log_state())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let result = self.write_vote(vote).await;
        result.map_err(|error| StorageIOError::write_vote(AnyError::new(&error)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.vote)
    }

    /// Queues the write and returns without waiting: openraft calls this on
    /// every commit from its main loop, and the value is only a hint (see the
    /// module documentation), so it must not cost a sync round trip.
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        self.send(WriteOp::SaveCommitted { record: meta::encode_in_place(&committed) }).await.map_err(write_error)?;
        self.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.committed)
    }

    /// Returns once the entries are readable; `callback` runs once they are
    /// synced. Entries at or below the purged id are skipped, as in
    /// [`LogStore::submit_append`].
    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries = entries.into_iter().collect();
        self.submit(entries, Flushed::Raft(callback)).await.map_err(write_error)
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.truncate_from(log_id.index).await.map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.purge_upto(log_id).await.map_err(write_error)
    }
}
