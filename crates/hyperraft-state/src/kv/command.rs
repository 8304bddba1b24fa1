//! Applies one command (or one operation of a transaction) to a keyspace.
//!
//! These functions are the whole semantics of the store; sequential apply,
//! lanes and barriers all call them, which is what makes the parallel
//! result equal the sequential one.

use hyperraft_wire::{DeleteView, KvCommand, KvOp, PutView, RangeView};

use super::key_range::KeyRange;
use super::keyspace::Keyspace;
use super::reader::Reader;
use super::{lease_command, txn, Event, KvError, KvResponse};

/// Applies `command` at `revision`, appending its events to `events`.
///
/// A response of a command that wrote nothing carries revision 0, which
/// the batch later settles to the store revision (see
/// `KvResponse::settle_revision`): a lane cannot know whether another
/// lane's earlier command wrote.
pub(crate) fn apply(
    keyspace: &mut Keyspace<'_>,
    command: &KvCommand<'_>,
    revision: u64,
    events: &mut Vec<Event>,
) -> KvResponse {
    match command {
        KvCommand::Put(put) => apply_put(keyspace, put, revision, events),
        KvCommand::DeleteRange(delete) => apply_delete(keyspace, delete, revision, events),
        KvCommand::Range(range) => read_range(&keyspace.reader(), range, 0),
        KvCommand::Txn(transaction) => txn::apply_txn(keyspace, transaction, revision, events),
        KvCommand::LeaseGrant(grant) => lease_command::grant(keyspace, grant),
        KvCommand::LeaseRevoke(revoke) => lease_command::revoke(keyspace, revoke.id, revision, events),
        KvCommand::LeaseKeepAlive(keep_alive) => lease_command::keep_alive(keyspace, keep_alive.id),
        KvCommand::LeaseExpire(expire) => lease_command::expire(keyspace, expire.id, revision, events),
    }
}

/// Applies one operation of a transaction branch.
pub(crate) fn apply_op(
    keyspace: &mut Keyspace<'_>,
    op: &KvOp<'_>,
    revision: u64,
    events: &mut Vec<Event>,
) -> KvResponse {
    match op {
        KvOp::Put(put) => apply_put(keyspace, put, revision, events),
        KvOp::DeleteRange(delete) => apply_delete(keyspace, delete, revision, events),
        KvOp::Range(range) => read_range(&keyspace.reader(), range, 0),
    }
}

fn apply_put(keyspace: &mut Keyspace<'_>, put: &PutView<'_>, revision: u64, events: &mut Vec<Event>) -> KvResponse {
    if let Err(error) = check_lease(keyspace, put) {
        return KvResponse::Error(error);
    }
    if keyspace.keys_room() == 0 && keyspace.reader().get(put.key).is_none() {
        return KvResponse::Error(KvError::StoreFull { keys_max: keyspace.keys_max() });
    }
    let event = keyspace.put(put.key, put.value, put.lease, revision);
    let prev = if put.prev_kv { event.prev.clone() } else { None };
    events.push(event);
    KvResponse::Put { revision, prev }
}

/// etcd's rule: a put that names a lease needs that lease to be live.
pub(crate) fn check_lease(keyspace: &Keyspace<'_>, put: &PutView<'_>) -> Result<(), KvError> {
    if put.lease != 0 && !keyspace.leases().contains(put.lease) {
        return Err(KvError::LeaseNotFound { id: put.lease });
    }
    Ok(())
}

fn apply_delete(
    keyspace: &mut Keyspace<'_>,
    delete: &DeleteView<'_>,
    revision: u64,
    events: &mut Vec<Event>,
) -> KvResponse {
    let events_before = events.len();
    let deleted = keyspace.delete_range(KeyRange::new(delete.key, delete.range_end), revision, events);
    let prev = if delete.prev_kv {
        events[events_before..].iter().filter_map(|event| event.prev.clone()).collect()
    } else {
        Vec::new()
    };
    KvResponse::DeleteRange { revision: if deleted > 0 { revision } else { 0 }, deleted, prev }
}

/// Answers a read (etcd `Range`): keys in order, at most `limit` of them;
/// `count` counts every match; `more` says `limit` cut the answer short
/// (never with `count_only`, which returns no pairs, as in etcd).
pub(crate) fn read_range(reader: &Reader<'_>, view: &RangeView<'_>, revision: u64) -> KvResponse {
    let range = KeyRange::new(view.key, view.range_end);
    if view.count_only {
        return KvResponse::Range { revision, kvs: Vec::new(), count: reader.count(range), more: false };
    }
    let limit = if view.limit == 0 { usize::MAX } else { view.limit as usize };
    let pairs = reader.iter(range).take(limit);
    let kvs: Vec<_> = pairs.map(|(key, entry)| entry.to_key_value(key, !view.keys_only)).collect();
    // Without a limit every match was collected; counting again would
    // only repeat the scan.
    let count = if kvs.len() < limit { kvs.len() as u64 } else { reader.count(range) };
    let more = (kvs.len() as u64) < count;
    KvResponse::Range { revision, kvs, count, more }
}
