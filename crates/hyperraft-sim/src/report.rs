//! [`Report`]: what one run did and every anomaly the checkers found.

use std::fmt;
use std::time::Duration;

use hyperraft_check::bank::Violation;
use hyperraft_check::linearizability::Verdict;
use hyperraft_raft::NodeId;

use crate::faults::{FaultPlan, NetworkProfile};
use crate::history::OperationCounts;
use crate::monitor::Divergence;
use crate::network::NetworkCounters;

/// A broken guarantee, or a run that could not do what it set out to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// The cluster never got far enough to start the fault phase.
    SetupFailed(String),
    /// A node could not reopen its data directory.
    StartFailed { node: NodeId, error: String },
    /// A replica's final ledger breaks the bank invariant (first violations).
    Bank { node: NodeId, violations: Vec<Violation> },
    /// Replicas differ at the same applied index.
    DigestDiverged(Divergence),
    /// The key/value history is not linearizable.
    NotLinearizable,
    /// After the faults stopped, no write committed within the bound.
    NoRecovery { bound: Duration },
    /// After recovery, replicas did not reach the same applied index.
    NotConverged { applied: Vec<(NodeId, Option<u64>)> },
}

/// Bank violations kept per replica.
pub const VIOLATIONS_MAX: usize = 8;

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    pub nodes: usize,
    pub profile: NetworkProfile,
    pub plan: FaultPlan,
    pub network: NetworkCounters,
    pub operations: OperationCounts,
    pub transfers_acknowledged: usize,
    pub kv_operations: usize,
    pub kv_verdict: Option<Verdict>,
    pub digest_samples: u64,
    /// Virtual time from the end of the faults to the first committed write.
    pub recovery: Option<Duration>,
    pub virtual_time: Duration,
    pub trace_digest: u64,
    pub trace_events: u64,
    /// Only when the run was asked to keep them.
    pub trace_lines: Vec<String>,
    pub anomalies: Vec<Anomaly>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.anomalies.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = self.plan.counts();
        let verdict = match self.kv_verdict {
            Some(Verdict::Linearizable) => "linearizable",
            Some(Verdict::NotLinearizable) => "NOT linearizable",
            Some(Verdict::Unknown) => "linearizability unknown (search budget)",
            None => "not checked",
        };
        writeln!(
            formatter,
            "seed {} {}: {} nodes, {:.1}s virtual, faults: {} partitions, {} crashes ({} torn tails), {} clock jumps; \
             messages {} sent, {} lost, {} cut, {} duplicated; ops {} sent, {} acked, {} unknown; \
             {} transfers acked; {} kv ops {verdict}; recovery {}; trace {:016x} ({} events)",
            self.seed,
            if self.passed() { "ok" } else { "FAILED" },
            self.nodes,
            self.virtual_time.as_secs_f64(),
            counts.partitions,
            counts.crashes,
            counts.torn_tails,
            counts.clock_jumps,
            self.network.sent,
            self.network.lost,
            self.network.cut,
            self.network.duplicated,
            self.operations.sent,
            self.operations.acknowledged,
            self.operations.unknown,
            self.transfers_acknowledged,
            self.kv_operations,
            self.recovery.map_or("none".to_string(), |recovery| format!("{}ms", recovery.as_millis())),
            self.trace_digest,
            self.trace_events,
        )?;
        if !self.passed() {
            writeln!(formatter, "  network profile: {:?}", self.profile)?;
            writeln!(formatter, "  fault schedule (offsets into the fault phase):")?;
            write!(formatter, "{}", self.plan)?;
            for anomaly in &self.anomalies {
                writeln!(formatter, "  anomaly: {anomaly:?}")?;
            }
            writeln!(
                formatter,
                "  replay: cargo run -p hyperraft-sim --release -- --seed {} --nodes {}",
                self.seed, self.nodes
            )?;
        }
        Ok(())
    }
}
