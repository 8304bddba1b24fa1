//! The key/value store: the public face of the state machine.

use hyperraft_wire::{KvCommand, KvCommands, RangeView};

use super::command::read_range;
use super::lanes::{LaneTuning, Lanes};
use super::snapshot;
use super::state::State;
use super::{Event, KvConfig, KvError, KvResponse, KvSnapshotError, LeaseInfo};

/// An etcd-like key/value state machine with revisions and a bounded
/// event history. Applying the same batches to the same store gives the
/// same responses, state and snapshot bytes on every node, sequentially
/// or on any number of threads.
pub struct KvStore {
    state: State,
    lanes: Lanes,
}

impl KvStore {
    /// An empty store at revision 0.
    pub fn new(config: KvConfig) -> Self {
        KvStore { state: State::new(config), lanes: Lanes::default() }
    }

    /// An empty store whose parallel apply uses `tuning` instead of the
    /// measured defaults. Results never depend on it; only speed does.
    pub fn with_lane_tuning(config: KvConfig, tuning: LaneTuning) -> Self {
        let mut lanes = Lanes::default();
        lanes.tuning = tuning;
        KvStore { state: State::new(config), lanes }
    }

    /// The store's bounds.
    pub fn config(&self) -> &KvConfig {
        &self.state.config
    }

    /// Revision of the last write; 0 before the first.
    pub fn revision(&self) -> u64 {
        self.state.revision
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// True when no key is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one batch. Command i of the batch (0-based) that writes gets
    /// revision `base + i + 1`, where `base` is [`KvStore::revision`] before
    /// the batch; commands that change nothing (reads, deletes of missing
    /// keys, refused commands, transactions whose branch only reads) do not
    /// advance the revision. Revisions are therefore strictly increasing but
    /// not dense — deliberately: every command knows its revision from its
    /// position alone, so parallel lanes never need each other's outcome.
    ///
    /// `now_ns` is the batch's timestamp (assigned by the leader, the same
    /// on every replica): the clock of lease deadlines. Grants and
    /// keep-alives set a deadline of `now_ns` plus the TTL; an expiry
    /// revokes a lease whose deadline is at or before `now_ns`.
    ///
    /// With a pool of two or more threads, commands on different shards run
    /// in parallel lanes; the responses (one per command, appended to
    /// `results` in order), state, revision and history are exactly those
    /// of [`KvStore::apply_batch_sequential`].
    pub fn apply_batch(
        &mut self,
        commands: KvCommands<'_>,
        now_ns: u64,
        pool: Option<&rayon::ThreadPool>,
        results: &mut Vec<KvResponse>,
    ) {
        let pool = pool.filter(|pool| pool.current_num_threads() > 1);
        match pool {
            Some(pool) if commands.len() >= self.lanes.tuning.segment_commands_min => {
                // One allocation per batch: lanes index commands by position.
                let commands: Vec<KvCommand<'_>> = commands.iter().collect();
                let first_result = results.len();
                self.lanes.apply(&mut self.state, &commands, now_ns, pool, results);
                self.state.settle(&mut results[first_result..]);
            }
            _ => self.apply_batch_sequential(commands, now_ns, results),
        }
    }

    /// Applies one batch on the calling thread, command after command: the
    /// reference that [`KvStore::apply_batch`] must equal.
    pub fn apply_batch_sequential(&mut self, commands: KvCommands<'_>, now_ns: u64, results: &mut Vec<KvResponse>) {
        let first_result = results.len();
        let base = self.state.revision;
        self.state.apply_in_order(base, now_ns, commands.iter().enumerate(), results);
        self.state.settle(&mut results[first_result..]);
    }

    /// A serializable read outside the log, at the current revision.
    pub fn range(&self, view: &RangeView<'_>) -> KvResponse {
        read_range(&self.state.reader(), view, self.state.revision)
    }

    /// The events with a revision above `revision`, oldest first, or
    /// [`KvError::Compacted`] when some of them were already dropped.
    pub fn events_since(&self, revision: u64) -> Result<impl Iterator<Item = &Event>, KvError> {
        self.state.history.since(revision)
    }

    /// The live lease `id`, if there is one.
    pub fn lease(&self, id: u64) -> Option<LeaseInfo> {
        let lease = self.state.leases.get(id)?;
        let keys = self.state.shards.iter().map(|shard| shard.lease_key_count(id) as u64).sum();
        Some(LeaseInfo { id, ttl_ms: lease.ttl_ms, deadline_ns: lease.deadline_ns, keys })
    }

    /// The first `keys_max` keys attached to lease `id`, in key order;
    /// empty when the lease does not exist.
    pub fn lease_keys(&self, id: u64, keys_max: usize) -> Vec<Vec<u8>> {
        let mut keys: Vec<&[u8]> = self.state.shards.iter().flat_map(|shard| shard.lease_keys(id)).collect();
        keys.sort_unstable();
        keys.into_iter().take(keys_max).map(<[u8]>::to_vec).collect()
    }

    /// The ids of every live lease, in increasing order.
    pub fn lease_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.state.leases.iter().map(|(id, _)| id)
    }

    /// Number of live leases.
    pub fn leases_len(&self) -> usize {
        self.state.leases.len()
    }

    /// The ids of leases whose deadline is at or before `now_ns`, in
    /// increasing order, at most `ids_max` of them: what the leader's
    /// expiry ticker proposes `LeaseExpire` commands for. Scans the table.
    pub fn expired_leases(&self, now_ns: u64, ids_max: usize) -> Vec<u64> {
        let expired = self.state.leases.iter().filter(|(_, lease)| lease.deadline_ns <= now_ns);
        expired.map(|(id, _)| id).take(ids_max).collect()
    }

    /// Appends the store's snapshot to `out`: the same state always gives
    /// the same bytes (keys sorted, history included, checksummed).
    pub fn encode_snapshot(&self, out: &mut Vec<u8>) {
        snapshot::encode(&self.state, out);
    }

    /// Rebuilds a store from [`KvStore::encode_snapshot`] bytes, validating
    /// every field against `config`; hostile bytes give an error, never a
    /// panic.
    pub fn decode_snapshot(bytes: &[u8], config: KvConfig) -> Result<KvStore, KvSnapshotError> {
        let state = snapshot::decode(bytes, config)?;
        Ok(KvStore { state, lanes: Lanes::default() })
    }
}

impl std::fmt::Debug for KvStore {
    /// A summary: the keys and history can be millions of entries.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KvStore")
            .field("revision", &self.revision())
            .field("len", &self.len())
            .field("leases_len", &self.leases_len())
            .field("config", self.config())
            .finish_non_exhaustive()
    }
}
