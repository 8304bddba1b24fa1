//! Opening the log: read the metadata, scan every segment, cut a torn tail,
//! finish an interrupted purge, and rebuild the in-memory index.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use openraft::{LogId, Vote};

use super::config::LogConfig;
use super::error::LogError;
use super::index::LogIndex;
use super::meta::{self, MetaPaths};
use super::segment::{self, ScanEnd, ScannedRecord};
use crate::NodeId;

/// The state of the log as found on disk.
pub(crate) struct Recovered {
    pub index: LogIndex,
    pub vote: Option<Vote<NodeId>>,
    pub committed: Option<LogId<NodeId>>,
}

/// One segment after its scan: the valid records and their total length.
struct LoadedSegment {
    first_index: u64,
    path: PathBuf,
    bytes: u64,
    records: Vec<ScannedRecord>,
}

pub(crate) fn recover(dir: &Path, config: &LogConfig) -> Result<Recovered, LogError> {
    fs::create_dir_all(dir).map_err(|error| LogError::io(dir, error))?;
    let paths = MetaPaths::new(dir);
    let vote = meta::read::<Vote<NodeId>>(&paths.vote)?;
    let purged = meta::read::<LogId<NodeId>>(&paths.purged)?;
    let committed = read_committed(&paths.committed)?;
    let keep_from = purged.map(|purged| purged.index + 1);
    let listed = drop_purged_segments(dir, segment::list_segments(dir)?, keep_from)?;
    let segments = scan_segments(listed)?;
    let mut index = LogIndex::new(dir.to_owned(), config, purged);
    load(&mut index, segments, keep_from)?;
    tracing::info!(
        dir = %dir.display(),
        purged = ?purged.map(|purged| purged.index),
        last = ?index.last_index(),
        "opened log"
    );
    Ok(Recovered { index, vote, committed })
}

/// The committed log id is overwritten in place without fsync (see `meta`), so
/// a crash may leave it damaged; that loses a hint, not data.
fn read_committed(path: &Path) -> Result<Option<LogId<NodeId>>, LogError> {
    match meta::read_with(path, meta::decode_in_place_or_whole::<Option<LogId<NodeId>>>) {
        Ok(committed) => Ok(committed.flatten()),
        Err(LogError::CorruptMeta { path }) => {
            tracing::warn!(path = %path.display(), "ignoring damaged committed log id");
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Deletes, unread, the segments a purge had recorded but not yet removed
/// when the process stopped: those whose successor starts at or below
/// `keep_from`. Unlinks may reach the disk in any order, so which of them
/// are left is arbitrary; they must not count as holes.
fn drop_purged_segments(
    dir: &Path,
    mut segments: Vec<(u64, PathBuf)>,
    keep_from: Option<u64>,
) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let Some(keep_from) = keep_from else {
        return Ok(segments);
    };
    let purged = segments.windows(2).take_while(|pair| pair[1].0 <= keep_from).count();
    for (_, path) in segments.drain(..purged) {
        tracing::info!(segment = %path.display(), "deleting segment left by an interrupted purge");
        segment::remove(&path).map_err(|error| LogError::io(&path, error))?;
    }
    if purged > 0 {
        meta::sync_directory(dir).map_err(|error| LogError::io(dir, error))?;
    }
    Ok(segments)
}

fn scan_segments(segments: Vec<(u64, PathBuf)>) -> Result<Vec<LoadedSegment>, LogError> {
    let count = segments.len();
    let mut loaded: Vec<LoadedSegment> = Vec::with_capacity(count);
    let mut bytes = Vec::new();
    for (position, (first_index, path)) in segments.into_iter().enumerate() {
        bytes.clear();
        let mut file = File::open(&path).map_err(|error| LogError::io(&path, error))?;
        file.read_to_end(&mut bytes).map_err(|error| LogError::io(&path, error))?;
        let is_last = position + 1 == count;
        let segment = scan_one(first_index, path, &bytes, is_last)?;
        check_follows(loaded.last(), &segment)?;
        loaded.push(segment);
    }
    Ok(loaded)
}

fn scan_one(first_index: u64, path: PathBuf, bytes: &[u8], is_last: bool) -> Result<LoadedSegment, LogError> {
    let (records, end) = match segment::scan(bytes, first_index) {
        Ok(scanned) => scanned,
        Err(fault) => return Err(corrupt(&path, fault.offset, fault.reason)),
    };
    let valid_bytes = match end {
        ScanEnd::Clean => bytes.len() as u64,
        ScanEnd::Damaged { offset, reason, valid_after } => {
            if !is_last {
                return Err(corrupt(&path, offset, reason));
            }
            if valid_after {
                return Err(corrupt(&path, offset, "damaged record followed by valid records"));
            }
            tracing::warn!(segment = %path.display(), offset, reason, "cutting torn tail of the log");
            cut(&path, offset)?;
            offset
        }
    };
    Ok(LoadedSegment { first_index, path, bytes: valid_bytes, records })
}

fn corrupt(path: &Path, offset: u64, reason: &'static str) -> LogError {
    LogError::Corrupt { segment: path.to_owned(), offset, reason }
}

fn cut(path: &Path, offset: u64) -> Result<(), LogError> {
    let file = OpenOptions::new().write(true).open(path);
    let file = file.map_err(|error| LogError::io(path, error))?;
    file.set_len(offset).map_err(|error| LogError::io(path, error))?;
    file.sync_data().map_err(|error| LogError::io(path, error))
}

/// Segments must continue one another. Only the last may be empty: a roll
/// creates a segment just before writing its first record, and the writer
/// syncs a segment before it moves on to the next.
fn check_follows(previous: Option<&LoadedSegment>, next: &LoadedSegment) -> Result<(), LogError> {
    let Some(previous) = previous else {
        return Ok(());
    };
    let Some(last) = previous.records.last() else {
        return Err(corrupt(&previous.path, 0, "empty segment before the last"));
    };
    let expected = last.head.index + 1;
    if next.first_index != expected {
        return Err(LogError::Gap { segment: next.path.clone(), expected, found: next.first_index });
    }
    Ok(())
}

/// Puts the records at or above `keep_from` (the index after the purged
/// one) into the index. Segments with nothing to keep are deleted: an empty
/// tail, or segments a purge had not yet removed when the process stopped.
fn load(index: &mut LogIndex, segments: Vec<LoadedSegment>, keep_from: Option<u64>) -> Result<(), LogError> {
    let keep = |record: &&ScannedRecord| keep_from.is_none_or(|from| record.head.index >= from);
    let mut deleted = false;
    for segment in segments {
        if !segment.records.iter().any(|record| keep(&record)) {
            segment::remove(&segment.path).map_err(|error| LogError::io(&segment.path, error))?;
            deleted = true;
            continue;
        }
        sync_file(&segment.path)?;
        let id = index.push_segment(segment.first_index, segment.path, segment.bytes);
        for record in segment.records.iter().filter(keep) {
            index.push_recovered(record.head, id, record.offset);
        }
    }
    if let (Some(expected), Some(found)) = (keep_from, index.first_present_index()) {
        if found != expected {
            return Err(LogError::Gap { segment: index.dir().to_owned(), expected, found });
        }
    }
    if deleted {
        meta::sync_directory(index.dir()).map_err(|error| LogError::io(index.dir(), error))?;
    }
    Ok(())
}

/// Records that survived a process crash may still sit only in the page
/// cache; they are about to be served as durable, so make them so.
fn sync_file(path: &Path) -> Result<(), LogError> {
    let file = File::open(path).map_err(|error| LogError::io(path, error))?;
    file.sync_data().map_err(|error| LogError::io(path, error))
}
