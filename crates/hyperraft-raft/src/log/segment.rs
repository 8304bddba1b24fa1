//! Segment files: naming, listing, and the scan that recovery runs on the
//! bytes of each one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::LogError;
use super::record::{self, Parsed, RecordHead, HEADER_BYTES};

const SEGMENT_EXTENSION: &str = "log";
const INDEX_DIGITS: usize = 20;

/// The path of the segment whose first record is `first_index`.
pub(crate) fn segment_path(dir: &Path, first_index: u64) -> PathBuf {
    dir.join(format!("{first_index:020}.{SEGMENT_EXTENSION}"))
}

/// The segments in `dir`, sorted by first index. Leftover temporary files
/// of an interrupted metadata write are removed on the way.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut segments = Vec::new();
    let entries = fs::read_dir(dir).map_err(|error| LogError::io(dir, error))?;
    for entry in entries {
        let path = entry.map_err(|error| LogError::io(dir, error))?.path();
        match path.extension().and_then(|extension| extension.to_str()) {
            Some(SEGMENT_EXTENSION) => segments.push((parse_name(&path)?, path)),
            Some("tmp") => fs::remove_file(&path).map_err(|error| LogError::io(&path, error))?,
            _ => {}
        }
    }
    segments.sort_unstable_by_key(|(first_index, _)| *first_index);
    Ok(segments)
}

fn parse_name(path: &Path) -> Result<u64, LogError> {
    let stem = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or("");
    let digits = stem.len() == INDEX_DIGITS && stem.bytes().all(|byte| byte.is_ascii_digit());
    match stem.parse::<u64>() {
        Ok(first_index) if digits => Ok(first_index),
        _ => Err(LogError::SegmentName { path: path.to_owned() }),
    }
}

/// One valid record found by a scan, and where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ScannedRecord {
    pub head: RecordHead,
    pub offset: u64,
}

/// How a scan of one segment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Every byte belongs to a valid record.
    Clean,
    /// The record at `offset` is damaged. `valid_after` says whether a valid
    /// record of a later index starts somewhere after it, which makes the
    /// damage corruption rather than a torn tail.
    Damaged { offset: u64, reason: &'static str, valid_after: bool },
}

/// A fault no crash explains: a record whose checksum matches but which is
/// out of order or does not match its payload. Always corruption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ScanFault {
    pub offset: u64,
    pub reason: &'static str,
}

/// Reads the records of one segment, which must start at `first_index`.
pub(crate) fn scan(bytes: &[u8], first_index: u64) -> Result<(Vec<ScannedRecord>, ScanEnd), ScanFault> {
    let mut records = Vec::new();
    let mut offset = 0usize;
    let mut expected = first_index;
    while offset < bytes.len() {
        let parsed = record::parse(&bytes[offset..]);
        let Parsed::Valid { index, term, payload, record_bytes } = parsed else {
            let end = ScanEnd::Damaged {
                offset: offset as u64,
                reason: parsed.damage(),
                valid_after: valid_record_after(bytes, offset + 1, expected),
            };
            return Ok((records, end));
        };
        let fault = |reason| ScanFault { offset: offset as u64, reason };
        if index != expected {
            return Err(fault("record index out of sequence"));
        }
        let log_id = record::decode_log_id(payload).ok_or(fault("payload does not decode"))?;
        if log_id.index != index || log_id.leader_id.term != term {
            return Err(fault("payload log id does not match the record header"));
        }
        let head = RecordHead { index, term, node_id: log_id.leader_id.node_id, len: record_bytes as u32 };
        records.push(ScannedRecord { head, offset: offset as u64 });
        offset += record_bytes;
        expected += 1;
    }
    Ok((records, ScanEnd::Clean))
}

/// Whether a valid record with an index at or after `expected` starts at any
/// byte from `from` on. Candidates are picked by their claimed index, so the
/// checksum runs only where a record could plausibly start.
fn valid_record_after(bytes: &[u8], from: usize, expected: u64) -> bool {
    let index_limit = expected.saturating_add((bytes.len() / HEADER_BYTES) as u64);
    let last_start = bytes.len().saturating_sub(HEADER_BYTES);
    (from..=last_start).any(|start| {
        let candidate = &bytes[start..];
        let plausible = record::peek_index(candidate).is_some_and(|index| index >= expected && index <= index_limit);
        plausible && matches!(record::parse(candidate), Parsed::Valid { .. })
    })
}

/// Removes a file, treating "already gone" as done: deletions are retried by
/// recovery, so a second attempt must succeed.
pub(crate) fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        result => result,
    }
}
