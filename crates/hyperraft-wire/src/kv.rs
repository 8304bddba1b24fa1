//! The compact key/value command layout and its borrowed views.
//!
//! A `Kv` frame's body is `count` commands back to back, with no padding and
//! no per-command length prefix: every command starts with a fixed header
//! whose lengths say exactly where it ends. All integers are little-endian.
//! Every command begins with a one-byte tag and a one-byte flags field;
//! flag bits not defined below are reserved and must be zero.
//!
//! ```text
//! Put          tag=1 u8 | flags u8 (bit 0 prev_kv) | key_len u16 | value_len u32
//!              | lease u64 | key | value                          (16-byte header)
//! DeleteRange  tag=2 u8 | flags u8 (bit 0 prev_kv) | key_len u16 | end_len u16
//!              | key | range_end                                  (6-byte header)
//! Range        tag=3 u8 | flags u8 (bit 0 keys_only, bit 1 count_only)
//!              | key_len u16 | end_len u16 | limit u32 | key | range_end
//!                                                                 (10-byte header)
//! Txn          tag=4 u8 | flags u8 (none defined) | compare_count u16
//!              | success_count u16 | failure_count u16 | compares_len u32
//!              | success_len u32 | failure_len u32
//!              | compares | success ops | failure ops             (20-byte header)
//! Compare      target u8 | op u8 | key_len u16 | key | operand    (4-byte header)
//!              operand: value_len u32 | value   when target is Value (0)
//!                       u64                     for Version (1), CreateRevision (2),
//!                                               ModRevision (3) and Lease (4)
//!              op: Equal 0, NotEqual 1, Less 2, Greater 3
//! LeaseGrant      tag=5 u8 | flags u8 (none defined) | id u64 | ttl_ms u64
//!                                                                 (18 bytes)
//! LeaseRevoke     tag=6 u8 | flags u8 (none defined) | id u64     (10 bytes)
//! LeaseKeepAlive  tag=7 u8 | flags u8 (none defined) | id u64     (10 bytes)
//! LeaseExpire     tag=8 u8 | flags u8 (none defined) | id u64     (10 bytes)
//! ```
//!
//! A transaction's operations use the Put, DeleteRange and Range layouts
//! above; a transaction inside a transaction is rejected, and so is a lease
//! command: lease commands are top-level commands only. The three part
//! lengths (`*_len`, in bytes) let a [`TxnView`] slice its parts without
//! walking them again, and each part must hold exactly its count of items.
//!
//! Bounds: every key (including compare keys) is 1..=[`KEY_BYTES_MAX`]
//! bytes, a range end is 0..=[`KEY_BYTES_MAX`] bytes, every value (including
//! a compare's operand) is at most [`VALUE_BYTES_MAX`] bytes, and each of a
//! transaction's compares, success ops and failure ops number at most
//! [`TXN_OPS_MAX`]. A lease's TTL is
//! [`LEASE_TTL_MS_MIN`]..=[`LEASE_TTL_MS_MAX`] milliseconds, so a bad TTL
//! never reaches the log. The whole frame is bounded by [`crate::Limits`].
//!
//! The encoding is canonical: a valid byte string decodes to exactly one
//! command, and re-encoding that command gives the same bytes. Decoding
//! walks and validates the whole body once; the views then borrow the frame
//! and iterating them neither fails nor allocates.

mod decode;
mod layout;
mod writer;

pub use writer::KvBatchWriter;

/// Longest key accepted, in bytes. Keys are never empty.
pub const KEY_BYTES_MAX: usize = 4096;
/// Longest value accepted, in bytes.
pub const VALUE_BYTES_MAX: usize = 1 << 20;
/// Most compares, and most operations per branch, in one transaction.
pub const TXN_OPS_MAX: usize = 128;
/// Shortest lease TTL accepted, in milliseconds (one second).
pub const LEASE_TTL_MS_MIN: u64 = 1_000;
/// Longest lease TTL accepted, in milliseconds (one day).
pub const LEASE_TTL_MS_MAX: u64 = 86_400_000;

/// Why one key/value command was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvDecodeError {
    /// The command runs past the end of the bytes that should hold it.
    #[error("truncated command")]
    Truncated,
    /// A command tag with no command.
    #[error("unknown command tag {0}")]
    UnknownTag(u8),
    /// A key of zero bytes.
    #[error("key is empty")]
    EmptyKey,
    /// A key or range end longer than [`KEY_BYTES_MAX`].
    #[error("key of {0} bytes exceeds {KEY_BYTES_MAX}")]
    KeyTooLong(usize),
    /// A value or compare operand longer than [`VALUE_BYTES_MAX`].
    #[error("value of {0} bytes exceeds {VALUE_BYTES_MAX}")]
    ValueTooLong(usize),
    /// A transaction part with more than [`TXN_OPS_MAX`] items.
    #[error("transaction has {0} compares or operations in one part, more than {TXN_OPS_MAX}")]
    TooManyOps(usize),
    /// A transaction among a transaction's operations.
    #[error("transactions cannot nest")]
    NestedTxn,
    /// A lease command (carrying its tag) among a transaction's operations.
    #[error("lease command tag {0} inside a transaction; lease commands are top-level only")]
    LeaseInTxn(u8),
    /// A lease TTL outside [`LEASE_TTL_MS_MIN`]..=[`LEASE_TTL_MS_MAX`].
    #[error("lease TTL of {0} ms is outside {LEASE_TTL_MS_MIN}..={LEASE_TTL_MS_MAX}")]
    LeaseTtlOutOfRange(u64),
    /// A compare target code with no [`CompareTarget`].
    #[error("unknown compare target {0}")]
    UnknownCompareTarget(u8),
    /// A compare operator code with no [`CompareOp`].
    #[error("unknown compare operator {0}")]
    UnknownCompareOp(u8),
    /// Flag bits the command does not define; they carry the bits set.
    #[error("reserved flag bits set: {0:#04x}")]
    ReservedFlags(u8),
    /// Bytes left over after the declared items: in a transaction part
    /// longer than its items, or in a frame body after its `count` commands
    /// (reported with the index one past the last command).
    #[error("{0} bytes left over after the declared items")]
    TrailingBytes(usize),
}

/// Put `value` at `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutView<'a> {
    /// The key, never empty.
    pub key: &'a [u8],
    /// The new value, possibly empty.
    pub value: &'a [u8],
    /// Lease id, 0 for none.
    pub lease: u64,
    /// Return the previous key-value pair.
    pub prev_kv: bool,
}

/// Delete `key`, or every key in `[key, range_end)`.
/// An empty `range_end` means the single key; `[0]` means every key ≥ `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeleteView<'a> {
    /// The key, or the start of the range; never empty.
    pub key: &'a [u8],
    /// Exclusive end of the range; see the type's doc for the special values.
    pub range_end: &'a [u8],
    /// Return the deleted key-value pairs.
    pub prev_kv: bool,
}

/// Read `key`, or the keys in `[key, range_end)` (same conventions as [`DeleteView`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeView<'a> {
    /// The key, or the start of the range; never empty.
    pub key: &'a [u8],
    /// Exclusive end of the range; see [`DeleteView`] for the special values.
    pub range_end: &'a [u8],
    /// Most keys returned; 0 for no limit.
    pub limit: u32,
    /// Return keys without their values.
    pub keys_only: bool,
    /// Return only how many keys matched.
    pub count_only: bool,
}

/// What a compare looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareTarget<'a> {
    /// The key's value, compared bytewise with this operand.
    Value(&'a [u8]),
    /// The number of writes to the key since it was created.
    Version(u64),
    /// The revision at which the key was created.
    CreateRevision(u64),
    /// The revision of the key's last write.
    ModRevision(u64),
    /// The lease the key is attached to.
    Lease(u64),
}

/// How a compare relates the key's target to the operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CompareOp {
    /// The target equals the operand.
    Equal = 0,
    /// The target differs from the operand.
    NotEqual = 1,
    /// The target is below the operand.
    Less = 2,
    /// The target is above the operand.
    Greater = 3,
}

/// One compare of a transaction: `key`'s target `op` the operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compare<'a> {
    /// The key compared; never empty.
    pub key: &'a [u8],
    /// How the target relates to the operand.
    pub op: CompareOp,
    /// What is compared, carrying the operand.
    pub target: CompareTarget<'a>,
}

/// A non-transaction operation (a transaction's branch holds these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvOp<'a> {
    /// See [`PutView`].
    Put(PutView<'a>),
    /// See [`DeleteView`].
    DeleteRange(DeleteView<'a>),
    /// See [`RangeView`].
    Range(RangeView<'a>),
}

/// If every compare holds, run `success`, else `failure` (etcd semantics).
///
/// The parts were validated when the frame was decoded; the iterators
/// re-read them lazily. Two views are equal exactly when their commands
/// are, because the encoding is canonical.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnView<'a> {
    /// The whole command, header included, so a writer can copy it verbatim.
    bytes: &'a [u8],
    compares: &'a [u8],
    success: &'a [u8],
    failure: &'a [u8],
    compare_count: u16,
    success_count: u16,
    failure_count: u16,
}

impl<'a> TxnView<'a> {
    /// The compares, in order.
    pub fn compares(&self) -> CompareIter<'a> {
        CompareIter { rest: self.compares, remaining: self.compare_count }
    }

    /// The operations run when every compare holds.
    pub fn success(&self) -> OpIter<'a> {
        OpIter { rest: self.success, remaining: self.success_count }
    }

    /// The operations run when some compare fails.
    pub fn failure(&self) -> OpIter<'a> {
        OpIter { rest: self.failure, remaining: self.failure_count }
    }

    /// Number of compares (at most [`TXN_OPS_MAX`]).
    pub fn compare_count(&self) -> usize {
        usize::from(self.compare_count)
    }

    /// Number of success operations (at most [`TXN_OPS_MAX`]).
    pub fn success_count(&self) -> usize {
        usize::from(self.success_count)
    }

    /// Number of failure operations (at most [`TXN_OPS_MAX`]).
    pub fn failure_count(&self) -> usize {
        usize::from(self.failure_count)
    }

    /// The command's encoded bytes, header included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Create a lease that lives `ttl_ms` unless kept alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseGrantView {
    /// The id to create, or 0 to let the state machine choose one.
    pub id: u64,
    /// Time to live in milliseconds, [`LEASE_TTL_MS_MIN`]..=[`LEASE_TTL_MS_MAX`].
    pub ttl_ms: u64,
}

/// Delete a lease and every key attached to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseRevokeView {
    /// The lease.
    pub id: u64,
}

/// Renew a lease for its full TTL from the batch's timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseKeepAliveView {
    /// The lease.
    pub id: u64,
}

/// Revoke a lease if its deadline is at or before the batch's timestamp;
/// proposed by the leader when it sees the lease expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseExpireView {
    /// The lease.
    pub id: u64,
}

/// One key/value command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvCommand<'a> {
    /// See [`PutView`].
    Put(PutView<'a>),
    /// See [`DeleteView`].
    DeleteRange(DeleteView<'a>),
    /// See [`RangeView`].
    Range(RangeView<'a>),
    /// See [`TxnView`].
    Txn(TxnView<'a>),
    /// See [`LeaseGrantView`].
    LeaseGrant(LeaseGrantView),
    /// See [`LeaseRevokeView`].
    LeaseRevoke(LeaseRevokeView),
    /// See [`LeaseKeepAliveView`].
    LeaseKeepAlive(LeaseKeepAliveView),
    /// See [`LeaseExpireView`].
    LeaseExpire(LeaseExpireView),
}

impl<'a> From<KvOp<'a>> for KvCommand<'a> {
    fn from(op: KvOp<'a>) -> KvCommand<'a> {
        match op {
            KvOp::Put(put) => KvCommand::Put(put),
            KvOp::DeleteRange(delete) => KvCommand::DeleteRange(delete),
            KvOp::Range(range) => KvCommand::Range(range),
        }
    }
}

/// The validated commands of a `Kv` frame body, in order. Iterating is infallible.
#[derive(Clone, Copy, Debug)]
pub struct KvCommands<'a> {
    body: &'a [u8],
    count: u32,
}

impl<'a> KvCommands<'a> {
    /// Walks `body` and checks that it holds exactly `count` valid commands.
    /// On failure returns the index of the offending command and why.
    pub(crate) fn validate(body: &'a [u8], count: u32) -> Result<KvCommands<'a>, (u32, KvDecodeError)> {
        let mut rest = body;
        for index in 0..count {
            let (_, after) = decode::command(rest).map_err(|reason| (index, reason))?;
            rest = after;
        }
        if !rest.is_empty() {
            return Err((count, KvDecodeError::TrailingBytes(rest.len())));
        }
        Ok(KvCommands { body, count })
    }

    /// Number of commands.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the body holds no commands.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The commands, in order.
    #[inline]
    pub fn iter(&self) -> KvIter<'a> {
        KvIter { rest: self.body, remaining: self.count }
    }
}

impl<'a> IntoIterator for KvCommands<'a> {
    type Item = KvCommand<'a>;
    type IntoIter = KvIter<'a>;

    fn into_iter(self) -> KvIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &KvCommands<'a> {
    type Item = KvCommand<'a>;
    type IntoIter = KvIter<'a>;

    fn into_iter(self) -> KvIter<'a> {
        self.iter()
    }
}

/// Reads the next item of a validated run of `remaining` items.
///
/// The bytes were validated when the frame was decoded, so `parse` cannot
/// fail here; if it ever did, that is a decoder bug: debug builds (and so
/// the tests and fuzzers) stop on it, release builds end the iteration
/// rather than panic on bytes that came from the network.
#[inline]
fn next_validated<'a, T>(
    rest: &mut &'a [u8],
    remaining: &mut u32,
    parse: impl Fn(&'a [u8]) -> Result<(T, &'a [u8]), KvDecodeError>,
) -> Option<T> {
    if *remaining == 0 {
        return None;
    }
    match parse(rest) {
        Ok((item, after)) => {
            *rest = after;
            *remaining -= 1;
            Some(item)
        }
        Err(reason) => {
            debug_assert!(false, "validated key/value bytes failed to parse: {reason}");
            *remaining = 0;
            None
        }
    }
}

/// Iterator over a [`KvCommands`] body.
#[derive(Clone, Debug)]
pub struct KvIter<'a> {
    rest: &'a [u8],
    remaining: u32,
}

impl<'a> Iterator for KvIter<'a> {
    type Item = KvCommand<'a>;

    #[inline]
    fn next(&mut self) -> Option<KvCommand<'a>> {
        next_validated(&mut self.rest, &mut self.remaining, decode::command)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

impl ExactSizeIterator for KvIter<'_> {}

/// Iterator over a transaction's compares.
#[derive(Clone, Debug)]
pub struct CompareIter<'a> {
    rest: &'a [u8],
    remaining: u16,
}

impl<'a> Iterator for CompareIter<'a> {
    type Item = Compare<'a>;

    #[inline]
    fn next(&mut self) -> Option<Compare<'a>> {
        let mut remaining = u32::from(self.remaining);
        let item = next_validated(&mut self.rest, &mut remaining, decode::compare);
        // Never above the u16 it started from.
        self.remaining = remaining as u16;
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::from(self.remaining), Some(usize::from(self.remaining)))
    }
}

impl ExactSizeIterator for CompareIter<'_> {}

/// Iterator over one branch of a transaction.
#[derive(Clone, Debug)]
pub struct OpIter<'a> {
    rest: &'a [u8],
    remaining: u16,
}

impl<'a> Iterator for OpIter<'a> {
    type Item = KvOp<'a>;

    #[inline]
    fn next(&mut self) -> Option<KvOp<'a>> {
        let mut remaining = u32::from(self.remaining);
        let item = next_validated(&mut self.rest, &mut remaining, decode::op);
        // Never above the u16 it started from.
        self.remaining = remaining as u16;
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::from(self.remaining), Some(usize::from(self.remaining)))
    }
}

impl ExactSizeIterator for OpIter<'_> {}

#[cfg(test)]
mod tests;
