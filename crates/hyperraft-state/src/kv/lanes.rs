//! The parallel executor: runs the commands of each shard in that shard's
//! lane, with commands spanning shards as barriers between rounds.

use std::ops::Range;

use hyperraft_wire::KvCommand;
use rayon::prelude::*;

use super::command;
use super::keyspace::{Bounds, Keyspace};
use super::lease::LeaseTable;
use super::route::Route;
use super::shard::{Shard, SHARDS};
use super::spares::Spares;
use super::state::{revision_at, State};
use super::{Event, KvResponse};

/// When applying in lanes pays. The defaults come from measurement on the
/// 2-core development machine (see the module documentation of `kv`);
/// tests and benchmarks change them to force lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneTuning {
    /// A barrier-free run of fewer commands than this is applied in order:
    /// below it, waking the pool and merging cost more than the lanes save.
    pub segment_commands_min: usize,
    /// A run in which one lane would hold more than this share (percent) of
    /// the commands is applied in order: the other lanes could save little.
    pub lane_share_max_percent: usize,
}

impl Default for LaneTuning {
    fn default() -> Self {
        LaneTuning { segment_commands_min: 128, lane_share_max_percent: 75 }
    }
}

/// The routes of the current batch and one lane per shard; every buffer
/// is kept across batches so steady-state apply reuses its memory.
#[derive(Debug, Default)]
pub(crate) struct Lanes {
    pub(crate) tuning: LaneTuning,
    routes: Vec<Route>,
    lanes: [Lane; SHARDS],
}

/// The work of one shard in one round, and what it produced.
#[derive(Debug, Default)]
struct Lane {
    /// Batch positions of the lane's commands, in batch order.
    positions: Vec<u32>,
    /// One response per position, in the same order.
    responses: Vec<KvResponse>,
    /// The events of those commands, in revision order.
    events: Vec<Event>,
    /// Buffers for the lane's events: those of the events that the lane's
    /// own events pushed out of the history, so each lane gets back about
    /// what it uses.
    spares: Spares,
}

impl Lanes {
    /// Applies a batch stamped `now_ns` on `pool`: rounds of lanes in
    /// parallel, each round ended by a barrier command that runs alone over
    /// every shard.
    pub(crate) fn apply(
        &mut self,
        state: &mut State,
        commands: &[KvCommand<'_>],
        now_ns: u64,
        pool: &rayon::ThreadPool,
        results: &mut Vec<KvResponse>,
    ) {
        assert!(u32::try_from(commands.len()).is_ok(), "batch positions must fit in u32");
        let base = state.revision;
        self.routes.clear();
        self.routes.extend(commands.iter().map(Route::of));
        let mut start = 0;
        while start < commands.len() {
            let barrier = self.routes[start..].iter().position(Route::is_barrier);
            let end = barrier.map_or(commands.len(), |offset| start + offset);
            let bounds = Bounds { keys_max: state.config.keys_max, now_ns };
            self.apply_segment(state, commands, bounds, start..end, pool, results);
            if end < commands.len() {
                state.apply_in_order(base, now_ns, std::iter::once((end, commands[end])), results);
            }
            start = end + 1;
        }
    }

    /// Applies the barrier-free run `segment`, in lanes when that pays.
    fn apply_segment(
        &mut self,
        state: &mut State,
        commands: &[KvCommand<'_>],
        bounds: Bounds,
        segment: Range<usize>,
        pool: &rayon::ThreadPool,
        results: &mut Vec<KvResponse>,
    ) {
        // The store revision only moves when the batch settles, after every
        // segment: it is still the batch's base.
        let base = state.revision;
        if !self.assign(state, segment.clone()) {
            let in_order = segment.map(|position| (position, commands[position]));
            state.apply_in_order(base, bounds.now_ns, in_order, results);
            return;
        }
        // The lease table is only read here: lease commands are barriers.
        let (shards, leases, lanes) = (&mut state.shards, &state.leases, &mut self.lanes);
        pool.install(|| {
            let pairs = shards.par_iter_mut().zip(lanes.par_iter_mut()).enumerate();
            pairs.for_each(|(index, (shard, lane))| {
                lane.run(shard, index, leases, commands, base, bounds);
            });
        });
        self.merge(state, base, segment, results);
    }

    /// Hands each command of `segment` to its lane; returns false when the
    /// segment should run in order instead: it is short, one lane would do
    /// most of the work, or the store is so close to full that whether a
    /// put fits depends on other lanes' puts and deletes.
    fn assign(&mut self, state: &State, segment: Range<usize>) -> bool {
        if segment.len() < self.tuning.segment_commands_min {
            return false;
        }
        let mut puts = 0usize;
        for lane in &mut self.lanes {
            assert!(lane.responses.is_empty(), "a lane kept responses of an earlier round");
            assert!(lane.events.is_empty(), "a lane kept events of an earlier round");
            lane.positions.clear();
        }
        for position in segment.clone() {
            let route = self.routes[position];
            puts += usize::from(route.puts);
            self.lanes[usize::from(route.lane)].positions.push(position as u32);
        }
        let largest = self.lanes.iter().map(|lane| lane.positions.len()).max();
        let balanced = largest.unwrap_or(0) * 100 <= segment.len() * self.tuning.lane_share_max_percent;
        let has_room = state.len().saturating_add(puts) <= state.config.keys_max;
        balanced && has_room
    }

    /// Moves the lanes' responses and events out in batch order: the
    /// route of each position names the lane holding its output. Events
    /// the history drops give their buffers to the lane whose event
    /// pushed them out.
    fn merge(&mut self, state: &mut State, base: u64, segment: Range<usize>, results: &mut Vec<KvResponse>) {
        let mut outputs = self
            .lanes
            .each_mut()
            .map(|lane| (lane.responses.drain(..), lane.events.drain(..).peekable(), &mut lane.spares));
        for position in segment {
            let lane = usize::from(self.routes[position].lane);
            let (responses, events, spares) = &mut outputs[lane];
            results.push(responses.next().expect("a lane answered every command it was given"));
            let revision = revision_at(base, position);
            while let Some(event) = events.next_if(|event| event.revision() == revision) {
                if let Some(dropped) = state.history.push(event) {
                    spares.recycle(dropped);
                }
            }
        }
        for (responses, events, _) in &mut outputs {
            assert!(responses.next().is_none(), "a lane answered a command it was not given");
            assert!(events.next().is_none(), "a lane made an event out of revision order");
        }
    }
}

impl Lane {
    /// Applies this lane's commands, in batch order, to its own shard.
    fn run(
        &mut self,
        shard: &mut Shard,
        index: usize,
        leases: &LeaseTable,
        commands: &[KvCommand<'_>],
        base: u64,
        bounds: Bounds,
    ) {
        let Lane { positions, responses, events, spares } = self;
        let mut keyspace = Keyspace::lane(shard, index, leases, bounds, spares);
        for &position in positions.iter() {
            let position = position as usize;
            let revision = revision_at(base, position);
            responses.push(command::apply(&mut keyspace, &commands[position], revision, events));
        }
    }
}
