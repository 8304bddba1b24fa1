use proptest::prelude::*;

use super::*;
use crate::frame::{Body, DecodeError, Frame, Limits, HEADER_BYTES};

fn decode(frame: &[u8]) -> Vec<TaskCommand<'_>> {
    match Frame::decode(frame, &Limits::default()).expect("valid frame").body() {
        Body::Tasks(commands) => commands.iter().collect(),
        other => panic!("wrong body {other:?}"),
    }
}

fn submit_view<'a>(key: &'a [u8], payload: &'a [u8]) -> SubmitTaskView<'a> {
    SubmitTaskView {
        idempotency_key: key,
        task_type: b"summarize",
        payload,
        criticality: 2,
        redundancy: 3,
        threshold_percent: 0,
        deadline_ns: 77,
        attempts_max: 4,
    }
}

#[test]
fn every_command_round_trips() {
    // Proves each of the six commands decodes to the view it was written from.
    let commands = [
        TaskCommand::Submit(submit_view(b"key", b"payload")),
        TaskCommand::Assign(AssignTaskView { task_id: 1, agent_id: 9 }),
        TaskCommand::Report(ReportResultView { task_id: 1, agent_id: 9, outcome: TaskOutcomeView::Success(b"out") }),
        TaskCommand::Report(ReportResultView { task_id: 1, agent_id: 8, outcome: TaskOutcomeView::Failure(b"oom") }),
        TaskCommand::Release(ReleaseAgentView { agent_id: 9 }),
        TaskCommand::Expire,
        TaskCommand::ReleaseCopy(ReleaseCopyView { task_id: 3, agent_id: 9 }),
    ];
    let mut out = Vec::new();
    let mut writer = TaskBatchWriter::new(&mut out);
    commands.iter().for_each(|command| writer.push(command).expect("valid command"));
    writer.finish();
    assert_eq!(decode(&out), commands);
}

#[test]
fn assign_has_the_documented_layout() {
    // Proves an AssignTask is encoded byte for byte as the module doc describes.
    let mut out = Vec::new();
    let mut writer = TaskBatchWriter::new(&mut out);
    writer.assign(AssignTaskView { task_id: 5, agent_id: 6 }).expect("assign");
    assert_eq!(writer.finish(), HEADER_BYTES + 18);
    assert_eq!(&out[HEADER_BYTES..HEADER_BYTES + 2], &[2, 0]);
    assert_eq!(&out[HEADER_BYTES + 2..HEADER_BYTES + 10], &5u64.to_le_bytes());
    assert_eq!(&out[HEADER_BYTES + 10..], &6u64.to_le_bytes());
}

#[test]
fn release_copy_has_the_documented_layout() {
    // Proves a ReleaseCopy is encoded byte for byte as the module doc describes.
    let mut out = Vec::new();
    let mut writer = TaskBatchWriter::new(&mut out);
    writer.release_copy(ReleaseCopyView { task_id: 5, agent_id: 6 }).expect("release copy");
    assert_eq!(writer.finish(), HEADER_BYTES + 18);
    assert_eq!(&out[HEADER_BYTES..HEADER_BYTES + 2], &[6, 0]);
    assert_eq!(&out[HEADER_BYTES + 2..HEADER_BYTES + 10], &5u64.to_le_bytes());
    assert_eq!(&out[HEADER_BYTES + 10..], &6u64.to_le_bytes());
}

#[test]
fn writer_refuses_out_of_bounds_fields_and_stays_usable() {
    // Proves every bound is checked before writing: each refusal names the
    // command and leaves the frame decodable with the commands already in it.
    let key = vec![0; IDEMPOTENCY_KEY_BYTES_MAX + 1];
    let mut out = Vec::new();
    let mut writer = TaskBatchWriter::new(&mut out);
    writer.expire().expect("expire");
    let bad = [
        (SubmitTaskView { idempotency_key: &key, ..submit_view(b"", b"") }, TaskDecodeError::KeyTooLong(257)),
        (SubmitTaskView { redundancy: 0, ..submit_view(b"", b"") }, TaskDecodeError::RedundancyOutOfRange(0)),
        (SubmitTaskView { redundancy: 8, ..submit_view(b"", b"") }, TaskDecodeError::RedundancyOutOfRange(8)),
        (SubmitTaskView { threshold_percent: 101, ..submit_view(b"", b"") }, TaskDecodeError::ThresholdOutOfRange(101)),
        (SubmitTaskView { attempts_max: 17, ..submit_view(b"", b"") }, TaskDecodeError::AttemptsOutOfRange(17)),
    ];
    for (view, reason) in bad {
        assert_eq!(writer.submit(&view), Err(EncodeError::Tasks { index: 1, reason }));
    }
    writer.finish();
    assert_eq!(decode(&out), vec![TaskCommand::Expire]);
}

#[test]
fn decoder_rejects_unknown_tags_reserved_flags_and_trailing_bytes() {
    // Proves hostile bodies get a typed error naming the command, not a panic.
    let cases: [(&[u8], u32, TaskDecodeError); 6] = [
        (&[9, 0], 1, TaskDecodeError::UnknownTag(9)),
        (&[7, 0], 1, TaskDecodeError::UnknownTag(7)),
        (&[6, 0, 1, 2], 1, TaskDecodeError::Truncated),
        (&[5, 1], 1, TaskDecodeError::ReservedFlags(1)),
        (&[4, 0, 1], 1, TaskDecodeError::Truncated),
        (&[5, 0, 7], 1, TaskDecodeError::TrailingBytes(1)),
    ];
    for (body, count, reason) in cases {
        let mut frame = Vec::new();
        crate::encode_frame(Kind::Tasks, count, body, &mut frame);
        let index = if matches!(reason, TaskDecodeError::TrailingBytes(_)) { 1 } else { 0 };
        let error = Frame::decode(&frame, &Limits::default()).expect_err("invalid body");
        assert_eq!(error, DecodeError::Tasks { index, reason });
    }
}

fn arb_outcome() -> impl Strategy<Value = (bool, Vec<u8>)> {
    (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64))
}

proptest! {
    /// Proves submit/report round-trips hold for arbitrary in-bound fields.
    #[test]
    fn random_commands_round_trip(
        key in proptest::collection::vec(any::<u8>(), 0..=IDEMPOTENCY_KEY_BYTES_MAX),
        payload in proptest::collection::vec(any::<u8>(), 0..256),
        redundancy in 1..=REDUNDANCY_MAX,
        threshold in 0..=100u8,
        attempts in 1..=ATTEMPTS_MAX,
        deadline in any::<u64>(),
        (failure, data) in arb_outcome(),
        ids in (any::<u64>(), any::<u64>()),
    ) {
        let submit = SubmitTaskView {
            idempotency_key: &key, task_type: b"t", payload: &payload, criticality: 1,
            redundancy, threshold_percent: threshold, deadline_ns: deadline, attempts_max: attempts,
        };
        let outcome = if failure { TaskOutcomeView::Failure(&data) } else { TaskOutcomeView::Success(&data) };
        let commands = [
            TaskCommand::Submit(submit),
            TaskCommand::Report(ReportResultView { task_id: ids.0, agent_id: ids.1, outcome }),
            TaskCommand::Assign(AssignTaskView { task_id: ids.1, agent_id: ids.0 }),
            TaskCommand::ReleaseCopy(ReleaseCopyView { task_id: ids.0, agent_id: ids.1 }),
        ];
        let mut out = Vec::new();
        let mut writer = TaskBatchWriter::new(&mut out);
        for command in &commands {
            writer.push(command).expect("in bounds");
        }
        writer.finish();
        prop_assert_eq!(decode(&out), commands.to_vec());
    }

    /// Proves arbitrary bodies under a valid header never panic the decoder.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..128), count in 0u32..8) {
        let mut frame = Vec::new();
        crate::encode_frame(Kind::Tasks, count, &body, &mut frame);
        if let Ok(frame) = Frame::decode(&frame, &Limits::default()) {
            if let Body::Tasks(commands) = frame.body() {
                prop_assert_eq!(commands.iter().count(), count as usize);
            }
        }
    }
}
