//! [`SimLog`]: our real [`LogStore`] with every write waited for on the spot.
//!
//! The log's writer is an OS thread. Awaited normally, its fsync would race
//! the paused tokio clock: while the runtime waits for the writer it has
//! nothing to run, so it jumps virtual time to the next timer, and how far
//! it got depends on how fast the disk was. Blocking the runtime thread
//! until the writer answers makes every log write take zero virtual time,
//! the same in every run.
//!
//! A consequence the fault model states plainly: an append returns only
//! once it is synced, so at any instant the simulator can crash a node,
//! everything the log ever acknowledged is on disk. Writes lost because
//! they were not yet fsync'd are modelled by the torn tail instead
//! ([`tear_tail`]): garbage after the last record, as a write cut short by
//! power loss leaves it, which recovery must cut off.

use std::fmt::Debug;
use std::future::Future;
use std::io::Write;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use hyperraft_raft::log::{LogReader, LogStore};
use hyperraft_raft::{NodeId, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};

/// The log as openraft sees it in the simulator.
pub struct SimLog {
    inner: LogStore,
}

impl SimLog {
    pub fn new(inner: LogStore) -> SimLog {
        SimLog { inner }
    }
}

/// Runs `future` to completion on this thread, parking while it waits.
/// Only for futures that other threads complete (the log writer): tokio's
/// cooperative budget is lifted so a spent budget cannot spin forever.
fn wait_here<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(tokio::task::unconstrained(future));
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

impl RaftLogReader<TypeConfig> for SimLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        self.inner.try_get_log_entries(range).await
    }
}

impl RaftLogStorage<TypeConfig> for SimLog {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        Ok(self.inner.log_state())
    }

    async fn get_log_reader(&mut self) -> LogReader {
        self.inner.reader()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        wait_here(self.inner.save_vote(vote))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.inner.read_vote().await
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        wait_here(self.inner.save_committed(committed))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        self.inner.read_committed().await
    }

    /// Appends, waits until the entries are synced, then tells openraft.
    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write_error = |error| StorageError::from(StorageIOError::write_logs(AnyError::new(&error)));
        let receipt = wait_here(self.inner.submit_append(entries)).map_err(write_error)?;
        let flushed = wait_here(receipt.flushed());
        callback.log_io_completed(flushed.map_err(std::io::Error::other));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        wait_here(self.inner.truncate(log_id))
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        wait_here(self.inner.purge(log_id))
    }
}

/// Appends `garbage` to the newest segment of the log in `log_dir`, as a
/// record whose write was cut short. Does nothing to an empty log.
pub fn tear_tail(log_dir: &Path, garbage: &[u8]) -> std::io::Result<bool> {
    let mut segments: Vec<_> = std::fs::read_dir(log_dir)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .collect();
    segments.sort();
    let Some(last) = segments.last() else { return Ok(false) };
    let mut file = std::fs::OpenOptions::new().append(true).open(last)?;
    file.write_all(garbage)?;
    file.sync_data()?;
    Ok(true)
}
