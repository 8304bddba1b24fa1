//! The task state machine for agents (capability C9, first slice): tasks
//! are submitted, copies are assigned to agents, agents report results, and
//! the store decides each task exactly once.
//!
//! # Semantics
//!
//! Everything is deterministic: the only clock is the batch timestamp
//! (nanoseconds) that every replica applies with, and task ids come from a
//! counter kept in the state (the first task is 1). A batch is applied
//! sequentially, command by command, in log order; task batches are small
//! and their commands touch shared indexes, so there is no parallel path.
//!
//! * `SubmitTask` creates an open task and returns its id. A non-empty
//!   idempotency key that names a kept task returns that task's id and
//!   changes nothing: `Exists` when every field is equal, else
//!   `ExistsWithDifferentFields`. Keys are forgotten with their task.
//! * `AssignTask` gives a copy of an open task to an agent, at the batch
//!   timestamp. Refused when the task is finished (`TaskFinished`), when
//!   the agent already holds or ran a copy (`AgentAlreadyAssigned`), or when
//!   no copy is needed (`CopiesFull`, see "needed" below).
//! * `ReportResult` records the outcome of the agent's running copy, once:
//!   a second report from the same agent is `Exists` and changes nothing.
//!   A report from an agent without a copy, or whose copy was released, is
//!   `NotAssigned`; a report on a finished task from an agent that had not
//!   reported is `TaskFinished`.
//! * `ReleaseAgent` ends every running copy of the agent (it died or its
//!   lease expired): each counts one attempt.
//! * `ReleaseCopy` ends one agent's running copy of one task (it ran past
//!   its run timeout, or could not be delivered): one attempt, like a
//!   release; `NotAssigned` when that agent runs no copy of the task.
//! * `ExpireTasks` fails every open task whose non-zero deadline is at or
//!   before the batch timestamp with `DeadlineExceeded`.
//!
//! # The decision rule
//!
//! Let `k` be the redundancy and `required` the number of identical
//! successful outputs the task needs: `ceil(threshold × k / 100)` (at least
//! 1), or `floor(k / 2) + 1` — a strict majority — when the threshold is 0.
//! `attempts_used` counts copies that ended without an output (a failure
//! report or a release); attempts are left while `attempts_used <
//! attempts_max`. A task never holds more than `k` successful outputs.
//! After every report and release the store evaluates, in this order:
//!
//! 1. Some output was reported identically by at least `required` agents:
//!    the task `Succeeded` with it (checked after each report, so the
//!    first output to get there wins).
//! 2. Let `best` be the largest count of one identical output and `open`
//!    the results still obtainable: `k − successes` while attempts are
//!    left, else the copies still running. If `best + open < required` the
//!    task can no longer agree and fails: `NoAgreement` (with every
//!    successful output attached to the response) when a report decided
//!    it, `AttemptsExhausted` when a release did.
//!
//! A copy is "needed" while the task is open, attempts are left, and
//! `running < k − successes`; [`TaskStore::pending`] lists those tasks.
//! Once a task is finished its state never changes again; its running
//! copies are cancelled.
//!
//! # Bounds
//!
//! [`TaskConfig`] bounds open tasks (`TasksFull`), finished tasks kept (the
//! oldest finished is evicted first, together with its idempotency key) and
//! payload bytes (`PayloadTooLarge`). Wire bounds (key, type, output sizes,
//! redundancy, attempts) are enforced by the decoder before a command gets
//! here.

mod snapshot;
mod store;
mod task;

pub use store::TaskStore;
pub use task::{Assignment, CopyState, FailReason, Outcome, Report, Task, TaskState};

/// Bounds of one task store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskConfig {
    /// Most open tasks; a submission at this bound is refused with
    /// [`TaskError::TasksFull`].
    pub tasks_max: usize,
    /// Most finished tasks kept for reads; the oldest finished is evicted
    /// first, with its idempotency key.
    pub finished_max: usize,
    /// Largest payload accepted, at most the wire bound.
    pub payload_bytes_max: usize,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            tasks_max: 100_000,
            finished_max: 100_000,
            payload_bytes_max: hyperraft_wire::tasks::PAYLOAD_BYTES_MAX,
        }
    }
}

/// Why a task command was refused; a refused command changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// No kept task has this id.
    #[error("task {task_id} not found")]
    NotFound { task_id: u64 },
    /// The task is finished; nothing more is assigned or accepted.
    #[error("task {task_id} is finished")]
    TaskFinished { task_id: u64 },
    /// The agent already holds or ran a copy of the task.
    #[error("agent {agent_id} already holds or ran a copy of task {task_id}")]
    AgentAlreadyAssigned { task_id: u64, agent_id: u64 },
    /// The task needs no more copies now.
    #[error("task {task_id} needs no more copies")]
    CopiesFull { task_id: u64 },
    /// The agent holds no running copy of the task.
    #[error("agent {agent_id} holds no copy of task {task_id}")]
    NotAssigned { task_id: u64, agent_id: u64 },
    /// The store holds its limit of open tasks.
    #[error("the store holds its limit of {max} open tasks")]
    TasksFull { max: usize },
    /// The payload is larger than the configured bound.
    #[error("payload of {bytes} bytes exceeds the limit of {max}")]
    PayloadTooLarge { bytes: usize, max: usize },
}

/// How a task was decided, as answered to the command that decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Enough agents agreed on this output.
    Succeeded { output: Vec<u8> },
    /// The task failed; `outputs` are the successful outputs received, in
    /// report order.
    Failed { reason: FailReason, outputs: Vec<Vec<u8>> },
}

/// The result of one task command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskResponse {
    /// A new task.
    Submitted { task_id: u64 },
    /// The submission or report was already applied; nothing changed.
    Exists { task_id: u64 },
    /// The idempotency key names a task with other fields; nothing changed.
    ExistsWithDifferentFields { task_id: u64 },
    /// The agent now runs a copy.
    Assigned { task_id: u64, agent_id: u64 },
    /// The result was recorded; `decision` when it decided the task.
    Reported { task_id: u64, decision: Option<Decision> },
    /// The agent's `copies` running copies were released; `failed` are the
    /// tasks that failed with `AttemptsExhausted` because of it.
    Released { agent_id: u64, copies: u32, failed: Vec<u64> },
    /// These tasks failed with `DeadlineExceeded`, oldest first.
    Expired { failed: Vec<u64> },
    /// Refused; nothing changed.
    Error(TaskError),
}

#[cfg(test)]
mod tests;
