//! Transfer storage: an append-only log of transfers in chunks, and a
//! compact, sharded id index.
//!
//! Chunks keep appends cheap and bounded in latency: the log never moves
//! what it already holds.
//!
//! The index maps an id to its log position. It is the one structure every
//! transfer touches at random (the `Exists` check, then the insert), so its
//! size decides how often those touches miss the cache. Each entry is one
//! `u64`: 32 bits of a seeded hash of the id (the *fragment*) and the 32-bit
//! log position. A probe compares fragments first and reads the log only
//! when they match, which for a new id almost never happens; growing the
//! table rehashes from the stored fragments without reading the log. The
//! index is split into [`INDEX_SHARDS`] tables so a batch's new ids can be
//! inserted from several threads at once, each owning whole shards.

use hashbrown::HashTable;

use super::transfer::Transfer;

/// Transfers per chunk of the log.
const CHUNK_LEN: usize = 1 << 16;
/// Number of independent index tables.
pub(crate) const INDEX_SHARDS: usize = 8;
/// Most transfers a store can hold: positions are 32-bit.
pub const TRANSFERS_MAX_LIMIT: u64 = u32::MAX as u64;

/// Position of a transfer in the log.
pub(crate) type Position = u64;

/// Where an id lives in the index; computed once per request and reused.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdKey {
    shard: u8,
    fragment: u32,
}

/// One shard of the id index: entries are `fragment << 32 | position`.
#[derive(Default)]
pub(crate) struct IndexShard {
    table: HashTable<u64>,
}

impl IndexShard {
    /// Indexes `position`; the caller checked the id is not present.
    pub(crate) fn insert(&mut self, key: IdKey, position: Position) {
        assert!(position <= TRANSFERS_MAX_LIMIT, "transfer position exceeds 32 bits");
        let entry = (u64::from(key.fragment) << 32) | position;
        self.table.insert_unique(table_hash(key.fragment), entry, |&entry| table_hash(fragment_of(entry)));
    }
}

pub(crate) struct TransferStore {
    chunks: Vec<Vec<Transfer>>,
    len: u64,
    index: Vec<IndexShard>,
    hasher: foldhash::fast::RandomState,
}

impl Default for TransferStore {
    fn default() -> Self {
        TransferStore {
            chunks: Vec::new(),
            len: 0,
            index: (0..INDEX_SHARDS).map(|_| IndexShard::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

fn fragment_of(entry: u64) -> u32 {
    (entry >> 32) as u32
}

fn position_of(entry: u64) -> Position {
    entry & u64::from(u32::MAX)
}

/// Spreads a fragment over 64 bits for the table: low bits pick the bucket,
/// top bits the tag, and both depend on the whole fragment.
fn table_hash(fragment: u32) -> u64 {
    u64::from(fragment).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(fragment)
}

impl TransferStore {
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The index key of `id`. The shard comes from the id's own bits (a
    /// cheap spread); the fragment from a per-process seeded hash, so
    /// nobody can choose ids that collide.
    pub(crate) fn key(&self, id: u128) -> IdKey {
        use std::hash::BuildHasher;
        let folded = (id as u64) ^ ((id >> 64) as u64);
        let shard = (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 61) as usize % INDEX_SHARDS;
        IdKey { shard: shard as u8, fragment: (self.hasher.hash_one(id) >> 32) as u32 }
    }

    pub(crate) fn get(&self, id: u128) -> Option<&Transfer> {
        self.get_keyed(id, self.key(id))
    }

    pub(crate) fn get_keyed(&self, id: u128, key: IdKey) -> Option<&Transfer> {
        let shard = &self.index[key.shard as usize];
        let entry = shard.table.find(table_hash(key.fragment), |&entry| {
            fragment_of(entry) == key.fragment && self.at(position_of(entry)).id == id
        })?;
        Some(self.at(position_of(*entry)))
    }

    pub(crate) fn at(&self, position: Position) -> &Transfer {
        let chunk = (position / CHUNK_LEN as u64) as usize;
        &self.chunks[chunk][(position % CHUNK_LEN as u64) as usize]
    }

    /// Every transfer in the order it was created.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Transfer> {
        self.chunks.iter().flatten()
    }

    /// Appends to the log without indexing; pair with an index insert.
    pub(crate) fn append(&mut self, transfer: Transfer) -> Position {
        if self.chunks.last().is_none_or(|chunk| chunk.len() == CHUNK_LEN) {
            self.chunks.push(Vec::with_capacity(CHUNK_LEN));
        }
        let chunk = self.chunks.last_mut().expect("a chunk with room was just ensured");
        chunk.push(transfer);
        self.len += 1;
        self.len - 1
    }

    /// Appends and indexes one transfer; the caller checked its id is free.
    pub(crate) fn insert(&mut self, transfer: Transfer) {
        let key = self.key(transfer.id);
        let position = self.append(transfer);
        self.index[key.shard as usize].insert(key, position);
    }

    /// Removes the most recently inserted transfer (undo of a failed linked chain).
    pub(crate) fn pop(&mut self) {
        let position = self.len.checked_sub(1).expect("pop of an empty transfer store");
        let id = self.at(position).id;
        let key = self.key(id);
        let shard = &mut self.index[key.shard as usize];
        let entry = shard.table.find_entry(table_hash(key.fragment), |&entry| position_of(entry) == position);
        entry.expect("the last transfer is indexed").remove();
        let chunk = self.chunks.last_mut().expect("a non-empty store has a chunk");
        chunk.pop();
        if chunk.is_empty() {
            self.chunks.pop();
        }
        self.len -= 1;
    }

    /// The index shards, for inserting a batch's ids shard by shard in parallel.
    pub(crate) fn index_shards_mut(&mut self) -> &mut [IndexShard] {
        &mut self.index
    }
}

impl IdKey {
    pub(crate) fn shard(self) -> usize {
        self.shard as usize
    }
}
