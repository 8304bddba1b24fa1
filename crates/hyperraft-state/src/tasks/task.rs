//! One task and its copies, plus the pure decision rule.

use super::Decision;

/// Why a task failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// The results can no longer reach the agreement threshold.
    NoAgreement,
    /// Released copies used up the attempts before agreement.
    AttemptsExhausted,
    /// The deadline passed first.
    DeadlineExceeded,
}

/// Where a task stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Not decided yet.
    Open,
    /// Decided with this output; final.
    Succeeded { output: Vec<u8> },
    /// Failed; final.
    Failed { reason: FailReason },
}

/// Where one agent's copy stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyState {
    /// The agent runs it.
    Running,
    /// The agent reported (see the task's results).
    Reported,
    /// The agent was released before it reported.
    Released,
    /// The task finished while the copy ran.
    Cancelled,
}

/// One agent's copy of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub agent_id: u64,
    /// Batch timestamp of the assignment.
    pub assigned_ns: u64,
    pub state: CopyState,
}

/// What a copy produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success(Vec<u8>),
    Failure(Vec<u8>),
}

/// One committed result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub agent_id: u64,
    /// Batch timestamp of the report.
    pub reported_ns: u64,
    pub outcome: Outcome,
}

/// A task with everything it was submitted with and everything since.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub id: u64,
    pub idempotency_key: Vec<u8>,
    pub task_type: Vec<u8>,
    pub payload: Vec<u8>,
    pub criticality: u8,
    /// `k`, the number of copies run by distinct agents.
    pub redundancy: u8,
    /// Percent of `k` that must agree; 0 for a strict majority.
    pub threshold_percent: u8,
    /// 0 for none.
    pub deadline_ns: u64,
    pub attempts_max: u8,
    /// Copies that ended without an output.
    pub attempts_used: u8,
    pub submitted_ns: u64,
    pub state: TaskState,
    /// In assignment order.
    pub assignments: Vec<Assignment>,
    /// In report order.
    pub results: Vec<Report>,
}

impl Task {
    /// Identical outputs needed to succeed.
    pub fn required(&self) -> usize {
        let k = usize::from(self.redundancy);
        match self.threshold_percent {
            0 => k / 2 + 1,
            percent => (usize::from(percent) * k).div_ceil(100).max(1),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.state != TaskState::Open
    }

    pub fn running(&self) -> usize {
        self.assignments.iter().filter(|copy| copy.state == CopyState::Running).count()
    }

    pub fn successes(&self) -> usize {
        self.results.iter().filter(|report| matches!(report.outcome, Outcome::Success(_))).count()
    }

    pub fn attempts_left(&self) -> bool {
        self.attempts_used < self.attempts_max
    }

    /// Copies the dispatcher may still assign now.
    pub fn needed(&self) -> usize {
        if self.is_finished() || !self.attempts_left() {
            return 0;
        }
        let wanted = usize::from(self.redundancy).saturating_sub(self.successes());
        wanted.saturating_sub(self.running())
    }

    /// The successful outputs, in report order.
    pub fn outputs(&self) -> impl Iterator<Item = &[u8]> {
        self.results.iter().filter_map(|report| match &report.outcome {
            Outcome::Success(output) => Some(output.as_slice()),
            Outcome::Failure(_) => None,
        })
    }

    /// Applies the decision rule of the module doc to an open task;
    /// `failure` is the reason given if it can no longer agree.
    pub(super) fn decide(&self, failure: FailReason) -> Option<Decision> {
        let required = self.required();
        let outputs: Vec<&[u8]> = self.outputs().collect();
        let count = |output: &[u8]| outputs.iter().filter(|other| **other == output).count();
        let mut best = 0;
        for output in &outputs {
            let agreeing = count(output);
            if agreeing >= required {
                return Some(Decision::Succeeded { output: output.to_vec() });
            }
            best = best.max(agreeing);
        }
        let open = if self.attempts_left() {
            usize::from(self.redundancy).saturating_sub(outputs.len())
        } else {
            self.running()
        };
        if best + open < required {
            let outputs = outputs.iter().map(|output| output.to_vec()).collect();
            return Some(Decision::Failed { reason: failure, outputs });
        }
        None
    }
}
