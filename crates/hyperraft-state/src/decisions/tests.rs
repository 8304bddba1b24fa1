use ed25519_dalek::{Signer, SigningKey};
use hyperraft_wire::decisions::{vote_message, SIGNATURE_BYTES};
use hyperraft_wire::{Body, Choice, Criticality, DecisionBatchWriter, Frame, Limits, Proposal as Draft, Threshold};
use proptest::prelude::*;

use super::*;

/// Applies the commands `build` writes as one frame at `now_ns`.
fn apply(
    store: &mut DecisionStore,
    now_ns: u64,
    build: impl FnOnce(&mut DecisionBatchWriter<'_>),
) -> Vec<DecisionResponse> {
    let mut bytes = Vec::new();
    let mut writer = DecisionBatchWriter::new(&mut bytes);
    build(&mut writer);
    writer.finish();
    let frame = Frame::decode(&bytes, &Limits::default()).expect("valid frame");
    let Body::Decisions(commands) = frame.body() else { panic!("not a decisions frame") };
    let mut out = Vec::new();
    store.apply_batch(&commands, now_ns, &mut out);
    out
}

fn draft(electorate: &[u64], threshold: Threshold, signed: bool) -> Draft<'_> {
    Draft {
        idempotency_key: b"",
        action: b"order_execute",
        description: b"",
        payload: b"buy 10",
        criticality: if signed { Criticality::Critical } else { Criticality::Low },
        threshold,
        signed,
        deadline_ns: 0,
        electorate,
    }
}

fn propose(store: &mut DecisionStore, draft: &Draft<'_>) -> u64 {
    match apply(store, 10, |writer| writer.propose(draft).unwrap()).as_slice() {
        [DecisionResponse::Proposed { proposal_id }] => *proposal_id,
        other => panic!("not proposed: {other:?}"),
    }
}

fn vote(
    store: &mut DecisionStore,
    proposal_id: u64,
    voter_id: u64,
    choice: Choice,
    signature: Option<&[u8; SIGNATURE_BYTES]>,
) -> DecisionResponse {
    let view = hyperraft_wire::VoteView { proposal_id, voter_id, choice, signature };
    apply(store, 20, |writer| writer.vote(&view).unwrap()).remove(0)
}

fn signer(voter: u64) -> SigningKey {
    let mut seed = [0; 32];
    seed[..8].copy_from_slice(&voter.to_le_bytes());
    seed[8] = 0x5a;
    SigningKey::from_bytes(&seed)
}

fn sign(key: &SigningKey, proposal_id: u64, choice: Choice, voter: u64) -> [u8; SIGNATURE_BYTES] {
    key.sign(&vote_message(proposal_id, choice, voter)).to_bytes()
}

fn register(store: &mut DecisionStore, voters: &[u64]) {
    for &voter in voters {
        let key = signer(voter).verifying_key().to_bytes();
        let view = hyperraft_wire::RegisterKeyView { voter_id: voter, public_key: &key };
        assert_eq!(
            apply(store, 5, |writer| writer.register_key(&view).unwrap()),
            [DecisionResponse::KeyRegistered { voter_id: voter }]
        );
    }
}

/// Every completion of the outstanding votes: `Some(outcome)` when they all
/// end the same way, `None` when the outcome still depends on them. An
/// exhaustive oracle, independent of the store's arithmetic.
fn oracle(voters: usize, required: usize, cast: &[Choice]) -> Option<Outcome> {
    let approvals = cast.iter().filter(|choice| **choice == Choice::Approve).count();
    let outstanding = voters - cast.len();
    let mut outcomes = std::collections::BTreeSet::new();
    for completion in 0..3usize.pow(outstanding as u32) {
        let (mut rest, mut more) = (completion, 0);
        for _ in 0..outstanding {
            more += usize::from(rest % 3 == 0);
            rest /= 3;
        }
        outcomes.insert(approvals + more >= required);
    }
    match outcomes.into_iter().collect::<Vec<_>>().as_slice() {
        [true] => Some(Outcome::Approved),
        [false] => Some(Outcome::Rejected),
        _ => None,
    }
}

fn arb_threshold() -> impl Strategy<Value = Threshold> {
    (1u8..=12, any::<u8>(), any::<bool>()).prop_map(|(denominator, numerator, strict)| {
        let numerator = numerator % denominator + 1;
        Threshold { numerator, denominator, strict: strict && numerator < denominator }
    })
}

fn arb_choice() -> impl Strategy<Value = Choice> {
    prop_oneof![Just(Choice::Approve), Just(Choice::Reject), Just(Choice::Abstain)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn early_termination_fires_exactly_when_the_outcome_is_certain(
        voters in 1usize..=7,
        threshold in arb_threshold(),
        order in Just(()).prop_perturb(|_, mut rng| { let mut order: Vec<u64> = (1..=7).collect(); for i in (1..order.len()).rev() { order.swap(i, (rng.next_u32() as usize) % (i + 1)); } order }),
        choices in proptest::collection::vec(arb_choice(), 7),
        votes_cast in 0usize..=7,
    ) {
        // Proves, for random electorates, thresholds and vote orders, that the
        // store decides at the first vote after which every completion of the
        // outstanding votes ends the same way, that its decision is that one,
        // and that it stays open while the outcome still depends on them.
        let electorate: Vec<u64> = (1..=voters as u64).collect();
        let mut store = DecisionStore::new(DecisionConfig::default());
        let id = propose(&mut store, &draft(&electorate, threshold, false));
        let required = threshold.required(voters);
        let order: Vec<u64> = order.into_iter().filter(|voter| *voter <= voters as u64).take(votes_cast.min(voters)).collect();
        let mut cast = Vec::new();
        for (voter, choice) in order.iter().zip(&choices) {
            let response = vote(&mut store, id, *voter, *choice, None);
            cast.push(*choice);
            let expected = oracle(voters, required, &cast).unwrap_or(Outcome::Open);
            prop_assert_eq!(response, DecisionResponse::Voted { proposal_id: id, outcome: expected });
            if expected != Outcome::Open {
                break;
            }
        }
        let final_outcome = store.proposal(id).unwrap().outcome;
        prop_assert_eq!(final_outcome, oracle(voters, required, &cast).unwrap_or(Outcome::Open));
        if final_outcome != Outcome::Open {
            // Every completion agrees, so the decision equals the one all votes give.
            let all: Vec<Choice> = cast.iter().copied().chain(std::iter::repeat_n(Choice::Approve, voters - cast.len())).collect();
            prop_assert_eq!(oracle(voters, required, &all), Some(final_outcome));
        }
    }

    #[test]
    fn a_faulty_minority_cannot_force_a_signed_two_thirds_approval(
        voters in 3usize..=12,
        faulty_share in 0usize..100,
        honest_approve in proptest::collection::vec(any::<bool>(), 12),
    ) {
        // Proves that under the signed 2/3 policy, f < n/3 faulty voters —
        // approving, forging honest voters' votes, replaying signatures from
        // another proposal and equivocating — cannot get a proposal approved
        // that fewer than 2n/3 − f honest voters approve.
        let faulty = (voters - 1) / 3 * faulty_share / 100;
        let electorate: Vec<u64> = (1..=voters as u64).collect();
        let mut store = DecisionStore::new(DecisionConfig::default());
        register(&mut store, &electorate);
        let decoy = propose(&mut store, &draft(&electorate, Threshold::TWO_THIRDS, true));
        let target = propose(&mut store, &draft(&electorate, Threshold::TWO_THIRDS, true));
        let honest: Vec<u64> = electorate[faulty..].to_vec();
        let forger = signer(1_000_000);
        for &voter in &honest {
            // Forged approvals and replays of a decoy signature for honest voters.
            let forged = sign(&forger, target, Choice::Approve, voter);
            prop_assert_eq!(vote(&mut store, target, voter, Choice::Approve, Some(&forged)), DecisionResponse::Refused(DecisionError::BadSignature { proposal_id: target, voter_id: voter }));
            let replayed = sign(&signer(voter), decoy, Choice::Approve, voter);
            prop_assert_eq!(vote(&mut store, target, voter, Choice::Approve, Some(&replayed)), DecisionResponse::Refused(DecisionError::BadSignature { proposal_id: target, voter_id: voter }));
        }
        for voter in 1..=faulty as u64 {
            let approve = sign(&signer(voter), target, Choice::Approve, voter);
            vote(&mut store, target, voter, Choice::Approve, Some(&approve));
            let again = sign(&signer(voter), target, Choice::Reject, voter);
            let equivocation = vote(&mut store, target, voter, Choice::Reject, Some(&again));
            let stood = matches!(equivocation, DecisionResponse::Refused(DecisionError::AlreadyVoted { first: Choice::Approve, .. }) | DecisionResponse::Refused(DecisionError::Decided { .. }));
            prop_assert!(stood, "{:?}", equivocation);
        }
        let mut honest_approvals = 0;
        for (&voter, &approve) in honest.iter().zip(&honest_approve) {
            let choice = if approve { Choice::Approve } else { Choice::Reject };
            honest_approvals += usize::from(approve);
            let signature = sign(&signer(voter), target, choice, voter);
            vote(&mut store, target, voter, choice, Some(&signature));
        }
        let approved = store.proposal(target).unwrap().outcome == Outcome::Approved;
        prop_assert_eq!(approved, faulty + honest_approvals >= Threshold::TWO_THIRDS.required(voters));
        if honest_approvals + faulty < Threshold::TWO_THIRDS.required(voters) {
            prop_assert!(!approved);
        }
    }
}

#[test]
fn hostile_votes_are_refused_and_change_nothing() {
    // Proves a forged signature, a replay of another proposal's vote, an
    // outsider, an unsigned vote where signatures are required, a voter with
    // no key, and equivocation are each refused with their own error, with
    // the store unchanged.
    let mut store = DecisionStore::new(DecisionConfig::default());
    register(&mut store, &[1, 2, 3]);
    let other = propose(&mut store, &draft(&[1, 2, 3, 4], Threshold::TWO_THIRDS, true));
    let id = propose(&mut store, &draft(&[1, 2, 3, 4], Threshold::TWO_THIRDS, true));
    let good = sign(&signer(1), id, Choice::Approve, 1);
    assert_eq!(
        vote(&mut store, id, 1, Choice::Approve, Some(&good)),
        DecisionResponse::Voted { proposal_id: id, outcome: Outcome::Open }
    );
    let before = store.clone();
    let cases: Vec<(u64, Choice, Option<[u8; SIGNATURE_BYTES]>, DecisionError)> = vec![
        (
            2,
            Choice::Approve,
            Some(sign(&signer(1), id, Choice::Approve, 2)),
            DecisionError::BadSignature { proposal_id: id, voter_id: 2 },
        ),
        (
            2,
            Choice::Approve,
            Some(sign(&signer(2), other, Choice::Approve, 2)),
            DecisionError::BadSignature { proposal_id: id, voter_id: 2 },
        ),
        (
            2,
            Choice::Reject,
            Some(sign(&signer(2), id, Choice::Approve, 2)),
            DecisionError::BadSignature { proposal_id: id, voter_id: 2 },
        ),
        (
            9,
            Choice::Approve,
            Some(sign(&signer(9), id, Choice::Approve, 9)),
            DecisionError::NotInElectorate { proposal_id: id, voter_id: 9 },
        ),
        (2, Choice::Approve, None, DecisionError::SignatureRequired { proposal_id: id }),
        (
            4,
            Choice::Approve,
            Some(sign(&signer(4), id, Choice::Approve, 4)),
            DecisionError::NoPublicKey { voter_id: 4 },
        ),
        (
            1,
            Choice::Reject,
            Some(sign(&signer(1), id, Choice::Reject, 1)),
            DecisionError::AlreadyVoted { proposal_id: id, voter_id: 1, first: Choice::Approve },
        ),
        (
            1,
            Choice::Approve,
            Some(good),
            DecisionError::AlreadyVoted { proposal_id: id, voter_id: 1, first: Choice::Approve },
        ),
    ];
    for (voter, choice, signature, error) in cases {
        assert_eq!(vote(&mut store, id, voter, choice, signature.as_ref()), DecisionResponse::Refused(error));
        assert_eq!(store, before);
    }
    assert_eq!(
        vote(&mut store, 99, 1, Choice::Approve, None),
        DecisionResponse::Refused(DecisionError::NotFound { proposal_id: 99 })
    );
    assert_eq!(store, before);
}

#[test]
fn a_decided_proposal_refuses_late_votes() {
    // Proves votes after the decision are refused with the outcome and change nothing.
    let mut store = DecisionStore::new(DecisionConfig::default());
    let id = propose(&mut store, &draft(&[1, 2, 3], Threshold::MAJORITY, false));
    vote(&mut store, id, 1, Choice::Approve, None);
    assert_eq!(
        vote(&mut store, id, 2, Choice::Approve, None),
        DecisionResponse::Voted { proposal_id: id, outcome: Outcome::Approved }
    );
    let before = store.clone();
    let late = vote(&mut store, id, 3, Choice::Reject, None);
    assert_eq!(late, DecisionResponse::Refused(DecisionError::Decided { proposal_id: id, outcome: Outcome::Approved }));
    assert_eq!(store, before);
    assert_eq!(store.proposal(id).unwrap().decided_ns, 20);
}

#[test]
fn deadlines_expire_undecided_proposals() {
    // Proves a vote at or after the deadline is refused, and the sweep closes
    // exactly the open proposals whose deadline has passed.
    let mut store = DecisionStore::new(DecisionConfig::default());
    let soon = propose(&mut store, &Draft { deadline_ns: 15, ..draft(&[1, 2, 3], Threshold::MAJORITY, false) });
    let later = propose(&mut store, &Draft { deadline_ns: 100, ..draft(&[1, 2, 3], Threshold::MAJORITY, false) });
    assert!(store.has_expired(15) && !store.has_expired(14));
    assert_eq!(
        vote(&mut store, soon, 1, Choice::Approve, None),
        DecisionResponse::Refused(DecisionError::DeadlinePassed { proposal_id: soon })
    );
    assert_eq!(apply(&mut store, 50, |writer| writer.expire().unwrap()), [DecisionResponse::Expired { count: 1 }]);
    assert_eq!(store.proposal(soon).unwrap().outcome, Outcome::Expired);
    assert_eq!(store.proposal(later).unwrap().outcome, Outcome::Open);
    assert_eq!(store.open(), 1);
    assert!(!store.has_expired(50));
}

#[test]
fn idempotency_keys_and_bounds() {
    // Proves a repeated idempotency key returns the kept proposal (equal or
    // not), the open-proposal and key bounds refuse with clear errors, and
    // decided proposals beyond the kept bound are evicted with their keys.
    let config = DecisionConfig { proposals_max: 2, decided_max: 1, keys_max: 1 };
    let mut store = DecisionStore::new(config);
    let first = propose(&mut store, &Draft { idempotency_key: b"a", ..draft(&[1], Threshold::MAJORITY, false) });
    let again = apply(&mut store, 11, |writer| {
        writer.propose(&Draft { idempotency_key: b"a", ..draft(&[1], Threshold::MAJORITY, false) }).unwrap()
    });
    assert_eq!(again, [DecisionResponse::Exists { proposal_id: first }]);
    let different = apply(&mut store, 11, |writer| {
        writer.propose(&Draft { idempotency_key: b"a", ..draft(&[1, 2], Threshold::MAJORITY, false) }).unwrap()
    });
    assert_eq!(different, [DecisionResponse::ExistsWithDifferentFields { proposal_id: first }]);
    let second = propose(&mut store, &draft(&[1], Threshold::MAJORITY, false));
    let full = apply(&mut store, 12, |writer| writer.propose(&draft(&[1], Threshold::MAJORITY, false)).unwrap());
    assert_eq!(full, [DecisionResponse::Refused(DecisionError::ProposalsFull { max: 2 })]);
    vote(&mut store, first, 1, Choice::Approve, None);
    vote(&mut store, second, 1, Choice::Reject, None);
    assert!(store.proposal(first).is_none(), "the oldest decided proposal is evicted");
    assert_eq!(store.proposal(second).unwrap().outcome, Outcome::Rejected);
    let reused = propose(&mut store, &Draft { idempotency_key: b"a", ..draft(&[1], Threshold::MAJORITY, false) });
    assert!(reused > second);
    register(&mut store, &[7]);
    let key = signer(8).verifying_key().to_bytes();
    let view = hyperraft_wire::RegisterKeyView { voter_id: 8, public_key: &key };
    assert_eq!(
        apply(&mut store, 13, |writer| writer.register_key(&view).unwrap()),
        [DecisionResponse::Refused(DecisionError::KeysFull { max: 1 })]
    );
}

#[test]
fn invalid_public_keys_are_refused() {
    // Proves a key that is not a valid, non-weak ed25519 point is refused at registration.
    let mut store = DecisionStore::new(DecisionConfig::default());
    let mut identity = [0; 32];
    identity[0] = 1; // the identity point: small order, so weak
    let view = hyperraft_wire::RegisterKeyView { voter_id: 3, public_key: &identity };
    assert_eq!(
        apply(&mut store, 1, |writer| writer.register_key(&view).unwrap()),
        [DecisionResponse::Refused(DecisionError::BadPublicKey { voter_id: 3 })]
    );
    assert_eq!(store.public_key(3), None);
}

#[test]
fn snapshots_round_trip_and_refuse_damage() {
    // Proves a store with open, decided and expired proposals and keys
    // survives encode/decode unchanged, and truncated bytes are refused.
    let mut store = DecisionStore::new(DecisionConfig::default());
    register(&mut store, &[1, 2]);
    let open = propose(
        &mut store,
        &Draft { deadline_ns: 1_000, idempotency_key: b"k", ..draft(&[1, 2, 3], Threshold::TWO_THIRDS, true) },
    );
    let signature = sign(&signer(1), open, Choice::Approve, 1);
    vote(&mut store, open, 1, Choice::Approve, Some(&signature));
    let decided = propose(&mut store, &draft(&[5], Threshold::MAJORITY, false));
    vote(&mut store, decided, 5, Choice::Approve, None);
    propose(&mut store, &Draft { deadline_ns: 30, ..draft(&[5, 6], Threshold::MAJORITY, false) });
    apply(&mut store, 40, |writer| writer.expire().unwrap());
    let mut bytes = Vec::new();
    store.encode_snapshot(&mut bytes);
    let restored = DecisionStore::decode_snapshot(&bytes, DecisionConfig::default()).expect("decodes");
    assert_eq!(restored, store);
    for cut in [1, 9, bytes.len() / 2, bytes.len() - 1] {
        assert!(DecisionStore::decode_snapshot(&bytes[..cut], DecisionConfig::default()).is_err(), "cut at {cut}");
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(DecisionStore::decode_snapshot(&extra, DecisionConfig::default()).is_err());
}
