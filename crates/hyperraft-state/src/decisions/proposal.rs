//! One proposal: its fixed fields, the votes counted, its outcome.

use hyperraft_wire::{Choice, Criticality, Threshold};

/// Where a proposal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Votes are still counted.
    Open,
    /// Approvals reached the threshold.
    Approved,
    /// The threshold can no longer be reached.
    Rejected,
    /// The deadline passed undecided ("no quorum").
    Expired,
}

impl Outcome {
    /// Whether votes are still counted.
    pub fn is_open(self) -> bool {
        self == Outcome::Open
    }
}

/// A kept proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub id: u64,
    pub idempotency_key: Vec<u8>,
    pub action: Vec<u8>,
    pub description: Vec<u8>,
    pub payload: Vec<u8>,
    pub criticality: Criticality,
    pub threshold: Threshold,
    /// Every vote must carry a valid signature.
    pub signed: bool,
    /// Batch timestamp at which it expires undecided; 0 for none.
    pub deadline_ns: u64,
    /// Batch timestamp of the proposal.
    pub proposed_ns: u64,
    /// The voters, strictly increasing.
    pub electorate: Vec<u64>,
    /// Each voter's first vote, by electorate position.
    pub ballots: Vec<Option<Choice>>,
    pub approvals: u32,
    pub rejections: u32,
    pub abstentions: u32,
    pub outcome: Outcome,
    /// Batch timestamp of the decision; 0 while open.
    pub decided_ns: u64,
}

impl Proposal {
    /// Approvals that decide it.
    pub fn required(&self) -> usize {
        self.threshold.required(self.electorate.len())
    }

    /// Votes counted.
    pub fn cast(&self) -> usize {
        (self.approvals + self.rejections + self.abstentions) as usize
    }

    /// Voters who have not voted.
    pub fn outstanding(&self) -> usize {
        self.electorate.len() - self.cast()
    }

    /// The first vote of `voter`, if any.
    pub fn vote_of(&self, voter: u64) -> Option<Choice> {
        let position = self.electorate.binary_search(&voter).ok()?;
        self.ballots[position]
    }

    /// The outcome the counted votes make certain, if any: the rule of the
    /// module documentation.
    pub(super) fn certain_outcome(&self) -> Option<Outcome> {
        let (approvals, required) = (self.approvals as usize, self.required());
        if approvals >= required {
            Some(Outcome::Approved)
        } else if approvals + self.outstanding() < required {
            Some(Outcome::Rejected)
        } else {
            None
        }
    }
}
