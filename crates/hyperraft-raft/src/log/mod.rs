//! The durable Raft log: a segmented, checksummed write-ahead log with group
//! commit, implementing openraft's `RaftLogStorage` and `RaftLogReader`.
//!
//! # On-disk format
//!
//! Everything lives in one directory (the `dir` given to [`LogStore::open`],
//! usually `<data>/log`):
//!
//! ```text
//! 00000000000000000000.log   segment: records of indexes 0, 1, 2, ...
//! 00000000000000004711.log   next segment, whose first record is index 4711
//! vote.meta                  the last saved vote
//! purged.meta                the last purged log id
//! committed.meta             the last saved committed log id
//! ```
//!
//! A segment is named by the index of its first record (`{first_index:020}.log`,
//! so names sort like indexes) and is a plain sequence of records, nothing
//! else: no file header, no padding. Each record is
//!
//! ```text
//! [len u32][crc u32][index u64][term u64][payload: len - 16 bytes]
//! ```
//!
//! little-endian, where `len` counts the bytes after the first 8 (index, term
//! and payload), `crc` is CRC-32C of those same `len` bytes, and the payload
//! is the postcard encoding of the whole `openraft::Entry<TypeConfig>` (so it
//! repeats the log id; the copy in the header lets recovery check order and
//! the reader check identity without trusting the payload). Indexes inside a
//! segment are consecutive, and each segment starts where the previous one
//! ended. The writer starts a new segment when the next record would take the
//! current one past `segment_bytes_max` (a single record larger than that gets
//! a segment of its own).
//!
//! A `.meta` file is `[crc u32][postcard of the value]`. Vote and purged are
//! replaced atomically and durably (write `*.tmp`, fsync, rename, fsync the
//! directory). Committed is a fixed 64-byte record with its own checksum,
//! overwritten in place after each group commit and never fsync'd: openraft
//! treats it as an optional hint, and it is written only after the entries it
//! names were synced, so a lost or torn update (read as absent) is harmless,
//! while a sync or a rename for it would add to every group commit.
//!
//! # Recovery
//!
//! [`LogStore::open`] reads every segment, checking each record's checksum,
//! that indexes are consecutive within and across segments, and that the log
//! id in the payload matches the header. A damaged record (short, bad length
//! or bad checksum) at the end of the **last** segment, with no valid record
//! after it, is a torn write from a crash: it is logged and cut off. Damage
//! anywhere else is [`LogError::Corrupt`], never skipped. Segments entirely at
//! or below the purged log id are deleted (an interrupted purge), and the
//! retained log must start right after the purged id.
//!
//! # Writing
//!
//! One writer thread owns the segment files. Every write (append, truncate,
//! purge, vote, committed) goes to it, in order, through one bounded queue;
//! see `writer.rs` for the group commit. Reads never wait for the writer:
//! entries not yet on disk are served from an in-memory cache of the newest
//! entries, older ones are read from the segment files.

mod config;
mod error;
mod index;
mod meta;
mod reader;
mod record;
mod recovery;
mod segment;
mod shared;
mod store;
mod writer;

#[cfg(test)]
mod tests;

pub use config::LogConfig;
pub use error::LogError;
pub use reader::LogReader;
pub use store::{AppendReceipt, LogStore};
pub use writer::LogMetrics;

/// The log's decoders of on-disk bytes, exposed so that fuzz targets and
/// property tests can feed them arbitrary input without files. Not an API.
#[doc(hidden)]
pub mod decoders {
    use openraft::{Entry, LogId, Vote};

    use crate::{NodeId, TypeConfig};

    /// What a scan of one segment's bytes found.
    #[derive(Debug)]
    pub struct SegmentScan {
        /// The entries of the valid records before the first damage, decoded.
        pub entries: Vec<Entry<TypeConfig>>,
        /// Why the scan stopped early (a damaged record, or corruption no
        /// crash explains); `None` when every byte was a valid record.
        pub stopped: Option<&'static str>,
    }

    /// Scans `bytes` as a segment whose first record must have index
    /// `first_index`, then decodes every valid record's whole entry.
    pub fn scan_segment(bytes: &[u8], first_index: u64) -> SegmentScan {
        let (records, stopped) = match super::segment::scan(bytes, first_index) {
            Ok((records, super::segment::ScanEnd::Clean)) => (records, None),
            Ok((records, super::segment::ScanEnd::Damaged { reason, .. })) => (records, Some(reason)),
            Err(fault) => (Vec::new(), Some(fault.reason)),
        };
        let mut entries = Vec::with_capacity(records.len());
        for record in records {
            let start = record.offset as usize;
            let whole = &bytes[start..start + record.head.len as usize];
            let super::record::Parsed::Valid { payload, .. } = super::record::parse(whole) else {
                return SegmentScan { entries, stopped: Some("a scanned record no longer parses") };
            };
            match super::record::decode_entry(payload) {
                Some(entry) => entries.push(entry),
                None => return SegmentScan { entries, stopped: Some("payload does not decode as an entry") },
            }
        }
        SegmentScan { entries, stopped }
    }

    /// Encodes `entries` as one segment's bytes, as the writer does.
    pub fn encode_segment(entries: &[Entry<TypeConfig>]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for entry in entries {
            super::record::encode(&mut bytes, entry, u32::MAX).expect("an entry encodes");
        }
        bytes
    }

    /// Decodes a metadata file's bytes as each of the three kinds of file
    /// (vote, purged, committed); `None` where damaged.
    #[allow(clippy::type_complexity)]
    pub fn decode_meta(bytes: &[u8]) -> (Option<Vote<NodeId>>, Option<LogId<NodeId>>, Option<Option<LogId<NodeId>>>) {
        (super::meta::decode(bytes), super::meta::decode(bytes), super::meta::decode_in_place_or_whole(bytes))
    }
}
