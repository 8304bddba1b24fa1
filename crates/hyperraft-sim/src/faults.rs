//! The fault schedule of a run, drawn from the seed before the run starts,
//! so it can be printed and replays exactly.

use std::fmt;
use std::time::Duration;

use hyperraft_load::Rng;
use hyperraft_raft::NodeId;

/// How the network treats every message, drawn per run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkProfile {
    /// One-way delay is uniform in `[delay_us_min, delay_us_max]`.
    pub delay_us_min: u64,
    pub delay_us_max: u64,
    /// Per mille of messages lost (while message faults are on).
    pub drop_per_mille: u64,
    /// Per mille of requests delivered twice, the copy later (reordered).
    pub duplicate_per_mille: u64,
    /// Per mille of messages delayed by a spike of up to `spike_us_max`.
    pub spike_per_mille: u64,
    pub spike_us_max: u64,
}

impl NetworkProfile {
    pub(crate) fn draw(rng: &mut Rng) -> NetworkProfile {
        let delay_us_min = 100 + rng.below(2_000);
        NetworkProfile {
            delay_us_min,
            delay_us_max: delay_us_min + rng.below(30_000),
            drop_per_mille: rng.below(60),
            duplicate_per_mille: rng.below(60),
            spike_per_mille: rng.below(20),
            spike_us_max: 200_000 + rng.below(800_000),
        }
    }
}

/// Which links a partition cuts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Nothing crosses between `side` and the rest, either way.
    Split { side: Vec<NodeId> },
    /// Messages from `from` to `to` are lost; the other way works.
    OneWay { from: NodeId, to: NodeId },
}

impl Cut {
    /// Whether a message from `from` to `to` is lost to this cut.
    pub fn blocks(&self, from: NodeId, to: NodeId) -> bool {
        match self {
            Cut::Split { side } => side.contains(&from) != side.contains(&to),
            Cut::OneWay { from: cut_from, to: cut_to } => *cut_from == from && *cut_to == to,
        }
    }
}

/// One scheduled fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Starts partition `id`.
    Partition { id: u64, cut: Cut },
    /// Ends partition `id`.
    Heal { id: u64 },
    /// Stops the node at once; with `torn_tail`, garbage is left after the
    /// last record of its log, as a write cut short by power loss leaves it.
    Crash { node: NodeId, torn_tail: bool },
    /// Starts the node again from its data directory.
    Restart { node: NodeId },
    /// Moves the node's wall clock (the batch timestamps it proposes) by `offset_ms`.
    ClockJump { node: NodeId, offset_ms: i64 },
}

impl fmt::Display for Fault {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition { id, cut: Cut::Split { side } } => write!(formatter, "partition#{id} split {side:?}"),
            Fault::Partition { id, cut: Cut::OneWay { from, to } } => {
                write!(formatter, "partition#{id} one-way {from}->{to}")
            }
            Fault::Heal { id } => write!(formatter, "heal#{id}"),
            Fault::Crash { node, torn_tail } => {
                write!(formatter, "crash n{node}{}", if *torn_tail { " (torn tail)" } else { "" })
            }
            Fault::Restart { node } => write!(formatter, "restart n{node}"),
            Fault::ClockJump { node, offset_ms } => write!(formatter, "clock n{node} {offset_ms:+}ms"),
        }
    }
}

/// Counts of scheduled faults by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub partitions: u64,
    pub crashes: u64,
    pub torn_tails: u64,
    pub clock_jumps: u64,
}

/// Faults at virtual offsets into the fault phase, in time order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    pub events: Vec<(Duration, Fault)>,
}

impl FaultPlan {
    /// Draws a schedule over `phase` for nodes `1..=nodes`. Every partition
    /// heals and every crashed node restarts inside the phase or at its end.
    pub fn draw(rng: &mut Rng, nodes: usize, phase: Duration) -> FaultPlan {
        let ids: Vec<NodeId> = (1..=nodes as NodeId).collect();
        let phase_ms = phase.as_millis() as u64;
        let mut events = Vec::new();
        let mut down_until = vec![0u64; nodes + 1];
        let mut partition_next = 1;
        let mut at_ms = 200 + rng.below(1_000);
        while at_ms < phase_ms {
            let length_ms = 200 + rng.below(4_000);
            let end_ms = (at_ms + length_ms).min(phase_ms);
            let node = ids[rng.below(nodes as u64) as usize];
            match rng.below(10) {
                0..=3 => {
                    let id = partition_next;
                    partition_next += 1;
                    events.push((at_ms, Fault::Partition { id, cut: draw_cut(rng, &ids) }));
                    events.push((end_ms, Fault::Heal { id }));
                }
                4..=7 if down_until[node as usize] <= at_ms => {
                    let torn_tail = rng.below(2) == 0;
                    events.push((at_ms, Fault::Crash { node, torn_tail }));
                    events.push((end_ms, Fault::Restart { node }));
                    down_until[node as usize] = end_ms + 1;
                }
                4..=7 => {}
                _ => {
                    let offset_ms = rng.below(120_000) as i64 - 60_000;
                    events.push((at_ms, Fault::ClockJump { node, offset_ms }));
                }
            }
            at_ms += 100 + rng.below(2_000);
        }
        events.sort_by_key(|(at_ms, _)| *at_ms);
        FaultPlan { events: events.into_iter().map(|(at_ms, fault)| (Duration::from_millis(at_ms), fault)).collect() }
    }

    pub fn counts(&self) -> FaultCounts {
        let mut counts = FaultCounts::default();
        for (_, fault) in &self.events {
            match fault {
                Fault::Partition { .. } => counts.partitions += 1,
                Fault::Crash { torn_tail, .. } => {
                    counts.crashes += 1;
                    counts.torn_tails += u64::from(*torn_tail);
                }
                Fault::ClockJump { .. } => counts.clock_jumps += 1,
                Fault::Heal { .. } | Fault::Restart { .. } => {}
            }
        }
        counts
    }
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (at, fault) in &self.events {
            writeln!(formatter, "  +{:>6}ms {fault}", at.as_millis())?;
        }
        Ok(())
    }
}

fn draw_cut(rng: &mut Rng, ids: &[NodeId]) -> Cut {
    match rng.below(3) {
        0 => {
            let from = ids[rng.below(ids.len() as u64) as usize];
            let others: Vec<NodeId> = ids.iter().copied().filter(|id| *id != from).collect();
            Cut::OneWay { from, to: others[rng.below(others.len() as u64) as usize] }
        }
        1 => Cut::Split { side: vec![ids[rng.below(ids.len() as u64) as usize]] },
        _ => {
            // A random minority (possibly holding the leader) against the rest.
            let minority = (ids.len() - 1) / 2;
            let mut side: Vec<NodeId> = ids.to_vec();
            while side.len() > minority.max(1) {
                side.remove(rng.below(side.len() as u64) as usize);
            }
            Cut::Split { side }
        }
    }
}
