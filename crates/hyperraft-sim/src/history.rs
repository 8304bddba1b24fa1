//! [`History`]: what the clients did and saw, in the form the checkers
//! take. Key/value operations are stamped by one logical clock that ticks
//! at every invocation and completion, so "returned before called" is the
//! order events really happened in, even within one virtual instant.

use hyperraft_check::bank::ClientRecord;
use hyperraft_check::linearizability::{KvInput, KvOutput, Operation};

/// Clients' counts of what happened to their operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OperationCounts {
    /// Operations (transfer batches, puts, gets) sent, retries included.
    pub sent: u64,
    /// Operations whose outcome the client saw.
    pub acknowledged: u64,
    /// Operations that timed out or failed without saying whether they took effect.
    pub unknown: u64,
    /// Transfer results other than `Ok` or `Exists`.
    pub refused: u64,
}

/// A run's client history.
#[derive(Default)]
pub struct History {
    clock: u64,
    /// Transfers sent and acknowledged, for the bank checker.
    pub transfers: ClientRecord,
    /// Completed key/value operations; an unknown put returns at `u64::MAX`
    /// (it may take effect at any later time), an unknown get is left out.
    pub kv: Vec<(Vec<u8>, Operation<KvInput, KvOutput>)>,
    pub counts: OperationCounts,
}

impl History {
    /// The next logical time.
    pub fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}
