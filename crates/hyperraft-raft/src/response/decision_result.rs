//! Decision results mirrored as plain serde types (see
//! `hyperraft_state::decisions::DecisionResponse`).

use hyperraft_state::decisions::{DecisionError, DecisionResponse, Outcome};
use serde::{Deserialize, Serialize};

/// Where a proposal stands (see `hyperraft_state::decisions::Outcome`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DecisionOutcome {
    Open,
    Approved,
    Rejected,
    Expired,
}

impl From<Outcome> for DecisionOutcome {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Open => DecisionOutcome::Open,
            Outcome::Approved => DecisionOutcome::Approved,
            Outcome::Rejected => DecisionOutcome::Rejected,
            Outcome::Expired => DecisionOutcome::Expired,
        }
    }
}

/// Why the state machine refused a decision command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DecisionErrorCode {
    NotFound,
    Decided,
    DeadlinePassed,
    NotInElectorate,
    AlreadyVoted,
    SignatureRequired,
    NoPublicKey,
    BadSignature,
    BadPublicKey,
    ProposalsFull,
    KeysFull,
}

impl From<&DecisionError> for DecisionErrorCode {
    fn from(error: &DecisionError) -> Self {
        match error {
            DecisionError::NotFound { .. } => DecisionErrorCode::NotFound,
            DecisionError::Decided { .. } => DecisionErrorCode::Decided,
            DecisionError::DeadlinePassed { .. } => DecisionErrorCode::DeadlinePassed,
            DecisionError::NotInElectorate { .. } => DecisionErrorCode::NotInElectorate,
            DecisionError::AlreadyVoted { .. } => DecisionErrorCode::AlreadyVoted,
            DecisionError::SignatureRequired { .. } => DecisionErrorCode::SignatureRequired,
            DecisionError::NoPublicKey { .. } => DecisionErrorCode::NoPublicKey,
            DecisionError::BadSignature { .. } => DecisionErrorCode::BadSignature,
            DecisionError::BadPublicKey { .. } => DecisionErrorCode::BadPublicKey,
            DecisionError::ProposalsFull { .. } => DecisionErrorCode::ProposalsFull,
            DecisionError::KeysFull { .. } => DecisionErrorCode::KeysFull,
        }
    }
}

/// The result of one decision command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecisionResult {
    Proposed {
        proposal_id: u64,
    },
    /// Same idempotency key and fields: already applied, nothing changed.
    Exists {
        proposal_id: u64,
    },
    ExistsWithDifferentFields {
        proposal_id: u64,
    },
    Voted {
        proposal_id: u64,
        outcome: DecisionOutcome,
    },
    KeyRegistered {
        voter_id: u64,
    },
    Expired {
        count: u32,
    },
    /// Refused and changed nothing; `message` says why, for people.
    Error {
        code: DecisionErrorCode,
        message: String,
    },
}

impl From<&DecisionResponse> for DecisionResult {
    fn from(response: &DecisionResponse) -> Self {
        match response {
            DecisionResponse::Proposed { proposal_id } => DecisionResult::Proposed { proposal_id: *proposal_id },
            DecisionResponse::Exists { proposal_id } => DecisionResult::Exists { proposal_id: *proposal_id },
            DecisionResponse::ExistsWithDifferentFields { proposal_id } => {
                DecisionResult::ExistsWithDifferentFields { proposal_id: *proposal_id }
            }
            DecisionResponse::Voted { proposal_id, outcome } => {
                DecisionResult::Voted { proposal_id: *proposal_id, outcome: (*outcome).into() }
            }
            DecisionResponse::KeyRegistered { voter_id } => DecisionResult::KeyRegistered { voter_id: *voter_id },
            DecisionResponse::Expired { count } => DecisionResult::Expired { count: *count },
            DecisionResponse::Refused(error) => {
                DecisionResult::Error { code: error.into(), message: error.to_string() }
            }
        }
    }
}
