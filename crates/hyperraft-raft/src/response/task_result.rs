//! Task results mirrored as plain serde types (see
//! `hyperraft_state::tasks::TaskResponse`).

use hyperraft_state::tasks::{Decision, FailReason, TaskError, TaskResponse};
use serde::{Deserialize, Serialize};

/// Why a task failed (see `hyperraft_state::tasks::FailReason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskFailReason {
    NoAgreement,
    AttemptsExhausted,
    DeadlineExceeded,
}

/// How a task was decided, answered to the command that decided it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskDecision {
    Succeeded {
        #[serde(with = "serde_bytes")]
        output: Vec<u8>,
    },
    /// `outputs` are every successful output received, in report order.
    Failed { reason: TaskFailReason, outputs: Vec<serde_bytes::ByteBuf> },
}

/// Why the state machine refused a task command, without its details.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskErrorCode {
    NotFound,
    TaskFinished,
    AgentAlreadyAssigned,
    CopiesFull,
    NotAssigned,
    TasksFull,
    PayloadTooLarge,
}

/// The result of one task command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskResult {
    Submitted {
        task_id: u64,
    },
    /// Already applied (same submission, or a repeated report); nothing changed.
    Exists {
        task_id: u64,
    },
    ExistsWithDifferentFields {
        task_id: u64,
    },
    Assigned {
        task_id: u64,
        agent_id: u64,
    },
    Reported {
        task_id: u64,
        decision: Option<TaskDecision>,
    },
    Released {
        agent_id: u64,
        copies: u32,
        failed: Vec<u64>,
    },
    Expired {
        failed: Vec<u64>,
    },
    /// Refused and changed nothing: `code` says why, `message` says it for people.
    Error {
        code: TaskErrorCode,
        message: String,
    },
}

impl From<FailReason> for TaskFailReason {
    fn from(reason: FailReason) -> TaskFailReason {
        match reason {
            FailReason::NoAgreement => TaskFailReason::NoAgreement,
            FailReason::AttemptsExhausted => TaskFailReason::AttemptsExhausted,
            FailReason::DeadlineExceeded => TaskFailReason::DeadlineExceeded,
        }
    }
}

impl From<&TaskError> for TaskErrorCode {
    fn from(error: &TaskError) -> TaskErrorCode {
        match error {
            TaskError::NotFound { .. } => TaskErrorCode::NotFound,
            TaskError::TaskFinished { .. } => TaskErrorCode::TaskFinished,
            TaskError::AgentAlreadyAssigned { .. } => TaskErrorCode::AgentAlreadyAssigned,
            TaskError::CopiesFull { .. } => TaskErrorCode::CopiesFull,
            TaskError::NotAssigned { .. } => TaskErrorCode::NotAssigned,
            TaskError::TasksFull { .. } => TaskErrorCode::TasksFull,
            TaskError::PayloadTooLarge { .. } => TaskErrorCode::PayloadTooLarge,
        }
    }
}

impl From<&Decision> for TaskDecision {
    fn from(decision: &Decision) -> TaskDecision {
        match decision {
            Decision::Succeeded { output } => TaskDecision::Succeeded { output: output.clone() },
            Decision::Failed { reason, outputs } => TaskDecision::Failed {
                reason: (*reason).into(),
                outputs: outputs.iter().map(|output| serde_bytes::ByteBuf::from(output.clone())).collect(),
            },
        }
    }
}

impl From<&TaskResponse> for TaskResult {
    fn from(response: &TaskResponse) -> TaskResult {
        match response {
            TaskResponse::Submitted { task_id } => TaskResult::Submitted { task_id: *task_id },
            TaskResponse::Exists { task_id } => TaskResult::Exists { task_id: *task_id },
            TaskResponse::ExistsWithDifferentFields { task_id } => {
                TaskResult::ExistsWithDifferentFields { task_id: *task_id }
            }
            TaskResponse::Assigned { task_id, agent_id } => {
                TaskResult::Assigned { task_id: *task_id, agent_id: *agent_id }
            }
            TaskResponse::Reported { task_id, decision } => {
                TaskResult::Reported { task_id: *task_id, decision: decision.as_ref().map(TaskDecision::from) }
            }
            TaskResponse::Released { agent_id, copies, failed } => {
                TaskResult::Released { agent_id: *agent_id, copies: *copies, failed: failed.clone() }
            }
            TaskResponse::Expired { failed } => TaskResult::Expired { failed: failed.clone() },
            TaskResponse::Error(error) => TaskResult::Error { code: error.into(), message: error.to_string() },
        }
    }
}
