//! Transactions: compares, the duplicate-key rule and the key budget.

use hyperraft_wire::kv::TXN_OPS_MAX;
use hyperraft_wire::{Compare, CompareOp, CompareTarget, KvOp, TxnView};

use super::command::{apply_op, check_lease};
use super::key_range::KeyRange;
use super::keyspace::Keyspace;
use super::reader::Reader;
use super::{Event, KvError, KvResponse};

/// Applies a transaction at `revision`: every write of the branch that
/// runs shares that revision, and later operations see earlier ones'
/// writes. A refused transaction changes nothing, because every check
/// happens before the first write.
pub(crate) fn apply_txn(
    keyspace: &mut Keyspace<'_>,
    txn: &TxnView<'_>,
    revision: u64,
    events: &mut Vec<Event>,
) -> KvResponse {
    if has_duplicate_key(|| txn.success()) || has_duplicate_key(|| txn.failure()) {
        return KvResponse::Error(KvError::TxnDuplicateKey);
    }
    let reader = keyspace.reader();
    let succeeded = txn.compares().all(|compare| compare_holds(&reader, &compare));
    let checked =
        check_leases(keyspace, branch(txn, succeeded)).and_then(|()| check_room(keyspace, branch(txn, succeeded)));
    if let Err(error) = checked {
        return KvResponse::Error(error);
    }
    let events_before = events.len();
    let mut responses = Vec::new();
    for op in branch(txn, succeeded) {
        responses.push(apply_op(keyspace, &op, revision, events));
    }
    let wrote = events.len() > events_before;
    KvResponse::Txn { revision: if wrote { revision } else { 0 }, succeeded, responses }
}

/// The operations of the branch chosen by `succeeded`, as one iterator type.
fn branch<'a>(txn: &TxnView<'a>, succeeded: bool) -> impl Iterator<Item = KvOp<'a>> + 'a {
    let success = succeeded.then(|| txn.success());
    let failure = (!succeeded).then(|| txn.failure());
    success.into_iter().flatten().chain(failure.into_iter().flatten())
}

/// etcd's compare: a missing key has version, revisions and lease 0, and
/// every compare of a missing key's value fails (whatever the operator,
/// since "missing" and "empty" cannot be told apart).
pub(crate) fn compare_holds(reader: &Reader<'_>, compare: &Compare<'_>) -> bool {
    let entry = reader.get(compare.key);
    let ordering = match (compare.target, entry) {
        (CompareTarget::Value(_), None) => return false,
        (CompareTarget::Value(value), Some(entry)) => entry.value.as_slice().cmp(value),
        (CompareTarget::Version(version), _) => entry.map_or(0, |entry| entry.version).cmp(&version),
        (CompareTarget::CreateRevision(revision), _) => entry.map_or(0, |entry| entry.create_revision).cmp(&revision),
        (CompareTarget::ModRevision(revision), _) => entry.map_or(0, |entry| entry.mod_revision).cmp(&revision),
        (CompareTarget::Lease(lease), _) => entry.map_or(0, |entry| entry.lease).cmp(&lease),
    };
    match compare.op {
        CompareOp::Equal => ordering.is_eq(),
        CompareOp::NotEqual => ordering.is_ne(),
        CompareOp::Less => ordering.is_lt(),
        CompareOp::Greater => ordering.is_gt(),
    }
}

/// etcd's `checkIntervals`: within one branch, no key may be put twice and
/// no put may fall inside a delete of the same branch. Branches hold at most
/// `TXN_OPS_MAX` operations, so the quadratic scan is bounded and needs no
/// allocation.
pub(crate) fn has_duplicate_key<'a, I: Iterator<Item = KvOp<'a>>>(ops: impl Fn() -> I) -> bool {
    let mut puts = 0usize;
    let mut deletes = 0usize;
    for op in ops() {
        puts += usize::from(matches!(op, KvOp::Put(_)));
        deletes += usize::from(matches!(op, KvOp::DeleteRange(_)));
    }
    if puts == 0 || (puts == 1 && deletes == 0) {
        return false;
    }
    ops().enumerate().any(|(index, op)| {
        let KvOp::Put(put) = op else { return false };
        ops().enumerate().any(|(other_index, other)| match other {
            KvOp::Put(other) => other_index < index && other.key == put.key,
            KvOp::DeleteRange(delete) => KeyRange::new(delete.key, delete.range_end).contains(put.key),
            KvOp::Range(_) => false,
        })
    })
}

/// Refuses the branch if one of its puts names a lease that is not live
/// (etcd refuses the whole transaction). Lease commands cannot be inside a
/// transaction, so the table does not change while the branch runs.
fn check_leases<'a>(keyspace: &Keyspace<'_>, mut ops: impl Iterator<Item = KvOp<'a>>) -> Result<(), KvError> {
    ops.try_for_each(|op| match op {
        KvOp::Put(put) => check_lease(keyspace, &put),
        KvOp::DeleteRange(_) | KvOp::Range(_) => Ok(()),
    })
}

/// Refuses the branch if one of its puts would create a key with no room
/// left, replaying the key count through the branch without writing.
/// The replay is exact because a valid branch never puts a key it also
/// deletes, and never puts one key twice.
fn check_room<'a>(keyspace: &Keyspace<'_>, ops: impl Iterator<Item = KvOp<'a>>) -> Result<(), KvError> {
    let mut keys_room = keyspace.keys_room();
    if keys_room >= TXN_OPS_MAX {
        return Ok(());
    }
    let reader = keyspace.reader();
    for op in ops {
        match op {
            KvOp::Put(put) if reader.get(put.key).is_none() => {
                keys_room = keys_room.checked_sub(1).ok_or(KvError::StoreFull { keys_max: keyspace.keys_max() })?;
            }
            KvOp::DeleteRange(delete) => {
                let deleted = reader.count(KeyRange::new(delete.key, delete.range_end));
                keys_room = keys_room.saturating_add(usize::try_from(deleted).unwrap_or(usize::MAX));
            }
            KvOp::Put(_) | KvOp::Range(_) => {}
        }
    }
    Ok(())
}
