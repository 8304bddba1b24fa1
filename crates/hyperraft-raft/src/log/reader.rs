//! Reading entries: from the cache when it has them, else from the segment
//! files with a checksum and identity check on every record.

use std::fmt::Debug;
use std::fs::File;
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use openraft::{AnyError, Entry, OptionalSend, RaftLogReader, StorageError, StorageIOError};

use super::error::LogError;
use super::index::{DiskRead, Source};
use super::record::{self, Parsed};
use super::shared::Shared;
use super::writer::LogMetrics;
use crate::{NodeId, TypeConfig};

/// A read fails only if it fails again on the same records; a failure after
/// a concurrent truncate or purge moved them is retried on the new layout.
const READ_ATTEMPTS_MAX: usize = 3;

/// Records read from one segment with a single pread are capped at this many
/// bytes (one larger record is still read whole), bounding the scratch buffer.
const RUN_BYTES_MAX: u64 = 8 * 1024 * 1024;

/// A reader of the log, for openraft's replication tasks. Cheap to clone;
/// each clone keeps its own open file handle.
pub struct LogReader {
    shared: Arc<Shared>,
    file: Option<(u64, File)>,
    scratch: Vec<u8>,
}

impl Clone for LogReader {
    fn clone(&self) -> Self {
        Self::new(self.shared.clone())
    }
}

impl LogReader {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared, file: None, scratch: Vec::new() }
    }

    /// The first index of the newest present entries up to `last` whose
    /// records hold at most `bytes_max` bytes together (`last + 1` when the
    /// entry at `last` alone is larger); `None` when `last` is not present.
    /// For keeping at most that many bytes of log behind a snapshot.
    pub fn kept_from(&self, last: u64, bytes_max: u64) -> Option<u64> {
        self.shared.index().suffix_start_within(last, bytes_max)
    }

    /// What the log's writer did since the log was opened (the same as
    /// [`super::LogStore::metrics`]), for a holder of a reader only, such as
    /// a task that watches how many bytes the log has taken.
    pub fn metrics(&self) -> LogMetrics {
        self.shared.counters.snapshot()
    }

    /// The present entries with indexes in `[start, end)`, stopping before
    /// `bytes_max` record bytes but always returning the first one. Entries
    /// purged or not yet appended are simply absent.
    pub fn read(&mut self, start: u64, end: u64, bytes_max: u64) -> Result<Vec<Entry<TypeConfig>>, LogError> {
        let mut attempts = 0;
        loop {
            let sources = self.shared.index().plan_read(start, end, bytes_max);
            let error = match self.fetch(&sources) {
                Ok(entries) => return Ok(entries),
                Err(error) => error,
            };
            attempts += 1;
            if attempts >= READ_ATTEMPTS_MAX || self.all_current(&sources) {
                return Err(error);
            }
            tracing::debug!(%error, "log changed under a read; reading again");
        }
    }

    fn all_current(&self, sources: &[Source]) -> bool {
        let index = self.shared.index();
        sources.iter().all(|source| match source {
            Source::Cached(_) => true,
            Source::Disk(read) => index.is_current(read),
        })
    }

    fn fetch(&mut self, sources: &[Source]) -> Result<Vec<Entry<TypeConfig>>, LogError> {
        let mut entries = Vec::with_capacity(sources.len());
        let mut position = 0;
        while position < sources.len() {
            let run = disk_run(&sources[position..]);
            if run == 0 {
                let Source::Cached(entry) = &sources[position] else {
                    unreachable!("a source that starts no disk run is cached");
                };
                entries.push(Entry::clone(entry));
                position += 1;
                continue;
            }
            self.read_run(&sources[position..position + run], &mut entries)?;
            position += run;
        }
        Ok(entries)
    }

    /// Reads consecutive records of one segment with one pread.
    fn read_run(&mut self, run: &[Source], entries: &mut Vec<Entry<TypeConfig>>) -> Result<(), LogError> {
        let first = disk(&run[0]);
        let last = disk(&run[run.len() - 1]);
        let bytes = (last.offset + u64::from(last.len) - first.offset) as usize;
        self.scratch.resize(bytes, 0);
        let file = open_segment(&mut self.file, first)?;
        let io_error = |error| LogError::io(first.path.to_path_buf(), error);
        file.read_exact_at(&mut self.scratch[..bytes], first.offset).map_err(io_error)?;
        for source in run {
            let read = disk(source);
            let start = (read.offset - first.offset) as usize;
            let record = &self.scratch[start..start + read.len as usize];
            entries.push(decode(record, read)?);
        }
        Ok(())
    }
}

/// How many sources from the front are disk reads of back-to-back records
/// in one segment, within `RUN_BYTES_MAX`.
fn disk_run(sources: &[Source]) -> usize {
    let Some(Source::Disk(first)) = sources.first() else {
        return 0;
    };
    let mut end = first.offset + u64::from(first.len);
    let mut count = 1;
    for source in &sources[1..] {
        let Source::Disk(read) = source else { break };
        let contiguous = read.segment_id == first.segment_id && read.offset == end;
        if !contiguous || read.offset + u64::from(read.len) - first.offset > RUN_BYTES_MAX {
            break;
        }
        end = read.offset + u64::from(read.len);
        count += 1;
    }
    count
}

fn disk(source: &Source) -> &DiskRead {
    match source {
        Source::Disk(read) => read,
        Source::Cached(_) => unreachable!("runs hold disk reads only"),
    }
}

/// The file of a segment, reusing the handle of the last one read.
fn open_segment<'a>(cached: &'a mut Option<(u64, File)>, read: &DiskRead) -> Result<&'a File, LogError> {
    if cached.as_ref().is_some_and(|(id, _)| *id == read.segment_id) {
        return Ok(&cached.as_ref().expect("checked above").1);
    }
    let file = File::open(&read.path).map_err(|error| LogError::io(read.path.to_path_buf(), error))?;
    Ok(&cached.insert((read.segment_id, file)).1)
}

/// Checks one record against what the index says it holds, and decodes it.
fn decode(record: &[u8], read: &DiskRead) -> Result<Entry<TypeConfig>, LogError> {
    let corrupt = |reason| LogError::Corrupt { segment: read.path.to_path_buf(), offset: read.offset, reason };
    let parsed = record::parse(record);
    let Parsed::Valid { index, term, payload, record_bytes } = parsed else {
        return Err(corrupt(parsed.damage()));
    };
    if index != read.log_id.index || term != read.log_id.leader_id.term {
        return Err(corrupt("record header does not match the index"));
    }
    if record_bytes != read.len as usize {
        return Err(corrupt("record length does not match the index"));
    }
    let entry = record::decode_entry(payload).ok_or(corrupt("payload does not decode"))?;
    if entry.log_id != read.log_id {
        return Err(corrupt("payload log id does not match the index"));
    }
    Ok(entry)
}

/// `[start, end)` of any range of indexes.
pub(crate) fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(start) => *start,
        Bound::Excluded(start) => start.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(end) => end.saturating_add(1),
        Bound::Excluded(end) => *end,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

pub(crate) fn read_error(error: LogError) -> StorageError<NodeId> {
    StorageIOError::read_logs(AnyError::new(&error)).into()
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let (start, end) = bounds(&range);
        self.read(start, end, u64::MAX).map_err(read_error)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let bytes_max = self.shared.read_bytes_max;
        self.read(start, end, bytes_max).map_err(read_error)
    }
}
