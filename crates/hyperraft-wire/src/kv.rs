//! The compact key/value command layout and its borrowed views.
//!
//! TODO(wire helper): document the byte layout here.

/// Longest key accepted, in bytes. Keys are never empty.
pub const KEY_BYTES_MAX: usize = 4096;
/// Longest value accepted, in bytes.
pub const VALUE_BYTES_MAX: usize = 1 << 20;
/// Most compares, and most operations per branch, in one transaction.
pub const TXN_OPS_MAX: usize = 128;

/// Why one key/value command was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvDecodeError {
    #[error("truncated command")]
    Truncated,
    #[error("unknown command tag {0}")]
    UnknownTag(u8),
    #[error("key is empty")]
    EmptyKey,
    #[error("key of {0} bytes exceeds {KEY_BYTES_MAX}")]
    KeyTooLong(usize),
    #[error("value of {0} bytes exceeds {VALUE_BYTES_MAX}")]
    ValueTooLong(usize),
    #[error("transaction has {0} compares or operations in one part, more than {TXN_OPS_MAX}")]
    TooManyOps(usize),
    #[error("transactions cannot nest")]
    NestedTxn,
    #[error("unknown compare target {0}")]
    UnknownCompareTarget(u8),
    #[error("unknown compare operator {0}")]
    UnknownCompareOp(u8),
    #[error("reserved flag bits set: {0:#04x}")]
    ReservedFlags(u8),
}

/// Put `value` at `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutView<'a> {
    pub key: &'a [u8],
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
    pub key: &'a [u8],
    pub range_end: &'a [u8],
    pub prev_kv: bool,
}

/// Read `key`, or the keys in `[key, range_end)` (same conventions as [`DeleteView`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeView<'a> {
    pub key: &'a [u8],
    pub range_end: &'a [u8],
    /// Most keys returned; 0 for no limit.
    pub limit: u32,
    pub keys_only: bool,
    pub count_only: bool,
}

/// What a compare looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareTarget<'a> {
    Value(&'a [u8]),
    Version(u64),
    CreateRevision(u64),
    ModRevision(u64),
    Lease(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CompareOp {
    Equal = 0,
    NotEqual = 1,
    Less = 2,
    Greater = 3,
}

/// One compare of a transaction: `key`'s target `op` the operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compare<'a> {
    pub key: &'a [u8],
    pub op: CompareOp,
    pub target: CompareTarget<'a>,
}

/// A non-transaction operation (a transaction's branch holds these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvOp<'a> {
    Put(PutView<'a>),
    DeleteRange(DeleteView<'a>),
    Range(RangeView<'a>),
}

/// If every compare holds, run `success`, else `failure` (etcd semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnView<'a> {
    todo_fields: &'a [u8],
}

impl<'a> TxnView<'a> {
    pub fn compares(&self) -> impl Iterator<Item = Compare<'a>> + 'a {
        std::iter::empty()
    }
    pub fn success(&self) -> impl Iterator<Item = KvOp<'a>> + 'a {
        std::iter::empty()
    }
    pub fn failure(&self) -> impl Iterator<Item = KvOp<'a>> + 'a {
        std::iter::empty()
    }
}

/// One key/value command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvCommand<'a> {
    Put(PutView<'a>),
    DeleteRange(DeleteView<'a>),
    Range(RangeView<'a>),
    Txn(TxnView<'a>),
}

/// The validated commands of a `Kv` frame body, in order. Iterating is infallible.
#[derive(Clone, Copy, Debug)]
pub struct KvCommands<'a> {
    body: &'a [u8],
    count: u32,
}

impl<'a> KvCommands<'a> {
    pub fn len(&self) -> usize {
        self.count as usize
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    pub fn iter(&self) -> impl Iterator<Item = KvCommand<'a>> + 'a {
        let _ = self.body;
        std::iter::empty()
    }
}

/// Builds the body of a `Kv` frame, validating sizes as it goes, and appends the frame.
pub struct KvBatchWriter<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> KvBatchWriter<'o> {
    /// Starts a frame at the end of `out`.
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        KvBatchWriter { out }
    }
    pub fn push(&mut self, command: &KvCommand<'_>) -> Result<(), crate::EncodeError> {
        todo!("{command:?} {:?}", self.out)
    }
    /// Completes the frame header; returns the frame length in bytes.
    pub fn finish(self) -> usize {
        todo!()
    }
}
