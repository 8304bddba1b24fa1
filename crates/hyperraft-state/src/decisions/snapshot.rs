//! The decision store's own snapshot bytes, written inside the state
//! snapshot.
//!
//! Layout (little-endian): `next_id u64 · proposals u64 · decided u64 ·
//! voters u64 · decided × proposal id (decision order) · voters × (voter id
//! u64 · public key [32]) · proposals × proposal (id order)`. A proposal is
//! its words (id, deadline, proposed and decided timestamps), its policy
//! bytes (criticality, threshold numerator and denominator, flags,
//! outcome), its byte strings (each `len u32 · bytes`), its electorate
//! (`len u32 · ids`) and one ballot byte per voter (0 for none, else the
//! choice). Decoding trusts nothing: every length is bounded before it is
//! read, every field is range-checked, tallies are recounted from the
//! ballots, and the indexes are rebuilt and checked against each other.

use std::collections::BTreeSet;

use ed25519_dalek::VerifyingKey;
use hyperraft_wire::decisions::{
    ACTION_BYTES_MAX, DESCRIPTION_BYTES_MAX, ELECTORATE_MAX, IDEMPOTENCY_KEY_BYTES_MAX, PAYLOAD_BYTES_MAX,
};
use hyperraft_wire::{Choice, Criticality, Threshold};

use super::proposal::{Outcome, Proposal};
use super::{DecisionConfig, DecisionStore};
use crate::snapshot::Section;

const FLAG_SIGNED: u8 = 1 << 0;
const FLAG_STRICT: u8 = 1 << 1;

impl DecisionStore {
    /// Appends the store's snapshot bytes to `out`.
    pub fn encode_snapshot(&self, out: &mut Vec<u8>) {
        let words = [self.next_id, self.proposals.len() as u64, self.decided.len() as u64, self.voters.len() as u64];
        for word in words {
            out.extend_from_slice(&word.to_le_bytes());
        }
        for id in &self.decided {
            out.extend_from_slice(&id.to_le_bytes());
        }
        for (voter, key) in &self.voters {
            out.extend_from_slice(&voter.to_le_bytes());
            out.extend_from_slice(key.as_bytes());
        }
        for proposal in self.proposals.values() {
            encode_proposal(proposal, out);
        }
    }

    /// Rebuilds a store from [`Self::encode_snapshot`] bytes.
    pub fn decode_snapshot(bytes: &[u8], config: DecisionConfig) -> Result<DecisionStore, String> {
        let mut input = Section::new(bytes, "decision");
        let (next_id, proposals_len, decided_len, voters_len) =
            (input.u64()?, input.u64()?, input.u64()?, input.u64()?);
        let proposals_max = (config.proposals_max as u64).saturating_add(config.decided_max as u64);
        if proposals_len > proposals_max || decided_len > config.decided_max as u64 || decided_len > proposals_len {
            return Err(format!("{proposals_len} proposals with {decided_len} decided exceed the configured bounds"));
        }
        if voters_len > config.keys_max as u64 {
            return Err(format!("{voters_len} voter keys exceed the limit of {}", config.keys_max));
        }
        let mut store = DecisionStore::new(config);
        store.next_id = next_id;
        for _ in 0..decided_len {
            store.decided.push_back(input.u64()?);
        }
        for _ in 0..voters_len {
            let voter = input.u64()?;
            let key = VerifyingKey::from_bytes(input.take(32)?.try_into().expect("32 bytes"))
                .map_err(|_| format!("voter {voter} has an invalid public key"))?;
            if store.voters.last_key_value().is_some_and(|(last, _)| *last >= voter) || voter == 0 {
                return Err(format!("voter {voter} is zero or out of order"));
            }
            store.voters.insert(voter, key);
        }
        for _ in 0..proposals_len {
            let proposal = decode_proposal(&mut input)?;
            store.insert_restored(proposal)?;
        }
        if !input.bytes.is_empty() {
            return Err(format!("{} bytes after the last proposal", input.bytes.len()));
        }
        store.check_decided_order()?;
        Ok(store)
    }

    fn insert_restored(&mut self, proposal: Proposal) -> Result<(), String> {
        let id = proposal.id;
        let last = self.proposals.last_key_value().map_or(0, |(last, _)| *last);
        if id <= last || id >= self.next_id {
            return Err(format!("proposal id {id} out of order or not below next id {}", self.next_id));
        }
        if !proposal.idempotency_key.is_empty() && self.keys.insert(proposal.idempotency_key.clone(), id).is_some() {
            return Err(format!("proposal {id} repeats an idempotency key"));
        }
        if proposal.outcome.is_open() {
            if proposal.certain_outcome().is_some() {
                return Err(format!("open proposal {id} is already certain"));
            }
            if proposal.deadline_ns != 0 {
                self.deadlines.insert((proposal.deadline_ns, id));
            }
            self.open += 1;
            if self.open > self.config.proposals_max {
                return Err(format!("more than {} open proposals", self.config.proposals_max));
            }
        }
        self.proposals.insert(id, proposal);
        Ok(())
    }

    fn check_decided_order(&self) -> Result<(), String> {
        let unique: BTreeSet<u64> = self.decided.iter().copied().collect();
        let decided = self.proposals.values().filter(|proposal| !proposal.outcome.is_open()).count();
        let all_decided =
            unique.iter().all(|id| self.proposals.get(id).is_some_and(|proposal| !proposal.outcome.is_open()));
        if unique.len() != self.decided.len() || unique.len() != decided || !all_decided {
            return Err("the decision order does not list exactly the decided proposals".to_string());
        }
        Ok(())
    }
}

fn put_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn encode_proposal(proposal: &Proposal, out: &mut Vec<u8>) {
    for word in [proposal.id, proposal.deadline_ns, proposal.proposed_ns, proposal.decided_ns] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    let mut flags = 0;
    if proposal.signed {
        flags |= FLAG_SIGNED;
    }
    if proposal.threshold.strict {
        flags |= FLAG_STRICT;
    }
    let outcome = match proposal.outcome {
        Outcome::Open => 0,
        Outcome::Approved => 1,
        Outcome::Rejected => 2,
        Outcome::Expired => 3,
    };
    out.extend_from_slice(&[
        proposal.criticality as u8,
        proposal.threshold.numerator,
        proposal.threshold.denominator,
        flags,
        outcome,
    ]);
    for bytes in [&proposal.idempotency_key, &proposal.action, &proposal.description, &proposal.payload] {
        put_bytes(bytes, out);
    }
    out.extend_from_slice(&(proposal.electorate.len() as u32).to_le_bytes());
    for voter in &proposal.electorate {
        out.extend_from_slice(&voter.to_le_bytes());
    }
    out.extend(proposal.ballots.iter().map(|ballot| ballot.map_or(0, |choice| choice as u8)));
}

fn decode_proposal(input: &mut Section<'_>) -> Result<Proposal, String> {
    let (id, deadline_ns, proposed_ns, decided_ns) = (input.u64()?, input.u64()?, input.u64()?, input.u64()?);
    let fixed = input.take(5)?;
    let criticality = Criticality::from_u8(fixed[0]).ok_or(format!("proposal {id}: unknown criticality"))?;
    let threshold = Threshold { numerator: fixed[1], denominator: fixed[2], strict: fixed[3] & FLAG_STRICT != 0 };
    let valid_threshold = threshold.numerator >= 1
        && threshold.numerator <= threshold.denominator
        && !(threshold.strict && threshold.numerator == threshold.denominator);
    if fixed[3] & !(FLAG_SIGNED | FLAG_STRICT) != 0 || !valid_threshold {
        return Err(format!("proposal {id}: bad flags or threshold"));
    }
    let outcome = match fixed[4] {
        0 => Outcome::Open,
        1 => Outcome::Approved,
        2 => Outcome::Rejected,
        3 => Outcome::Expired,
        other => return Err(format!("proposal {id}: unknown outcome {other}")),
    };
    let idempotency_key = input.bytes(IDEMPOTENCY_KEY_BYTES_MAX)?;
    let action = input.bytes(ACTION_BYTES_MAX)?;
    let description = input.bytes(DESCRIPTION_BYTES_MAX)?;
    let payload = input.bytes(PAYLOAD_BYTES_MAX)?;
    let voters = input.u32()? as usize;
    if voters == 0 || voters > ELECTORATE_MAX {
        return Err(format!("proposal {id}: electorate of {voters}"));
    }
    let mut electorate = Vec::with_capacity(voters);
    for _ in 0..voters {
        let voter = input.u64()?;
        if electorate.last().is_some_and(|last| *last >= voter) || voter == 0 {
            return Err(format!("proposal {id}: electorate out of order"));
        }
        electorate.push(voter);
    }
    let mut proposal = Proposal {
        id,
        idempotency_key,
        action,
        description,
        payload,
        criticality,
        threshold,
        signed: fixed[3] & FLAG_SIGNED != 0,
        deadline_ns,
        proposed_ns,
        electorate,
        ballots: Vec::with_capacity(voters),
        approvals: 0,
        rejections: 0,
        abstentions: 0,
        outcome,
        decided_ns,
    };
    for &byte in input.take(voters)? {
        let ballot = match byte {
            0 => None,
            choice => Some(Choice::from_u8(choice).ok_or(format!("proposal {id}: unknown ballot {choice}"))?),
        };
        match ballot {
            Some(Choice::Approve) => proposal.approvals += 1,
            Some(Choice::Reject) => proposal.rejections += 1,
            Some(Choice::Abstain) => proposal.abstentions += 1,
            None => {}
        }
        proposal.ballots.push(ballot);
    }
    Ok(proposal)
}
