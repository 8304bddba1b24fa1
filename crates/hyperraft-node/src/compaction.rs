//! Log compaction by bytes: a snapshot once this node's log has taken
//! `raft.snapshot_after_log_bytes` since the last one.
//!
//! openraft's own policy counts entries, and an entry is a whole batch of
//! any size, so it bounds the log only in entries. [`SnapshotTrigger`] runs
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
//! The task ends when the node shuts down or drops its [`SnapshotTrigger`],
//! or when Raft stops by itself (its metrics channel closes).

use std::time::Duration;

use hyperraft_raft::log::LogReader;
use hyperraft_raft::{NodeId, TypeConfig};
use openraft::{LogId, Raft};
use tokio::task::JoinHandle;

/// How often the log's size is looked at. At the 50 MB/s a replica's log
/// takes at full load, the bound is overshot by at most about 12 MB.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How long a trigger may go without a snapshot before it may be repeated.
pub(crate) const REARM_AFTER: Duration = Duration::from_secs(60);

const REARM_POLLS: u64 = (REARM_AFTER.as_millis() / POLL_INTERVAL.as_millis()) as u64;

/// The running watcher of one node; see the module documentation.
pub(crate) struct SnapshotTrigger {
    task: JoinHandle<()>,
}

impl SnapshotTrigger {
    /// Starts watching `log` (this node's log, through a reader) for `raft`.
    pub(crate) fn start(raft: Raft<TypeConfig>, log: LogReader, log_bytes_max: u64) -> SnapshotTrigger {
        let snapshot = raft.metrics().borrow().snapshot;
        let watch = Watch::new(log_bytes_max, snapshot, log.metrics().bytes_written);
        SnapshotTrigger { task: tokio::spawn(watch_log(raft, log, watch)) }
    }

    /// Stops the watcher and waits until its task is gone, with its handle
    /// on Raft: Raft's network holds the node's socket, which a restarted
    /// node binds again at once.
    pub(crate) async fn stop(mut self) {
        self.task.abort();
        let _cancelled = (&mut self.task).await;
    }
}

impl Drop for SnapshotTrigger {
    /// The task holds a handle on Raft; it must not outlive the node.
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn watch_log(raft: Raft<TypeConfig>, log: LogReader, mut watch: Watch) {
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
                bytes_written: log.metrics().bytes_written,
                poll,
            }
        };
        let grown = sample.bytes_written.saturating_sub(watch.bytes_covered);
        if watch.next(sample) == Decision::Trigger {
            tracing::info!(bytes = grown, "the log passed raft.snapshot_after_log_bytes; building a snapshot");
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
        }
    }
}

/// What the watcher sees at one poll.
#[derive(Clone, Copy, Debug)]
struct Sample {
    snapshot: Option<LogId<NodeId>>,
    last_applied: Option<LogId<NodeId>>,
    /// The log's `bytes_written` counter.
    bytes_written: u64,
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
        if sample.bytes_written.saturating_sub(self.bytes_covered) < self.log_bytes_max {
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
