//! A lease as callers see it.

/// One live lease (etcd's `LeaseTimeToLive` answer, less the keys: list
/// those with [`super::KvStore::lease_keys`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeaseInfo {
    /// The lease id; never 0.
    pub id: u64,
    /// The TTL it was granted with, in milliseconds.
    pub ttl_ms: u64,
    /// Batch timestamp (ns) from which a `LeaseExpire` revokes it: the
    /// timestamp of its grant or last keep-alive plus its TTL.
    pub deadline_ns: u64,
    /// Number of keys attached to it.
    pub keys: u64,
}
