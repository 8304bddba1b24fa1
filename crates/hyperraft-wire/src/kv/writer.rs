//! [`KvBatchWriter`]: builds a whole `Kv` frame in the caller's buffer.

use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

use super::decode::{check_key, check_lease_ttl, check_ops, check_range_end, check_value};
use super::layout::{
    CompareHeader, DeleteHeader, LeaseGrantHeader, LeaseHeader, PutHeader, RangeHeader, TxnHeader, FLAG_COUNT_ONLY,
    FLAG_KEYS_ONLY, FLAG_PREV_KV, TAG_DELETE_RANGE, TAG_LEASE_EXPIRE, TAG_LEASE_GRANT, TAG_LEASE_KEEP_ALIVE,
    TAG_LEASE_REVOKE, TAG_PUT, TAG_RANGE, TAG_TXN, TARGET_CREATE_REVISION, TARGET_LEASE, TARGET_MOD_REVISION,
    TARGET_VALUE, TARGET_VERSION,
};
use super::{
    Compare, CompareTarget, DeleteView, KvCommand, KvDecodeError, KvOp, LeaseExpireView, LeaseGrantView,
    LeaseKeepAliveView, LeaseRevokeView, PutView, RangeView,
};
use crate::frame::{begin_frame, seal_frame, EncodeError, Kind, Limits};

/// Builds the body of a `Kv` frame, validating sizes as it goes, and appends the frame.
///
/// Each command is checked against the same rules the decoder applies
/// (key, value and transaction bounds) and against the frame's [`Limits`]
/// before any byte of it is written, so a rejected command leaves the
/// writer as it was and the batch can go on or be finished. [`finish`]
/// writes the header and checksums. A writer dropped without `finish`
/// removes its partial frame from `out`, so `out` never holds a frame that
/// would fail its checksum.
///
/// [`finish`]: KvBatchWriter::finish
pub struct KvBatchWriter<'o> {
    out: &'o mut Vec<u8>,
    /// Where this frame's header starts in `out`.
    start: usize,
    count: u32,
    limits: Limits,
    finished: bool,
}

impl<'o> KvBatchWriter<'o> {
    /// Starts a frame at the end of `out`, bounded by [`Limits::default`].
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        KvBatchWriter::with_limits(out, Limits::default())
    }

    /// Starts a frame at the end of `out`, bounded by `limits`.
    pub fn with_limits(out: &'o mut Vec<u8>, limits: Limits) -> Self {
        let start = begin_frame(out, 0);
        KvBatchWriter { out, start, count: 0, limits, finished: false }
    }

    /// Number of commands written so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no command has been written yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the frame so far, header included.
    pub fn frame_bytes(&self) -> usize {
        self.out.len() - self.start
    }

    /// Appends a Put.
    pub fn put(&mut self, put: PutView<'_>) -> Result<(), EncodeError> {
        self.command(check_put(&put), put_bytes(&put))?;
        write_put(self.out, &put);
        Ok(())
    }

    /// Appends a DeleteRange.
    pub fn delete_range(&mut self, delete: DeleteView<'_>) -> Result<(), EncodeError> {
        self.command(check_keys(delete.key, delete.range_end), delete_bytes(&delete))?;
        write_delete(self.out, &delete);
        Ok(())
    }

    /// Appends a Range.
    pub fn range(&mut self, range: RangeView<'_>) -> Result<(), EncodeError> {
        self.command(check_keys(range.key, range.range_end), range_bytes(&range))?;
        write_range(self.out, &range);
        Ok(())
    }

    /// Appends a transaction: if every compare holds, `success` runs, else `failure`.
    pub fn txn(
        &mut self,
        compares: &[Compare<'_>],
        success: &[KvOp<'_>],
        failure: &[KvOp<'_>],
    ) -> Result<(), EncodeError> {
        let parts_bytes = [
            compares.iter().map(compare_bytes).sum::<u64>(),
            success.iter().map(op_bytes).sum::<u64>(),
            failure.iter().map(op_bytes).sum::<u64>(),
        ];
        let command_bytes = size_of::<TxnHeader>() as u64 + parts_bytes.iter().sum::<u64>();
        self.command(check_txn(compares, success, failure), command_bytes)?;
        // `command` bounded the whole command by the frame limit, a u32.
        let part_len = |bytes: u64| U32::new(bytes as u32);
        let header = TxnHeader {
            tag: TAG_TXN,
            flags: 0,
            compare_count: U16::new(compares.len() as u16),
            success_count: U16::new(success.len() as u16),
            failure_count: U16::new(failure.len() as u16),
            compares_len: part_len(parts_bytes[0]),
            success_len: part_len(parts_bytes[1]),
            failure_len: part_len(parts_bytes[2]),
        };
        self.out.extend_from_slice(header.as_bytes());
        compares.iter().for_each(|compare| write_compare(self.out, compare));
        success.iter().chain(failure).for_each(|op| write_op(self.out, op));
        Ok(())
    }

    /// Appends a LeaseGrant; a TTL outside the bounds is refused.
    pub fn lease_grant(&mut self, grant: LeaseGrantView) -> Result<(), EncodeError> {
        self.command(check_lease_ttl(grant.ttl_ms), size_of::<LeaseGrantHeader>() as u64)?;
        let header =
            LeaseGrantHeader { tag: TAG_LEASE_GRANT, flags: 0, id: U64::new(grant.id), ttl_ms: U64::new(grant.ttl_ms) };
        self.out.extend_from_slice(header.as_bytes());
        Ok(())
    }

    /// Appends a LeaseRevoke.
    pub fn lease_revoke(&mut self, revoke: LeaseRevokeView) -> Result<(), EncodeError> {
        self.lease_command(TAG_LEASE_REVOKE, revoke.id)
    }

    /// Appends a LeaseKeepAlive.
    pub fn lease_keep_alive(&mut self, keep_alive: LeaseKeepAliveView) -> Result<(), EncodeError> {
        self.lease_command(TAG_LEASE_KEEP_ALIVE, keep_alive.id)
    }

    /// Appends a LeaseExpire.
    pub fn lease_expire(&mut self, expire: LeaseExpireView) -> Result<(), EncodeError> {
        self.lease_command(TAG_LEASE_EXPIRE, expire.id)
    }

    /// Appends a command, typically one read from another frame.
    ///
    /// A transaction view is copied verbatim: it was validated when its
    /// frame was decoded, and the encoding is canonical.
    pub fn push(&mut self, command: &KvCommand<'_>) -> Result<(), EncodeError> {
        match command {
            KvCommand::Put(put) => self.put(*put),
            KvCommand::DeleteRange(delete) => self.delete_range(*delete),
            KvCommand::Range(range) => self.range(*range),
            KvCommand::Txn(txn) => {
                let bytes = txn.as_bytes();
                self.command(Ok(()), bytes.len() as u64)?;
                self.out.extend_from_slice(bytes);
                Ok(())
            }
            KvCommand::LeaseGrant(grant) => self.lease_grant(*grant),
            KvCommand::LeaseRevoke(revoke) => self.lease_revoke(*revoke),
            KvCommand::LeaseKeepAlive(keep_alive) => self.lease_keep_alive(*keep_alive),
            KvCommand::LeaseExpire(expire) => self.lease_expire(*expire),
        }
    }

    /// Completes the frame header; returns the frame length in bytes.
    pub fn finish(mut self) -> usize {
        self.finished = true;
        seal_frame(self.out, self.start, Kind::Kv, self.count)
    }

    /// Appends one of the lease commands that carry only an id.
    fn lease_command(&mut self, tag: u8, id: u64) -> Result<(), EncodeError> {
        self.command(Ok(()), size_of::<LeaseHeader>() as u64)?;
        let header = LeaseHeader { tag, flags: 0, id: U64::new(id) };
        self.out.extend_from_slice(header.as_bytes());
        Ok(())
    }

    /// Admits one command of `command_bytes` whose contents checked as
    /// `check`: maps a bad command to its index, enforces the frame's count
    /// and size limits, and reserves room so the write cannot fail.
    fn command(&mut self, check: Result<(), KvDecodeError>, command_bytes: u64) -> Result<(), EncodeError> {
        check.map_err(|reason| EncodeError::Kv { index: self.count, reason })?;
        if self.count >= self.limits.count_max {
            let count = u64::from(self.count) + 1;
            return Err(EncodeError::CountTooLarge { count, max: self.limits.count_max });
        }
        let frame_bytes = self.frame_bytes() as u64 + command_bytes;
        if frame_bytes > u64::from(self.limits.frame_bytes_max) {
            return Err(EncodeError::Oversize { bytes: frame_bytes, max: self.limits.frame_bytes_max });
        }
        // Below `frame_bytes_max`, a u32, so it fits a usize.
        self.out.reserve(command_bytes as usize);
        self.count += 1;
        Ok(())
    }
}

impl Drop for KvBatchWriter<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.start);
        }
    }
}

fn check_put(put: &PutView<'_>) -> Result<(), KvDecodeError> {
    check_key(put.key.len())?;
    check_value(put.value.len())
}

fn check_keys(key: &[u8], range_end: &[u8]) -> Result<(), KvDecodeError> {
    check_key(key.len())?;
    check_range_end(range_end.len())
}

fn check_op(op: &KvOp<'_>) -> Result<(), KvDecodeError> {
    match op {
        KvOp::Put(put) => check_put(put),
        KvOp::DeleteRange(delete) => check_keys(delete.key, delete.range_end),
        KvOp::Range(range) => check_keys(range.key, range.range_end),
    }
}

fn check_compare(compare: &Compare<'_>) -> Result<(), KvDecodeError> {
    check_key(compare.key.len())?;
    match compare.target {
        CompareTarget::Value(value) => check_value(value.len()),
        _ => Ok(()),
    }
}

fn check_txn(compares: &[Compare<'_>], success: &[KvOp<'_>], failure: &[KvOp<'_>]) -> Result<(), KvDecodeError> {
    for count in [compares.len(), success.len(), failure.len()] {
        check_ops(count)?;
    }
    compares.iter().try_for_each(check_compare)?;
    success.iter().chain(failure).try_for_each(check_op)
}

fn put_bytes(put: &PutView<'_>) -> u64 {
    (size_of::<PutHeader>() + put.key.len() + put.value.len()) as u64
}

fn delete_bytes(delete: &DeleteView<'_>) -> u64 {
    (size_of::<DeleteHeader>() + delete.key.len() + delete.range_end.len()) as u64
}

fn range_bytes(range: &RangeView<'_>) -> u64 {
    (size_of::<RangeHeader>() + range.key.len() + range.range_end.len()) as u64
}

fn op_bytes(op: &KvOp<'_>) -> u64 {
    match op {
        KvOp::Put(put) => put_bytes(put),
        KvOp::DeleteRange(delete) => delete_bytes(delete),
        KvOp::Range(range) => range_bytes(range),
    }
}

fn compare_bytes(compare: &Compare<'_>) -> u64 {
    let operand_bytes = match compare.target {
        CompareTarget::Value(value) => size_of::<u32>() + value.len(),
        _ => size_of::<u64>(),
    };
    (size_of::<CompareHeader>() + compare.key.len() + operand_bytes) as u64
}

// The writers below run only after their command was checked, so every
// length fits its field.

fn flag(set: bool, bit: u8) -> u8 {
    if set {
        bit
    } else {
        0
    }
}

fn write_put(out: &mut Vec<u8>, put: &PutView<'_>) {
    let header = PutHeader {
        tag: TAG_PUT,
        flags: flag(put.prev_kv, FLAG_PREV_KV),
        key_len: U16::new(put.key.len() as u16),
        value_len: U32::new(put.value.len() as u32),
        lease: U64::new(put.lease),
    };
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(put.key);
    out.extend_from_slice(put.value);
}

fn write_delete(out: &mut Vec<u8>, delete: &DeleteView<'_>) {
    let header = DeleteHeader {
        tag: TAG_DELETE_RANGE,
        flags: flag(delete.prev_kv, FLAG_PREV_KV),
        key_len: U16::new(delete.key.len() as u16),
        end_len: U16::new(delete.range_end.len() as u16),
    };
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(delete.key);
    out.extend_from_slice(delete.range_end);
}

fn write_range(out: &mut Vec<u8>, range: &RangeView<'_>) {
    let header = RangeHeader {
        tag: TAG_RANGE,
        flags: flag(range.keys_only, FLAG_KEYS_ONLY) | flag(range.count_only, FLAG_COUNT_ONLY),
        key_len: U16::new(range.key.len() as u16),
        end_len: U16::new(range.range_end.len() as u16),
        limit: U32::new(range.limit),
    };
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(range.key);
    out.extend_from_slice(range.range_end);
}

fn write_op(out: &mut Vec<u8>, op: &KvOp<'_>) {
    match op {
        KvOp::Put(put) => write_put(out, put),
        KvOp::DeleteRange(delete) => write_delete(out, delete),
        KvOp::Range(range) => write_range(out, range),
    }
}

fn write_compare(out: &mut Vec<u8>, compare: &Compare<'_>) {
    let (target, operand) = match compare.target {
        CompareTarget::Value(_) => (TARGET_VALUE, 0),
        CompareTarget::Version(operand) => (TARGET_VERSION, operand),
        CompareTarget::CreateRevision(operand) => (TARGET_CREATE_REVISION, operand),
        CompareTarget::ModRevision(operand) => (TARGET_MOD_REVISION, operand),
        CompareTarget::Lease(operand) => (TARGET_LEASE, operand),
    };
    let header = CompareHeader { target, op: compare.op as u8, key_len: U16::new(compare.key.len() as u16) };
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(compare.key);
    match compare.target {
        CompareTarget::Value(value) => {
            out.extend_from_slice(U32::new(value.len() as u32).as_bytes());
            out.extend_from_slice(value);
        }
        _ => out.extend_from_slice(U64::new(operand).as_bytes()),
    }
}
