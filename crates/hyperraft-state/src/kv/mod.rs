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
//! # Leases
//!
//! A lease has an id (never 0), a TTL and a deadline in the batch clock:
//! every batch carries the timestamp the leader gave it (nanoseconds), the
//! same on every replica. `LeaseGrant` creates a lease with deadline =
//! batch timestamp + TTL; id 0 lets the store choose the first free id from
//! a counter kept in the state (so every replica chooses the same one); a
//! live id is refused (`LeaseExists`), and so is a grant while `leases_max`
//! leases live (`LeasesFull`). `LeaseKeepAlive` sets the deadline to the
//! batch timestamp + TTL. `LeaseRevoke` deletes every key attached to the
//! lease, all at the command's revision with one delete event per key in
//! key order (as a delete-range would), then the lease; an unknown lease
//! is `LeaseNotFound`. `LeaseExpire` is the leader's expiry: it revokes the
//! lease only when its deadline is at or before the batch timestamp, and
//! otherwise, or when the lease no longer exists, answers `expired: false`
//! and changes nothing. Grants and keep-alives write no key, so they take
//! no revision. A put naming a lease attaches its key to it (detaching it
//! from any previous lease; lease 0 detaches), a delete detaches; a put,
//! alone or in the branch a transaction runs, naming a lease that does not
//! exist refuses the whole command (`LeaseNotFound`), as in etcd. Lease
//! commands are top-level commands only (the wire format refuses them in
//! a transaction), so the lease table never changes inside one.
//!
//! # Parallel apply
//!
//! Keys live in `SHARDS` (8) sorted maps, chosen by a
//! stable hash of the key (crc32c, mixed): a fixed number and a hash that
//! never varies across processes, so the split and every lane's order of
//! work are the same on every node whatever its thread count. A command
//! whose keys all fall in one shard (a single-key put, delete or read, or a
//! transaction whose keys, compared and written, in both branches, share a
//! shard) runs in that shard's lane; a command spanning shards (any key
//! range, a cross-shard transaction) is a barrier. Lanes run in parallel up
//! to a barrier (`rayon` over the shards, each lane holding `&mut` its own
//! shard — no `unsafe`), the barrier then runs alone over every shard, and
//! so on. Each lane sees exactly the commands that touch its keys, in batch
//! order, and every write's revision follows from its position, so each
//! command computes exactly what it computes sequentially. Three things
//! still cross lanes and are settled afterwards, in order:
//!
//! - responses and events are merged back by batch position (each
//!   position's route names the lane holding its output), so the history
//!   is in revision order and, within a transaction, in operation order;
//! - the revision a non-writing command reports depends on whether earlier
//!   commands in other lanes wrote: lanes leave it 0 and one sequential
//!   pass over the responses fills it in;
//! - the key bound depends on every lane's puts and deletes: a run goes to
//!   the lanes only when the store has room for all of its puts, otherwise
//!   it is applied in order (so only a nearly full store loses the lanes).
//!
//! Leases follow the same split. Lease commands are barriers: they change
//! the lease table, and a revoke deletes keys of every shard. Which keys a
//! lease holds is indexed per shard, next to the keys, so a leased put (or
//! a put or delete that detaches a key) runs in its key's lane and changes
//! only its own shard's index; lanes only read the lease table, to check
//! that a put's lease exists, and the table cannot change until the next
//! barrier.
//!
//! Both paths call the same per-command functions (`command`, `txn`,
//! `lease_command`), over a `Keyspace` that is either every shard (with
//! the lease table writable) or one lane's shard (with the table
//! read-only); a lane touching a key outside its shard, or running a lease
//! command, is a routing bug and panics.
//!
//! # Memory
//!
//! Steady-state puts allocate nothing: once the history is full, every new
//! event pushes out the oldest one, whose key and value buffers are kept
//! (`Spares`, bounded) and refilled for the next events, and the lanes'
//! buffers live across batches. A batch applied in lanes allocates one
//! vector of command views.
//!
//! # Measured crossover
//!
//! `cargo bench -p hyperraft-state --bench kv` applies batches of N puts
//! (16-byte keys, 64-byte values, uniform over 100,000 filled keys, history
//! full) sequentially and on a 2-thread pool with lanes forced
//! (`kv_put_batch`), and in alternating blocks for a paired ratio
//! (`kv_put_batch_paired`). On the 2-core development VM, lanes time over
//! sequential time was:
//!
//! | N puts                                   | 16   | 32   | 64   | 128  | 256  | 1024 | 4096 |
//! |------------------------------------------|------|------|------|------|------|------|------|
//! | two free cores (median of 6 runs)        | 2.03 | 1.01 | 0.70 | 0.78 | 0.60 | 0.81 | 0.60 |
//! | vCPUs shared with other work (min–max)   | 1.45–1.77 | 0.81–2.14 | 1.32–1.75 | 0.99–1.46 | 0.69–1.30 | 0.63–1.86 | 0.84–1.23 |
//!
//! A round of lanes costs a fixed 20–30 µs (waking the pool, routing,
//! merging), about what 30 puts take in order, so with two free cores the
//! lanes pay from about 32–64 commands. The default threshold
//! ([`LaneTuning::segment_commands_min`]) is 128, twice that, because the
//! fixed cost swings widely on a VM. When the pool's threads do not get
//! their cores (other agents on this VM, or several replicas in one
//! process), lanes lose at every size: such a node should apply with a
//! 1-thread pool, which applies in order. A lane holding over 75% of a
//! round could save little even in theory (`lane_share_max_percent`), so
//! such rounds go in order too.

mod command;
mod config;
mod error;
mod event;
mod history;
mod key_range;
mod key_value;
mod keyspace;
mod lanes;
mod lease;
mod lease_command;
mod lease_info;
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
pub use lease_info::LeaseInfo;
pub use response::KvResponse;
pub use snapshot::{KvSnapshotError, SNAPSHOT_VERSION};
pub use store::KvStore;
