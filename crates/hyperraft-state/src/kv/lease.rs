//! The lease table: every live lease's TTL and deadline, and the counter
//! that chooses ids for grants that leave the id to the store.
//!
//! Which keys a lease holds is not kept here but in each shard (see
//! `Shard::leased`), so that lanes can attach and detach keys of their own
//! shard while the table itself only changes in barriers.

use std::collections::BTreeMap;

use super::KvError;

/// One live lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lease {
    /// The TTL it was granted with, in milliseconds.
    pub(crate) ttl_ms: u64,
    /// The batch timestamp (ns) at or after which it may be expired.
    pub(crate) deadline_ns: u64,
}

/// Every live lease, by id, and the next id to try for a grant of id 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaseTable {
    leases: BTreeMap<u64, Lease>,
    /// Never 0: id 0 means "no lease".
    id_next: u64,
    leases_max: usize,
}

impl LeaseTable {
    /// An empty table holding at most `leases_max` leases.
    pub(crate) fn new(leases_max: usize) -> Self {
        LeaseTable { leases: BTreeMap::new(), id_next: 1, leases_max }
    }

    /// A table from a snapshot's validated parts.
    pub(crate) fn from_parts(leases: BTreeMap<u64, Lease>, id_next: u64, leases_max: usize) -> Self {
        assert!(leases.len() <= leases_max, "snapshot leases over their bound");
        assert_ne!(id_next, 0, "lease id 0 means no lease");
        assert!(!leases.contains_key(&0), "lease id 0 means no lease");
        LeaseTable { leases, id_next, leases_max }
    }

    /// The lease `id`, if it is live.
    pub(crate) fn get(&self, id: u64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// Whether `id` names a live lease (never true for 0).
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.leases.contains_key(&id)
    }

    /// Every live lease in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &Lease)> + '_ {
        self.leases.iter().map(|(id, lease)| (*id, lease))
    }

    /// Number of live leases.
    pub(crate) fn len(&self) -> usize {
        self.leases.len()
    }

    /// See the field.
    pub(crate) fn id_next(&self) -> u64 {
        self.id_next
    }

    /// Creates a lease (id 0: the next free id from the counter) with its
    /// deadline `ttl_ms` after `now_ns`; returns its id.
    pub(crate) fn grant(&mut self, id: u64, ttl_ms: u64, now_ns: u64) -> Result<u64, KvError> {
        if id != 0 && self.leases.contains_key(&id) {
            return Err(KvError::LeaseExists { id });
        }
        if self.leases.len() >= self.leases_max {
            return Err(KvError::LeasesFull { leases_max: self.leases_max });
        }
        let id = if id == 0 { self.choose_id() } else { id };
        let lease = Lease { ttl_ms, deadline_ns: deadline(now_ns, ttl_ms) };
        let replaced = self.leases.insert(id, lease);
        assert!(replaced.is_none(), "a grant never replaces a live lease");
        assert!(self.leases.len() <= self.leases_max, "the lease table holds more than its limit");
        Ok(id)
    }

    /// Renews lease `id` for its full TTL from `now_ns`; returns the TTL.
    pub(crate) fn keep_alive(&mut self, id: u64, now_ns: u64) -> Result<u64, KvError> {
        let lease = self.leases.get_mut(&id).ok_or(KvError::LeaseNotFound { id })?;
        lease.deadline_ns = deadline(now_ns, lease.ttl_ms);
        Ok(lease.ttl_ms)
    }

    /// Removes lease `id`; its keys are the caller's to delete.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Lease> {
        self.leases.remove(&id)
    }

    /// The first id from the counter on that no live lease holds, skipping
    /// 0; advances the counter past it. The table is not full, so at most
    /// `len + 1` ids are tried.
    fn choose_id(&mut self) -> u64 {
        let mut id = self.id_next;
        for _ in 0..=self.leases.len() {
            if !self.leases.contains_key(&id) {
                self.id_next = next_id(id);
                return id;
            }
            id = next_id(id);
        }
        unreachable!("a table with room has a free id among len + 1 candidates");
    }
}

/// The id after `id`, wrapping past `u64::MAX` to 1 (0 is no lease).
fn next_id(id: u64) -> u64 {
    id.checked_add(1).unwrap_or(1)
}

/// `ttl_ms` after `now_ns`, saturating: a deadline past the end of time
/// is never reached, which is what it means.
fn deadline(now_ns: u64, ttl_ms: u64) -> u64 {
    now_ns.saturating_add(ttl_ms.saturating_mul(1_000_000))
}
