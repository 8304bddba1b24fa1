//! Transfer storage: an append-only log of transfers in chunks, and a
//! compact, sharded id index.
//!
//! Chunks keep appends cheap and bounded in latency: the log never moves
//! what it already holds. Full chunks are also shared, not copied, with a
//! snapshot taken of the store ([`TransferStore::share_chunks`]): a full
//! chunk never changes again. The chunk being filled is the store's alone
//! (appends write it with no check), and a snapshot takes a copy of it. So
//! taking a snapshot costs one chunk's copy, not a copy of the log.
//!
//! The index maps an id to its log position. It is the one structure every
//! transfer touches at random (the `Exists` check, then the insert), so its
//! size and its cache misses decide the apply engine's speed. Each entry is
//! one `u64`: 32 bits of a seeded hash of the id (the *fragment*) and the
//! 32-bit log position. A probe compares fragments first and reads the log
//! only when they match, which for a new id almost never happens; growing
//! the table rehashes from the stored fragments without reading the log.
//!
//! The tables are open-addressed with linear probing, at most 5/8 full, so
//! a probe almost always ends in the cache line of its home slot. That home
//! is known from the id alone, which lets a batch *prefetch* the lines it is
//! about to probe ([`TransferStore::prefetch`]) and overlap the misses
//! instead of paying them one after another. The index is split into
//! [`INDEX_SHARDS`] tables so a batch's new ids can be inserted from several
//! threads at once, each owning whole shards.
//!
//! Ids that differ only in their low [`RUN_BITS`] bits form a *run*, and a
//! run's ids have neighbouring homes: the run picks a shard and a spot in
//! it by a seeded hash, and the low bits pick the slot from there. Clients
//! that number their transfers in sequence (a counter, or time-ordered ids
//! that count up within a millisecond) thus touch one or two cache lines
//! per run instead of one per transfer, while scattered ids spread as
//! before. A run's slots still come from the seeded hash, so nobody can
//! choose ids that pile onto one spot beyond a run's length.
//!
//! A table grows by doubling, and rehashing it stops that replica's apply
//! for as long as it takes. Uniform ids fill the shards evenly, so with one
//! growth point for all, every shard rehashed in the same batch: about
//! 40 ms with 1 M transfers stored, on each replica. Now there are many
//! small shards and each grows at its own load, spread between 3/8 and 5/8
//! (see [`IndexShard::for_shard`]), so a growth stops apply for one
//! shard's rehash, 1/[`INDEX_SHARDS`] of the index, at a time.

use std::sync::Arc;

use super::transfer::Transfer;

/// Transfers per chunk of the log.
const CHUNK_LEN: usize = 1 << 16;
/// Number of independent index tables; a power of two.
pub(crate) const INDEX_SHARDS: usize = 64;
/// Most transfers a store can hold: positions are 32-bit.
pub const TRANSFERS_MAX_LIMIT: u64 = u32::MAX as u64;

/// Position of a transfer in the log.
pub(crate) type Position = u64;

/// Ids per run (see the module docs) is `1 << RUN_BITS`: sixteen slots, two
/// cache lines. Longer runs would pack sequential ids tighter but make a
/// run that lands on another's slots probe further.
const RUN_BITS: u32 = 4;

/// Where an id lives in the index; computed once per request and reused.
/// The fragment's low [`RUN_BITS`] bits are the id's, the rest its run's
/// hash, so the home slot follows from the fragment alone.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdKey {
    shard: u8,
    fragment: u32,
}

const _: () = assert!(SLOTS_MIN >= 1 << RUN_BITS, "a table holds at least one run");

/// A free slot. No entry equals it: positions stay below `u32::MAX`.
const EMPTY: u64 = u64::MAX;
/// Slots of an empty shard; a power of two.
const SLOTS_MIN: usize = 64;
/// Loads are in 1/1024ths of the table.
const LOAD_ONE: usize = 1024;

/// One shard of the id index: `fragment << 32 | position` entries in an
/// open-addressed table, linear probing, load at most `load_max`.
pub(crate) struct IndexShard {
    /// A power of two long; [`EMPTY`] marks free slots.
    slots: Vec<u64>,
    len: usize,
    /// The table grows when an insert would take its load past this, in
    /// 1/[`LOAD_ONE`]ths.
    load_max: usize,
}

impl Default for IndexShard {
    /// A table that grows at one half full.
    fn default() -> Self {
        IndexShard { slots: vec![EMPTY; SLOTS_MIN], len: 0, load_max: LOAD_ONE / 2 }
    }
}

impl IndexShard {
    /// The table of shard `shard` of [`INDEX_SHARDS`]: its load limit is
    /// spread evenly between 3/8 and 5/8 by shard, so shards filled evenly
    /// reach their limits, and rehash, at different inserts.
    pub(crate) fn for_shard(shard: usize) -> IndexShard {
        let load_max = LOAD_ONE * 3 / 8 + LOAD_ONE / 4 * shard / INDEX_SHARDS;
        IndexShard { load_max, ..IndexShard::default() }
    }

    /// The slot where a probe for `fragment` starts: the run's spot, the
    /// top bits of a multiplicative spread of the fragment's run bits (so
    /// every one of them counts), then the id's place in its run.
    fn home(&self, fragment: u32) -> usize {
        let spot_bits = self.slots.len().trailing_zeros() - RUN_BITS;
        let run = u64::from(fragment >> RUN_BITS);
        // A shift by 64 would overflow: a table of one run's length has one spot.
        let spot = if spot_bits == 0 { 0 } else { run.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - spot_bits) };
        ((spot << RUN_BITS) | u64::from(fragment & ((1 << RUN_BITS) - 1))) as usize
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The position of the entry with `fragment` for which `matches` holds.
    fn find(&self, fragment: u32, mut matches: impl FnMut(Position) -> bool) -> Option<Position> {
        let mask = self.mask();
        let mut slot = self.home(fragment);
        loop {
            let entry = self.slots[slot];
            if entry == EMPTY {
                return None;
            }
            if fragment_of(entry) == fragment && matches(position_of(entry)) {
                return Some(position_of(entry));
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Indexes `position`; the caller checked the id is not present.
    pub(crate) fn insert(&mut self, key: IdKey, position: Position) {
        assert!(position < TRANSFERS_MAX_LIMIT, "transfer position exceeds 32 bits");
        self.reserve(1);
        self.place((u64::from(key.fragment) << 32) | position);
        self.len += 1;
    }

    /// Indexes `position` unless an entry of `key`'s fragment for which
    /// `matches` holds is present; whether it was inserted.
    pub(crate) fn insert_unless(
        &mut self,
        key: IdKey,
        position: Position,
        matches: impl FnMut(Position) -> bool,
    ) -> bool {
        if self.find(key.fragment, matches).is_some() {
            return false;
        }
        self.insert(key, position);
        true
    }

    /// Empties the table and keeps its capacity.
    pub(crate) fn clear(&mut self) {
        self.slots.fill(EMPTY);
        self.len = 0;
    }

    /// Grows the table, if needed, so `additional` inserts will not grow it.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let entries = self.len + additional;
        if entries * LOAD_ONE <= self.slots.len() * self.load_max {
            return;
        }
        let needed = (entries * LOAD_ONE).div_ceil(self.load_max).next_power_of_two();
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; needed]);
        for entry in old.into_iter().filter(|&entry| entry != EMPTY) {
            self.place(entry);
        }
    }

    /// Puts `entry` in the first free slot from its home; the table has room.
    fn place(&mut self, entry: u64) {
        let mask = self.mask();
        let mut slot = self.home(fragment_of(entry));
        while self.slots[slot] != EMPTY {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = entry;
    }

    /// Removes the entry of `position`, shifting later entries of its probe
    /// run back so that no probe meets a hole before its entry.
    fn remove(&mut self, fragment: u32, position: Position) {
        let mask = self.mask();
        let target = (u64::from(fragment) << 32) | position;
        let mut hole = self.home(fragment);
        while self.slots[hole] != target {
            assert_ne!(self.slots[hole], EMPTY, "removed transfer is not indexed");
            hole = (hole + 1) & mask;
        }
        self.slots[hole] = EMPTY;
        let mut slot = (hole + 1) & mask;
        while self.slots[slot] != EMPTY {
            let entry = self.slots[slot];
            let home = self.home(fragment_of(entry));
            // The entry may move into the hole when the hole lies on its
            // probe path, between its home and where it sits now.
            if slot.wrapping_sub(home) & mask >= slot.wrapping_sub(hole) & mask {
                self.slots[hole] = entry;
                self.slots[slot] = EMPTY;
                hole = slot;
            }
            slot = (slot + 1) & mask;
        }
        self.len -= 1;
    }

    /// Starts loading the cache line where a probe for `key` begins.
    pub(crate) fn prefetch(&self, key: IdKey) {
        super::prefetch_line((&self.slots[self.home(key.fragment)] as *const u64).cast());
    }
}

pub(crate) struct TransferStore {
    /// Chunks of exactly [`CHUNK_LEN`] transfers, possibly shared with snapshots.
    full: Vec<Arc<Vec<Transfer>>>,
    /// The chunk being filled, of capacity [`CHUNK_LEN`] once written.
    tail: Vec<Transfer>,
    len: u64,
    index: Vec<IndexShard>,
    hasher: foldhash::fast::RandomState,
    /// Empty chunks touched in advance: `None` until the store filled its
    /// first chunk, `Some(None)` if no thread could start (chunks are then
    /// made on the spot).
    supply: Option<Option<ChunkSupply>>,
}

impl Default for TransferStore {
    fn default() -> Self {
        TransferStore {
            full: Vec::new(),
            tail: Vec::new(),
            len: 0,
            index: (0..INDEX_SHARDS).map(IndexShard::for_shard).collect(),
            hasher: foldhash::fast::RandomState::default(),
            supply: None,
        }
    }
}

/// A thread that hands out empty chunks whose memory it has already
/// touched, one ahead of need.
///
/// A chunk is 6 MiB. Its pages, touched for the first time by the
/// appends that fill it, cost page faults and zeroing on the apply path:
/// about 4 % of a loaded replica's time, and three times that on a
/// virtual machine whose free memory the host has taken back. The thread
/// pays for them while apply goes on; a chunk that is not ready in time
/// is allocated on the spot instead, so apply never waits for it. What a
/// chunk holds, and so the ledger's state, does not depend on where its
/// memory came from.
struct ChunkSupply {
    /// In a mutex only so the store stays `Sync`; taken through `&mut`, never locked.
    ready: std::sync::Mutex<std::sync::mpsc::Receiver<Vec<Transfer>>>,
    wanted: std::sync::mpsc::SyncSender<()>,
}

impl ChunkSupply {
    /// Starts the thread and asks for the first chunk; `None` if no thread can start.
    fn start() -> Option<ChunkSupply> {
        let (wanted, wants) = std::sync::mpsc::sync_channel::<()>(1);
        let (made, ready) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("hyperraft-chunks".into())
            .spawn(move || {
                while wants.recv().is_ok() {
                    if made.send(touched_chunk()).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        wanted.send(()).ok()?;
        Some(ChunkSupply { ready: std::sync::Mutex::new(ready), wanted })
    }

    /// The chunk made in advance if it is ready (and another asked for),
    /// else a new one.
    fn take(&mut self) -> Vec<Transfer> {
        let ready = self.ready.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        match ready.try_recv() {
            Ok(chunk) => {
                // The thread holds no request while its answer waits, so this never blocks.
                let _ = self.wanted.try_send(());
                chunk
            }
            Err(_) => Vec::with_capacity(CHUNK_LEN),
        }
    }
}

/// An empty chunk of capacity [`CHUNK_LEN`] with every page written once.
fn touched_chunk() -> Vec<Transfer> {
    let mut chunk = Vec::with_capacity(CHUNK_LEN);
    let per_page = (4096 / std::mem::size_of::<Transfer>()).max(1);
    for slot in chunk.spare_capacity_mut().iter_mut().step_by(per_page) {
        slot.write(Transfer::default());
    }
    chunk
}

fn fragment_of(entry: u64) -> u32 {
    (entry >> 32) as u32
}

fn position_of(entry: u64) -> Position {
    entry & u64::from(u32::MAX)
}

impl TransferStore {
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The index key of `id`: a per-process seeded hash of its run (so
    /// nobody can choose ids that collide) gives the shard, from its top
    /// bits, and the fragment's run bits, from its low ones; the id's
    /// place in its run fills the rest.
    pub(crate) fn key(&self, id: u128) -> IdKey {
        use std::hash::BuildHasher;
        let run_hash = self.hasher.hash_one(id >> RUN_BITS);
        let shard = (run_hash >> (64 - INDEX_SHARDS.trailing_zeros())) as u8;
        let place = id as u32 & ((1 << RUN_BITS) - 1);
        IdKey { shard, fragment: (run_hash as u32 & !((1 << RUN_BITS) - 1)) | place }
    }

    /// Starts loading the index line a lookup or insert of `key` will probe.
    pub(crate) fn prefetch(&self, key: IdKey) {
        self.index[key.shard as usize].prefetch(key);
    }

    pub(crate) fn get(&self, id: u128) -> Option<&Transfer> {
        self.get_keyed(id, self.key(id))
    }

    pub(crate) fn get_keyed(&self, id: u128, key: IdKey) -> Option<&Transfer> {
        let position = self.index[key.shard as usize].find(key.fragment, |position| self.at(position).id == id)?;
        Some(self.at(position))
    }

    pub(crate) fn at(&self, position: Position) -> &Transfer {
        let chunk = (position / CHUNK_LEN as u64) as usize;
        let offset = (position % CHUNK_LEN as u64) as usize;
        match self.full.get(chunk) {
            Some(full) => &full[offset],
            None => &self.tail[offset],
        }
    }

    /// Every transfer in the order it was created.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Transfer> {
        self.full.iter().flat_map(|chunk| chunk.iter()).chain(&self.tail)
    }

    /// The log's chunks in order: every transfer at this moment. Full
    /// chunks are shared (the store never changes them again); the chunk
    /// being filled is copied.
    pub(crate) fn share_chunks(&self) -> Vec<Arc<Vec<Transfer>>> {
        let mut chunks = self.full.clone();
        if !self.tail.is_empty() {
            chunks.push(Arc::new(self.tail.clone()));
        }
        chunks
    }

    /// Appends to the log without indexing; pair with an index insert.
    pub(crate) fn append(&mut self, transfer: Transfer) -> Position {
        if self.tail.len() == CHUNK_LEN {
            let next = match self.supply.get_or_insert_with(ChunkSupply::start) {
                Some(supply) => supply.take(),
                None => Vec::with_capacity(CHUNK_LEN),
            };
            self.full.push(Arc::new(std::mem::replace(&mut self.tail, next)));
        }
        if self.tail.capacity() == 0 {
            self.tail.reserve_exact(CHUNK_LEN);
        }
        self.tail.push(transfer);
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
        self.index[key.shard as usize].remove(key.fragment, position);
        if self.tail.is_empty() {
            let last = self.full.pop().expect("a non-empty store has a chunk");
            // Shared with a snapshot: the snapshot keeps its own, unchanged.
            self.tail = Arc::try_unwrap(last).unwrap_or_else(|shared| shared.as_ref().clone());
            self.tail.reserve_exact(CHUNK_LEN - self.tail.len());
        }
        self.tail.pop();
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::{IdKey, IndexShard, Position};

    proptest! {
        /// The index shard, at any of the shards' load limits, agrees with a
        /// map under inserts, removals, clears and growth, including fragments that collide on purpose (a small
        /// fragment range forces long probe runs and backward shifts).
        #[test]
        fn index_shard_matches_a_map(
            shard_number in 0..super::INDEX_SHARDS,
            ops in proptest::collection::vec((0u8..20, 0u32..64, 0u64..512), 1..600)
        ) {
            let mut shard = IndexShard::for_shard(shard_number);
            let mut model: HashMap<Position, u32> = HashMap::new();
            for (op, fragment, position) in ops {
                let key = IdKey { shard: 0, fragment };
                match op {
                    0 => {
                        shard.clear();
                        model.clear();
                    }
                    1..=10 => {
                        let inserted = shard.insert_unless(key, position, |found| found == position);
                        prop_assert_eq!(inserted, model.get(&position) != Some(&fragment));
                        if inserted && !model.contains_key(&position) {
                            model.insert(position, fragment);
                        } else if inserted {
                            // Same position under another fragment: undo to keep positions unique.
                            shard.remove(fragment, position);
                        }
                    }
                    _ => {
                        if let Some(fragment) = model.remove(&position) {
                            shard.remove(fragment, position);
                        }
                    }
                }
                prop_assert_eq!(shard.len, model.len());
            }
            for (&position, &fragment) in &model {
                prop_assert_eq!(shard.find(fragment, |found| found == position), Some(position));
            }
            for position in 512..520 {
                for fragment in 0..64 {
                    prop_assert_eq!(shard.find(fragment, |found| found == position), None);
                }
            }
        }
    }

    /// The ids of one run share a shard and have consecutive home slots
    /// in any table, and every run-aligned block of sequential ids is
    /// found again after growth.
    #[test]
    fn a_run_of_ids_has_neighbouring_homes() {
        let store = super::TransferStore::default();
        for first in [16u128, 1 << 40, (7u128 << 64) | 4096] {
            let keys: Vec<IdKey> = (first..first + 16).map(|id| store.key(id)).collect();
            assert!(keys.iter().all(|key| key.shard == keys[0].shard), "one shard per run");
            for slots in [64usize, 1024, 1 << 20] {
                let table = IndexShard { slots: vec![super::EMPTY; slots], len: 0, load_max: super::LOAD_ONE / 2 };
                let homes: Vec<usize> = keys.iter().map(|key| table.home(key.fragment)).collect();
                for pair in homes.windows(2) {
                    assert_eq!(pair[1], pair[0] + 1, "consecutive homes in a table of {slots}");
                }
            }
        }
        let mut shard = IndexShard::for_shard(0);
        for position in 0..10_000u64 {
            shard.insert(store.key(u128::from(position) + 1), position);
        }
        for position in 0..10_000u64 {
            let key = store.key(u128::from(position) + 1);
            assert_eq!(shard.find(key.fragment, |found| found == position), Some(position));
        }
    }

    /// Chunks handed out by the chunk thread hold transfers like any
    /// other: across several chunk boundaries every transfer stays at its
    /// position and is found by id, and undoing appends back over a
    /// boundary leaves exactly the earlier transfers.
    #[test]
    fn transfers_across_supplied_chunks_stay_in_order() {
        let mut store = super::TransferStore::default();
        let count = 3 * super::CHUNK_LEN as u64 + 5;
        let transfer =
            |id: u64| super::Transfer { id: u128::from(id) + 1, amount: u128::from(id), ..Default::default() };
        for id in 0..count {
            store.insert(transfer(id));
        }
        assert!(matches!(store.supply, Some(Some(_))), "the chunk thread started");
        for id in (0..count).step_by(997).chain([count - 1]) {
            assert_eq!(*store.at(id), transfer(id));
            assert_eq!(store.get(u128::from(id) + 1), Some(&transfer(id)));
        }
        for _ in 0..10 {
            store.pop();
        }
        assert_eq!(store.len(), count - 10);
        assert_eq!(store.get(u128::from(count - 1) + 1), None);
        assert_eq!(store.iter().count() as u64, count - 10);
        assert!(store.iter().zip(0..).all(|(stored, id)| *stored == transfer(id)));
    }

    /// Shards filled evenly grow at different inserts: their load limits
    /// differ, so once tables are large enough to tell the limits apart
    /// (1,024 slots), no two reach theirs at the same count.
    #[test]
    fn shards_grow_at_different_counts() {
        let mut shards: Vec<IndexShard> = (0..super::INDEX_SHARDS).map(IndexShard::for_shard).collect();
        let mut growths_per_count = HashMap::<u64, usize>::new();
        for position in 0..8192u64 {
            for shard in &mut shards {
                let before = shard.slots.len();
                shard.insert(IdKey { shard: 0, fragment: position as u32 }, position);
                if shard.slots.len() != before && before >= 1024 {
                    *growths_per_count.entry(position).or_default() += 1;
                }
            }
        }
        let most = growths_per_count.values().copied().max().unwrap_or(0);
        assert_eq!(most, 1, "{most} shards grew at the same count");
        assert!(growths_per_count.len() >= super::INDEX_SHARDS * 2, "every shard grew twice");
    }
}
