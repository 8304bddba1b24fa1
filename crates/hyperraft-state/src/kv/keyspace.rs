//! Write access to some shards, with the key budget that bounds the store.

use super::key_range::KeyRange;
use super::lease::LeaseTable;
use super::reader::Reader;
use super::shard::{shard_of, Shard, SHARDS};
use super::spares::Spares;
use super::Event;

/// A mutable view over all shards (sequential apply and barriers) or over
/// the one shard a lane owns (parallel apply).
pub(crate) struct Keyspace<'s> {
    shards: &'s mut [Shard],
    /// Shard index of `shards[0]`.
    first: usize,
    /// How many more keys may be created before the store is full.
    keys_room: usize,
    keys_max: usize,
    /// Buffers for the events this view makes.
    spares: &'s mut Spares,
    leases: Leases<'s>,
    /// The batch's timestamp: the clock of lease deadlines.
    now_ns: u64,
}

/// The lease table: writable over every shard, read-only in a lane (lease
/// commands are barriers; lanes only check that a put's lease exists).
enum Leases<'s> {
    Shared(&'s LeaseTable),
    Exclusive(&'s mut LeaseTable),
}

/// What one batch's keyspaces share: the key bound and the clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub(crate) keys_max: usize,
    pub(crate) now_ns: u64,
}

impl<'s> Keyspace<'s> {
    /// A view over every shard, with the exact room left under `keys_max`.
    pub(crate) fn whole(
        shards: &'s mut [Shard],
        leases: &'s mut LeaseTable,
        bounds: Bounds,
        spares: &'s mut Spares,
    ) -> Self {
        let len = Reader::new(shards, 0).len();
        assert!(len <= bounds.keys_max, "the store holds more keys than its limit");
        let keys_room = bounds.keys_max - len;
        let (keys_max, now_ns, leases) = (bounds.keys_max, bounds.now_ns, Leases::Exclusive(leases));
        Keyspace { shards, first: 0, keys_room, keys_max, spares, leases, now_ns }
    }

    /// A view over the one shard at `index`, for a lane.
    ///
    /// The lane's room is unbounded: a segment only runs in lanes when the
    /// store has room for every put in it (see `Lanes`), so no put in a lane
    /// can meet the bound and a lane needs no other lane's count.
    pub(crate) fn lane(
        shard: &'s mut Shard,
        index: usize,
        leases: &'s LeaseTable,
        bounds: Bounds,
        spares: &'s mut Spares,
    ) -> Self {
        let shards = std::slice::from_mut(shard);
        let (keys_max, now_ns, leases) = (bounds.keys_max, bounds.now_ns, Leases::Shared(leases));
        Keyspace { shards, first: index, keys_room: usize::MAX, keys_max, spares, leases, now_ns }
    }

    /// The lease table, to read.
    pub(crate) fn leases(&self) -> &LeaseTable {
        match &self.leases {
            Leases::Shared(leases) => leases,
            Leases::Exclusive(leases) => leases,
        }
    }

    /// The lease table, to change; only a barrier may.
    pub(crate) fn leases_mut(&mut self) -> &mut LeaseTable {
        match &mut self.leases {
            Leases::Exclusive(leases) => leases,
            Leases::Shared(_) => panic!("a lease command must be routed as a barrier"),
        }
    }

    /// The batch's timestamp, in nanoseconds.
    pub(crate) fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Deletes every key attached to lease `id` at `revision`, in key order,
    /// appending one event per key (as a delete-range would); returns how
    /// many were deleted. Each key leaves the lease index as it is deleted;
    /// removing the lease itself is the caller's job.
    pub(crate) fn delete_lease_keys(&mut self, id: u64, revision: u64, events: &mut Vec<Event>) -> u64 {
        assert_eq!(self.shards.len(), SHARDS, "a lease's keys span shards: revoke must be a barrier");
        let mut keys: Vec<Vec<u8>> =
            self.shards.iter().flat_map(|shard| shard.lease_keys(id)).map(<[u8]>::to_vec).collect();
        keys.sort_unstable();
        let events_before = events.len();
        for key in keys {
            let slot = self.slot(&key);
            let event = self.shards[slot].delete_owned(key, revision);
            events.push(event.expect("an attached key is live"));
        }
        let deleted = events.len() - events_before;
        self.keys_room = self.keys_room.saturating_add(deleted);
        deleted as u64
    }

    /// Read access to the same shards.
    pub(crate) fn reader(&self) -> Reader<'_> {
        Reader::new(self.shards, self.first)
    }

    /// How many more keys may be created.
    pub(crate) fn keys_room(&self) -> usize {
        self.keys_room
    }

    /// The store's key limit, for errors.
    pub(crate) fn keys_max(&self) -> usize {
        self.keys_max
    }

    /// Creates or updates `key`. The caller has checked the room.
    pub(crate) fn put(&mut self, key: &[u8], value: &[u8], lease: u64, revision: u64) -> Event {
        let slot = self.slot(key);
        let event = self.shards[slot].put(key, value, lease, revision, self.spares);
        if event.prev.is_none() {
            let room = self.keys_room.checked_sub(1);
            self.keys_room = room.expect("put of a new key without room");
        }
        event
    }

    /// Deletes every live key in `range` in key order, appending one event
    /// per deleted key; returns how many were deleted.
    pub(crate) fn delete_range(&mut self, range: KeyRange<'_>, revision: u64, events: &mut Vec<Event>) -> u64 {
        let events_before = events.len();
        if let Some(key) = range.single() {
            let slot = self.slot(key);
            events.extend(self.shards[slot].delete(key, revision, self.spares));
        } else {
            // Collect first: the map cannot be changed while it is scanned.
            // The copies become the events' keys, so nothing is wasted.
            let reader = self.reader();
            let keys: Vec<Vec<u8>> = reader.iter(range).map(|(key, _)| key.to_vec()).collect();
            for key in keys {
                let slot = self.slot(&key);
                events.extend(self.shards[slot].delete_owned(key, revision));
            }
        }
        let deleted = events.len() - events_before;
        self.keys_room = self.keys_room.saturating_add(deleted);
        deleted as u64
    }

    /// Position in `shards` of the shard that owns `key`.
    fn slot(&self, key: &[u8]) -> usize {
        let index = shard_of(key);
        assert!(index >= self.first, "key routed to a lane that does not own it");
        let slot = index - self.first;
        assert!(slot < self.shards.len(), "key routed to a lane that does not own it");
        slot
    }
}
