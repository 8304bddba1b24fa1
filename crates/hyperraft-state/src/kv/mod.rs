//! The key/value state machine (capability C2): etcd-like puts, deletes,
//! ranges and compare-and-set transactions, with revisions and a bounded
//! event history for watchers, applied in parallel lanes (C5).
//!
//! # Semantics
//!
//! A batch is applied on top of revision `base`; command `i` that writes
//! gets revision `base + i + 1`. Commands that write nothing keep the
//! revision, so revisions increase strictly but skip. Each response carries
//! the revision it made, or for a command that wrote nothing the revision
//! of the last write before it. Requests follow etcd: an empty `range_end`
//! selects one key, `[0]` every key from `key` on, anything else
//! `[key, range_end)`; compares of a missing key see version, revisions
//! and lease 0 and a value compare on it fails; a transaction branch that
//! puts a key twice, or puts a key it also deletes, is refused whole
//! (`TxnDuplicateKey`). The store holds at most `keys_max` keys; a command
//! that would create one more is refused whole (`StoreFull`) and changes
//! nothing.
//!
//! # Parallel apply
//!
//! Keys live in [`SHARDS`](shard::SHARDS) (8) sorted maps, chosen by
//! crc32c of the key: a fixed number and a stable hash, so the split and
//! every lane's order of work are the same on every node whatever its
//! thread count. A command whose keys all fall in one shard (a single-key
//! put, delete or read, or a transaction whose keys share a shard) runs in
//! that shard's lane; a command spanning shards (any key range, a
//! cross-shard transaction) is a barrier. Lanes run in parallel up to a
//! barrier (`rayon` over the shards, each lane holding `&mut` its own
//! shard — no `unsafe`), the barrier then runs alone over every shard, and
//! so on. Since each lane sees exactly the commands that touch its keys,
//! in batch order, and every write's revision follows from its position,
//! each command computes exactly what it computes sequentially. Three
//! things still cross lanes and are settled afterwards, in order:
//!
//! - responses and events are merged back by batch position (each
//!   position's route names the lane holding its output);
//! - the revision a non-writing command reports depends on whether earlier
//!   commands in other lanes wrote: lanes leave it 0 and a sequential pass
//!   fills it in;
//! - the key bound depends on every lane's puts and deletes: a round runs
//!   in lanes only when the store has room for all of its puts, otherwise
//!   in order.
//!
//! Short rounds, and rounds where one lane would hold most commands, run in
//! order too, since the pool would cost more than it saves.
//!
//! # Measured crossover
//!
//! `cargo bench -p hyperraft-state --bench kv` compares sequential apply
//! with a 2-thread pool on batches of puts over uniform random keys.
//! (Numbers: see `lanes::SEGMENT_PARALLEL_MIN`.)

mod command;
mod config;
mod error;
mod event;
mod history;
mod key_range;
mod key_value;
mod keyspace;
mod lanes;
mod reader;
mod response;
mod route;
mod shard;
mod snapshot;
mod spares;
mod state;
mod store;
mod txn;

#[cfg(test)]
mod tests;

pub use config::KvConfig;
pub use error::KvError;
pub use event::{Event, EventKind};
pub use key_value::KeyValue;
pub use lanes::LaneTuning;
pub use response::KvResponse;
pub use snapshot::{KvSnapshotError, SNAPSHOT_VERSION};
pub use store::KvStore;
