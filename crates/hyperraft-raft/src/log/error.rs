//! Errors of the log: opening and recovery, and the inherent (non-openraft)
//! API. The openraft trait methods map these into `openraft::StorageError`.

use std::io;
use std::path::PathBuf;

/// Why the log could not be opened, or an operation on it failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The configuration breaks one of its bounds; nothing was opened.
    #[error("invalid log config: {0}")]
    Config(&'static str),

    /// A file operation failed.
    #[error("log io error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A record that is not a torn tail is damaged: in a segment before the
    /// last, or followed by valid records. The log refuses to open (or a read
    /// fails) rather than skip it.
    #[error("corrupt log segment {segment} at byte offset {offset}: {reason}")]
    Corrupt { segment: PathBuf, offset: u64, reason: &'static str },

    /// A metadata file (vote, purged) does not match its checksum or does
    /// not decode. These are replaced atomically, so this is real damage.
    #[error("corrupt log metadata file {path}")]
    CorruptMeta { path: PathBuf },

    /// A segment file in the log directory is not named `{index:020}.log`.
    #[error("unexpected segment file name {path}")]
    SegmentName { path: PathBuf },

    /// Entries are missing between two indexes: between segments, or between
    /// the purged log id and the first entry on disk.
    #[error("log has a hole: expected index {expected}, found {found} in {segment}")]
    Gap { segment: PathBuf, expected: u64, found: u64 },

    /// One entry encodes to more than `record_bytes_max`; nothing was appended.
    #[error("log entry {index} encodes to {bytes} bytes, over record_bytes_max {max}")]
    RecordTooLarge { index: u64, bytes: u64, max: u32 },

    /// The entries to append do not continue the log; nothing was appended.
    #[error("log entries are not contiguous: expected index {expected}, got {got}")]
    NotContiguous { expected: u64, got: u64 },

    /// An entry could not be encoded with postcard; nothing was appended.
    #[error("log entry {index} could not be encoded: {source}")]
    Encode {
        index: u64,
        #[source]
        source: postcard::Error,
    },

    /// The writer failed an earlier write (its files are in an unknown state,
    /// so it refuses all later writes) or this one.
    #[error("log write failed: {0}")]
    Write(#[source] io::Error),

    /// The writer thread is gone (it panicked, or the store is closing).
    #[error("log writer stopped")]
    WriterStopped,
}

impl LogError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
