//! Applies the lease commands. They run only as barriers, over every
//! shard: they change the lease table, and a revoke deletes keys of any
//! shard.
//!
//! Grants and keep-alives write no key, so they take no revision (their
//! response carries the store revision, as a read's does); a revoke or an
//! expiry that deletes keys deletes them all at the command's revision.

use hyperraft_wire::LeaseGrantView;

use super::keyspace::Keyspace;
use super::{Event, KvResponse};

/// Creates a lease whose deadline is its TTL after the batch's timestamp.
pub(crate) fn grant(keyspace: &mut Keyspace<'_>, grant: &LeaseGrantView) -> KvResponse {
    let now_ns = keyspace.now_ns();
    match keyspace.leases_mut().grant(grant.id, grant.ttl_ms, now_ns) {
        Ok(id) => KvResponse::LeaseGrant { revision: 0, id, ttl_ms: grant.ttl_ms },
        Err(error) => KvResponse::Error(error),
    }
}

/// Renews a lease for its full TTL from the batch's timestamp.
pub(crate) fn keep_alive(keyspace: &mut Keyspace<'_>, id: u64) -> KvResponse {
    let now_ns = keyspace.now_ns();
    match keyspace.leases_mut().keep_alive(id, now_ns) {
        Ok(ttl_ms) => KvResponse::LeaseKeepAlive { revision: 0, id, ttl_ms },
        Err(error) => KvResponse::Error(error),
    }
}

/// Deletes a lease and every key attached to it, at `revision`.
pub(crate) fn revoke(keyspace: &mut Keyspace<'_>, id: u64, revision: u64, events: &mut Vec<Event>) -> KvResponse {
    if !keyspace.leases().contains(id) {
        return KvResponse::Error(super::KvError::LeaseNotFound { id });
    }
    let deleted = remove(keyspace, id, revision, events);
    KvResponse::LeaseRevoke { revision: if deleted > 0 { revision } else { 0 }, deleted }
}

/// Revokes a lease whose deadline is at or before the batch's timestamp;
/// otherwise, or for a lease that no longer exists (revoked meanwhile, or
/// expired by an earlier command), changes nothing.
pub(crate) fn expire(keyspace: &mut Keyspace<'_>, id: u64, revision: u64, events: &mut Vec<Event>) -> KvResponse {
    let due = keyspace.leases().get(id).is_some_and(|lease| lease.deadline_ns <= keyspace.now_ns());
    if !due {
        return KvResponse::LeaseExpire { revision: 0, expired: false, deleted: 0 };
    }
    let deleted = remove(keyspace, id, revision, events);
    KvResponse::LeaseExpire { revision: if deleted > 0 { revision } else { 0 }, expired: true, deleted }
}

/// Deletes the keys of live lease `id`, then the lease; returns how many
/// keys went.
fn remove(keyspace: &mut Keyspace<'_>, id: u64, revision: u64, events: &mut Vec<Event>) -> u64 {
    let deleted = keyspace.delete_lease_keys(id, revision, events);
    let removed = keyspace.leases_mut().remove(id);
    assert!(removed.is_some(), "the lease was live when its keys were deleted");
    deleted
}
