use proptest::prelude::*;

use super::*;
use crate::frame::{Body, DecodeError, Frame, Limits, HEADER_BYTES};

fn decode(frame: &[u8]) -> Vec<DecisionCommand<'_>> {
    match Frame::decode(frame, &Limits::default()).expect("valid frame").body() {
        Body::Decisions(commands) => commands.iter().collect(),
        other => panic!("wrong body {other:?}"),
    }
}

fn proposal<'a>(electorate: &'a [u64]) -> Proposal<'a> {
    Proposal {
        idempotency_key: b"key",
        action: b"order_execute",
        description: b"buy 10",
        payload: b"{}",
        criticality: Criticality::Critical,
        threshold: Threshold::TWO_THIRDS,
        signed: true,
        deadline_ns: 99,
        electorate,
    }
}

fn write(build: impl FnOnce(&mut DecisionBatchWriter<'_>)) -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = DecisionBatchWriter::new(&mut out);
    build(&mut writer);
    writer.finish();
    out
}

#[test]
fn every_command_round_trips() {
    // Proves each of the four commands decodes to the fields it was written from.
    let signature = [7; SIGNATURE_BYTES];
    let key = [3; PUBLIC_KEY_BYTES];
    let votes = [
        VoteView { proposal_id: 1, voter_id: 2, choice: Choice::Approve, signature: Some(&signature) },
        VoteView { proposal_id: 1, voter_id: 3, choice: Choice::Abstain, signature: None },
    ];
    let frame = write(|writer| {
        writer.propose(&proposal(&[2, 3, 9])).unwrap();
        votes.iter().for_each(|vote| writer.vote(vote).unwrap());
        writer.register_key(&RegisterKeyView { voter_id: 2, public_key: &key }).unwrap();
        writer.expire().unwrap();
    });
    let commands = decode(&frame);
    let DecisionCommand::Propose(view) = commands[0] else { panic!("not a proposal: {:?}", commands[0]) };
    assert_eq!(view.action, b"order_execute");
    assert_eq!(
        (view.criticality, view.threshold, view.signed, view.deadline_ns),
        (Criticality::Critical, Threshold::TWO_THIRDS, true, 99)
    );
    assert_eq!(view.electorate.iter().collect::<Vec<_>>(), [2, 3, 9]);
    assert_eq!(&commands[1..3], &votes.map(DecisionCommand::Vote));
    assert_eq!(commands[3], DecisionCommand::RegisterKey(RegisterKeyView { voter_id: 2, public_key: &key }));
    assert_eq!(commands[4], DecisionCommand::Expire);
}

#[test]
fn vote_has_the_documented_layout() {
    // Proves an unsigned Vote is encoded byte for byte as the module doc describes.
    let frame = write(|writer| {
        writer.vote(&VoteView { proposal_id: 5, voter_id: 6, choice: Choice::Reject, signature: None }).unwrap();
    });
    assert_eq!(frame.len(), HEADER_BYTES + 19);
    assert_eq!(&frame[HEADER_BYTES..HEADER_BYTES + 3], &[2, 0, 2]);
    assert_eq!(&frame[HEADER_BYTES + 3..HEADER_BYTES + 11], &5u64.to_le_bytes());
    assert_eq!(&frame[HEADER_BYTES + 11..], &6u64.to_le_bytes());
}

#[test]
fn writer_refuses_out_of_bounds_fields_and_stays_usable() {
    // Proves every bound is checked before writing: each refusal names the
    // command and leaves the frame decodable with the commands already in it.
    let long_action = vec![b'a'; ACTION_BYTES_MAX + 1];
    let long_description = vec![0; DESCRIPTION_BYTES_MAX + 1];
    let long_payload = vec![0; PAYLOAD_BYTES_MAX + 1];
    let long_key = vec![0; IDEMPOTENCY_KEY_BYTES_MAX + 1];
    let crowd: Vec<u64> = (1..=ELECTORATE_MAX as u64 + 1).collect();
    let refusals: Vec<(Proposal<'_>, DecisionDecodeError)> = vec![
        (Proposal { action: b"", ..proposal(&[1]) }, DecisionDecodeError::ActionLength(0)),
        (Proposal { action: &long_action, ..proposal(&[1]) }, DecisionDecodeError::ActionLength(ACTION_BYTES_MAX + 1)),
        (
            Proposal { description: &long_description, ..proposal(&[1]) },
            DecisionDecodeError::DescriptionTooLong(DESCRIPTION_BYTES_MAX + 1),
        ),
        (
            Proposal { payload: &long_payload, ..proposal(&[1]) },
            DecisionDecodeError::PayloadTooLong(PAYLOAD_BYTES_MAX + 1),
        ),
        (
            Proposal { idempotency_key: &long_key, ..proposal(&[1]) },
            DecisionDecodeError::KeyTooLong(IDEMPOTENCY_KEY_BYTES_MAX + 1),
        ),
        (proposal(&[]), DecisionDecodeError::ElectorateSize(0)),
        (proposal(&crowd), DecisionDecodeError::ElectorateSize(ELECTORATE_MAX + 1)),
        (proposal(&[3, 2]), DecisionDecodeError::ElectorateOrder(1)),
        (proposal(&[2, 2]), DecisionDecodeError::ElectorateOrder(1)),
        (proposal(&[0, 2]), DecisionDecodeError::ElectorateOrder(0)),
        (
            Proposal { threshold: Threshold { numerator: 0, denominator: 2, strict: false }, ..proposal(&[1]) },
            DecisionDecodeError::BadThreshold { numerator: 0, denominator: 2, strict: false },
        ),
        (
            Proposal { threshold: Threshold { numerator: 3, denominator: 2, strict: false }, ..proposal(&[1]) },
            DecisionDecodeError::BadThreshold { numerator: 3, denominator: 2, strict: false },
        ),
        (
            Proposal { threshold: Threshold { numerator: 1, denominator: 1, strict: true }, ..proposal(&[1]) },
            DecisionDecodeError::BadThreshold { numerator: 1, denominator: 1, strict: true },
        ),
    ];
    let mut out = Vec::new();
    let mut writer = DecisionBatchWriter::new(&mut out);
    writer.propose(&proposal(&[1, 2])).unwrap();
    for (bad, reason) in refusals {
        assert_eq!(writer.propose(&bad), Err(EncodeError::Decisions { index: 1, reason }));
    }
    let zero_voter = VoteView { proposal_id: 1, voter_id: 0, choice: Choice::Approve, signature: None };
    let reason = DecisionDecodeError::ZeroId("voter id");
    assert_eq!(writer.vote(&zero_voter), Err(EncodeError::Decisions { index: 1, reason }));
    writer.finish();
    assert_eq!(decode(&out).len(), 1);
}

#[test]
fn decoder_rejects_unknown_tags_reserved_flags_and_bad_enums() {
    // Proves the decoder refuses, with the command's index, an unknown tag,
    // reserved flags, an unknown choice or criticality, and trailing bytes.
    let frame = write(|writer| {
        writer.vote(&VoteView { proposal_id: 1, voter_id: 2, choice: Choice::Approve, signature: None }).unwrap();
    });
    let corrupt = |at: usize, value: u8| {
        let mut body = frame[HEADER_BYTES..].to_vec();
        body[at] = value;
        let mut out = Vec::new();
        crate::encode_frame(Kind::Decisions, 1, &body, &mut out);
        Frame::decode(&out, &Limits::default()).map(|_| ()).unwrap_err()
    };
    let expect = |reason| DecodeError::Decisions { index: 0, reason };
    assert_eq!(corrupt(0, 9), expect(DecisionDecodeError::UnknownTag(9)));
    assert_eq!(corrupt(1, 0x80), expect(DecisionDecodeError::ReservedFlags(0x80)));
    assert_eq!(corrupt(2, 0), expect(DecisionDecodeError::UnknownChoice(0)));
    assert_eq!(corrupt(1, 1), expect(DecisionDecodeError::Truncated));

    let proposal_frame = write(|writer| writer.propose(&proposal(&[4])).unwrap());
    let mut body = proposal_frame[HEADER_BYTES..].to_vec();
    body[2] = 4;
    let mut out = Vec::new();
    crate::encode_frame(Kind::Decisions, 1, &body, &mut out);
    assert_eq!(
        Frame::decode(&out, &Limits::default()).unwrap_err(),
        expect(DecisionDecodeError::UnknownCriticality(4))
    );
    body[2] = 0;
    body.push(0);
    out.clear();
    crate::encode_frame(Kind::Decisions, 1, &body, &mut out);
    let trailing = DecodeError::Decisions { index: 1, reason: DecisionDecodeError::TrailingBytes(1) };
    assert_eq!(Frame::decode(&out, &Limits::default()).unwrap_err(), trailing);
}

#[test]
fn thresholds_require_the_documented_counts() {
    // Proves `required` is "more than half" for a strict 1/2, "at least two
    // thirds" for 2/3 and "at least three quarters" for 3/4.
    let three_quarters = Threshold { numerator: 3, denominator: 4, strict: false };
    for (voters, majority, two_thirds, quarters) in
        [(1, 1, 1, 1), (2, 2, 2, 2), (3, 2, 2, 3), (4, 3, 3, 3), (5, 3, 4, 4), (7, 4, 5, 6), (100, 51, 67, 75)]
    {
        assert_eq!(Threshold::MAJORITY.required(voters), majority, "majority of {voters}");
        assert_eq!(Threshold::TWO_THIRDS.required(voters), two_thirds, "two thirds of {voters}");
        assert_eq!(three_quarters.required(voters), quarters, "three quarters of {voters}");
    }
}

#[test]
fn vote_message_binds_proposal_choice_and_voter() {
    // Proves the signed message differs whenever the proposal, the choice or the voter does.
    let base = vote_message(1, Choice::Approve, 2);
    assert_eq!(&base[..VOTE_DOMAIN.len()], VOTE_DOMAIN);
    assert_ne!(base, vote_message(2, Choice::Approve, 2));
    assert_ne!(base, vote_message(1, Choice::Reject, 2));
    assert_ne!(base, vote_message(1, Choice::Approve, 3));
}

fn arb_choice() -> impl Strategy<Value = Choice> {
    prop_oneof![Just(Choice::Approve), Just(Choice::Reject), Just(Choice::Abstain)]
}

proptest! {
    #[test]
    fn random_votes_and_proposals_round_trip(
        voters in proptest::collection::btree_set(1u64.., 1..40),
        action in proptest::collection::vec(any::<u8>(), 1..ACTION_BYTES_MAX),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        criticality in 0u8..4,
        (denominator, numerator) in (1u8.., any::<u8>()).prop_map(|(d, n)| (d, n % d + 1)),
        deadline_ns in any::<u64>(),
        votes in proptest::collection::vec((1u64.., 1u64.., arb_choice(), any::<bool>()), 0..20),
    ) {
        // Proves any valid proposal and votes decode to exactly what was written.
        let electorate: Vec<u64> = voters.into_iter().collect();
        let threshold = Threshold { numerator, denominator, strict: false };
        let criticality = Criticality::from_u8(criticality).unwrap();
        let proposal = Proposal { action: &action, payload: &payload, criticality, threshold, deadline_ns, ..proposal(&electorate) };
        let signature = [1; SIGNATURE_BYTES];
        let votes: Vec<VoteView<'_>> = votes
            .iter()
            .map(|&(proposal_id, voter_id, choice, signed)| VoteView { proposal_id, voter_id, choice, signature: signed.then_some(&signature) })
            .collect();
        let frame = write(|writer| {
            writer.propose(&proposal).unwrap();
            votes.iter().for_each(|vote| writer.vote(vote).unwrap());
        });
        let commands = decode(&frame);
        let DecisionCommand::Propose(view) = commands[0] else { panic!("not a proposal") };
        prop_assert_eq!(view.electorate.iter().collect::<Vec<_>>(), electorate);
        prop_assert_eq!((view.action, view.payload, view.criticality, view.threshold, view.deadline_ns), (&action[..], &payload[..], criticality, threshold, deadline_ns));
        prop_assert_eq!(&commands[1..], &votes.into_iter().map(DecisionCommand::Vote).collect::<Vec<_>>()[..]);
        // Re-encoding the decoded commands gives the same bytes: the encoding is canonical.
        let again = write(|writer| commands.iter().for_each(|command| writer.push(command).unwrap()));
        prop_assert_eq!(again, frame);
    }

    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..160), count in 0u32..8) {
        // Proves decoding arbitrary bytes as decision commands returns an error or commands, never panics.
        let mut out = Vec::new();
        crate::encode_frame(Kind::Decisions, count, &body, &mut out);
        if let Ok(frame) = Frame::decode(&out, &Limits::default()) {
            let Body::Decisions(commands) = frame.body() else { panic!("wrong body") };
            prop_assert_eq!(commands.iter().count(), count as usize);
        }
    }
}
