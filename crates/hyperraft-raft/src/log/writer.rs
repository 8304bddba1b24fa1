//! The writer thread: it alone writes the log's files, applies every write
//! in queue order, and commits appends in groups that share one fdatasync.
//!
//! Group commit: the writer blocks for the first queued write, then takes
//! every write already queued behind it (up to `queue_depth_max`) as one
//! group. It writes the records of all the group's appends, calls
//! `sync_data` once, and only then completes the appends' callbacks. While it
//! syncs, new appends queue up and form the next group, so the number of
//! syncs follows the disk's speed rather than the number of appends. A vote,
//! truncate or purge in a group first syncs and completes the appends before
//! it (openraft requires all log IO in order), then does its own durable
//! write. The newest committed log id of a group is written after its sync,
//! in place and without a sync of its own: it is a hint for recovery, not
//! data (see `meta`).
//!
//! Once a group's appends are acknowledged, the writer drops the group's
//! whole pages from the page cache (see `page_cache`): recent entries are
//! read from the log's entry cache, so the pages would only crowd it.
//!
//! After any IO error the writer refuses every later write: after a failed
//! fsync the file's state is unknown and retrying could report lost data as
//! durable.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use openraft::storage::LogFlushed;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use super::config::LogConfig;
use super::index::{Chunk, PurgePlan, TruncatePlan};
use super::meta;
use super::segment;
use super::shared::Shared;
use crate::TypeConfig;

/// Answer to a write that the caller awaits.
pub(crate) type Reply = oneshot::Sender<io::Result<()>>;

/// One write, in the order the store issued it.
pub(crate) enum WriteOp {
    Append(AppendOp),
    Truncate {
        plan: TruncatePlan,
        reply: Reply,
    },
    Purge {
        plan: PurgePlan,
        meta: Vec<u8>,
        reply: Reply,
    },
    SaveVote {
        meta: Vec<u8>,
        reply: Reply,
    },
    SaveCommitted {
        record: [u8; meta::IN_PLACE_BYTES],
    },
    #[cfg(test)]
    Pause(Pause),
}

/// Holds the writer so a test can queue writes behind it deterministically:
/// the writer reports through `paused`, then blocks until `released` closes.
#[cfg(test)]
pub(crate) struct Pause {
    pub paused: oneshot::Sender<()>,
    pub released: std::sync::mpsc::Receiver<()>,
}

pub(crate) struct AppendOp {
    pub buffer: Vec<u8>,
    pub chunks: Vec<Chunk>,
    pub entries: u64,
    pub last_index: Option<u64>,
    pub epoch: u64,
    pub flushed: Flushed,
    /// Queue bytes this append holds; released once it is written.
    pub budget: OwnedSemaphorePermit,
}

/// Who to tell that an append is durable.
pub(crate) enum Flushed {
    Raft(LogFlushed<TypeConfig>),
    Receipt(oneshot::Sender<io::Result<()>>),
}

impl Flushed {
    fn complete(self, result: io::Result<()>) {
        match self {
            Flushed::Raft(callback) => callback.log_io_completed(result),
            // The receipt may have been dropped by a caller that did not
            // care to wait; the write stands either way.
            Flushed::Receipt(sender) => drop(sender.send(result)),
        }
    }
}

/// Counters kept by the writer, read through [`LogMetrics`].
#[derive(Default)]
pub(crate) struct Counters {
    appends: AtomicU64,
    entries: AtomicU64,
    bytes_written: AtomicU64,
    groups: AtomicU64,
    data_syncs: AtomicU64,
    meta_syncs: AtomicU64,
    directory_syncs: AtomicU64,
}

/// What the writer did since the store opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogMetrics {
    /// Append calls written.
    pub appends: u64,
    /// Entries written.
    pub entries: u64,
    /// Record bytes written to segments.
    pub bytes_written: u64,
    /// Groups the writer took from its queue.
    pub groups: u64,
    /// `sync_data` calls on segment files (group commits, rolls, truncates).
    pub data_syncs: u64,
    /// fsyncs of metadata files (vote, purged).
    pub meta_syncs: u64,
    /// fsyncs of the log directory (segment created or deleted, metadata renamed).
    pub directory_syncs: u64,
}

impl LogMetrics {
    /// Every sync the writer issued, of any kind.
    pub fn syncs(&self) -> u64 {
        self.data_syncs + self.meta_syncs + self.directory_syncs
    }
}

impl Counters {
    pub(crate) fn snapshot(&self) -> LogMetrics {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        LogMetrics {
            appends: load(&self.appends),
            entries: load(&self.entries),
            bytes_written: load(&self.bytes_written),
            groups: load(&self.groups),
            data_syncs: load(&self.data_syncs),
            meta_syncs: load(&self.meta_syncs),
            directory_syncs: load(&self.directory_syncs),
        }
    }

    fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }
}

/// Starts the writer thread; it exits once every sender is dropped and the
/// queue is drained.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    receiver: mpsc::Receiver<WriteOp>,
    config: &LogConfig,
) -> io::Result<thread::JoinHandle<()>> {
    let writer = Writer {
        syncs: SyncMetrics::new(config.metrics_node),
        shared,
        receiver,
        group_ops_max: config.queue_depth_max,
        sync_appends: config.sync_appends,
        open: None,
        pending: Vec::new(),
        written: None,
        committed: None,
        committed_file: None,
        failure: None,
    };
    thread::Builder::new().name("hyperraft-log-writer".into()).spawn(move || writer.run())
}

struct OpenSegment {
    id: u64,
    file: File,
    dirty: bool,
    /// The end of the records written to this file while open.
    end: u64,
    /// Cached pages before this offset were dropped after their sync.
    dropped: u64,
}

/// Page cache granularity assumed when rounding what was dropped down; the
/// kernel itself keeps any partial page of a dropped range.
const PAGE_BYTES: u64 = 4096;

/// Synced bytes left cached before they are dropped in one call. A drop
/// costs a system call that may have to drain every CPU's page lists, and
/// a sync of a few small appends would pay it for a page or two: measured
/// on one put at a time, dropping after every group added about 0.08 ms
/// to a commit's p50. Under load a group is larger than this anyway.
const DROP_STEP_BYTES: u64 = 4 << 20;

impl OpenSegment {
    /// Once [`DROP_STEP_BYTES`] were written since the last drop, drops the
    /// file's pages; call only when everything written is synced, so the
    /// pages are clean. Entries read back soon come from the log's entry
    /// cache, not these pages (see `page_cache`).
    fn drop_synced_pages(&mut self) {
        if self.end - self.dropped >= DROP_STEP_BYTES {
            crate::page_cache::drop_clean(&self.file, self.dropped, self.end - self.dropped);
            self.dropped = self.end / PAGE_BYTES * PAGE_BYTES;
        }
    }
}

/// The error that stopped the writer, kept to fail every later write.
struct Failure {
    kind: io::ErrorKind,
    message: String,
}

impl Failure {
    fn to_error(&self) -> io::Error {
        io::Error::new(self.kind, format!("log writer failed earlier: {}", self.message))
    }
}

/// Prometheus series of the writer's syncs, labelled with the node.
struct SyncMetrics {
    data: metrics::Counter,
    meta: metrics::Counter,
    directory: metrics::Counter,
    /// Latency of the group commit's `sync_data`.
    data_seconds: metrics::Histogram,
}

impl SyncMetrics {
    fn new(node: u64) -> SyncMetrics {
        let node = node.to_string();
        let fsyncs = |kind: &'static str| metrics::counter!("hyperraft_log_fsyncs_total", "node" => node.clone(), "kind" => kind);
        SyncMetrics {
            data: fsyncs("data"),
            meta: fsyncs("meta"),
            directory: fsyncs("directory"),
            data_seconds: metrics::histogram!("hyperraft_log_fsync_seconds", "node" => node.clone()),
        }
    }
}

struct Writer {
    syncs: SyncMetrics,
    shared: Arc<Shared>,
    receiver: mpsc::Receiver<WriteOp>,
    group_ops_max: usize,
    /// [`LogConfig::sync_appends`]: false skips the group commit's `sync_data` (unsafe).
    sync_appends: bool,
    open: Option<OpenSegment>,
    /// Appends written in this group, completed at its sync.
    pending: Vec<Flushed>,
    /// The newest (epoch, index) written and not yet synced.
    written: Option<(u64, u64)>,
    /// The newest committed log id of this group, written after its sync.
    committed: Option<[u8; meta::IN_PLACE_BYTES]>,
    /// `committed.meta`, opened at its first write.
    committed_file: Option<File>,
    failure: Option<Failure>,
}

impl Writer {
    fn run(mut self) {
        let mut group = Vec::with_capacity(self.group_ops_max);
        while let Some(first) = self.receiver.blocking_recv() {
            group.push(first);
            while group.len() < self.group_ops_max {
                match self.receiver.try_recv() {
                    Ok(op) => group.push(op),
                    Err(_) => break,
                }
            }
            for op in group.drain(..) {
                self.apply(op);
            }
            self.finish_group();
        }
    }

    fn apply(&mut self, op: WriteOp) {
        match op {
            WriteOp::Append(append) => self.append(append),
            WriteOp::Truncate { plan, reply } => {
                let result = self.attempt(|writer| writer.truncate(&plan));
                drop(reply.send(result));
            }
            WriteOp::Purge { plan, meta, reply } => {
                let result = self.attempt(|writer| writer.purge(&plan, &meta));
                drop(reply.send(result));
            }
            WriteOp::SaveVote { meta, reply } => {
                let result = self.attempt(|writer| writer.save_vote(&meta));
                drop(reply.send(result));
            }
            WriteOp::SaveCommitted { record } => self.committed = Some(record),
            #[cfg(test)]
            WriteOp::Pause(pause) => {
                // Either side closing just ends the pause.
                let _ = pause.paused.send(());
                let _ = pause.released.recv();
            }
        }
    }

    /// Runs one piece of IO unless the writer already failed; a failure stops
    /// the writer for good and fails the appends waiting for a sync.
    fn attempt(&mut self, work: impl FnOnce(&mut Self) -> io::Result<()>) -> io::Result<()> {
        if let Some(failure) = &self.failure {
            return Err(failure.to_error());
        }
        let result = work(self);
        if let Err(error) = &result {
            tracing::error!(%error, "log writer failed; refusing all later writes");
            let failure = Failure { kind: error.kind(), message: error.to_string() };
            for flushed in self.pending.drain(..) {
                flushed.complete(Err(failure.to_error()));
            }
            self.written = None;
            self.failure = Some(failure);
        }
        result
    }

    fn append(&mut self, append: AppendOp) {
        let AppendOp { buffer, chunks, entries, last_index, epoch, flushed, budget } = append;
        let result = self.attempt(|writer| writer.write_chunks(&buffer, &chunks));
        drop(budget);
        let bytes = buffer.len() as u64;
        self.shared.recycle(buffer);
        if let Err(error) = result {
            flushed.complete(Err(error));
            return;
        }
        let counters = &self.shared.counters;
        Counters::add(&counters.appends, 1);
        Counters::add(&counters.entries, entries);
        Counters::add(&counters.bytes_written, bytes);
        if let Some(last_index) = last_index {
            self.written = Some((epoch, last_index));
        }
        self.pending.push(flushed);
    }

    fn write_chunks(&mut self, buffer: &[u8], chunks: &[Chunk]) -> io::Result<()> {
        for chunk in chunks {
            let segment = self.segment_for(chunk)?;
            segment.file.write_all_at(&buffer[chunk.buffer_start..chunk.buffer_end], chunk.offset)?;
            segment.dirty = true;
            segment.end = segment.end.max(chunk.offset + (chunk.buffer_end - chunk.buffer_start) as u64);
        }
        Ok(())
    }

    /// The open segment a chunk goes to, switching files if needed. The file
    /// left behind is synced first, so only the newest segment can ever hold
    /// unsynced records: recovery relies on that to call damage in an older
    /// segment corruption.
    fn segment_for(&mut self, chunk: &Chunk) -> io::Result<&mut OpenSegment> {
        if self.open.as_ref().is_some_and(|open| open.id == chunk.segment_id) {
            return Ok(self.open.as_mut().expect("checked above"));
        }
        self.sync_open()?;
        self.drop_synced_pages();
        let file = if chunk.create {
            let file = OpenOptions::new().write(true).create_new(true).open(&chunk.path)?;
            meta::sync_directory(&self.shared.dir)?;
            Counters::add(&self.shared.counters.directory_syncs, 1);
            self.syncs.directory.increment(1);
            file
        } else {
            OpenOptions::new().write(true).open(&chunk.path)?
        };
        let (end, dropped) = (chunk.offset, chunk.offset / PAGE_BYTES * PAGE_BYTES);
        let open = OpenSegment { id: chunk.segment_id, file, dirty: false, end, dropped };
        Ok(self.open.insert(open))
    }

    fn sync_open(&mut self) -> io::Result<()> {
        if let Some(open) = &mut self.open {
            if open.dirty && !self.sync_appends {
                open.dirty = false;
            } else if open.dirty {
                let started = std::time::Instant::now();
                open.file.sync_data()?;
                self.syncs.data_seconds.record(started.elapsed().as_secs_f64());
                open.dirty = false;
                Counters::add(&self.shared.counters.data_syncs, 1);
                self.syncs.data.increment(1);
            }
        }
        Ok(())
    }

    /// The group commit: one sync makes every append written so far durable,
    /// then their callbacks run.
    fn flush(&mut self) -> io::Result<()> {
        self.sync_open()?;
        for flushed in self.pending.drain(..) {
            flushed.complete(Ok(()));
        }
        if let Some((epoch, index)) = self.written.take() {
            self.shared.index_mut().mark_durable(epoch, index);
        }
        // After the callbacks, so the commit does not wait for it.
        self.drop_synced_pages();
        Ok(())
    }

    /// Drops the open segment's synced pages (see
    /// [`OpenSegment::drop_synced_pages`]); right after `sync_open`, where
    /// everything written is synced, unless syncs are off (then the pages
    /// are dirty and stay).
    fn drop_synced_pages(&mut self) {
        if let Some(open) = self.open.as_mut().filter(|_| self.sync_appends) {
            open.drop_synced_pages();
        }
    }

    fn finish_group(&mut self) {
        // A failure here already reached every waiting append through `attempt`.
        let _ = self.attempt(|writer| writer.flush());
        if let Some(record) = self.committed.take() {
            let _ = self.attempt(|writer| writer.write_committed(&record));
        }
        Counters::add(&self.shared.counters.groups, 1);
    }

    /// Overwrites `committed.meta` in place, without a sync.
    fn write_committed(&mut self, record: &[u8]) -> io::Result<()> {
        if self.committed_file.is_none() {
            let file = OpenOptions::new().write(true).create(true).truncate(false).open(&self.shared.meta.committed)?;
            self.committed_file = Some(file);
        }
        self.committed_file.as_ref().expect("opened above").write_all_at(record, 0)
    }

    fn truncate(&mut self, plan: &TruncatePlan) -> io::Result<()> {
        self.flush()?;
        // The tail segment changes; the next append reopens whatever it needs.
        self.open = None;
        for path in &plan.delete {
            segment::remove(path)?;
        }
        if !plan.delete.is_empty() {
            meta::sync_directory(&self.shared.dir)?;
            Counters::add(&self.shared.counters.directory_syncs, 1);
            self.syncs.directory.increment(1);
        }
        if let Some((path, offset)) = &plan.cut {
            let file = OpenOptions::new().write(true).open(path)?;
            file.set_len(*offset)?;
            file.sync_data()?;
            Counters::add(&self.shared.counters.data_syncs, 1);
            self.syncs.data.increment(1);
        }
        Ok(())
    }

    fn purge(&mut self, plan: &PurgePlan, purged_meta: &[u8]) -> io::Result<()> {
        self.flush()?;
        // The purged id is durable before any segment goes, so a crash
        // in between leaves extra segments (deleted at open), never a hole.
        self.replace_meta_durably(&self.shared.meta.purged.clone(), purged_meta)?;
        if !plan.delete.is_empty() {
            self.open = None;
        }
        for path in &plan.delete {
            segment::remove(path)?;
        }
        tracing::debug!(purged = %plan.purged, segments = plan.delete.len(), "purged log");
        Ok(())
    }

    fn save_vote(&mut self, vote_meta: &[u8]) -> io::Result<()> {
        self.flush()?;
        self.replace_meta_durably(&self.shared.meta.vote.clone(), vote_meta)
    }

    fn replace_meta_durably(&self, path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
        meta::replace(path, bytes)?;
        Counters::add(&self.shared.counters.meta_syncs, 1);
        Counters::add(&self.shared.counters.directory_syncs, 1);
        self.syncs.meta.increment(1);
        self.syncs.directory.increment(1);
        Ok(())
    }
}
