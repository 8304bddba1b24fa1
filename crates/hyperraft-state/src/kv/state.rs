//! The data of the store and its in-order apply.

use hyperraft_wire::KvCommand;

use super::command;
use super::history::History;
use super::keyspace::{Bounds, Keyspace};
use super::lease::LeaseTable;
use super::reader::Reader;
use super::shard::{Shard, SHARDS};
use super::spares::Spares;
use super::{Event, KvConfig, KvResponse};

/// Keys, leases, revision and history; everything a snapshot holds.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: KvConfig,
    pub(crate) shards: [Shard; SHARDS],
    /// Live leases; the keys attached to each are indexed in the shards.
    pub(crate) leases: LeaseTable,
    /// Revision of the last write; 0 before the first.
    pub(crate) revision: u64,
    pub(crate) history: History,
    /// Events of the commands being applied, reused across batches.
    events: Vec<Event>,
    /// Buffers of dropped events, for the events of in-order apply.
    spares: Spares,
}

impl State {
    /// An empty store.
    pub(crate) fn new(config: KvConfig) -> Self {
        let history = History::new(config.history_events_max);
        let leases = LeaseTable::new(config.leases_max);
        State::from_parts(config, Default::default(), leases, 0, history)
    }

    /// A store from a snapshot's validated parts.
    pub(crate) fn from_parts(
        config: KvConfig,
        shards: [Shard; SHARDS],
        leases: LeaseTable,
        revision: u64,
        history: History,
    ) -> Self {
        let (events, spares) = (Vec::new(), Spares::default());
        State { config, shards, leases, revision, history, events, spares }
    }

    /// Read access to every shard.
    pub(crate) fn reader(&self) -> Reader<'_> {
        Reader::new(&self.shards, 0)
    }

    /// Number of live keys.
    pub(crate) fn len(&self) -> usize {
        self.reader().len()
    }

    /// Applies `commands` (each with its position in the batch) one after
    /// the other over every shard; `base` is the revision before the batch
    /// and `now_ns` its timestamp.
    pub(crate) fn apply_in_order<'a>(
        &mut self,
        base: u64,
        now_ns: u64,
        commands: impl Iterator<Item = (usize, KvCommand<'a>)>,
        results: &mut Vec<KvResponse>,
    ) {
        let bounds = Bounds { keys_max: self.config.keys_max, now_ns };
        let mut keyspace = Keyspace::whole(&mut self.shards, &mut self.leases, bounds, &mut self.spares);
        for (position, command) in commands {
            let revision = revision_at(base, position);
            let response = command::apply(&mut keyspace, &command, revision, &mut self.events);
            results.push(response);
        }
        for event in self.events.drain(..) {
            if let Some(dropped) = self.history.push(event) {
                self.spares.recycle(dropped);
            }
        }
    }

    /// Ends a batch: gives every response that wrote nothing the store
    /// revision it saw, and advances the store revision to the last write.
    pub(crate) fn settle(&mut self, responses: &mut [KvResponse]) {
        let mut current = self.revision;
        for response in responses {
            response.settle_revision(&mut current);
        }
        assert!(current >= self.revision, "the store revision never goes back");
        self.revision = current;
        assert!(self.len() <= self.config.keys_max, "the store holds more keys than its limit");
        assert!(self.leases.len() <= self.config.leases_max, "the store holds more leases than its limit");
    }
}

/// The revision of the command at `position` of a batch applied on top of
/// revision `base`: known from the position alone, so lanes need no
/// other lane's outcome.
pub(crate) fn revision_at(base: u64, position: usize) -> u64 {
    base.checked_add(position as u64 + 1).expect("revision overflow")
}
