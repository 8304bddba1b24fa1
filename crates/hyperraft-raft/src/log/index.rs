//! The in-memory index of the log: where each entry lies on disk, the cache
//! of the newest entries, and the list of segments.
//!
//! Pure bookkeeping, no IO: the store plans every write here under the lock
//! (so readers see its effect at once), then hands the plan to the writer
//! thread, which carries it out on disk in queue order.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::{CommittedLeaderId, Entry, LogId};

use super::config::LogConfig;
use super::record::RecordHead;
use super::segment::segment_path;
use crate::{NodeId, TypeConfig};

/// Where one present entry is, and its log id (less the index, which is the
/// slot's position).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub term: u64,
    pub node_id: NodeId,
    pub segment_id: u64,
    pub offset: u64,
    pub len: u32,
}

/// One segment file. Ids are assigned in creation order and never reused
/// within one open store, so a reader can tell a recreated file apart.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    pub id: u64,
    pub first_index: u64,
    /// Bytes of records planned into this segment (written or queued).
    pub bytes: u64,
    pub path: Arc<Path>,
}

/// A contiguous range of an append's buffer that goes to one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub segment_id: u64,
    pub path: Arc<Path>,
    /// The segment does not exist yet; this chunk creates it.
    pub create: bool,
    pub offset: u64,
    pub buffer_start: usize,
    pub buffer_end: usize,
}

/// What the writer must do on disk for a truncate: delete whole segments
/// (newest first, so a crash midway leaves a prefix of the log, never a
/// hole), then cut the segment that keeps a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TruncatePlan {
    pub delete: Vec<Arc<Path>>,
    pub cut: Option<(Arc<Path>, u64)>,
}

/// What the writer must do on disk for a purge: record the purged log id
/// (first, durably), then delete the segments wholly at or below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PurgePlan {
    pub purged: LogId<NodeId>,
    pub delete: Vec<Arc<Path>>,
}

/// A record the reader must fetch from disk, with what it must contain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DiskRead {
    pub log_id: LogId<NodeId>,
    pub segment_id: u64,
    pub path: Arc<Path>,
    pub offset: u64,
    pub len: u32,
}

/// Where the reader gets one entry.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    Cached(Arc<Entry<TypeConfig>>),
    Disk(DiskRead),
}

pub(crate) struct LogIndex {
    dir: PathBuf,
    segment_bytes_max: u64,
    cache_bytes_max: u64,
    purged: Option<LogId<NodeId>>,
    /// Index of `slots[0]`; when there are no slots, where the next one goes
    /// (unless the log is empty and nothing was ever purged).
    first_index: u64,
    slots: VecDeque<Slot>,
    /// The entries of the last `cache.len()` slots: always a suffix of the log.
    cache: VecDeque<Arc<Entry<TypeConfig>>>,
    cache_bytes: u64,
    /// Entries up to here are synced; only those may leave the cache.
    durable_index: Option<u64>,
    /// Bumped by every truncate, so the writer's report about records
    /// written before it cannot mark their replacements durable.
    epoch: u64,
    segments: VecDeque<Segment>,
    segment_id_next: u64,
}

impl LogIndex {
    pub(crate) fn new(dir: PathBuf, config: &LogConfig, purged: Option<LogId<NodeId>>) -> Self {
        Self {
            dir,
            segment_bytes_max: config.segment_bytes_max,
            cache_bytes_max: config.cache_bytes_max,
            first_index: purged.map_or(0, |purged| purged.index + 1),
            purged,
            slots: VecDeque::new(),
            cache: VecDeque::new(),
            cache_bytes: 0,
            durable_index: None,
            epoch: 0,
            segments: VecDeque::new(),
            segment_id_next: 0,
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn purged(&self) -> Option<LogId<NodeId>> {
        self.purged
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn first_present_index(&self) -> Option<u64> {
        (!self.slots.is_empty()).then_some(self.first_index)
    }

    pub(crate) fn last_index(&self) -> Option<u64> {
        let count = self.slots.len() as u64;
        (count > 0).then(|| self.first_index + count - 1)
    }

    /// The first index of the longest run of present entries that ends at
    /// `last` and whose records hold at most `bytes_max` bytes: `last + 1`
    /// when the entry at `last` alone is larger. `None` when `last` is not
    /// present.
    pub(crate) fn suffix_start_within(&self, last: u64, bytes_max: u64) -> Option<u64> {
        let position = usize::try_from(last.checked_sub(self.first_index)?).ok()?;
        if position >= self.slots.len() {
            return None;
        }
        let mut bytes = 0u64;
        let mut start = last + 1;
        for slot in self.slots.range(..=position).rev() {
            bytes += u64::from(slot.len);
            if bytes > bytes_max {
                break;
            }
            start -= 1;
        }
        Some(start)
    }

    /// The last present entry's id, or the purged id if there is none.
    pub(crate) fn last_log_id(&self) -> Option<LogId<NodeId>> {
        match (self.last_index(), self.slots.back()) {
            (Some(index), Some(slot)) => Some(log_id(slot, index)),
            _ => self.purged,
        }
    }

    /// The index the next append must start at; `None` when the log is
    /// empty and was never purged, where any start is accepted (openraft
    /// appends after an externally installed state, and its test suite
    /// starts logs at arbitrary indexes).
    pub(crate) fn next_index(&self) -> Option<u64> {
        match self.last_index() {
            Some(last) => Some(last + 1),
            None => self.purged.map(|purged| purged.index + 1),
        }
    }

    /// Adds a segment found on disk by recovery; returns its id.
    pub(crate) fn push_segment(&mut self, first_index: u64, path: PathBuf, bytes: u64) -> u64 {
        let id = self.segment_id_next;
        self.segment_id_next += 1;
        let path = Arc::from(path.into_boxed_path());
        self.segments.push_back(Segment { id, first_index, bytes, path });
        id
    }

    /// Adds an entry found on disk by recovery; it counts as synced.
    pub(crate) fn push_recovered(&mut self, head: RecordHead, segment_id: u64, offset: u64) {
        match self.last_index() {
            Some(last) => assert_eq!(head.index, last + 1, "recovery pushes consecutive entries"),
            None => self.first_index = head.index,
        }
        self.slots.push_back(slot(head, segment_id, offset));
        self.durable_index = Some(head.index);
    }

    /// Places encoded records (laid out back to back in one buffer) at the
    /// end of the log and caches their entries. Returns the buffer's pieces
    /// per segment. The caller checked that the records continue the log.
    pub(crate) fn append(&mut self, heads: &[RecordHead], entries: Vec<Entry<TypeConfig>>) -> Vec<Chunk> {
        assert_eq!(heads.len(), entries.len(), "one head per entry");
        if let (None, Some(first)) = (self.last_index(), heads.first()) {
            self.first_index = first.index;
        }
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut buffer_start = 0;
        for head in heads {
            if let Some(next) = self.next_index() {
                assert_eq!(head.index, next, "append continues the log");
            }
            let (segment, create, offset) = self.place(head.len);
            let buffer_end = buffer_start + head.len as usize;
            match chunks.last_mut() {
                Some(chunk) if chunk.segment_id == segment.id => chunk.buffer_end = buffer_end,
                _ => chunks.push(Chunk {
                    segment_id: segment.id,
                    path: segment.path,
                    create,
                    offset,
                    buffer_start,
                    buffer_end,
                }),
            }
            self.slots.push_back(slot(*head, segment.id, offset));
            buffer_start = buffer_end;
        }
        for (entry, head) in entries.into_iter().zip(heads) {
            self.cache.push_back(Arc::new(entry));
            self.cache_bytes += u64::from(head.len);
        }
        self.evict();
        chunks
    }

    /// Reserves `len` bytes at the end of the tail segment, rolling to a new
    /// segment first if they would not fit. Returns the segment, whether it is
    /// new, and the offset.
    fn place(&mut self, len: u32) -> (Segment, bool, u64) {
        let next_index = self.first_index + self.slots.len() as u64;
        let roll = match self.segments.back() {
            None => true,
            Some(tail) => tail.bytes > 0 && tail.bytes + u64::from(len) > self.segment_bytes_max,
        };
        if roll {
            let path = segment_path(&self.dir, next_index);
            self.push_segment(next_index, path, 0);
        }
        let tail = self.segments.back_mut().expect("a tail segment after rolling");
        let offset = tail.bytes;
        tail.bytes += u64::from(len);
        (tail.clone(), roll, offset)
    }

    /// Removes the entries at and after `index`; `None` if there are none.
    pub(crate) fn truncate(&mut self, index: u64) -> Option<TruncatePlan> {
        let last = self.last_index()?;
        if index > last {
            return None;
        }
        let index = index.max(self.first_index);
        let keep = (index - self.first_index) as usize;
        let first_removed = self.slots[keep];
        let removed = self.slots.len() - keep;
        // The cache is a suffix of the log: the removed cached entries are
        // the last `cached_removed` slots, each with its own size.
        let cached_removed = removed.min(self.cache.len());
        let cached_bytes: u64 =
            self.slots.range(self.slots.len() - cached_removed..).map(|slot| u64::from(slot.len)).sum();
        self.cache_bytes -= cached_bytes;
        self.cache.truncate(self.cache.len() - cached_removed);
        self.slots.truncate(keep);
        self.durable_index = match (self.durable_index, index.checked_sub(1)) {
            (Some(durable), Some(kept)) => Some(durable.min(kept)),
            _ => None,
        };
        self.epoch += 1;
        Some(self.truncate_segments(first_removed))
    }

    fn truncate_segments(&mut self, first_removed: Slot) -> TruncatePlan {
        let mut delete = Vec::new();
        while let Some(tail) = self.segments.back() {
            if tail.id <= first_removed.segment_id {
                break;
            }
            delete.push(tail.path.clone());
            self.segments.pop_back();
        }
        let tail = self.segments.back_mut().expect("the truncated entry's segment is present");
        assert_eq!(tail.id, first_removed.segment_id, "entry's segment is the tail");
        if first_removed.offset == 0 {
            delete.push(tail.path.clone());
            self.segments.pop_back();
            return TruncatePlan { delete, cut: None };
        }
        tail.bytes = first_removed.offset;
        TruncatePlan { delete, cut: Some((tail.path.clone(), first_removed.offset)) }
    }

    /// Forgets the entries up to `purged` (inclusive) and plans to delete the
    /// segments that hold nothing else; `None` if already purged that far.
    pub(crate) fn purge(&mut self, purged: LogId<NodeId>) -> Option<PurgePlan> {
        if self.purged.is_some_and(|previous| previous.index >= purged.index) {
            return None;
        }
        self.purged = Some(purged);
        let keep_from = purged.index + 1;
        let removed = (keep_from.saturating_sub(self.first_index) as usize).min(self.slots.len());
        let uncached = self.slots.len() - self.cache.len();
        for _ in 0..removed.saturating_sub(uncached) {
            self.pop_cache_front();
        }
        self.slots.drain(..removed);
        self.first_index = self.first_index.max(keep_from);
        let mut delete = Vec::new();
        while self.purgeable_front_segment(keep_from) {
            let segment = self.segments.pop_front().expect("checked by purgeable_front_segment");
            delete.push(segment.path);
        }
        Some(PurgePlan { purged, delete })
    }

    /// Whether the oldest segment holds only entries below `keep_from`.
    fn purgeable_front_segment(&self, keep_from: u64) -> bool {
        if self.segments.is_empty() {
            return false;
        }
        match self.segments.get(1) {
            Some(next) => next.first_index <= keep_from,
            None => self.slots.is_empty(),
        }
    }

    /// Records that the writer synced entries up to `index`, as planned in
    /// `epoch`; reports from before a truncate are ignored.
    pub(crate) fn mark_durable(&mut self, epoch: u64, index: u64) {
        if epoch != self.epoch {
            return;
        }
        self.durable_index = Some(self.durable_index.map_or(index, |durable| durable.max(index)));
        self.evict();
    }

    /// Drops the oldest cached entries beyond the cache budget, but never one
    /// that is not yet synced: until then the disk cannot serve it.
    fn evict(&mut self) {
        while self.cache_bytes > self.cache_bytes_max {
            let front = self.cache_first_index();
            if self.durable_index.is_none_or(|durable| durable < front) {
                break;
            }
            self.pop_cache_front();
        }
    }

    fn cache_first_index(&self) -> u64 {
        self.first_index + (self.slots.len() - self.cache.len()) as u64
    }

    fn pop_cache_front(&mut self) {
        let position = self.slots.len() - self.cache.len();
        self.cache_bytes -= u64::from(self.slots[position].len);
        self.cache.pop_front();
    }

    /// Plans a read of the present entries in `[start, end)`: from the cache
    /// where it has them, else from disk. Stops before `bytes_max` record
    /// bytes, but always includes the first entry.
    pub(crate) fn plan_read(&self, start: u64, end: u64, bytes_max: u64) -> Vec<Source> {
        let Some(last) = self.last_index() else {
            return Vec::new();
        };
        let start = start.max(self.first_index);
        let end = end.min(last + 1);
        let cache_first = self.cache_first_index();
        let mut sources = Vec::with_capacity(end.saturating_sub(start) as usize);
        let mut bytes = 0u64;
        for index in start..end {
            let slot = self.slots[(index - self.first_index) as usize];
            bytes += u64::from(slot.len);
            if bytes > bytes_max && !sources.is_empty() {
                break;
            }
            let source = if index >= cache_first {
                Source::Cached(self.cache[(index - cache_first) as usize].clone())
            } else {
                Source::Disk(self.disk_read(slot, index))
            };
            sources.push(source);
        }
        sources
    }

    fn disk_read(&self, slot: Slot, index: u64) -> DiskRead {
        DiskRead {
            log_id: log_id(&slot, index),
            segment_id: slot.segment_id,
            path: self.segment(slot.segment_id).path.clone(),
            offset: slot.offset,
            len: slot.len,
        }
    }

    fn segment(&self, id: u64) -> &Segment {
        // Segment ids increase along the deque, and a slot's segment is
        // present for as long as the slot is.
        let position = self
            .segments
            .binary_search_by_key(&id, |segment| segment.id)
            .expect("a present entry's segment is present");
        &self.segments[position]
    }

    /// Whether a planned disk read still names the same record: false after
    /// a truncate or purge changed the log under a reader.
    pub(crate) fn is_current(&self, read: &DiskRead) -> bool {
        let index = read.log_id.index;
        let Some(last) = self.last_index() else {
            return false;
        };
        if index < self.first_index || index > last {
            return false;
        }
        let slot = self.slots[(index - self.first_index) as usize];
        slot.segment_id == read.segment_id && slot.offset == read.offset && log_id(&slot, index) == read.log_id
    }

    #[cfg(test)]
    pub(crate) fn cached_len(&self) -> usize {
        self.cache.len()
    }

    #[cfg(test)]
    pub(crate) fn segment_first_indexes(&self) -> Vec<u64> {
        self.segments.iter().map(|segment| segment.first_index).collect()
    }
}

fn slot(head: RecordHead, segment_id: u64, offset: u64) -> Slot {
    Slot { term: head.term, node_id: head.node_id, segment_id, offset, len: head.len }
}

fn log_id(slot: &Slot, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(slot.term, slot.node_id), index)
}
