//! Transfer storage: an append-only log of transfers in chunks, and a
//! sharded id index.
//!
//! Chunks keep appends cheap and bounded in latency: the log never moves
//! what it already holds. The index is split into [`INDEX_SHARDS`] maps so
//! the executor can insert a batch's new ids from several threads at once,
//! each thread owning whole shards.

use std::collections::HashMap;

use super::transfer::Transfer;

/// Transfers per chunk of the log.
const CHUNK_LEN: usize = 1 << 16;
/// Number of independent index maps.
pub(crate) const INDEX_SHARDS: usize = 8;

/// Position of a transfer in the log.
pub(crate) type Position = u64;

/// One shard of the id index.
pub(crate) type TransferIndex = HashMap<u128, Position, foldhash::fast::RandomState>;

pub(crate) struct TransferStore {
    chunks: Vec<Vec<Transfer>>,
    len: u64,
    index: Vec<TransferIndex>,
}

impl Default for TransferStore {
    fn default() -> Self {
        TransferStore {
            chunks: Vec::new(),
            len: 0,
            index: (0..INDEX_SHARDS).map(|_| HashMap::default()).collect(),
        }
    }
}

/// The index shard of a transfer id. The mix only spreads ids over shards;
/// each shard's map does its own (seeded) hashing.
pub(crate) fn shard_of(id: u128) -> usize {
    let folded = (id as u64) ^ ((id >> 64) as u64);
    (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 61) as usize % INDEX_SHARDS
}

impl TransferStore {
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn get(&self, id: u128) -> Option<&Transfer> {
        let position = *self.index[shard_of(id)].get(&id)?;
        Some(self.at(position))
    }

    pub(crate) fn at(&self, position: Position) -> &Transfer {
        let chunk = (position / CHUNK_LEN as u64) as usize;
        &self.chunks[chunk][(position % CHUNK_LEN as u64) as usize]
    }

    /// Every transfer in the order it was created.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Transfer> {
        self.chunks.iter().flatten()
    }

    /// Appends to the log without indexing; pair with [`Self::index_insert`].
    pub(crate) fn append(&mut self, transfer: Transfer) -> Position {
        if self
            .chunks
            .last()
            .is_none_or(|chunk| chunk.len() == CHUNK_LEN)
        {
            self.chunks.push(Vec::with_capacity(CHUNK_LEN));
        }
        let chunk = self
            .chunks
            .last_mut()
            .expect("a chunk with room was just ensured");
        chunk.push(transfer);
        self.len += 1;
        self.len - 1
    }

    /// Appends and indexes one transfer; the caller checked its id is free.
    pub(crate) fn insert(&mut self, transfer: Transfer) {
        let id = transfer.id;
        let position = self.append(transfer);
        self.index_insert(id, position);
    }

    /// Indexes a transfer [`Self::append`] placed at `position`.
    pub(crate) fn index_insert(&mut self, id: u128, position: Position) {
        let previous = self.index[shard_of(id)].insert(id, position);
        assert!(previous.is_none(), "transfer id inserted twice");
    }

    /// Removes the most recently inserted transfer (undo of a failed linked chain).
    pub(crate) fn pop(&mut self) {
        let chunk = self
            .chunks
            .last_mut()
            .expect("pop of an empty transfer store");
        let transfer = chunk.pop().expect("the last chunk is never empty");
        if chunk.is_empty() {
            self.chunks.pop();
        }
        self.len -= 1;
        let removed = self.index[shard_of(transfer.id)].remove(&transfer.id);
        assert!(removed.is_some());
    }

    /// The index shards, for inserting a batch's ids shard by shard in parallel.
    pub(crate) fn index_shards_mut(&mut self) -> &mut [TransferIndex] {
        &mut self.index
    }
}
