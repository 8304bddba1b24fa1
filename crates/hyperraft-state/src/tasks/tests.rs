use hyperraft_wire::{
    AssignTaskView, Frame, Limits, ReleaseAgentView, ReleaseCopyView, ReportResultView, SubmitTaskView,
    TaskBatchWriter, TaskCommand, TaskOutcomeView,
};
use proptest::prelude::*;

use super::*;
use crate::{BatchOutput, StateConfig, StateMachine};

fn submit_view(key: &[u8], redundancy: u8, threshold_percent: u8, attempts_max: u8) -> SubmitTaskView<'_> {
    SubmitTaskView {
        idempotency_key: key,
        task_type: b"review",
        payload: b"diff",
        criticality: 1,
        redundancy,
        threshold_percent,
        deadline_ns: 0,
        attempts_max,
    }
}

fn submit(store: &mut TaskStore, redundancy: u8, threshold_percent: u8, attempts_max: u8) -> u64 {
    let view = submit_view(b"", redundancy, threshold_percent, attempts_max);
    match store.apply(&TaskCommand::Submit(view), 10) {
        TaskResponse::Submitted { task_id } => task_id,
        other => panic!("not submitted: {other:?}"),
    }
}

fn assign(store: &mut TaskStore, task_id: u64, agent_id: u64) -> TaskResponse {
    store.apply(&TaskCommand::Assign(AssignTaskView { task_id, agent_id }), 20)
}

fn success(store: &mut TaskStore, task_id: u64, agent_id: u64, output: &[u8]) -> TaskResponse {
    let outcome = TaskOutcomeView::Success(output);
    store.apply(&TaskCommand::Report(ReportResultView { task_id, agent_id, outcome }), 30)
}

fn failure(store: &mut TaskStore, task_id: u64, agent_id: u64) -> TaskResponse {
    let outcome = TaskOutcomeView::Failure(b"crashed");
    store.apply(&TaskCommand::Report(ReportResultView { task_id, agent_id, outcome }), 30)
}

fn release(store: &mut TaskStore, agent_id: u64) -> TaskResponse {
    store.apply(&TaskCommand::Release(ReleaseAgentView { agent_id }), 40)
}

fn reported(task_id: u64, decision: Option<Decision>) -> TaskResponse {
    TaskResponse::Reported { task_id, decision }
}

fn succeeded(output: &[u8]) -> Option<Decision> {
    Some(Decision::Succeeded { output: output.to_vec() })
}

fn state(store: &TaskStore, task_id: u64) -> TaskState {
    store.task(task_id).expect("kept").state.clone()
}

#[test]
fn single_copy_succeeds_with_its_output() {
    // Proves k=1: one assignment and one successful report decide the task with that output.
    let mut store = TaskStore::new(TaskConfig::default());
    let task_id = submit(&mut store, 1, 0, 1);
    assert_eq!(store.pending(b"review", 10), vec![task_id]);
    assert_eq!(assign(&mut store, task_id, 7), TaskResponse::Assigned { task_id, agent_id: 7 });
    assert_eq!(store.pending(b"review", 10), Vec::<u64>::new());
    assert_eq!(store.tasks_of_agent(7), vec![task_id]);
    assert_eq!(success(&mut store, task_id, 7, b"ok"), reported(task_id, succeeded(b"ok")));
    assert_eq!(state(&store, task_id), TaskState::Succeeded { output: b"ok".to_vec() });
    assert_eq!(store.tasks_of_agent(7), Vec::<u64>::new());
    assert_eq!(store.task(task_id).expect("kept").assignments[0].assigned_ns, 20);
}

#[test]
fn three_copies_succeed_when_all_agree() {
    // Proves k=3 majority: the second identical output decides, and the third copy is cancelled.
    let mut store = TaskStore::new(TaskConfig::default());
    let task_id = submit(&mut store, 3, 0, 1);
    for agent in 1..=3 {
        assert!(matches!(assign(&mut store, task_id, agent), TaskResponse::Assigned { .. }));
    }
    assert_eq!(assign(&mut store, task_id, 4), TaskResponse::Error(TaskError::CopiesFull { task_id }));
    assert_eq!(success(&mut store, task_id, 1, b"x"), reported(task_id, None));
    assert_eq!(success(&mut store, task_id, 2, b"x"), reported(task_id, succeeded(b"x")));
    assert_eq!(success(&mut store, task_id, 3, b"x"), TaskResponse::Error(TaskError::TaskFinished { task_id }));
    let copy = store.task(task_id).expect("kept").assignments[2];
    assert_eq!(copy.state, CopyState::Cancelled);
}

#[test]
fn three_copies_succeed_over_a_disagreeing_minority() {
    // Proves k=3 majority: one disagreeing output does not stop two agreeing ones.
    let mut store = TaskStore::new(TaskConfig::default());
    let task_id = submit(&mut store, 3, 0, 1);
    (1..=3).for_each(|agent| drop(assign(&mut store, task_id, agent)));
    assert_eq!(success(&mut store, task_id, 1, b"x"), reported(task_id, None));
    assert_eq!(success(&mut store, task_id, 2, b"y"), reported(task_id, None));
    assert_eq!(success(&mut store, task_id, 3, b"y"), reported(task_id, succeeded(b"y")));
}

#[test]
fn three_copies_fail_without_agreement_and_attach_every_output() {
    // Proves k=3 majority: three different outputs cannot agree, so the task fails NoAgreement with all outputs.
    let mut store = TaskStore::new(TaskConfig::default());
    let task_id = submit(&mut store, 3, 0, 4);
    (1..=3).for_each(|agent| drop(assign(&mut store, task_id, agent)));
    assert_eq!(success(&mut store, task_id, 1, b"a"), reported(task_id, None));
    assert_eq!(success(&mut store, task_id, 2, b"b"), reported(task_id, None));
    let outputs = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
    let failed = Some(Decision::Failed { reason: FailReason::NoAgreement, outputs });
    assert_eq!(success(&mut store, task_id, 3, b"c"), reported(task_id, failed));
    assert_eq!(state(&store, task_id), TaskState::Failed { reason: FailReason::NoAgreement });
}

#[test]
fn threshold_is_a_percent_of_k() {
    // Proves the required count is ceil(threshold × k / 100): 100% of 3 needs 3, so a dissent fails it at once.
    let mut store = TaskStore::new(TaskConfig::default());
    let task_id = submit(&mut store, 3, 100, 1);
    assert_eq!(store.task(task_id).expect("kept").required(), 3);
    (1..=3).for_each(|agent| drop(assign(&mut store, task_id, agent)));
    assert_eq!(success(&mut store, task_id, 1, b"a"), reported(task_id, None));
    let outputs = vec![b"a".to_vec(), b"b".to_vec()];
    let failed = Some(Decision::Failed { reason: FailReason::NoAgreement, outputs });
    assert_eq!(success(&mut store, task_id, 2, b"b"), reported(task_id, failed));
}

#[test]
fn a_failure_report_is_retried_while_attempts_are_left() {
    // Proves a failed copy counts an attempt and frees its slot for another agent.
    let mut store = TaskStore::new(TaskConfig::default());
    let task_id = submit(&mut store, 1, 0, 2);
    drop(assign(&mut store, task_id, 1));
    assert_eq!(failure(&mut store, task_id, 1), reported(task_id, None));
    assert_eq!(store.pending(b"review", 10), vec![task_id]);
    drop(assign(&mut store, task_id, 2));
    let failed = Some(Decision::Failed { reason: FailReason::NoAgreement, outputs: vec![] });
    assert_eq!(failure(&mut store, task_id, 2), reported(task_id, failed));
}

#[test]
fn submit_is_idempotent() {
    // Proves the same key returns the same id and changes nothing, and other fields are flagged.
    let mut store = TaskStore::new(TaskConfig::default());
    let first = store.apply(&TaskCommand::Submit(submit_view(b"key", 3, 0, 2)), 1);
    assert_eq!(first, TaskResponse::Submitted { task_id: 1 });
    let before = store.clone();
    let again = store.apply(&TaskCommand::Submit(submit_view(b"key", 3, 0, 2)), 2);
    assert_eq!(again, TaskResponse::Exists { task_id: 1 });
    let other = store.apply(&TaskCommand::Submit(submit_view(b"key", 5, 0, 2)), 3);
    assert_eq!(other, TaskResponse::ExistsWithDifferentFields { task_id: 1 });
    assert_eq!(store, before);
}

#[test]
fn a_result_is_committed_exactly_once() {
    // Proves a repeated report answers Exists and leaves the whole store as it was.
    let mut store = TaskStore::new(TaskConfig::default());
    let task_id = submit(&mut store, 3, 0, 1);
    drop(assign(&mut store, task_id, 1));
    assert_eq!(success(&mut store, task_id, 1, b"x"), reported(task_id, None));
    let before = store.clone();
    assert_eq!(success(&mut store, task_id, 1, b"x"), TaskResponse::Exists { task_id });
    assert_eq!(success(&mut store, task_id, 1, b"other"), TaskResponse::Exists { task_id });
    assert_eq!(store, before);
    assert_eq!(store.task(task_id).expect("kept").results.len(), 1);
    assert_eq!(
        assign(&mut store, task_id, 1),
        TaskResponse::Error(TaskError::AgentAlreadyAssigned { task_id, agent_id: 1 })
    );
}

#[test]
fn releases_count_attempts_until_the_task_is_exhausted() {
    // Proves a release unassigns the copy and counts an attempt, the task is reassigned, and the last attempt fails it.
    let mut store = TaskStore::new(TaskConfig::default());
    let task_id = submit(&mut store, 1, 0, 2);
    drop(assign(&mut store, task_id, 1));
    assert_eq!(release(&mut store, 1), TaskResponse::Released { agent_id: 1, copies: 1, failed: vec![] });
    assert_eq!(store.task(task_id).expect("kept").attempts_used, 1);
    assert_eq!(
        success(&mut store, task_id, 1, b"late"),
        TaskResponse::Error(TaskError::NotAssigned { task_id, agent_id: 1 })
    );
    assert_eq!(store.pending(b"review", 10), vec![task_id]);
    drop(assign(&mut store, task_id, 2));
    assert_eq!(release(&mut store, 2), TaskResponse::Released { agent_id: 2, copies: 1, failed: vec![task_id] });
    assert_eq!(state(&store, task_id), TaskState::Failed { reason: FailReason::AttemptsExhausted });
    assert_eq!(assign(&mut store, task_id, 3), TaskResponse::Error(TaskError::TaskFinished { task_id }));
}

#[test]
fn releasing_one_copy_counts_an_attempt_and_leaves_the_agents_other_copies() {
    // Proves ReleaseCopy ends exactly one running copy, counts one attempt, refuses a copy that is not running, and fails the task on the last attempt.
    let mut store = TaskStore::new(TaskConfig::default());
    let first = submit(&mut store, 1, 0, 1);
    let second = submit(&mut store, 1, 0, 2);
    drop(assign(&mut store, first, 1));
    drop(assign(&mut store, second, 1));
    let release_copy = |store: &mut TaskStore, task_id, agent_id| {
        store.apply(&TaskCommand::ReleaseCopy(ReleaseCopyView { task_id, agent_id }), 50)
    };
    assert_eq!(release_copy(&mut store, second, 1), TaskResponse::Released { agent_id: 1, copies: 1, failed: vec![] });
    assert_eq!(store.task(second).expect("kept").attempts_used, 1);
    assert_eq!(store.tasks_of_agent(1), vec![first]);
    let before = store.clone();
    assert_eq!(
        release_copy(&mut store, second, 1),
        TaskResponse::Error(TaskError::NotAssigned { task_id: second, agent_id: 1 })
    );
    assert_eq!(release_copy(&mut store, 99, 1), TaskResponse::Error(TaskError::NotFound { task_id: 99 }));
    assert_eq!(store, before);
    assert_eq!(
        release_copy(&mut store, first, 1),
        TaskResponse::Released { agent_id: 1, copies: 1, failed: vec![first] }
    );
    assert_eq!(state(&store, first), TaskState::Failed { reason: FailReason::AttemptsExhausted });
    assert!(store.tasks_of_agent(1).is_empty());
    assert_eq!(store.running_copies(), Vec::new());
}

#[test]
fn tasks_past_their_deadline_expire() {
    // Proves ExpireTasks fails exactly the open tasks whose deadline is at or before the batch timestamp.
    let mut store = TaskStore::new(TaskConfig::default());
    let mut ids = Vec::new();
    for deadline_ns in [0, 100, 200] {
        let view = SubmitTaskView { deadline_ns, ..submit_view(b"", 1, 0, 1) };
        ids.push(match store.apply(&TaskCommand::Submit(view), 1) {
            TaskResponse::Submitted { task_id } => task_id,
            other => panic!("{other:?}"),
        });
    }
    drop(assign(&mut store, ids[1], 9));
    assert_eq!(store.apply(&TaskCommand::Expire, 99), TaskResponse::Expired { failed: vec![] });
    assert_eq!(store.apply(&TaskCommand::Expire, 150), TaskResponse::Expired { failed: vec![ids[1]] });
    assert_eq!(state(&store, ids[1]), TaskState::Failed { reason: FailReason::DeadlineExceeded });
    assert_eq!(store.tasks_of_agent(9), Vec::<u64>::new());
    assert_eq!(state(&store, ids[0]), TaskState::Open);
    assert_eq!(state(&store, ids[2]), TaskState::Open);
}

#[test]
fn bounds_give_clear_errors_and_evict_the_oldest_finished() {
    // Proves tasks_max and payload_bytes_max refuse with typed errors, and finished_max evicts oldest first with its key.
    let config = TaskConfig { tasks_max: 2, finished_max: 1, payload_bytes_max: 4 };
    let mut store = TaskStore::new(config);
    let big = SubmitTaskView { payload: b"12345", ..submit_view(b"", 1, 0, 1) };
    let refused = TaskResponse::Error(TaskError::PayloadTooLarge { bytes: 5, max: 4 });
    assert_eq!(store.apply(&TaskCommand::Submit(big), 1), refused);
    let first = store.apply(&TaskCommand::Submit(submit_view(b"a", 1, 0, 1)), 1);
    assert_eq!(first, TaskResponse::Submitted { task_id: 1 });
    let second = submit(&mut store, 1, 0, 1);
    let full = store.apply(&TaskCommand::Submit(submit_view(b"", 1, 0, 1)), 1);
    assert_eq!(full, TaskResponse::Error(TaskError::TasksFull { max: 2 }));
    for task_id in [1, second] {
        drop(assign(&mut store, task_id, 5));
        drop(success(&mut store, task_id, 5, b"ok"));
    }
    assert!(store.task(1).is_none(), "the oldest finished task is evicted");
    assert!(store.task(second).is_some());
    let reused = store.apply(&TaskCommand::Submit(submit_view(b"a", 1, 0, 1)), 1);
    assert_eq!(reused, TaskResponse::Submitted { task_id: 3 }, "an evicted task's key is forgotten");
}

fn frame_of(commands: &[TaskCommand<'_>]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = TaskBatchWriter::new(&mut bytes);
    commands.iter().for_each(|command| writer.push(command).expect("valid"));
    writer.finish();
    bytes
}

#[test]
fn snapshot_round_trips_tasks_and_digest_covers_them() {
    // Proves tasks applied through the state machine survive a snapshot byte for byte and change the digest.
    let config = StateConfig { apply_threads: std::num::NonZeroUsize::MIN, ..StateConfig::default() };
    let mut state = StateMachine::new(config.clone()).expect("state");
    let empty_digest = state.digest();
    let outcome = TaskOutcomeView::Success(b"out");
    let bytes = frame_of(&[
        TaskCommand::Submit(submit_view(b"k", 3, 0, 2)),
        TaskCommand::Submit(submit_view(b"", 1, 0, 1)),
        TaskCommand::Assign(AssignTaskView { task_id: 1, agent_id: 4 }),
        TaskCommand::Assign(AssignTaskView { task_id: 2, agent_id: 4 }),
        TaskCommand::Report(ReportResultView { task_id: 2, agent_id: 4, outcome }),
    ]);
    let frame = Frame::decode(&bytes, &Limits::default()).expect("frame");
    let mut output = BatchOutput::default();
    state.apply(&frame, 1_000, &mut output).expect("applied");
    assert_eq!(output.tasks.len(), 5);
    assert_ne!(state.digest(), empty_digest);
    let mut snapshot = Vec::new();
    state.write_snapshot(&mut snapshot).expect("written");
    let restored = StateMachine::read_snapshot(snapshot.as_slice(), config.clone()).expect("restored");
    assert_eq!(restored.tasks(), state.tasks());
    assert_eq!(restored.digest(), state.digest());
    assert_eq!(restored.tasks().tasks_of_agent(4), vec![1]);
    for cut in [10, snapshot.len() / 2, snapshot.len() - 1] {
        assert!(StateMachine::read_snapshot(&snapshot[..cut], config.clone()).is_err(), "cut at {cut}");
    }
}

#[test]
fn corrupt_task_snapshots_are_refused_not_panicked() {
    // Proves every single-byte corruption of a task snapshot decodes to a store or a typed error, never a panic.
    let mut store = TaskStore::new(TaskConfig::default());
    let task_id = submit(&mut store, 3, 0, 2);
    drop(assign(&mut store, task_id, 1));
    drop(success(&mut store, task_id, 1, b"x"));
    let mut bytes = Vec::new();
    store.encode_snapshot(&mut bytes);
    assert_eq!(TaskStore::decode_snapshot(&bytes, TaskConfig::default()).as_ref(), Ok(&store));
    for at in 0..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut corrupt = bytes.clone();
            corrupt[at] ^= flip;
            let _ = TaskStore::decode_snapshot(&corrupt, TaskConfig::default());
        }
    }
}

#[derive(Clone, Debug)]
enum Step {
    Submit { key: u8, redundancy: u8, threshold: u8, attempts: u8, deadline: u64 },
    Assign { task: u64, agent: u64 },
    Report { task: u64, agent: u64, output: Option<u8> },
    Release { agent: u64 },
    ReleaseCopy { task: u64, agent: u64 },
    Expire,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..4, 1u8..=7, 0u8..=100, 1u8..=4, 0u64..300).prop_map(
            |(key, redundancy, threshold, attempts, deadline)| {
                Step::Submit { key, redundancy, threshold, attempts, deadline }
            }
        ),
        (1u64..8, 1u64..6).prop_map(|(task, agent)| Step::Assign { task, agent }),
        (1u64..8, 1u64..6, proptest::option::of(0u8..3)).prop_map(|(task, agent, output)| Step::Report {
            task,
            agent,
            output
        }),
        (1u64..6).prop_map(|agent| Step::Release { agent }),
        (1u64..8, 1u64..6).prop_map(|(task, agent)| Step::ReleaseCopy { task, agent }),
        Just(Step::Expire),
    ]
}

fn run_step(store: &mut TaskStore, step: &Step, now_ns: u64) -> TaskResponse {
    match step {
        Step::Submit { key, redundancy, threshold, attempts, deadline } => {
            let key = [*key];
            let key: &[u8] = if key[0] == 0 { &[] } else { &key };
            let view =
                SubmitTaskView { deadline_ns: *deadline, ..submit_view(key, *redundancy, *threshold, *attempts) };
            store.apply(&TaskCommand::Submit(view), now_ns)
        }
        Step::Assign { task, agent } => {
            store.apply(&TaskCommand::Assign(AssignTaskView { task_id: *task, agent_id: *agent }), now_ns)
        }
        Step::Report { task, agent, output } => {
            let bytes = [output.unwrap_or(0)];
            let outcome = match output {
                Some(_) => TaskOutcomeView::Success(&bytes),
                None => TaskOutcomeView::Failure(b"no"),
            };
            store.apply(&TaskCommand::Report(ReportResultView { task_id: *task, agent_id: *agent, outcome }), now_ns)
        }
        Step::Release { agent } => store.apply(&TaskCommand::Release(ReleaseAgentView { agent_id: *agent }), now_ns),
        Step::ReleaseCopy { task, agent } => {
            store.apply(&TaskCommand::ReleaseCopy(ReleaseCopyView { task_id: *task, agent_id: *agent }), now_ns)
        }
        Step::Expire => store.apply(&TaskCommand::Expire, now_ns),
    }
}

proptest! {
    /// Proves random command sequences never panic, a task's terminal state never changes once reached, and the store survives its snapshot.
    #[test]
    fn random_sequences_keep_terminal_states_final(steps in proptest::collection::vec(step(), 0..80)) {
        let config = TaskConfig { tasks_max: 6, finished_max: 8, payload_bytes_max: 16 };
        let mut store = TaskStore::new(config);
        let mut terminal: std::collections::BTreeMap<u64, TaskState> = Default::default();
        for (index, step) in steps.iter().enumerate() {
            run_step(&mut store, step, index as u64 * 10);
            for (task_id, seen) in &terminal {
                if let Some(task) = store.task(*task_id) {
                    prop_assert_eq!(&task.state, seen, "task {} changed after finishing", task_id);
                }
            }
            for task_id in store.open.iter().chain(store.finished.iter()) {
                let task = store.task(*task_id).expect("indexed tasks are kept");
                prop_assert!(task.running() <= usize::from(task.redundancy));
                prop_assert!(task.successes() <= usize::from(task.redundancy));
                if task.is_finished() {
                    prop_assert_eq!(task.running(), 0);
                    terminal.entry(*task_id).or_insert_with(|| task.state.clone());
                }
            }
        }
        let mut bytes = Vec::new();
        store.encode_snapshot(&mut bytes);
        prop_assert_eq!(TaskStore::decode_snapshot(&bytes, config), Ok(store));
    }
}
