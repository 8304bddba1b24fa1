//! Log compaction by bytes: a snapshot once this node's log has taken
//! `raft.snapshot_after_log_bytes` since the last one, and at most
//! `raft.log_bytes_kept_after_snapshot` of log kept behind a snapshot.
//!
//! openraft's own policy counts entries, and an entry is a whole batch of
//! any size, so it bounds the log only in entries. [`LogCompaction`] runs
//! one task per node that reads, every [`POLL_INTERVAL`], the bytes the
//! log's writer has written (`LogMetrics::bytes_written`, a few atomic
//! loads) and the snapshot in Raft's metrics, and asks openraft for a
//! snapshot (`Raft::trigger().snapshot()`) when the log has grown by the
//! bound since the last snapshot it triggered or saw. It polls rather than
//! waits on the metrics channel, which changes with every commit.
//!
//! After a trigger it waits for a new snapshot to appear in the metrics
//! before it triggers again (openraft also ignores a trigger while a build
//! runs). A trigger that never yields a snapshot would leave the bound
//! unenforced, so one that has shown nothing for [`REARM_AFTER`] may be
//! repeated. It never triggers when nothing was applied past the last
//! snapshot: that snapshot would cover no more of the log. The count of
//! bytes starts at zero when the node starts, so right after a restart
//! the log may hold up to twice the bound until the next snapshot.
//!
//! Every snapshot writes the whole state, so with a state much larger than
//! the bound, snapshots every `raft.snapshot_after_log_bytes` would write
//! many times what the log does (a ledger's state grows with every
//! transfer, as fast as its log). So the log must also have grown by the
//! size of the snapshot in place before the next one is built: snapshots
//! then write at most what the log writes, and a restart replays at most
//! about a state's worth of log.
//!
//! openraft keeps `raft.entries_kept_after_snapshot` entries behind each
//! snapshot for followers that lag a little, a count again. When the task
//! sees a new snapshot, it asks the log which of the entries up to the
//! snapshot fit in `raft.log_bytes_kept_after_snapshot`
//! (`LogReader::kept_from`) and purges the older ones
//! (`Raft::trigger().purge_log`) if openraft has not already: the tighter
//! of the two bounds holds. openraft never purges past its snapshot, and
//! delays a purge while a replication still reads those entries.
//!
//! The task ends when the node shuts down or drops its [`LogCompaction`],
//! or when Raft stops by itself (its metrics channel closes).

use std::time::Duration;

use hyperraft_raft::log::LogReader;
use hyperraft_raft::state_machine::StateMachineStore;
use hyperraft_raft::{NodeId, TypeConfig};
use openraft::{LogId, Raft};
use tokio::task::JoinHandle;

use crate::config::RaftTuning;

/// How often the log's size is looked at. At the 50 MB/s a replica's log
/// takes at full load, the bound is overshot by at most about 12 MB.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How long a trigger may go without a snapshot before it may be repeated.
pub(crate) const REARM_AFTER: Duration = Duration::from_secs(60);

const REARM_POLLS: u64 = (REARM_AFTER.as_millis() / POLL_INTERVAL.as_millis()) as u64;

/// The running watcher of one node; see the module documentation.
pub(crate) struct LogCompaction {
    task: JoinHandle<()>,
}

impl LogCompaction {
    /// Starts watching `log` (this node's log, through a reader) for
    /// `raft`, whose snapshots `state` keeps.
    pub(crate) fn start(
        raft: Raft<TypeConfig>,
        log: LogReader,
        state: StateMachineStore,
        tuning: &RaftTuning,
    ) -> LogCompaction {
        let snapshot = raft.metrics().borrow().snapshot;
        let watch = Watch::new(tuning.snapshot_after_log_bytes, snapshot, log.metrics().bytes_written);
        let kept_bytes_max = tuning.log_bytes_kept_after_snapshot;
        LogCompaction { task: tokio::spawn(watch_log(raft, log, state, watch, kept_bytes_max)) }
    }

    /// Stops the watcher and waits until its task is gone, with its handle
    /// on Raft: Raft's network holds the node's socket, which a restarted
    /// node binds again at once.
    pub(crate) async fn stop(mut self) {
        self.task.abort();
        let _cancelled = (&mut self.task).await;
    }
}

impl Drop for LogCompaction {
    /// The task holds a handle on Raft; it must not outlive the node.
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn watch_log(
    raft: Raft<TypeConfig>,
    log: LogReader,
    state: StateMachineStore,
    mut watch: Watch,
    kept_bytes_max: u64,
) {
    let mut metrics = raft.metrics();
    let mut interval = tokio::time::interval(POLL_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for poll in 0.. {
        interval.tick().await;
        // Raft dropped its side of the channel: it stopped.
        if metrics.has_changed().is_err() {
            return;
        }
        let sample = {
            let metrics = metrics.borrow_and_update();
            Sample {
                snapshot: metrics.snapshot,
                last_applied: metrics.last_applied,
                purged: metrics.purged,
                bytes_written: log.metrics().bytes_written,
                snapshot_bytes: state.snapshot_bytes().unwrap_or(0),
                poll,
            }
        };
        let (grown, snapshot_before) = (sample.bytes_written.saturating_sub(watch.bytes_covered), watch.snapshot);
        if watch.next(sample) == Decision::Trigger {
            tracing::info!(
                bytes = grown,
                snapshot_bytes = sample.snapshot_bytes,
                "the log passed raft.snapshot_after_log_bytes and the snapshot's size; building a snapshot"
            );
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
        }
        let Some(snapshot) = sample.snapshot.filter(|_| sample.snapshot != snapshot_before) else { continue };
        let kept_from = log.kept_from(snapshot.index, kept_bytes_max);
        if let Some(upto) = purge_upto(snapshot.index, kept_from, sample.purged.map(|purged| purged.index)) {
            tracing::info!(upto, "the log behind the snapshot passed raft.log_bytes_kept_after_snapshot; purging");
            if raft.trigger().purge_log(upto).await.is_err() {
                return;
            }
        }
    }
}

/// The last index to purge so that the log behind a snapshot at
/// `snapshot_index` keeps only entries from `kept_from` on (what fits the
/// byte bound; `None`: the snapshot's entry is not in the log); `None` when
/// the log is purged that far already.
fn purge_upto(snapshot_index: u64, kept_from: Option<u64>, purged_index: Option<u64>) -> Option<u64> {
    let upto = kept_from?.checked_sub(1)?.min(snapshot_index);
    (Some(upto) > purged_index).then_some(upto)
}

/// What the watcher sees at one poll.
#[derive(Clone, Copy, Debug)]
struct Sample {
    snapshot: Option<LogId<NodeId>>,
    last_applied: Option<LogId<NodeId>>,
    purged: Option<LogId<NodeId>>,
    /// The log's `bytes_written` counter.
    bytes_written: u64,
    /// The size of the snapshot in place (0: none).
    snapshot_bytes: u64,
    /// Polls since the watcher started.
    poll: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Wait,
    Trigger,
}

/// The watcher's memory between polls, and its decision (pure, so it is
/// tested without a cluster).
#[derive(Clone, Copy, Debug)]
struct Watch {
    log_bytes_max: u64,
    /// The snapshot last seen in the metrics.
    snapshot: Option<LogId<NodeId>>,
    /// `bytes_written` when the log was last covered by a snapshot: when
    /// this watcher triggered the one being built, or when it saw one it
    /// did not trigger (built by the entry policy, or installed).
    bytes_covered: u64,
    /// The poll of a trigger whose snapshot has not appeared yet.
    pending_since: Option<u64>,
}

impl Watch {
    fn new(log_bytes_max: u64, snapshot: Option<LogId<NodeId>>, bytes_written: u64) -> Watch {
        Watch { log_bytes_max, snapshot, bytes_covered: bytes_written, pending_since: None }
    }

    fn next(&mut self, sample: Sample) -> Decision {
        if sample.snapshot != self.snapshot {
            self.snapshot = sample.snapshot;
            // A snapshot this watcher triggered covers the log up to about
            // the trigger; any other, up to about now.
            if self.pending_since.take().is_none() {
                self.bytes_covered = sample.bytes_written;
            }
            return Decision::Wait;
        }
        if self.pending_since.is_some_and(|since| sample.poll - since < REARM_POLLS) {
            return Decision::Wait;
        }
        if sample.bytes_written.saturating_sub(self.bytes_covered) < self.log_bytes_max.max(sample.snapshot_bytes) {
            return Decision::Wait;
        }
        let applied_index = sample.last_applied.map(|log_id| log_id.index);
        if applied_index <= self.snapshot.map(|log_id| log_id.index) {
            return Decision::Wait;
        }
        self.pending_since = Some(sample.poll);
        self.bytes_covered = sample.bytes_written;
        Decision::Trigger
    }
}

#[cfg(test)]
mod tests;
