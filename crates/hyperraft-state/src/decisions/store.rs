//! [`DecisionStore`]: the proposals, the voters' keys, and the commands that
//! change them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use ed25519_dalek::{Signature, VerifyingKey};
use hyperraft_wire::decisions::{vote_message, PUBLIC_KEY_BYTES};
use hyperraft_wire::{Choice, DecisionCommand, DecisionCommands, ProposeView, RegisterKeyView, VoteView};

use super::proposal::{Outcome, Proposal};
use super::{DecisionConfig, DecisionError, DecisionResponse};

/// All kept proposals, the indexes over them and the voters' keys.
#[derive(Clone, Debug)]
pub struct DecisionStore {
    pub(super) config: DecisionConfig,
    /// The id the next proposal gets.
    pub(super) next_id: u64,
    /// Every kept proposal by id; ids grow, so this is oldest first.
    pub(super) proposals: BTreeMap<u64, Proposal>,
    /// Open proposals with a deadline: `(deadline_ns, id)`.
    pub(super) deadlines: BTreeSet<(u64, u64)>,
    /// Number of open proposals.
    pub(super) open: usize,
    /// Ids of decided proposals in the order they were decided, oldest first.
    pub(super) decided: VecDeque<u64>,
    /// Non-empty idempotency keys of kept proposals.
    pub(super) keys: HashMap<Vec<u8>, u64>,
    /// Registered public keys by voter, parsed once.
    pub(super) voters: BTreeMap<u64, VerifyingKey>,
}

impl PartialEq for DecisionStore {
    fn eq(&self, other: &Self) -> bool {
        let keys =
            |store: &DecisionStore| store.voters.iter().map(|(id, key)| (*id, key.to_bytes())).collect::<Vec<_>>();
        self.config == other.config
            && self.next_id == other.next_id
            && self.proposals == other.proposals
            && self.deadlines == other.deadlines
            && self.open == other.open
            && self.decided == other.decided
            && self.keys == other.keys
            && keys(self) == keys(other)
    }
}

impl Eq for DecisionStore {}

impl DecisionStore {
    pub fn new(config: DecisionConfig) -> DecisionStore {
        DecisionStore {
            config,
            next_id: 1,
            proposals: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            open: 0,
            decided: VecDeque::new(),
            keys: HashMap::new(),
            voters: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &DecisionConfig {
        &self.config
    }

    /// A kept proposal: its fields, votes and outcome.
    pub fn proposal(&self, proposal_id: u64) -> Option<&Proposal> {
        self.proposals.get(&proposal_id)
    }

    /// The kept proposal a non-empty idempotency key names.
    pub fn proposal_by_key(&self, idempotency_key: &[u8]) -> Option<&Proposal> {
        if idempotency_key.is_empty() {
            return None;
        }
        self.keys.get(idempotency_key).and_then(|proposal_id| self.proposals.get(proposal_id))
    }

    /// Number of kept proposals, open and decided.
    pub fn len(&self) -> usize {
        self.proposals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.proposals.is_empty()
    }

    /// Number of open proposals.
    pub fn open(&self) -> usize {
        self.open
    }

    /// The voter's registered public key.
    pub fn public_key(&self, voter_id: u64) -> Option<[u8; PUBLIC_KEY_BYTES]> {
        self.voters.get(&voter_id).map(VerifyingKey::to_bytes)
    }

    /// Whether some open proposal's deadline is at or before `now_ns`.
    pub fn has_expired(&self, now_ns: u64) -> bool {
        self.deadlines.first().is_some_and(|(deadline, _)| *deadline <= now_ns)
    }

    /// Applies a batch in order at batch timestamp `now_ns`, one response
    /// per command.
    pub fn apply_batch(&mut self, commands: &DecisionCommands<'_>, now_ns: u64, out: &mut Vec<DecisionResponse>) {
        out.reserve(commands.len());
        for command in commands.iter() {
            out.push(self.apply(&command, now_ns));
        }
    }

    /// Applies one command at batch timestamp `now_ns`.
    pub fn apply(&mut self, command: &DecisionCommand<'_>, now_ns: u64) -> DecisionResponse {
        let result = match command {
            DecisionCommand::Propose(view) => self.propose(view, now_ns),
            DecisionCommand::Vote(view) => self.vote(view, now_ns),
            DecisionCommand::RegisterKey(view) => self.register_key(view),
            DecisionCommand::Expire => Ok(self.expire(now_ns)),
        };
        result.unwrap_or_else(DecisionResponse::Refused)
    }

    fn propose(&mut self, view: &ProposeView<'_>, now_ns: u64) -> Result<DecisionResponse, DecisionError> {
        if let Some(&proposal_id) = self.keys.get(view.idempotency_key) {
            let same = same_fields(&self.proposals[&proposal_id], view);
            return Ok(if same {
                DecisionResponse::Exists { proposal_id }
            } else {
                DecisionResponse::ExistsWithDifferentFields { proposal_id }
            });
        }
        if self.open >= self.config.proposals_max {
            return Err(DecisionError::ProposalsFull { max: self.config.proposals_max });
        }
        let proposal_id = self.next_id;
        self.next_id += 1;
        let voters = view.electorate.len();
        let proposal = Proposal {
            id: proposal_id,
            idempotency_key: view.idempotency_key.to_vec(),
            action: view.action.to_vec(),
            description: view.description.to_vec(),
            payload: view.payload.to_vec(),
            criticality: view.criticality,
            threshold: view.threshold,
            signed: view.signed,
            deadline_ns: view.deadline_ns,
            proposed_ns: now_ns,
            electorate: view.electorate.iter().collect(),
            ballots: vec![None; voters],
            approvals: 0,
            rejections: 0,
            abstentions: 0,
            outcome: Outcome::Open,
            decided_ns: 0,
        };
        if !proposal.idempotency_key.is_empty() {
            self.keys.insert(proposal.idempotency_key.clone(), proposal_id);
        }
        if proposal.deadline_ns != 0 {
            self.deadlines.insert((proposal.deadline_ns, proposal_id));
        }
        self.proposals.insert(proposal_id, proposal);
        self.open += 1;
        Ok(DecisionResponse::Proposed { proposal_id })
    }

    fn vote(&mut self, view: &VoteView<'_>, now_ns: u64) -> Result<DecisionResponse, DecisionError> {
        let (proposal_id, voter_id) = (view.proposal_id, view.voter_id);
        let proposal = self.proposals.get(&proposal_id).ok_or(DecisionError::NotFound { proposal_id })?;
        if !proposal.outcome.is_open() {
            return Err(DecisionError::Decided { proposal_id, outcome: proposal.outcome });
        }
        if proposal.deadline_ns != 0 && now_ns >= proposal.deadline_ns {
            return Err(DecisionError::DeadlinePassed { proposal_id });
        }
        let position = proposal
            .electorate
            .binary_search(&voter_id)
            .map_err(|_| DecisionError::NotInElectorate { proposal_id, voter_id })?;
        match view.signature {
            None if proposal.signed => return Err(DecisionError::SignatureRequired { proposal_id }),
            None => {}
            Some(signature) => {
                let key = self.voters.get(&voter_id).ok_or(DecisionError::NoPublicKey { voter_id })?;
                let message = vote_message(proposal_id, view.choice, voter_id);
                key.verify_strict(&message, &Signature::from_bytes(signature))
                    .map_err(|_| DecisionError::BadSignature { proposal_id, voter_id })?;
            }
        }
        if let Some(first) = proposal.ballots[position] {
            return Err(DecisionError::AlreadyVoted { proposal_id, voter_id, first });
        }
        let proposal = self.proposals.get_mut(&proposal_id).expect("found above");
        proposal.ballots[position] = Some(view.choice);
        match view.choice {
            Choice::Approve => proposal.approvals += 1,
            Choice::Reject => proposal.rejections += 1,
            Choice::Abstain => proposal.abstentions += 1,
        }
        let outcome = match proposal.certain_outcome() {
            Some(outcome) => {
                self.decide(proposal_id, outcome, now_ns);
                outcome
            }
            None => Outcome::Open,
        };
        Ok(DecisionResponse::Voted { proposal_id, outcome })
    }

    fn register_key(&mut self, view: &RegisterKeyView<'_>) -> Result<DecisionResponse, DecisionError> {
        let voter_id = view.voter_id;
        let key = VerifyingKey::from_bytes(view.public_key).map_err(|_| DecisionError::BadPublicKey { voter_id })?;
        if key.is_weak() {
            return Err(DecisionError::BadPublicKey { voter_id });
        }
        if !self.voters.contains_key(&voter_id) && self.voters.len() >= self.config.keys_max {
            return Err(DecisionError::KeysFull { max: self.config.keys_max });
        }
        self.voters.insert(voter_id, key);
        Ok(DecisionResponse::KeyRegistered { voter_id })
    }

    fn expire(&mut self, now_ns: u64) -> DecisionResponse {
        let mut count = 0;
        while let Some(&(deadline, proposal_id)) = self.deadlines.first() {
            if deadline > now_ns {
                break;
            }
            self.decide(proposal_id, Outcome::Expired, now_ns);
            count += 1;
        }
        DecisionResponse::Expired { count }
    }

    /// Closes an open proposal and evicts the oldest decided ones beyond
    /// the bound.
    fn decide(&mut self, proposal_id: u64, outcome: Outcome, now_ns: u64) {
        let proposal = self.proposals.get_mut(&proposal_id).expect("an open proposal");
        debug_assert!(proposal.outcome.is_open());
        proposal.outcome = outcome;
        proposal.decided_ns = now_ns;
        if proposal.deadline_ns != 0 {
            self.deadlines.remove(&(proposal.deadline_ns, proposal_id));
        }
        self.open -= 1;
        self.decided.push_back(proposal_id);
        while self.decided.len() > self.config.decided_max {
            let evicted = self.decided.pop_front().expect("over the bound");
            let proposal = self.proposals.remove(&evicted).expect("a decided proposal is kept");
            if !proposal.idempotency_key.is_empty() {
                self.keys.remove(&proposal.idempotency_key);
            }
        }
    }
}

/// Whether a repeated proposal is the kept one. The deadline is left out:
/// a retry computes it again from its own clock, so it differs slightly.
fn same_fields(proposal: &Proposal, view: &ProposeView<'_>) -> bool {
    proposal.action == view.action
        && proposal.description == view.description
        && proposal.payload == view.payload
        && proposal.criticality == view.criticality
        && proposal.threshold == view.threshold
        && proposal.signed == view.signed
        && proposal.electorate.iter().copied().eq(view.electorate.iter())
}
