//! Task requests: checking a submission, the task frames, and a task as
//! the API answers it.

use std::time::{SystemTime, UNIX_EPOCH};

use hyperraft_raft::{BatchResponse, TaskErrorCode, TaskResult};
use hyperraft_state::tasks::{CopyState, FailReason, Outcome, Task, TaskState};
use hyperraft_wire::tasks::{
    ATTEMPTS_MAX, IDEMPOTENCY_KEY_BYTES_MAX, PAYLOAD_BYTES_MAX, REDUNDANCY_MAX, TASK_TYPE_BYTES_MAX,
};
use hyperraft_wire::{EncodeError, SubmitTaskView, TaskBatchWriter};
use tonic::Status;

use crate::errors::{invalid_argument, unexpected};
use crate::proto;

/// Attempts a task gets when the submission names none.
pub(crate) const ATTEMPTS_DEFAULT: u8 = 3;
/// Longest deadline a submission may ask for: 30 days.
pub(crate) const DEADLINE_MS_MAX: u64 = 30 * 86_400_000;

pub(crate) fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

pub(crate) fn now_us() -> u64 {
    now_ns() / 1_000
}

/// The fields of a submission, checked, as the wire command takes them.
pub(crate) struct Submission<'a> {
    pub(crate) view: SubmitTaskView<'a>,
}

/// Checks every field of `request` (each refusal names its field);
/// `now_ns` turns the relative deadline into the leader's clock.
pub(crate) fn check_submit(request: &proto::SubmitTaskRequest, now_ns: u64) -> Result<Submission<'_>, Status> {
    let task_type = request.task_type.as_bytes();
    if task_type.is_empty() || task_type.len() > TASK_TYPE_BYTES_MAX {
        return Err(invalid_argument(
            "task_type",
            format!("{} bytes; give 1..={TASK_TYPE_BYTES_MAX}", task_type.len()),
        ));
    }
    if request.payload.len() > PAYLOAD_BYTES_MAX {
        return Err(invalid_argument("payload", format!("{} bytes exceed {PAYLOAD_BYTES_MAX}", request.payload.len())));
    }
    let criticality = u8::try_from(request.criticality)
        .map_err(|_| invalid_argument("criticality", format!("{} is above 255", request.criticality)))?;
    let redundancy = match request.redundancy {
        0 => 1,
        k if k <= u32::from(REDUNDANCY_MAX) => k as u8,
        k => return Err(invalid_argument("redundancy", format!("{k} is outside 1..={REDUNDANCY_MAX}"))),
    };
    if request.agreement_percent > 100 {
        return Err(invalid_argument("agreement_percent", format!("{} is above 100", request.agreement_percent)));
    }
    let attempts_max = match request.attempts_max {
        0 => ATTEMPTS_DEFAULT,
        n if n <= u32::from(ATTEMPTS_MAX) => n as u8,
        n => return Err(invalid_argument("attempts_max", format!("{n} is outside 1..={ATTEMPTS_MAX}"))),
    };
    if request.idempotency_key.len() > IDEMPOTENCY_KEY_BYTES_MAX {
        let len = request.idempotency_key.len();
        return Err(invalid_argument("idempotency_key", format!("{len} bytes exceed {IDEMPOTENCY_KEY_BYTES_MAX}")));
    }
    if request.deadline_ms > DEADLINE_MS_MAX {
        return Err(invalid_argument("deadline_ms", format!("{} is above {DEADLINE_MS_MAX}", request.deadline_ms)));
    }
    let deadline_ns = match request.deadline_ms {
        0 => 0,
        ms => now_ns.saturating_add(ms * 1_000_000),
    };
    Ok(Submission {
        view: SubmitTaskView {
            idempotency_key: &request.idempotency_key,
            task_type,
            payload: &request.payload,
            criticality,
            redundancy,
            threshold_percent: request.agreement_percent as u8,
            deadline_ns,
            attempts_max,
        },
    })
}

/// Whether a kept task was submitted with the same fields as `view`, the
/// deadline aside (a retry computes its deadline from a later clock).
pub(crate) fn same_submission(task: &Task, view: &SubmitTaskView<'_>) -> bool {
    task.task_type == view.task_type
        && task.payload == view.payload
        && task.criticality == view.criticality
        && task.redundancy == view.redundancy
        && task.threshold_percent == view.threshold_percent
        && task.attempts_max == view.attempts_max
}

/// A `Tasks` frame of the commands `append` writes.
pub(crate) fn task_frame(
    append: impl FnOnce(&mut TaskBatchWriter<'_>) -> Result<(), EncodeError>,
) -> Result<Vec<u8>, Status> {
    let mut frame = Vec::new();
    let mut writer = TaskBatchWriter::new(&mut frame);
    append(&mut writer).map_err(|error| invalid_argument("request", error))?;
    writer.finish();
    Ok(frame)
}

/// The results of a task frame.
pub(crate) fn task_results(response: BatchResponse, expected: usize) -> Result<Vec<TaskResult>, Status> {
    match response {
        BatchResponse::Tasks(results) if results.len() == expected => Ok(results),
        other => Err(unexpected(format!("{other:?} for {expected} task commands"))),
    }
}

/// The status of a task command the state machine refused.
pub(crate) fn task_error(code: TaskErrorCode, message: String) -> Status {
    match code {
        TaskErrorCode::NotFound => Status::not_found(message),
        TaskErrorCode::TasksFull => Status::resource_exhausted(message),
        TaskErrorCode::PayloadTooLarge => Status::invalid_argument(message),
        TaskErrorCode::TaskFinished
        | TaskErrorCode::AgentAlreadyAssigned
        | TaskErrorCode::CopiesFull
        | TaskErrorCode::NotAssigned => Status::failed_precondition(message),
    }
}

fn copy_state(state: CopyState) -> &'static str {
    match state {
        CopyState::Running => "running",
        CopyState::Reported => "reported",
        CopyState::Released => "released",
        CopyState::Cancelled => "cancelled",
    }
}

/// A kept task as `GetTask` and `WaitTask` answer it.
pub(crate) fn task_response(task: &Task) -> proto::GetTaskResponse {
    let (status, output, failure) = match &task.state {
        TaskState::Open => (proto::TaskStatus::Open, Vec::new(), proto::TaskFailure::Unspecified),
        TaskState::Succeeded { output } => {
            (proto::TaskStatus::Succeeded, output.clone(), proto::TaskFailure::Unspecified)
        }
        TaskState::Failed { reason } => {
            let failure = match reason {
                FailReason::NoAgreement => proto::TaskFailure::NoAgreement,
                FailReason::AttemptsExhausted => proto::TaskFailure::AttemptsExhausted,
                FailReason::DeadlineExceeded => proto::TaskFailure::DeadlineExceeded,
            };
            (proto::TaskStatus::Failed, Vec::new(), failure)
        }
    };
    let copies = task
        .assignments
        .iter()
        .map(|copy| proto::TaskCopy { agent_id: copy.agent_id, state: copy_state(copy.state).to_string() });
    let reports = task.results.iter().map(|report| {
        let (ok, data) = match &report.outcome {
            Outcome::Success(output) => (true, output.clone()),
            Outcome::Failure(reason) => (false, reason.clone()),
        };
        proto::TaskReport { agent_id: report.agent_id, ok, data: data.into() }
    });
    proto::GetTaskResponse {
        task_id: task.id,
        task_type: String::from_utf8_lossy(&task.task_type).into_owned(),
        status: status.into(),
        output: output.into(),
        failure: failure.into(),
        outputs: task.outputs().map(|output| output.to_vec().into()).collect(),
        redundancy: u32::from(task.redundancy),
        attempts_used: u32::from(task.attempts_used),
        attempts_max: u32::from(task.attempts_max),
        copies: copies.collect(),
        reports: reports.collect(),
    }
}
