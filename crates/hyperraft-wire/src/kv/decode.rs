//! Parsing and validation of single key/value commands.
//!
//! Every function takes the bytes where an item starts and returns the item
//! and the bytes after it. The same functions validate a body at decode time
//! and re-read it during iteration, so the two can never disagree.

use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::FromBytes;

use super::layout::{
    CompareHeader, DeleteHeader, LeaseGrantHeader, LeaseHeader, PutHeader, RangeHeader, TxnHeader, FLAG_COUNT_ONLY,
    FLAG_KEYS_ONLY, FLAG_PREV_KV, TAG_DELETE_RANGE, TAG_LEASE_EXPIRE, TAG_LEASE_GRANT, TAG_LEASE_KEEP_ALIVE,
    TAG_LEASE_REVOKE, TAG_PUT, TAG_RANGE, TAG_TXN, TARGET_CREATE_REVISION, TARGET_LEASE, TARGET_MOD_REVISION,
    TARGET_VALUE, TARGET_VERSION,
};
use super::{
    Compare, CompareOp, CompareTarget, DeleteView, KvCommand, KvDecodeError, KvOp, LeaseExpireView, LeaseGrantView,
    LeaseKeepAliveView, LeaseRevokeView, PutView, RangeView, TxnView, KEY_BYTES_MAX, LEASE_TTL_MS_MAX,
    LEASE_TTL_MS_MIN, TXN_OPS_MAX, VALUE_BYTES_MAX,
};

type Parsed<'a, T> = Result<(T, &'a [u8]), KvDecodeError>;

/// Checks a key's length: keys are never empty and at most [`KEY_BYTES_MAX`].
#[inline]
pub(super) fn check_key(len: usize) -> Result<(), KvDecodeError> {
    match len {
        0 => Err(KvDecodeError::EmptyKey),
        1..=KEY_BYTES_MAX => Ok(()),
        _ => Err(KvDecodeError::KeyTooLong(len)),
    }
}

/// Checks a range end's length; an empty range end is meaningful.
#[inline]
pub(super) fn check_range_end(len: usize) -> Result<(), KvDecodeError> {
    if len > KEY_BYTES_MAX {
        return Err(KvDecodeError::KeyTooLong(len));
    }
    Ok(())
}

/// Checks a value's length against [`VALUE_BYTES_MAX`].
#[inline]
pub(super) fn check_value(len: usize) -> Result<(), KvDecodeError> {
    if len > VALUE_BYTES_MAX {
        return Err(KvDecodeError::ValueTooLong(len));
    }
    Ok(())
}

/// Checks a lease TTL against [`LEASE_TTL_MS_MIN`]..=[`LEASE_TTL_MS_MAX`].
#[inline]
pub(super) fn check_lease_ttl(ttl_ms: u64) -> Result<(), KvDecodeError> {
    if !(LEASE_TTL_MS_MIN..=LEASE_TTL_MS_MAX).contains(&ttl_ms) {
        return Err(KvDecodeError::LeaseTtlOutOfRange(ttl_ms));
    }
    Ok(())
}

/// Checks a transaction part's item count against [`TXN_OPS_MAX`].
pub(super) fn check_ops(count: usize) -> Result<(), KvDecodeError> {
    if count > TXN_OPS_MAX {
        return Err(KvDecodeError::TooManyOps(count));
    }
    Ok(())
}

#[inline]
fn check_flags(flags: u8, defined: u8) -> Result<(), KvDecodeError> {
    match flags & !defined {
        0 => Ok(()),
        reserved => Err(KvDecodeError::ReservedFlags(reserved)),
    }
}

/// Splits `len` bytes off the front of `bytes`.
#[inline]
fn take(bytes: &[u8], len: usize) -> Parsed<'_, &[u8]> {
    if len > bytes.len() {
        return Err(KvDecodeError::Truncated);
    }
    Ok(bytes.split_at(len))
}

/// Parses one top-level command.
///
/// Dispatches on the tag itself rather than going through [`op`]: building
/// the command directly avoids re-laying out a `KvOp` as a `KvCommand`,
/// which showed up as store-forwarding stalls in the `kv_frame` benchmark.
#[inline]
pub(super) fn command(bytes: &[u8]) -> Parsed<'_, KvCommand<'_>> {
    match bytes.first() {
        None => Err(KvDecodeError::Truncated),
        Some(&TAG_PUT) => put(bytes).map(|(put, rest)| (KvCommand::Put(put), rest)),
        Some(&TAG_DELETE_RANGE) => delete_range(bytes).map(|(delete, rest)| (KvCommand::DeleteRange(delete), rest)),
        Some(&TAG_RANGE) => range(bytes).map(|(range, rest)| (KvCommand::Range(range), rest)),
        Some(&TAG_TXN) => txn(bytes).map(|(txn, rest)| (KvCommand::Txn(txn), rest)),
        Some(&TAG_LEASE_GRANT) => lease_grant(bytes).map(|(grant, rest)| (KvCommand::LeaseGrant(grant), rest)),
        Some(&TAG_LEASE_REVOKE) => {
            lease_id(bytes).map(|(id, rest)| (KvCommand::LeaseRevoke(LeaseRevokeView { id }), rest))
        }
        Some(&TAG_LEASE_KEEP_ALIVE) => {
            lease_id(bytes).map(|(id, rest)| (KvCommand::LeaseKeepAlive(LeaseKeepAliveView { id }), rest))
        }
        Some(&TAG_LEASE_EXPIRE) => {
            lease_id(bytes).map(|(id, rest)| (KvCommand::LeaseExpire(LeaseExpireView { id }), rest))
        }
        Some(&tag) => Err(KvDecodeError::UnknownTag(tag)),
    }
}

/// Parses one non-transaction operation.
#[inline]
pub(super) fn op(bytes: &[u8]) -> Parsed<'_, KvOp<'_>> {
    match bytes.first() {
        None => Err(KvDecodeError::Truncated),
        Some(&TAG_PUT) => put(bytes).map(|(put, rest)| (KvOp::Put(put), rest)),
        Some(&TAG_DELETE_RANGE) => delete_range(bytes).map(|(delete, rest)| (KvOp::DeleteRange(delete), rest)),
        Some(&TAG_RANGE) => range(bytes).map(|(range, rest)| (KvOp::Range(range), rest)),
        Some(&TAG_TXN) => Err(KvDecodeError::NestedTxn),
        Some(&tag @ (TAG_LEASE_GRANT | TAG_LEASE_REVOKE | TAG_LEASE_KEEP_ALIVE | TAG_LEASE_EXPIRE)) => {
            Err(KvDecodeError::LeaseInTxn(tag))
        }
        Some(&tag) => Err(KvDecodeError::UnknownTag(tag)),
    }
}

#[inline]
fn lease_grant(bytes: &[u8]) -> Parsed<'_, LeaseGrantView> {
    let (header, rest) = LeaseGrantHeader::ref_from_prefix(bytes).map_err(|_| KvDecodeError::Truncated)?;
    check_flags(header.flags, 0)?;
    let ttl_ms = header.ttl_ms.get();
    check_lease_ttl(ttl_ms)?;
    Ok((LeaseGrantView { id: header.id.get(), ttl_ms }, rest))
}

/// Parses the id of a LeaseRevoke, LeaseKeepAlive or LeaseExpire (one layout).
#[inline]
fn lease_id(bytes: &[u8]) -> Parsed<'_, u64> {
    let (header, rest) = LeaseHeader::ref_from_prefix(bytes).map_err(|_| KvDecodeError::Truncated)?;
    check_flags(header.flags, 0)?;
    Ok((header.id.get(), rest))
}

#[inline]
fn put(bytes: &[u8]) -> Parsed<'_, PutView<'_>> {
    let (header, rest) = PutHeader::ref_from_prefix(bytes).map_err(|_| KvDecodeError::Truncated)?;
    check_flags(header.flags, FLAG_PREV_KV)?;
    let key_len = usize::from(header.key_len.get());
    let value_len = header.value_len.get() as usize;
    check_key(key_len)?;
    check_value(value_len)?;
    let (key, rest) = take(rest, key_len)?;
    let (value, rest) = take(rest, value_len)?;
    let prev_kv = header.flags & FLAG_PREV_KV != 0;
    Ok((PutView { key, value, lease: header.lease.get(), prev_kv }, rest))
}

#[inline]
fn delete_range(bytes: &[u8]) -> Parsed<'_, DeleteView<'_>> {
    let (header, rest) = DeleteHeader::ref_from_prefix(bytes).map_err(|_| KvDecodeError::Truncated)?;
    check_flags(header.flags, FLAG_PREV_KV)?;
    let key_len = usize::from(header.key_len.get());
    let end_len = usize::from(header.end_len.get());
    check_key(key_len)?;
    check_range_end(end_len)?;
    let (key, rest) = take(rest, key_len)?;
    let (range_end, rest) = take(rest, end_len)?;
    let prev_kv = header.flags & FLAG_PREV_KV != 0;
    Ok((DeleteView { key, range_end, prev_kv }, rest))
}

#[inline]
fn range(bytes: &[u8]) -> Parsed<'_, RangeView<'_>> {
    let (header, rest) = RangeHeader::ref_from_prefix(bytes).map_err(|_| KvDecodeError::Truncated)?;
    check_flags(header.flags, FLAG_KEYS_ONLY | FLAG_COUNT_ONLY)?;
    let key_len = usize::from(header.key_len.get());
    let end_len = usize::from(header.end_len.get());
    check_key(key_len)?;
    check_range_end(end_len)?;
    let (key, rest) = take(rest, key_len)?;
    let (range_end, rest) = take(rest, end_len)?;
    let view = RangeView {
        key,
        range_end,
        limit: header.limit.get(),
        keys_only: header.flags & FLAG_KEYS_ONLY != 0,
        count_only: header.flags & FLAG_COUNT_ONLY != 0,
    };
    Ok((view, rest))
}

fn txn(bytes: &[u8]) -> Parsed<'_, TxnView<'_>> {
    let (header, rest) = TxnHeader::ref_from_prefix(bytes).map_err(|_| KvDecodeError::Truncated)?;
    check_flags(header.flags, 0)?;
    let compare_count = header.compare_count.get();
    let success_count = header.success_count.get();
    let failure_count = header.failure_count.get();
    for count in [compare_count, success_count, failure_count] {
        check_ops(usize::from(count))?;
    }
    let (compares, rest) = take(rest, header.compares_len.get() as usize)?;
    let (success, rest) = take(rest, header.success_len.get() as usize)?;
    let (failure, rest) = take(rest, header.failure_len.get() as usize)?;
    walk(compares, compare_count, compare)?;
    walk(success, success_count, op)?;
    walk(failure, failure_count, op)?;
    let command_len = bytes.len() - rest.len();
    let view = TxnView {
        bytes: &bytes[..command_len],
        compares,
        success,
        failure,
        compare_count,
        success_count,
        failure_count,
    };
    Ok((view, rest))
}

/// Checks that `part` holds exactly `count` valid items.
fn walk<'a, T>(mut part: &'a [u8], count: u16, parse: impl Fn(&'a [u8]) -> Parsed<'a, T>) -> Result<(), KvDecodeError> {
    for _ in 0..count {
        let (_, rest) = parse(part)?;
        part = rest;
    }
    if !part.is_empty() {
        return Err(KvDecodeError::TrailingBytes(part.len()));
    }
    Ok(())
}

/// Parses one compare of a transaction.
#[inline]
pub(super) fn compare(bytes: &[u8]) -> Parsed<'_, Compare<'_>> {
    let (header, rest) = CompareHeader::ref_from_prefix(bytes).map_err(|_| KvDecodeError::Truncated)?;
    let target = header.target;
    if target > TARGET_LEASE {
        return Err(KvDecodeError::UnknownCompareTarget(target));
    }
    let op = compare_op(header.op)?;
    let key_len = usize::from(header.key_len.get());
    check_key(key_len)?;
    let (key, rest) = take(rest, key_len)?;
    let (target, rest) = compare_target(target, rest)?;
    Ok((Compare { key, op, target }, rest))
}

#[inline]
fn compare_op(op: u8) -> Result<CompareOp, KvDecodeError> {
    match op {
        0 => Ok(CompareOp::Equal),
        1 => Ok(CompareOp::NotEqual),
        2 => Ok(CompareOp::Less),
        3 => Ok(CompareOp::Greater),
        _ => Err(KvDecodeError::UnknownCompareOp(op)),
    }
}

/// Parses a compare's operand, whose shape depends on the (known) target.
#[inline]
fn compare_target(target: u8, bytes: &[u8]) -> Parsed<'_, CompareTarget<'_>> {
    if target == TARGET_VALUE {
        let (value_len, rest) = U32::read_from_prefix(bytes).map_err(|_| KvDecodeError::Truncated)?;
        let value_len = value_len.get() as usize;
        check_value(value_len)?;
        let (value, rest) = take(rest, value_len)?;
        return Ok((CompareTarget::Value(value), rest));
    }
    let (operand, rest) = U64::read_from_prefix(bytes).map_err(|_| KvDecodeError::Truncated)?;
    let operand = operand.get();
    let target = match target {
        TARGET_VERSION => CompareTarget::Version(operand),
        TARGET_CREATE_REVISION => CompareTarget::CreateRevision(operand),
        TARGET_MOD_REVISION => CompareTarget::ModRevision(operand),
        TARGET_LEASE => CompareTarget::Lease(operand),
        _ => return Err(KvDecodeError::UnknownCompareTarget(target)),
    };
    Ok((target, rest))
}
