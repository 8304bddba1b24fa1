//! The compact task command layout, its borrowed views and its writer.
//!
//! A `Tasks` frame's body is `count` commands back to back, with no padding:
//! every command starts with a fixed header whose lengths say exactly where
//! it ends. All integers are little-endian. Every command begins with a
//! one-byte tag and a one-byte flags field; flag bits not defined below are
//! reserved and must be zero.
//!
//! ```text
//! SubmitTask    tag=1 u8 | flags u8 (none) | criticality u8 | redundancy u8
//!               | threshold_percent u8 | attempts_max u8 | key_len u16
//!               | type_len u16 | payload_len u32 | deadline_ns u64
//!               | idempotency_key | task_type | payload          (22-byte header)
//! AssignTask    tag=2 u8 | flags u8 (none) | task_id u64 | agent_id u64
//!                                                               (18 bytes)
//! ReportResult  tag=3 u8 | flags u8 (bit 0 failure) | task_id u64
//!               | agent_id u64 | len u32 | output or failure reason
//!                                                               (22-byte header)
//! ReleaseAgent  tag=4 u8 | flags u8 (none) | agent_id u64       (10 bytes)
//! ExpireTasks   tag=5 u8 | flags u8 (none)                      (2 bytes)
//! ReleaseCopy   tag=6 u8 | flags u8 (none) | task_id u64 | agent_id u64
//!                                                               (18 bytes)
//! ```
//!
//! Bounds: an idempotency key is at most [`IDEMPOTENCY_KEY_BYTES_MAX`] bytes
//! (empty means "no deduplication"), a task type at most
//! [`TASK_TYPE_BYTES_MAX`], a payload and a successful output at most
//! [`PAYLOAD_BYTES_MAX`], a failure reason at most [`REASON_BYTES_MAX`].
//! Redundancy is `1..=`[`REDUNDANCY_MAX`], attempts `1..=`[`ATTEMPTS_MAX`],
//! and the threshold `0..=100` where 0 means a strict majority of the
//! redundancy. The whole frame is bounded by [`crate::Limits`].
//!
//! The encoding is canonical, decoding validates the whole body once, and
//! iterating the validated [`TaskCommands`] neither fails nor allocates.

use crate::commands::{le_u16, le_u32, le_u64, CommandIter, CommandSet, Commands};
use crate::frame::{begin_frame, seal_frame, EncodeError, Kind, Limits};

/// Longest idempotency key accepted, in bytes.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 256;
/// Longest task type accepted, in bytes.
pub const TASK_TYPE_BYTES_MAX: usize = 128;
/// Longest payload or successful output accepted, in bytes.
pub const PAYLOAD_BYTES_MAX: usize = 1 << 20;
/// Longest failure reason accepted, in bytes.
pub const REASON_BYTES_MAX: usize = 4096;
/// Most copies of one task run by distinct agents.
pub const REDUNDANCY_MAX: u8 = 7;
/// Most attempts (copies that may fail or be released) of one task.
pub const ATTEMPTS_MAX: u8 = 16;

const TAG_SUBMIT: u8 = 1;
const TAG_ASSIGN: u8 = 2;
const TAG_REPORT: u8 = 3;
const TAG_RELEASE: u8 = 4;
const TAG_EXPIRE: u8 = 5;
const TAG_RELEASE_COPY: u8 = 6;
const FLAG_FAILURE: u8 = 1 << 0;
const SUBMIT_HEADER_BYTES: usize = 22;
const ASSIGN_BYTES: usize = 18;
const REPORT_HEADER_BYTES: usize = 22;
const RELEASE_BYTES: usize = 10;
const EXPIRE_BYTES: usize = 2;

/// Why one task command was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TaskDecodeError {
    /// The command runs past the end of the body.
    #[error("truncated command")]
    Truncated,
    /// A command tag with no command.
    #[error("unknown command tag {0}")]
    UnknownTag(u8),
    /// Flag bits the command does not define; they carry the bits set.
    #[error("reserved flag bits set: {0:#04x}")]
    ReservedFlags(u8),
    /// An idempotency key longer than [`IDEMPOTENCY_KEY_BYTES_MAX`].
    #[error("idempotency key of {0} bytes exceeds {IDEMPOTENCY_KEY_BYTES_MAX}")]
    KeyTooLong(usize),
    /// A task type longer than [`TASK_TYPE_BYTES_MAX`].
    #[error("task type of {0} bytes exceeds {TASK_TYPE_BYTES_MAX}")]
    TaskTypeTooLong(usize),
    /// A payload or output longer than [`PAYLOAD_BYTES_MAX`].
    #[error("payload of {0} bytes exceeds {PAYLOAD_BYTES_MAX}")]
    PayloadTooLong(usize),
    /// A failure reason longer than [`REASON_BYTES_MAX`].
    #[error("failure reason of {0} bytes exceeds {REASON_BYTES_MAX}")]
    ReasonTooLong(usize),
    /// A redundancy outside `1..=REDUNDANCY_MAX`.
    #[error("redundancy {0} is outside 1..={REDUNDANCY_MAX}")]
    RedundancyOutOfRange(u8),
    /// A threshold above 100 percent.
    #[error("agreement threshold {0}% is above 100")]
    ThresholdOutOfRange(u8),
    /// An attempts bound outside `1..=ATTEMPTS_MAX`.
    #[error("attempts {0} is outside 1..={ATTEMPTS_MAX}")]
    AttemptsOutOfRange(u8),
    /// Bytes left over after the frame's `count` commands (reported with
    /// the index one past the last command).
    #[error("{0} bytes left over after the declared commands")]
    TrailingBytes(usize),
}

/// Submit a task; an idempotency key seen before returns the existing task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubmitTaskView<'a> {
    /// Deduplicates submissions; empty means no deduplication.
    pub idempotency_key: &'a [u8],
    /// What kind of agent runs it.
    pub task_type: &'a [u8],
    /// Input handed to each agent.
    pub payload: &'a [u8],
    /// Opaque priority hint for the dispatcher.
    pub criticality: u8,
    /// How many distinct agents run a copy (`k`), `1..=REDUNDANCY_MAX`.
    pub redundancy: u8,
    /// Percent of `k` identical outputs needed; 0 for a strict majority.
    pub threshold_percent: u8,
    /// Batch timestamp after which the task fails; 0 for none.
    pub deadline_ns: u64,
    /// Copies that may fail or be released before the task gives up.
    pub attempts_max: u8,
}

/// Assign a copy of a task to an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssignTaskView {
    /// The task.
    pub task_id: u64,
    /// The agent that runs the copy.
    pub agent_id: u64,
}

/// What an agent's copy of a task produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskOutcomeView<'a> {
    /// The copy ran; its output.
    Success(&'a [u8]),
    /// The copy failed; why, for people.
    Failure(&'a [u8]),
}

/// An agent reports the outcome of its copy of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportResultView<'a> {
    /// The task.
    pub task_id: u64,
    /// The reporting agent.
    pub agent_id: u64,
    /// What the copy produced.
    pub outcome: TaskOutcomeView<'a>,
}

/// An agent is gone: its running copies are released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleaseAgentView {
    /// The agent.
    pub agent_id: u64,
}

/// One agent's copy of one task ends without a result (it ran past its
/// run timeout, or could not be delivered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleaseCopyView {
    /// The task.
    pub task_id: u64,
    /// The agent whose copy ends.
    pub agent_id: u64,
}

/// One task command, borrowed from a validated frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskCommand<'a> {
    /// See [`SubmitTaskView`].
    Submit(SubmitTaskView<'a>),
    /// See [`AssignTaskView`].
    Assign(AssignTaskView),
    /// See [`ReportResultView`].
    Report(ReportResultView<'a>),
    /// See [`ReleaseAgentView`].
    Release(ReleaseAgentView),
    /// Fail every task whose deadline has passed at the batch timestamp.
    Expire,
    /// See [`ReleaseCopyView`].
    ReleaseCopy(ReleaseCopyView),
}

/// How a `Tasks` frame's commands are read.
#[derive(Clone, Copy, Debug)]
pub struct TaskSet;

impl CommandSet for TaskSet {
    type Command<'a> = TaskCommand<'a>;
    type Error = TaskDecodeError;

    fn parse(bytes: &[u8]) -> Parsed<'_, TaskCommand<'_>> {
        command(bytes)
    }

    fn trailing(len: usize) -> TaskDecodeError {
        TaskDecodeError::TrailingBytes(len)
    }
}

/// The validated commands of a `Tasks` frame.
pub type TaskCommands<'a> = Commands<'a, TaskSet>;

/// Iterates the commands of a validated `Tasks` body.
pub type TaskIter<'a> = CommandIter<'a, TaskSet>;

type Parsed<'a, T> = Result<(T, &'a [u8]), TaskDecodeError>;

fn take(bytes: &[u8], len: usize) -> Parsed<'_, &[u8]> {
    if len > bytes.len() {
        return Err(TaskDecodeError::Truncated);
    }
    Ok(bytes.split_at(len))
}

fn check_flags(flags: u8, defined: u8) -> Result<(), TaskDecodeError> {
    match flags & !defined {
        0 => Ok(()),
        reserved => Err(TaskDecodeError::ReservedFlags(reserved)),
    }
}

/// Parses one command; `take` bounds every slice before it is indexed, so
/// the fixed-offset reads below stay inside the header they read.
fn command(bytes: &[u8]) -> Parsed<'_, TaskCommand<'_>> {
    let tag = *bytes.first().ok_or(TaskDecodeError::Truncated)?;
    let flags = *bytes.get(1).ok_or(TaskDecodeError::Truncated)?;
    let defined = if tag == TAG_REPORT { FLAG_FAILURE } else { 0 };
    if !(TAG_SUBMIT..=TAG_RELEASE_COPY).contains(&tag) {
        return Err(TaskDecodeError::UnknownTag(tag));
    }
    check_flags(flags, defined)?;
    match tag {
        TAG_SUBMIT => submit(bytes).map(|(view, rest)| (TaskCommand::Submit(view), rest)),
        TAG_ASSIGN => {
            let (header, rest) = take(bytes, ASSIGN_BYTES)?;
            let view = AssignTaskView { task_id: le_u64(header, 2), agent_id: le_u64(header, 10) };
            Ok((TaskCommand::Assign(view), rest))
        }
        TAG_REPORT => report(bytes, flags).map(|(view, rest)| (TaskCommand::Report(view), rest)),
        TAG_RELEASE => {
            let (header, rest) = take(bytes, RELEASE_BYTES)?;
            Ok((TaskCommand::Release(ReleaseAgentView { agent_id: le_u64(header, 2) }), rest))
        }
        TAG_RELEASE_COPY => {
            let (header, rest) = take(bytes, ASSIGN_BYTES)?;
            let view = ReleaseCopyView { task_id: le_u64(header, 2), agent_id: le_u64(header, 10) };
            Ok((TaskCommand::ReleaseCopy(view), rest))
        }
        _ => take(bytes, EXPIRE_BYTES).map(|(_, rest)| (TaskCommand::Expire, rest)),
    }
}

fn submit(bytes: &[u8]) -> Parsed<'_, SubmitTaskView<'_>> {
    let (header, rest) = take(bytes, SUBMIT_HEADER_BYTES)?;
    let (key_len, type_len, payload_len) =
        (le_u16(header, 6) as usize, le_u16(header, 8) as usize, le_u32(header, 10) as usize);
    let (idempotency_key, rest) = take(rest, key_len)?;
    let (task_type, rest) = take(rest, type_len)?;
    let (payload, rest) = take(rest, payload_len)?;
    let view = SubmitTaskView {
        idempotency_key,
        task_type,
        payload,
        criticality: header[2],
        redundancy: header[3],
        threshold_percent: header[4],
        attempts_max: header[5],
        deadline_ns: le_u64(header, 14),
    };
    check_submit(&view)?;
    Ok((view, rest))
}

fn report(bytes: &[u8], flags: u8) -> Parsed<'_, ReportResultView<'_>> {
    let (header, rest) = take(bytes, REPORT_HEADER_BYTES)?;
    let (data, rest) = take(rest, le_u32(header, 18) as usize)?;
    let outcome =
        if flags & FLAG_FAILURE != 0 { TaskOutcomeView::Failure(data) } else { TaskOutcomeView::Success(data) };
    let view = ReportResultView { task_id: le_u64(header, 2), agent_id: le_u64(header, 10), outcome };
    check_outcome(&view.outcome)?;
    Ok((view, rest))
}

/// Checks every bound of a submission.
pub(crate) fn check_submit(view: &SubmitTaskView<'_>) -> Result<(), TaskDecodeError> {
    if view.idempotency_key.len() > IDEMPOTENCY_KEY_BYTES_MAX {
        return Err(TaskDecodeError::KeyTooLong(view.idempotency_key.len()));
    }
    if view.task_type.len() > TASK_TYPE_BYTES_MAX {
        return Err(TaskDecodeError::TaskTypeTooLong(view.task_type.len()));
    }
    if view.payload.len() > PAYLOAD_BYTES_MAX {
        return Err(TaskDecodeError::PayloadTooLong(view.payload.len()));
    }
    if !(1..=REDUNDANCY_MAX).contains(&view.redundancy) {
        return Err(TaskDecodeError::RedundancyOutOfRange(view.redundancy));
    }
    if view.threshold_percent > 100 {
        return Err(TaskDecodeError::ThresholdOutOfRange(view.threshold_percent));
    }
    if !(1..=ATTEMPTS_MAX).contains(&view.attempts_max) {
        return Err(TaskDecodeError::AttemptsOutOfRange(view.attempts_max));
    }
    Ok(())
}

fn check_outcome(outcome: &TaskOutcomeView<'_>) -> Result<(), TaskDecodeError> {
    match outcome {
        TaskOutcomeView::Success(output) if output.len() > PAYLOAD_BYTES_MAX => {
            Err(TaskDecodeError::PayloadTooLong(output.len()))
        }
        TaskOutcomeView::Failure(reason) if reason.len() > REASON_BYTES_MAX => {
            Err(TaskDecodeError::ReasonTooLong(reason.len()))
        }
        _ => Ok(()),
    }
}

/// Builds a `Tasks` frame in the caller's buffer, validating as it goes.
///
/// Like [`crate::KvBatchWriter`]: a refused command leaves the writer as it
/// was, [`finish`](TaskBatchWriter::finish) seals the frame, and a writer
/// dropped unfinished removes its partial frame from `out`.
pub struct TaskBatchWriter<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
    count: u32,
    limits: Limits,
    finished: bool,
}

impl<'o> TaskBatchWriter<'o> {
    /// Starts a frame at the end of `out`, bounded by [`Limits::default`].
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        TaskBatchWriter::with_limits(out, Limits::default())
    }

    /// Starts a frame at the end of `out`, bounded by `limits`.
    pub fn with_limits(out: &'o mut Vec<u8>, limits: Limits) -> Self {
        let start = begin_frame(out, 0);
        TaskBatchWriter { out, start, count: 0, limits, finished: false }
    }

    /// Number of commands written so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no command has been written yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends any task command.
    pub fn push(&mut self, command: &TaskCommand<'_>) -> Result<(), EncodeError> {
        match command {
            TaskCommand::Submit(view) => self.submit(view),
            TaskCommand::Assign(view) => self.assign(*view),
            TaskCommand::Report(view) => self.report(view),
            TaskCommand::Release(view) => self.release(*view),
            TaskCommand::Expire => self.expire(),
            TaskCommand::ReleaseCopy(view) => self.release_copy(*view),
        }
    }

    /// Appends a SubmitTask.
    pub fn submit(&mut self, view: &SubmitTaskView<'_>) -> Result<(), EncodeError> {
        let bytes = SUBMIT_HEADER_BYTES + view.idempotency_key.len() + view.task_type.len() + view.payload.len();
        self.admit(check_submit(view), bytes)?;
        let out = &mut *self.out;
        out.extend_from_slice(&[TAG_SUBMIT, 0, view.criticality, view.redundancy]);
        out.extend_from_slice(&[view.threshold_percent, view.attempts_max]);
        // `check_submit` bounded every length to fit its field.
        out.extend_from_slice(&(view.idempotency_key.len() as u16).to_le_bytes());
        out.extend_from_slice(&(view.task_type.len() as u16).to_le_bytes());
        out.extend_from_slice(&(view.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&view.deadline_ns.to_le_bytes());
        out.extend_from_slice(view.idempotency_key);
        out.extend_from_slice(view.task_type);
        out.extend_from_slice(view.payload);
        Ok(())
    }

    /// Appends an AssignTask.
    pub fn assign(&mut self, view: AssignTaskView) -> Result<(), EncodeError> {
        self.admit(Ok(()), ASSIGN_BYTES)?;
        self.out.extend_from_slice(&[TAG_ASSIGN, 0]);
        self.out.extend_from_slice(&view.task_id.to_le_bytes());
        self.out.extend_from_slice(&view.agent_id.to_le_bytes());
        Ok(())
    }

    /// Appends a ReportResult.
    pub fn report(&mut self, view: &ReportResultView<'_>) -> Result<(), EncodeError> {
        let (flags, data) = match view.outcome {
            TaskOutcomeView::Success(output) => (0, output),
            TaskOutcomeView::Failure(reason) => (FLAG_FAILURE, reason),
        };
        self.admit(check_outcome(&view.outcome), REPORT_HEADER_BYTES + data.len())?;
        self.out.extend_from_slice(&[TAG_REPORT, flags]);
        self.out.extend_from_slice(&view.task_id.to_le_bytes());
        self.out.extend_from_slice(&view.agent_id.to_le_bytes());
        self.out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.out.extend_from_slice(data);
        Ok(())
    }

    /// Appends a ReleaseAgent.
    pub fn release(&mut self, view: ReleaseAgentView) -> Result<(), EncodeError> {
        self.admit(Ok(()), RELEASE_BYTES)?;
        self.out.extend_from_slice(&[TAG_RELEASE, 0]);
        self.out.extend_from_slice(&view.agent_id.to_le_bytes());
        Ok(())
    }

    /// Appends a ReleaseCopy.
    pub fn release_copy(&mut self, view: ReleaseCopyView) -> Result<(), EncodeError> {
        self.admit(Ok(()), ASSIGN_BYTES)?;
        self.out.extend_from_slice(&[TAG_RELEASE_COPY, 0]);
        self.out.extend_from_slice(&view.task_id.to_le_bytes());
        self.out.extend_from_slice(&view.agent_id.to_le_bytes());
        Ok(())
    }

    /// Appends an ExpireTasks.
    pub fn expire(&mut self) -> Result<(), EncodeError> {
        self.admit(Ok(()), EXPIRE_BYTES)?;
        self.out.extend_from_slice(&[TAG_EXPIRE, 0]);
        Ok(())
    }

    /// Completes the frame header; returns the frame length in bytes.
    pub fn finish(mut self) -> usize {
        self.finished = true;
        seal_frame(self.out, self.start, Kind::Tasks, self.count)
    }

    /// Admits one command of `command_bytes` that checked as `check`.
    fn admit(&mut self, check: Result<(), TaskDecodeError>, command_bytes: usize) -> Result<(), EncodeError> {
        check.map_err(|reason| EncodeError::Tasks { index: self.count, reason })?;
        if self.count >= self.limits.count_max {
            let count = u64::from(self.count) + 1;
            return Err(EncodeError::CountTooLarge { count, max: self.limits.count_max });
        }
        let frame_bytes = (self.out.len() - self.start) as u64 + command_bytes as u64;
        if frame_bytes > u64::from(self.limits.frame_bytes_max) {
            return Err(EncodeError::Oversize { bytes: frame_bytes, max: self.limits.frame_bytes_max });
        }
        self.out.reserve(command_bytes);
        self.count += 1;
        Ok(())
    }
}

impl Drop for TaskBatchWriter<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.start);
        }
    }
}

#[cfg(test)]
mod tests;
