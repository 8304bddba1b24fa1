//! Limits of the log, checked once at open.

use super::error::LogError;
use super::record::HEADER_BYTES;

/// Bounds on segment size, record size, the writer queue, the entry cache
/// and a single read. Every field has a designed behaviour at its bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment rolls over when the next record would take it past this
    /// size. A record larger than this still gets a segment of its own.
    pub segment_bytes_max: u64,
    /// Appending an entry whose record (header and payload) is larger than
    /// this fails with [`LogError::RecordTooLarge`] and appends nothing.
    pub record_bytes_max: u32,
    /// At most this many writes wait in the writer queue; the next one waits
    /// for room (backpressure on the caller of `append`).
    pub queue_depth_max: usize,
    /// At most this many encoded bytes wait in the writer queue; the next
    /// append waits for room. One append larger than this still goes alone.
    pub queue_bytes_max: u64,
    /// The newest entries are kept decoded in memory up to this many record
    /// bytes, so replication reads rarely touch the disk. Entries not yet
    /// written are always kept, whatever this says.
    pub cache_bytes_max: u64,
    /// `limited_get_log_entries` returns at most this many record bytes
    /// (but always at least one entry).
    pub read_bytes_max: u64,
    /// The `node` label of this log's Prometheus series (fsync counts and
    /// latency); 0 for a log that belongs to no node.
    pub metrics_node: u64,
    /// Whether the group commit calls `sync_data` before it reports appends
    /// durable. `false` is UNSAFE: an append acknowledged to Raft (and so a
    /// committed write acknowledged to a client) can vanish at a crash or
    /// power loss. It exists only to measure what fsync costs
    /// (`hyperraft bench --fsync off`); votes and metadata are synced either way.
    pub sync_appends: bool,
}

const MEBIBYTE: u64 = 1024 * 1024;

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes_max: 64 * MEBIBYTE,
            record_bytes_max: 64 * MEBIBYTE as u32,
            queue_depth_max: 1024,
            queue_bytes_max: 256 * MEBIBYTE,
            cache_bytes_max: 64 * MEBIBYTE,
            read_bytes_max: 8 * MEBIBYTE,
            metrics_node: 0,
            sync_appends: true,
        }
    }
}

/// The writer queue needs a limit small enough to stay an array of pointers,
/// and the writer drains at most this many writes per group commit.
pub(crate) const QUEUE_DEPTH_LIMIT: usize = 1 << 16;

impl LogConfig {
    /// Checks that every bound is usable; open refuses a config that fails.
    pub fn validate(&self) -> Result<(), LogError> {
        if self.segment_bytes_max == 0 {
            return Err(LogError::Config("segment_bytes_max must be positive"));
        }
        if (self.record_bytes_max as usize) <= HEADER_BYTES {
            return Err(LogError::Config("record_bytes_max must exceed the 24-byte record header"));
        }
        if self.queue_depth_max == 0 || self.queue_depth_max > QUEUE_DEPTH_LIMIT {
            return Err(LogError::Config("queue_depth_max must be in 1..=65536"));
        }
        if self.queue_bytes_max < 1024 {
            return Err(LogError::Config("queue_bytes_max must be at least 1 KiB"));
        }
        if self.read_bytes_max == 0 {
            return Err(LogError::Config("read_bytes_max must be positive"));
        }
        Ok(())
    }
}
