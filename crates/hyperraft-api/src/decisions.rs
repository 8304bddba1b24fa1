//! The `Decisions` service: proposals voted by agents (see
//! `proto/decision.proto` and `hyperraft_state::decisions`).
//!
//! The node that proposes (the leader) applies its [`DecisionPolicy`] —
//! criticality rules, thresholds, signatures for high and critical — and
//! writes the result into the `Propose` command, so the tally that runs in
//! every replica's state machine needs no configuration. Votes go through
//! the log one by one (the batcher coalesces concurrent ones into a
//! batch); the state machine verifies signatures and decides. Expiry is a
//! command too: the leader's expiry task (see [`crate::lease`]) proposes
//! one when some open proposal's deadline has passed by its clock.

mod electorate;
pub mod policy;

use std::sync::Arc;

use hyperraft_raft::{DecisionErrorCode, DecisionOutcome, DecisionResult};
use hyperraft_state::decisions::{Outcome, Proposal};
use hyperraft_wire::decisions::{
    ACTION_BYTES_MAX, DESCRIPTION_BYTES_MAX, IDEMPOTENCY_KEY_BYTES_MAX, PAYLOAD_BYTES_MAX, PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
};
use hyperraft_wire::{
    Choice, Criticality, DecisionBatchWriter, Proposal as Draft, RegisterKeyView, Threshold, VoteView,
};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::api::Api;
use crate::errors::{invalid_argument, unexpected};
use crate::proto;
use crate::proto::decisions_server::Decisions;

pub use policy::DecisionPolicy;

/// States buffered per watch before the task waits for the client.
const WATCH_BUFFERED: usize = 4;

pub(crate) struct DecisionsService {
    pub(crate) api: Arc<Api>,
}

/// One frame of decision commands, written by `build`.
pub(crate) fn decisions_frame(
    build: impl FnOnce(&mut DecisionBatchWriter<'_>) -> Result<(), hyperraft_wire::EncodeError>,
) -> Result<Vec<u8>, Status> {
    let mut frame = Vec::new();
    let mut writer = DecisionBatchWriter::new(&mut frame);
    build(&mut writer).map_err(|error| invalid_argument("request", error))?;
    writer.finish();
    Ok(frame)
}

fn only_result(response: hyperraft_raft::BatchResponse) -> Result<DecisionResult, Status> {
    match response {
        hyperraft_raft::BatchResponse::Decisions(mut results) if results.len() == 1 => Ok(results.remove(0)),
        other => Err(unexpected(format!("{other:?} for one decision command"))),
    }
}

/// The status of a refused decision command: NOT_FOUND for an unknown
/// proposal, INVALID_ARGUMENT for a bad key, FAILED_PRECONDITION for the
/// rest (the state allows no such vote now). Each names the reason.
fn refused(code: DecisionErrorCode, message: String) -> Status {
    match code {
        DecisionErrorCode::NotFound => Status::not_found(message),
        DecisionErrorCode::BadPublicKey => invalid_argument("public_key", message),
        DecisionErrorCode::ProposalsFull | DecisionErrorCode::KeysFull => Status::resource_exhausted(message),
        _ => Status::failed_precondition(message),
    }
}

fn criticality_from_proto(value: i32) -> Result<Option<Criticality>, Status> {
    match proto::Criticality::try_from(value) {
        Ok(proto::Criticality::Unspecified) => Ok(None),
        Ok(proto::Criticality::Low) => Ok(Some(Criticality::Low)),
        Ok(proto::Criticality::Medium) => Ok(Some(Criticality::Medium)),
        Ok(proto::Criticality::High) => Ok(Some(Criticality::High)),
        Ok(proto::Criticality::Critical) => Ok(Some(Criticality::Critical)),
        Err(_) => Err(invalid_argument("criticality", format!("{value} names no criticality"))),
    }
}

fn criticality_to_proto(criticality: Criticality) -> i32 {
    let level = match criticality {
        Criticality::Low => proto::Criticality::Low,
        Criticality::Medium => proto::Criticality::Medium,
        Criticality::High => proto::Criticality::High,
        Criticality::Critical => proto::Criticality::Critical,
    };
    level as i32
}

fn choice_from_proto(value: i32) -> Result<Choice, Status> {
    match proto::VoteChoice::try_from(value) {
        Ok(proto::VoteChoice::Approve) => Ok(Choice::Approve),
        Ok(proto::VoteChoice::Reject) => Ok(Choice::Reject),
        Ok(proto::VoteChoice::Abstain) => Ok(Choice::Abstain),
        _ => Err(invalid_argument("choice", "must be APPROVE, REJECT or ABSTAIN")),
    }
}

fn choice_to_proto(choice: Option<Choice>) -> i32 {
    let choice = match choice {
        None => proto::VoteChoice::Unspecified,
        Some(Choice::Approve) => proto::VoteChoice::Approve,
        Some(Choice::Reject) => proto::VoteChoice::Reject,
        Some(Choice::Abstain) => proto::VoteChoice::Abstain,
    };
    choice as i32
}

fn outcome_to_proto(outcome: Outcome) -> i32 {
    let outcome = match outcome {
        Outcome::Open => proto::ProposalOutcome::Open,
        Outcome::Approved => proto::ProposalOutcome::Approved,
        Outcome::Rejected => proto::ProposalOutcome::Rejected,
        Outcome::Expired => proto::ProposalOutcome::Expired,
    };
    outcome as i32
}

fn threshold_to_proto(threshold: Threshold) -> Option<proto::Threshold> {
    Some(proto::Threshold {
        numerator: u32::from(threshold.numerator),
        denominator: u32::from(threshold.denominator),
        strict: threshold.strict,
    })
}

fn state_message(proposal: &Proposal, node_id: u64) -> proto::ProposalState {
    proto::ProposalState {
        proposal_id: proposal.id,
        action: String::from_utf8_lossy(&proposal.action).into_owned(),
        description: String::from_utf8_lossy(&proposal.description).into_owned(),
        payload: proposal.payload.clone().into(),
        criticality: criticality_to_proto(proposal.criticality),
        threshold: threshold_to_proto(proposal.threshold),
        signed: proposal.signed,
        required: proposal.required() as u32,
        approvals: proposal.approvals,
        rejections: proposal.rejections,
        abstentions: proposal.abstentions,
        outstanding: proposal.outstanding() as u32,
        outcome: outcome_to_proto(proposal.outcome),
        proposed_unix_ns: proposal.proposed_ns,
        deadline_unix_ns: proposal.deadline_ns,
        decided_unix_ns: proposal.decided_ns,
        ballots: proposal
            .electorate
            .iter()
            .zip(&proposal.ballots)
            .map(|(voter, ballot)| proto::Ballot { voter_id: *voter, choice: choice_to_proto(*ballot) })
            .collect(),
        node_id,
    }
}

fn check_len(field: &str, len: usize, min: usize, max: usize) -> Result<(), Status> {
    if len < min || len > max {
        return Err(invalid_argument(field, format!("{len} bytes is outside {min}..={max}")));
    }
    Ok(())
}

impl DecisionsService {
    /// The electorate a `Propose` commits: the listed ids, or the live
    /// agents the selector names now. A repeat of a kept idempotency key
    /// with a selector keeps the electorate the first request resolved (the
    /// agents may have changed since); the state machine still compares
    /// the other fields.
    async fn electorate(&self, request: &proto::ProposeRequest) -> Result<Vec<u64>, Status> {
        let Some(selector) = &request.electorate_agents else {
            return electorate::listed(&request.electorate);
        };
        if !request.electorate.is_empty() {
            return Err(invalid_argument("electorate", "set either electorate or electorate_agents, not both"));
        }
        let selector = electorate::selector(selector)?;
        // The barrier makes the read below see every registration and
        // lease change acknowledged before this request arrived.
        self.api.linearizable().await?;
        let now_ns = crate::lease::now_ns();
        self.api.node.state().read(|state| {
            match state.decisions().proposal_by_key(request.idempotency_key.as_bytes()) {
                Some(kept) => Ok(kept.electorate.clone()),
                None => selector.resolve(state, now_ns),
            }
        })
    }

    fn proposal_state(&self, proposal_id: u64) -> Result<proto::ProposalState, Status> {
        let node_id = self.api.node_id();
        self.api
            .node
            .state()
            .read(|state| state.decisions().proposal(proposal_id).map(|proposal| state_message(proposal, node_id)))
            .ok_or_else(|| Status::not_found(format!("proposal {proposal_id} not found")))
    }
}

#[tonic::async_trait]
impl Decisions for DecisionsService {
    type WatchProposalStream = ReceiverStream<Result<proto::ProposalState, Status>>;

    async fn propose(
        &self,
        request: Request<proto::ProposeRequest>,
    ) -> Result<Response<proto::ProposeResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(request.encoded_len())?;
        check_len("action", request.action.len(), 1, ACTION_BYTES_MAX)?;
        check_len("description", request.description.len(), 0, DESCRIPTION_BYTES_MAX)?;
        check_len("payload", request.payload.len(), 0, PAYLOAD_BYTES_MAX)?;
        check_len("idempotency_key", request.idempotency_key.len(), 0, IDEMPOTENCY_KEY_BYTES_MAX)?;
        let electorate = self.electorate(&request).await?;
        let policy = &self.api.config.decisions;
        let deadline = match request.deadline_ms {
            0 => policy.default_deadline,
            ms => std::time::Duration::from_millis(ms),
        };
        if deadline > policy.deadline_max {
            let max = policy.deadline_max.as_millis();
            return Err(invalid_argument(
                "deadline_ms",
                format!("{} exceeds the maximum of {max}", request.deadline_ms),
            ));
        }
        let criticality =
            criticality_from_proto(request.criticality)?.unwrap_or_else(|| policy.criticality_of(&request.action));
        let threshold = policy.threshold(criticality);
        let signed = DecisionPolicy::signed(criticality);
        let deadline_ns = crate::lease::now_ns().saturating_add(deadline.as_nanos() as u64);
        let draft = Draft {
            idempotency_key: request.idempotency_key.as_bytes(),
            action: request.action.as_bytes(),
            description: request.description.as_bytes(),
            payload: &request.payload,
            criticality,
            threshold,
            signed,
            deadline_ns,
            electorate: &electorate,
        };
        let frame = decisions_frame(|writer| writer.propose(&draft))?;
        let (proposal_id, existed) = match only_result(self.api.write(&frame).await?)? {
            DecisionResult::Proposed { proposal_id } => (proposal_id, false),
            DecisionResult::Exists { proposal_id } => (proposal_id, true),
            DecisionResult::ExistsWithDifferentFields { proposal_id } => {
                return Err(Status::already_exists(format!(
                    "idempotency key {:?} names proposal {proposal_id}, which has other fields",
                    request.idempotency_key
                )))
            }
            DecisionResult::Error { code, message } => return Err(refused(code, message)),
            other => return Err(unexpected(format!("{other:?} for a proposal"))),
        };
        // The kept proposal's own policy: a repeated request may have met
        // another leader with other rules.
        let state = self.proposal_state(proposal_id)?;
        Ok(Response::new(proto::ProposeResponse {
            proposal_id,
            criticality: state.criticality,
            threshold: state.threshold,
            signed: state.signed,
            required: state.required,
            existed,
            deadline_unix_ns: state.deadline_unix_ns,
            node_id: self.api.node_id(),
            electorate: state.ballots.iter().map(|ballot| ballot.voter_id).collect(),
        }))
    }

    async fn vote(&self, request: Request<proto::VoteRequest>) -> Result<Response<proto::VoteResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(request.encoded_len())?;
        if request.proposal_id == 0 {
            return Err(invalid_argument("proposal_id", "0 names no proposal"));
        }
        if request.voter_id == 0 {
            return Err(invalid_argument("voter_id", "0 names no voter"));
        }
        let choice = choice_from_proto(request.choice)?;
        let signature: Option<&[u8; SIGNATURE_BYTES]> = match request.signature.len() {
            0 => None,
            SIGNATURE_BYTES => Some(request.signature[..].try_into().expect("64 bytes")),
            other => return Err(invalid_argument("signature", format!("{other} bytes; an ed25519 signature is 64"))),
        };
        let view = VoteView { proposal_id: request.proposal_id, voter_id: request.voter_id, choice, signature };
        let frame = decisions_frame(|writer| writer.vote(&view))?;
        match only_result(self.api.write(&frame).await?)? {
            DecisionResult::Voted { outcome, .. } => {
                let outcome = match outcome {
                    DecisionOutcome::Open => Outcome::Open,
                    DecisionOutcome::Approved => Outcome::Approved,
                    DecisionOutcome::Rejected => Outcome::Rejected,
                    DecisionOutcome::Expired => Outcome::Expired,
                };
                Ok(Response::new(proto::VoteResponse {
                    outcome: outcome_to_proto(outcome),
                    node_id: self.api.node_id(),
                }))
            }
            DecisionResult::Error { code, message } => Err(refused(code, message)),
            other => Err(unexpected(format!("{other:?} for a vote"))),
        }
    }

    async fn get_proposal(
        &self,
        request: Request<proto::GetProposalRequest>,
    ) -> Result<Response<proto::ProposalState>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(request.encoded_len())?;
        if !request.serializable {
            self.api.linearizable().await?;
        }
        self.proposal_state(request.proposal_id).map(Response::new)
    }

    async fn watch_proposal(
        &self,
        request: Request<proto::GetProposalRequest>,
    ) -> Result<Response<Self::WatchProposalStream>, Status> {
        let request = request.into_inner();
        let watch_permit = self.api.admit_watch()?;
        {
            let _permit = self.api.admit(request.encoded_len())?;
            if !request.serializable {
                self.api.linearizable().await?;
            }
        }
        let first = self.proposal_state(request.proposal_id)?;
        let (sender, receiver) = mpsc::channel(WATCH_BUFFERED);
        let service = DecisionsService { api: self.api.clone() };
        let mut shutdown = self.api.shutdown.clone();
        let mut applied = self.api.node.raft().metrics();
        tokio::spawn(async move {
            let _watch_permit = watch_permit;
            let mut last = first;
            loop {
                let decided = last.outcome != proto::ProposalOutcome::Open as i32;
                if sender.send(Ok(last.clone())).await.is_err() || decided {
                    return;
                }
                // Wait for the applied state to move, then look again.
                loop {
                    let stopped = tokio::select! {
                        _ = shutdown.wait_for(|stopped| *stopped) => Some("the node is shutting down"),
                        changed = applied.changed() => changed.is_err().then_some("the node stopped"),
                    };
                    if let Some(reason) = stopped {
                        let _ = sender.send(Err(Status::unavailable(reason))).await;
                        return;
                    }
                    match service.proposal_state(last.proposal_id) {
                        Ok(state) if same_tally(&state, &last) => continue,
                        Ok(state) => {
                            last = state;
                            break;
                        }
                        Err(status) => {
                            let _ = sender.send(Err(status)).await;
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn register_voter_key(
        &self,
        request: Request<proto::RegisterVoterKeyRequest>,
    ) -> Result<Response<proto::RegisterVoterKeyResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(request.encoded_len())?;
        if request.voter_id == 0 {
            return Err(invalid_argument("voter_id", "0 names no voter"));
        }
        let public_key: &[u8; PUBLIC_KEY_BYTES] = request.public_key[..].try_into().map_err(|_| {
            invalid_argument("public_key", format!("{} bytes; an ed25519 public key is 32", request.public_key.len()))
        })?;
        let view = RegisterKeyView { voter_id: request.voter_id, public_key };
        let frame = decisions_frame(|writer| writer.register_key(&view))?;
        match only_result(self.api.write(&frame).await?)? {
            DecisionResult::KeyRegistered { .. } => {
                Ok(Response::new(proto::RegisterVoterKeyResponse { node_id: self.api.node_id() }))
            }
            DecisionResult::Error { code, message } => Err(refused(code, message)),
            other => Err(unexpected(format!("{other:?} for a key registration"))),
        }
    }
}

fn same_tally(now: &proto::ProposalState, before: &proto::ProposalState) -> bool {
    (now.approvals, now.rejections, now.abstentions, now.outcome)
        == (before.approvals, before.rejections, before.abstentions, before.outcome)
}

/// Proposes an `Expire` when some open proposal's deadline has passed by
/// this node's clock; called by the leader's expiry task.
pub(crate) async fn expire_due(api: &Api) {
    let due = api.node.state().read(|state| state.decisions().has_expired(crate::lease::now_ns()));
    if !due {
        return;
    }
    let frame = match decisions_frame(|writer| writer.expire()) {
        Ok(frame) => frame,
        Err(status) => return tracing::warn!(%status, "cannot encode proposal expiry"),
    };
    if let Err(status) = api.write(&frame).await {
        tracing::debug!(%status, "proposing proposal expiry failed; the next round retries");
    }
}
