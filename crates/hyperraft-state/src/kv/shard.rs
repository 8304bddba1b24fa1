//! One of the fixed key shards, and the stable key → shard map.

use std::collections::{BTreeMap, BTreeSet};

use super::spares::Spares;
use super::{Event, EventKind, KeyValue};

/// Number of key shards. Fixed, independent of the thread count, so the
/// assignment of keys to shards (and with it every lane's order of work) is
/// the same on every node and in every process.
pub(crate) const SHARDS: usize = 8;

/// The shard that owns `key`: crc32c of the key, which never varies across
/// processes or platforms (unlike a seeded hasher), multiplied by a fixed
/// odd constant and cut to its top bits. crc32c alone is linear, so keys
/// that differ in a few bits (`/config/a`, `/config/b`, …) would crowd into
/// a few shards; the multiply spreads every crc bit into the top ones.
pub(crate) fn shard_of(key: &[u8]) -> usize {
    const SHARD_BITS: u32 = SHARDS.trailing_zeros();
    const _: () = assert!(SHARDS.is_power_of_two());
    let mixed = u64::from(crc32c::crc32c(key)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> (u64::BITS - SHARD_BITS)) as usize
}

/// A live key's value and metadata; the key itself is the map key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) value: Vec<u8>,
    pub(crate) create_revision: u64,
    pub(crate) mod_revision: u64,
    pub(crate) version: u64,
    pub(crate) lease: u64,
}

impl Entry {
    /// The pair as callers see it; `with_value` false leaves the value empty.
    pub(crate) fn to_key_value(&self, key: &[u8], with_value: bool) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            value: if with_value { self.value.clone() } else { Vec::new() },
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        }
    }

    /// The pair for an event, in spare buffers.
    fn to_event_key_value(&self, key: &[u8], spares: &mut Spares) -> KeyValue {
        KeyValue {
            key: spares.key(key),
            value: spares.value(&self.value),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        }
    }

    /// Moves the pair out, keeping its value buffer (no copy).
    pub(crate) fn into_key_value(self, key: Vec<u8>) -> KeyValue {
        KeyValue {
            key,
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        }
    }
}

/// The keys of one shard, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) map: BTreeMap<Vec<u8>, Entry>,
    /// The shard's keys by the lease they are attached to: an index of
    /// `Entry::lease` (never holding lease 0 or an empty set), kept here so
    /// that a lane attaches and detaches keys of its own shard only.
    leased: BTreeMap<u64, BTreeSet<Vec<u8>>>,
}

impl Shard {
    /// A shard holding `map`, with its lease index built from the entries.
    pub(crate) fn from_map(map: BTreeMap<Vec<u8>, Entry>) -> Self {
        let mut shard = Shard { map, leased: BTreeMap::new() };
        for (key, entry) in &shard.map {
            if entry.lease != 0 {
                shard.leased.entry(entry.lease).or_default().insert(key.clone());
            }
        }
        shard
    }

    /// The shard's keys attached to lease `id`, sorted.
    pub(crate) fn lease_keys(&self, id: u64) -> impl Iterator<Item = &[u8]> + '_ {
        self.leased.get(&id).into_iter().flatten().map(Vec::as_slice)
    }

    /// Number of the shard's keys attached to lease `id`.
    pub(crate) fn lease_key_count(&self, id: u64) -> usize {
        self.leased.get(&id).map_or(0, BTreeSet::len)
    }

    fn attach(&mut self, lease: u64, key: &[u8]) {
        if lease != 0 {
            let added = self.leased.entry(lease).or_default().insert(key.to_vec());
            assert!(added, "a key was attached to its lease twice");
        }
    }

    fn detach(&mut self, lease: u64, key: &[u8]) {
        if lease == 0 {
            return;
        }
        let keys = self.leased.get_mut(&lease).expect("a leased key is in its lease's index");
        assert!(keys.remove(key), "a leased key is in its lease's index");
        if keys.is_empty() {
            self.leased.remove(&lease);
        }
    }

    /// Creates or updates `key` at `revision`; returns the event, whose
    /// `prev` holds the old pair (its value buffer moved, not copied).
    /// Every new buffer comes from `spares` when one is there.
    pub(crate) fn put(&mut self, key: &[u8], value: &[u8], lease: u64, revision: u64, spares: &mut Spares) -> Event {
        if let Some(entry) = self.map.get_mut(key) {
            assert!(entry.mod_revision < revision, "a put must advance the key's revision");
            let prev = KeyValue {
                key: spares.key(key),
                value: std::mem::replace(&mut entry.value, spares.value(value)),
                create_revision: entry.create_revision,
                mod_revision: entry.mod_revision,
                version: entry.version,
                lease: entry.lease,
            };
            entry.mod_revision = revision;
            entry.version += 1;
            entry.lease = lease;
            let kv = entry.to_event_key_value(key, spares);
            if prev.lease != lease {
                self.detach(prev.lease, key);
                self.attach(lease, key);
            }
            return Event { kind: EventKind::Put, kv, prev: Some(prev) };
        }
        let entry =
            Entry { value: spares.value(value), create_revision: revision, mod_revision: revision, version: 1, lease };
        let kv = entry.to_event_key_value(key, spares);
        self.map.insert(spares.key(key), entry);
        self.attach(lease, key);
        Event { kind: EventKind::Put, kv, prev: None }
    }

    /// Removes `key` at `revision`; returns the delete event, if it existed.
    pub(crate) fn delete(&mut self, key: &[u8], revision: u64, spares: &mut Spares) -> Option<Event> {
        let (stored_key, entry) = self.map.remove_entry(key)?;
        self.detach(entry.lease, key);
        Some(delete_event(spares.key(key), stored_key, entry, revision))
    }

    /// Like [`Shard::delete`], reusing the caller's copy of the key.
    pub(crate) fn delete_owned(&mut self, key: Vec<u8>, revision: u64) -> Option<Event> {
        let (stored_key, entry) = self.map.remove_entry(key.as_slice())?;
        self.detach(entry.lease, &key);
        Some(delete_event(key, stored_key, entry, revision))
    }
}

fn delete_event(key: Vec<u8>, stored_key: Vec<u8>, entry: Entry, revision: u64) -> Event {
    assert!(entry.mod_revision < revision, "a delete must follow the key's last write");
    let kv = KeyValue { key, mod_revision: revision, ..KeyValue::default() };
    Event { kind: EventKind::Delete, kv, prev: Some(entry.into_key_value(stored_key)) }
}
