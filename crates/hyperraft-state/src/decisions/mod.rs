//! The decision state machine (capability C10): proposals that an
//! electorate of voters approves or rejects, decided inside the replicated
//! state the moment the outcome is certain.
//!
//! # Semantics
//!
//! Everything is deterministic: the only clock is the batch timestamp every
//! replica applies with, proposal ids come from a counter in the state (the
//! first proposal is 1), and commands apply one by one in log order.
//!
//! * `Propose` creates an open proposal. Its electorate, threshold,
//!   criticality and whether votes must be signed are fixed by the command:
//!   the policy that chose them (rules mapping actions to criticality,
//!   thresholds per criticality) runs before the command is proposed, so
//!   every replica tallies with the same rule. A non-empty idempotency key
//!   that names a kept proposal returns its id and changes nothing
//!   (`Exists` when every field but the deadline is equal, else
//!   `ExistsWithDifferentFields`).
//! * `Vote` records one voter's first vote. It is refused — and changes
//!   nothing — when the proposal is unknown, already decided, past its
//!   deadline, when the voter is outside the electorate, when a required
//!   signature is missing, when a signature does not verify against the
//!   voter's registered key (or the voter has none), and when the voter has
//!   already voted: a voter's first vote stands.
//! * `RegisterKey` sets (or replaces) a voter's ed25519 public key; a key
//!   that is not a valid curve point is refused. Votes already counted are
//!   not re-checked.
//! * `Expire` closes every open proposal whose non-zero deadline is at or
//!   before the batch timestamp as `Expired` ("no quorum").
//!
//! # Early termination
//!
//! With `n` voters and `required = threshold.required(n)` approvals, after
//! every counted vote:
//!
//! 1. `approvals ≥ required`: `Approved`. No remaining vote can undo it.
//! 2. `approvals + outstanding < required`, where `outstanding` counts the
//!    voters who have not voted: `Rejected`. Even if every outstanding voter
//!    approved, the threshold could not be reached.
//!
//! Abstentions count as cast and not approving. So a decision fires at the
//! first vote that makes it certain, and it always equals the decision the
//! complete set of votes would give.
//!
//! # Signatures
//!
//! A signature is ed25519 over [`hyperraft_wire::decisions::vote_message`]:
//! a domain tag, the proposal id, the choice and the voter id. It binds
//! the vote to one proposal, so it cannot be replayed on another, and to
//! one choice, so it cannot be flipped. Verification is strict
//! (canonical encodings only) and runs inside the state machine on every
//! replica.
//!
//! # Bounds
//!
//! [`DecisionConfig`] bounds open proposals (`ProposalsFull`), decided
//! proposals kept (the oldest decided is evicted first, with its
//! idempotency key) and registered keys (`KeysFull`). Wire bounds
//! (electorate size, action, description, payload) are enforced by the
//! decoder before a command gets here.

mod proposal;
mod snapshot;
mod store;

pub use proposal::{Outcome, Proposal};
pub use store::DecisionStore;

use hyperraft_wire::Choice;

/// Bounds of one decision store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecisionConfig {
    /// Most open proposals; a proposal at this bound is refused with
    /// [`DecisionError::ProposalsFull`].
    pub proposals_max: usize,
    /// Most decided proposals kept for reads; the oldest decided is evicted
    /// first, with its idempotency key.
    pub decided_max: usize,
    /// Most voters with a registered public key.
    pub keys_max: usize,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        DecisionConfig { proposals_max: 10_000, decided_max: 100_000, keys_max: 100_000 }
    }
}

/// Why a decision command was refused; a refused command changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    /// No kept proposal has this id.
    #[error("proposal {proposal_id} not found")]
    NotFound { proposal_id: u64 },
    /// The proposal is already decided.
    #[error("proposal {proposal_id} is already decided: {outcome:?}")]
    Decided { proposal_id: u64, outcome: Outcome },
    /// The proposal's deadline has passed; it expires at the next sweep.
    #[error("proposal {proposal_id} is past its deadline")]
    DeadlinePassed { proposal_id: u64 },
    /// The voter is not in the proposal's electorate.
    #[error("voter {voter_id} is not in the electorate of proposal {proposal_id}")]
    NotInElectorate { proposal_id: u64, voter_id: u64 },
    /// The voter already voted on this proposal; its first vote stands.
    #[error("voter {voter_id} already voted {first:?} on proposal {proposal_id}")]
    AlreadyVoted { proposal_id: u64, voter_id: u64, first: Choice },
    /// The proposal's policy requires signed votes and this one is not.
    #[error("proposal {proposal_id} requires a signed vote")]
    SignatureRequired { proposal_id: u64 },
    /// The voter has no registered public key to check a signature with.
    #[error("voter {voter_id} has no registered public key")]
    NoPublicKey { voter_id: u64 },
    /// The signature does not verify for this proposal, choice and voter.
    #[error("the signature of voter {voter_id} does not verify for proposal {proposal_id}")]
    BadSignature { proposal_id: u64, voter_id: u64 },
    /// The bytes are not a valid ed25519 public key.
    #[error("the public key of voter {voter_id} is not a valid ed25519 key")]
    BadPublicKey { voter_id: u64 },
    /// The store holds its limit of open proposals.
    #[error("the store holds its limit of {max} open proposals")]
    ProposalsFull { max: usize },
    /// The store holds its limit of registered keys.
    #[error("the store holds its limit of {max} registered keys")]
    KeysFull { max: usize },
}

/// The result of one decision command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecisionResponse {
    /// A new proposal.
    Proposed { proposal_id: u64 },
    /// The idempotency key names a kept proposal with equal fields; nothing changed.
    Exists { proposal_id: u64 },
    /// The idempotency key names a kept proposal with other fields; nothing changed.
    ExistsWithDifferentFields { proposal_id: u64 },
    /// The vote counted; the proposal's outcome after it.
    Voted { proposal_id: u64, outcome: Outcome },
    /// The voter's key is registered.
    KeyRegistered { voter_id: u64 },
    /// The sweep closed this many proposals as expired.
    Expired { count: u32 },
    /// The command was refused and changed nothing.
    Refused(DecisionError),
}

#[cfg(test)]
mod tests;
