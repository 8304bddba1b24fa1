//! What one simulated run looks like: cluster size, phase lengths, load,
//! and which faults are allowed.

use std::path::PathBuf;
use std::time::Duration;

/// The shape of a run. Everything not set here is drawn from the seed.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Voters in the cluster; `None` lets the seed pick 3 or 5.
    pub nodes: Option<usize>,
    /// Virtual time during which clients write and faults are injected.
    pub fault_phase: Duration,
    /// Concurrent clients.
    pub clients: usize,
    /// Whether the fault schedule (partitions, crashes, clock jumps) and
    /// message faults (drop, duplicate, delay spikes) are applied; without
    /// them the network only delays.
    pub faults: bool,
    /// After the faults stop, a leader must be elected and a write must
    /// commit within this much virtual time.
    pub recovery_bound: Duration,
    /// Where the nodes' data directories are created; `None` uses
    /// `/dev/shm` when it exists (fsync there costs nothing), else the
    /// system temporary directory.
    pub data_root: Option<PathBuf>,
    /// Keep every trace event as text (for `--trace`).
    pub keep_trace: bool,
    /// A deliberate bug, to show the checkers catch it. Never set outside tests.
    pub sabotage: Option<Sabotage>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: None,
            fault_phase: Duration::from_secs(20),
            clients: 3,
            faults: true,
            recovery_bound: Duration::from_secs(20),
            data_root: None,
            keep_trace: false,
            sabotage: None,
        }
    }
}

/// A deliberately broken component, to prove the checkers notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sabotage {
    /// From `from` to `until` (virtual time into the fault phase), the
    /// network answers every AppendEntries with success without delivering
    /// it: the leader counts followers that never stored the entries toward
    /// its commit quorum, so it acknowledges writes that a later leader
    /// does not have.
    AckWithoutDelivery { from: Duration, until: Duration },
}
