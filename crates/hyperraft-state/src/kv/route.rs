//! Which lane a command can run in, decided from its keys alone.

use hyperraft_wire::{KvCommand, KvOp, TxnView};

use super::key_range::KeyRange;
use super::shard::shard_of;

/// Where one command of a batch runs, and how many keys it may create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    /// The shard whose lane runs the command, or [`Route::BARRIER`].
    pub(crate) lane: u8,
    /// Most keys the command can create: its puts, counting both branches
    /// of a transaction.
    pub(crate) puts: u16,
}

impl Route {
    /// The command touches several shards (or a key range, which with
    /// hashed shards means all of them) and must run alone.
    pub(crate) const BARRIER: u8 = u8::MAX;

    /// Routes `command` by the shards of every key it names.
    pub(crate) fn of(command: &KvCommand<'_>) -> Route {
        match command {
            KvCommand::Put(put) => Route { lane: lane_of(put.key), puts: 1 },
            KvCommand::DeleteRange(delete) => Route { lane: single_lane(delete.key, delete.range_end), puts: 0 },
            KvCommand::Range(range) => Route { lane: single_lane(range.key, range.range_end), puts: 0 },
            KvCommand::Txn(txn) => route_txn(txn),
            // They change the lease table that every lane reads, and a
            // revoke deletes keys of any shard.
            KvCommand::LeaseGrant(_)
            | KvCommand::LeaseRevoke(_)
            | KvCommand::LeaseKeepAlive(_)
            | KvCommand::LeaseExpire(_) => Route { lane: Route::BARRIER, puts: 0 },
        }
    }

    /// Whether the command must run alone.
    pub(crate) fn is_barrier(&self) -> bool {
        self.lane == Route::BARRIER
    }
}

fn lane_of(key: &[u8]) -> u8 {
    shard_of(key) as u8
}

fn single_lane(key: &[u8], range_end: &[u8]) -> u8 {
    match KeyRange::new(key, range_end).single() {
        Some(key) => lane_of(key),
        None => Route::BARRIER,
    }
}

/// A transaction runs in a lane only when every compared and every
/// operated key, in both branches, lies in one shard. A transaction that
/// names no key at all changes nothing and runs in lane 0.
fn route_txn(txn: &TxnView<'_>) -> Route {
    let mut lane: Option<u8> = None;
    let mut puts: u16 = 0;
    let mut join = |next: u8| match lane {
        Some(current) if current != next => Route::BARRIER,
        _ => {
            lane = Some(next);
            next
        }
    };
    let mut barrier = false;
    for compare in txn.compares() {
        barrier |= join(lane_of(compare.key)) == Route::BARRIER;
    }
    for op in txn.success().chain(txn.failure()) {
        let next = match op {
            KvOp::Put(put) => {
                puts = puts.saturating_add(1);
                lane_of(put.key)
            }
            KvOp::DeleteRange(delete) => single_lane(delete.key, delete.range_end),
            KvOp::Range(range) => single_lane(range.key, range.range_end),
        };
        barrier |= next == Route::BARRIER || join(next) == Route::BARRIER;
    }
    let lane = if barrier { Route::BARRIER } else { lane.unwrap_or(0) };
    Route { lane, puts }
}
