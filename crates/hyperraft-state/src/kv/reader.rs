//! Read-only access to some shards: point reads and sorted range scans.

use std::collections::btree_map;
use std::iter::Peekable;

use super::key_range::KeyRange;
use super::shard::{shard_of, Entry, Shard, SHARDS};

/// A read view over all shards, or over the one shard a lane owns.
///
/// A lane's commands are routed so that they only touch keys of its shard;
/// a lookup outside the view is a routing bug and panics.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'s> {
    shards: &'s [Shard],
    /// Shard index of `shards[0]`.
    first: usize,
}

impl<'s> Reader<'s> {
    /// A view over `shards`, of which the first has index `first`.
    pub(crate) fn new(shards: &'s [Shard], first: usize) -> Self {
        assert!(!shards.is_empty(), "a reader needs a shard");
        assert!(first + shards.len() <= SHARDS, "shard indexes past the last shard");
        Reader { shards, first }
    }

    /// The shard that owns `key`.
    pub(crate) fn shard(&self, key: &[u8]) -> &'s Shard {
        let index = shard_of(key);
        assert!(index >= self.first, "key routed to a lane that does not own it");
        let shards: &'s [Shard] = self.shards;
        match shards.get(index - self.first) {
            Some(shard) => shard,
            None => panic!("key routed to a lane that does not own it"),
        }
    }

    /// The live entry of `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&'s Entry> {
        self.shard(key).map.get(key)
    }

    /// Number of live keys in `range`.
    pub(crate) fn count(&self, range: KeyRange<'_>) -> u64 {
        if let Some(key) = range.single() {
            return u64::from(self.get(key).is_some());
        }
        let Some(bounds) = range.bounds() else {
            return 0;
        };
        self.assert_whole();
        let counts = self.shards.iter().map(|shard| shard.map.range::<[u8], _>(bounds).count());
        counts.map(|count| count as u64).sum()
    }

    /// The live keys in `range`, in key order, merged across shards.
    pub(crate) fn iter<'r>(&self, range: KeyRange<'r>) -> MergedRange<'s> {
        let mut sources: [Option<Source<'s>>; SHARDS] = Default::default();
        let Some(bounds) = range.bounds() else {
            return MergedRange { sources };
        };
        if let Some(key) = range.single() {
            let slot = shard_of(key) - self.first;
            sources[slot] = Some(self.shard(key).map.range::<[u8], _>(bounds).peekable());
        } else {
            self.assert_whole();
            for (slot, shard) in self.shards.iter().enumerate() {
                sources[slot] = Some(shard.map.range::<[u8], _>(bounds).peekable());
            }
        }
        MergedRange { sources }
    }

    /// Number of live keys in the view.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.map.len()).sum()
    }

    fn assert_whole(&self) {
        assert_eq!(self.shards.len(), SHARDS, "a multi-key range must be routed as a barrier");
    }
}

type Source<'s> = Peekable<btree_map::Range<'s, Vec<u8>, Entry>>;

/// Sorted keys of several shards, merged. Keys are unique across shards, so
/// taking the smallest head each step yields a strictly increasing sequence.
pub(crate) struct MergedRange<'s> {
    sources: [Option<Source<'s>>; SHARDS],
}

impl<'s> Iterator for MergedRange<'s> {
    type Item = (&'s [u8], &'s Entry);

    fn next(&mut self) -> Option<Self::Item> {
        let mut best: Option<(usize, &'s [u8])> = None;
        for (slot, source) in self.sources.iter_mut().enumerate() {
            let Some(&(key, _)) = source.as_mut().and_then(|source| source.peek()) else {
                continue;
            };
            if best.is_none_or(|(_, best_key)| key.as_slice() < best_key) {
                best = Some((slot, key.as_slice()));
            }
        }
        let (slot, _) = best?;
        let (key, entry) = self.sources[slot].as_mut()?.next()?;
        Some((key.as_slice(), entry))
    }
}
