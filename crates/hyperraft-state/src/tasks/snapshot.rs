//! The task store's own snapshot bytes, written inside the state snapshot.
//!
//! Layout (little-endian): `next_id u64 · tasks u64 · finished u64 ·
//! finished × task id (finish order) · tasks × task (id order)`, where a
//! task is its fixed fields, then its byte strings (each `len u32 · bytes`),
//! then its assignments and results. Decoding trusts nothing: every length
//! is bounded before it is read, every field is range-checked, and the
//! indexes are rebuilt and checked against each other.

use std::collections::{BTreeSet, HashMap};

use hyperraft_wire::tasks::{
    ATTEMPTS_MAX, IDEMPOTENCY_KEY_BYTES_MAX, PAYLOAD_BYTES_MAX, REASON_BYTES_MAX, REDUNDANCY_MAX, TASK_TYPE_BYTES_MAX,
};

use super::task::{Assignment, CopyState, FailReason, Outcome, Report, Task, TaskState};
use super::{TaskConfig, TaskStore};
use crate::snapshot::Section;

/// Copies one task can have had: `k` successes, `k` running when attempts
/// ran out, and the attempts themselves.
const COPIES_MAX: u64 = 2 * REDUNDANCY_MAX as u64 + ATTEMPTS_MAX as u64;

impl TaskStore {
    /// Appends the store's snapshot bytes to `out`.
    pub fn encode_snapshot(&self, out: &mut Vec<u8>) {
        for word in [self.next_id, self.tasks.len() as u64, self.finished.len() as u64] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        for id in &self.finished {
            out.extend_from_slice(&id.to_le_bytes());
        }
        for task in self.tasks.values() {
            encode_task(task, out);
        }
    }

    /// Rebuilds a store from [`Self::encode_snapshot`] bytes.
    pub fn decode_snapshot(bytes: &[u8], config: TaskConfig) -> Result<TaskStore, String> {
        let mut input = Section::new(bytes, "task");
        let (next_id, tasks_len, finished_len) = (input.u64()?, input.u64()?, input.u64()?);
        let tasks_max = (config.tasks_max as u64).saturating_add(config.finished_max as u64);
        if tasks_len > tasks_max || finished_len > config.finished_max as u64 || finished_len > tasks_len {
            return Err(format!("{tasks_len} tasks with {finished_len} finished exceed the configured bounds"));
        }
        let mut store = TaskStore::new(config);
        store.next_id = next_id;
        for _ in 0..finished_len {
            store.finished.push_back(input.u64()?);
        }
        for _ in 0..tasks_len {
            let task = decode_task(&mut input)?;
            store.insert_restored(task)?;
        }
        if !input.bytes.is_empty() {
            return Err(format!("{} bytes after the last task", input.bytes.len()));
        }
        store.check_finished_order()?;
        Ok(store)
    }

    fn insert_restored(&mut self, task: Task) -> Result<(), String> {
        let id = task.id;
        let last = self.tasks.last_key_value().map_or(0, |(last, _)| *last);
        if id <= last || id >= self.next_id {
            return Err(format!("task id {id} out of order or not below next id {}", self.next_id));
        }
        if !task.idempotency_key.is_empty() && self.keys.insert(task.idempotency_key.clone(), id).is_some() {
            return Err(format!("task {id} repeats an idempotency key"));
        }
        let running = task.assignments.iter().filter(|copy| copy.state == CopyState::Running);
        if task.is_finished() && running.clone().next().is_some() {
            return Err(format!("finished task {id} has a running copy"));
        }
        for copy in running {
            self.running.entry(copy.agent_id).or_default().insert(id);
        }
        if !task.is_finished() {
            self.open.insert(id);
        }
        if self.open.len() > self.config.tasks_max {
            return Err(format!("more than {} open tasks", self.config.tasks_max));
        }
        self.tasks.insert(id, task);
        Ok(())
    }

    fn check_finished_order(&self) -> Result<(), String> {
        let unique: BTreeSet<u64> = self.finished.iter().copied().collect();
        let finished = self.tasks.values().filter(|task| task.is_finished()).count();
        let all_finished = unique.iter().all(|id| self.tasks.get(id).is_some_and(Task::is_finished));
        if unique.len() != self.finished.len() || unique.len() != finished || !all_finished {
            return Err("the finish order does not list exactly the finished tasks".to_string());
        }
        Ok(())
    }
}

fn put_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn encode_task(task: &Task, out: &mut Vec<u8>) {
    for word in [task.id, task.deadline_ns, task.submitted_ns] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    let state = match &task.state {
        TaskState::Open => 0,
        TaskState::Succeeded { .. } => 1,
        TaskState::Failed { reason: FailReason::NoAgreement } => 2,
        TaskState::Failed { reason: FailReason::AttemptsExhausted } => 3,
        TaskState::Failed { reason: FailReason::DeadlineExceeded } => 4,
    };
    out.extend_from_slice(&[
        task.criticality,
        task.redundancy,
        task.threshold_percent,
        task.attempts_max,
        task.attempts_used,
        state,
    ]);
    if let TaskState::Succeeded { output } = &task.state {
        put_bytes(output, out);
    }
    for bytes in [&task.idempotency_key, &task.task_type, &task.payload] {
        put_bytes(bytes, out);
    }
    out.extend_from_slice(&(task.assignments.len() as u32).to_le_bytes());
    for copy in &task.assignments {
        out.extend_from_slice(&copy.agent_id.to_le_bytes());
        out.extend_from_slice(&copy.assigned_ns.to_le_bytes());
        out.push(copy.state as u8);
    }
    out.extend_from_slice(&(task.results.len() as u32).to_le_bytes());
    for report in &task.results {
        out.extend_from_slice(&report.agent_id.to_le_bytes());
        out.extend_from_slice(&report.reported_ns.to_le_bytes());
        match &report.outcome {
            Outcome::Success(output) => {
                out.push(0);
                put_bytes(output, out);
            }
            Outcome::Failure(reason) => {
                out.push(1);
                put_bytes(reason, out);
            }
        }
    }
}

fn decode_task(input: &mut Section<'_>) -> Result<Task, String> {
    let (id, deadline_ns, submitted_ns) = (input.u64()?, input.u64()?, input.u64()?);
    let fixed = input.take(6)?;
    let (criticality, redundancy, threshold_percent, attempts_max, attempts_used, state) =
        (fixed[0], fixed[1], fixed[2], fixed[3], fixed[4], fixed[5]);
    if !(1..=REDUNDANCY_MAX).contains(&redundancy) || threshold_percent > 100 {
        return Err(format!("task {id}: redundancy {redundancy} or threshold {threshold_percent} out of range"));
    }
    if !(1..=ATTEMPTS_MAX).contains(&attempts_max) || u64::from(attempts_used) > COPIES_MAX {
        return Err(format!("task {id}: attempts {attempts_used}/{attempts_max} out of range"));
    }
    let state = match state {
        0 => TaskState::Open,
        1 => TaskState::Succeeded { output: input.bytes(PAYLOAD_BYTES_MAX)? },
        2 => TaskState::Failed { reason: FailReason::NoAgreement },
        3 => TaskState::Failed { reason: FailReason::AttemptsExhausted },
        4 => TaskState::Failed { reason: FailReason::DeadlineExceeded },
        other => return Err(format!("task {id}: unknown state {other}")),
    };
    let idempotency_key = input.bytes(IDEMPOTENCY_KEY_BYTES_MAX)?;
    let task_type = input.bytes(TASK_TYPE_BYTES_MAX)?;
    let payload = input.bytes(PAYLOAD_BYTES_MAX)?;
    let assignments = decode_assignments(input)?;
    let results = decode_results(input)?;
    let task = Task {
        id,
        idempotency_key,
        task_type,
        payload,
        criticality,
        redundancy,
        threshold_percent,
        deadline_ns,
        attempts_max,
        attempts_used,
        submitted_ns,
        state,
        assignments,
        results,
    };
    check_copies(&task)?;
    Ok(task)
}

fn decode_assignments(input: &mut Section<'_>) -> Result<Vec<Assignment>, String> {
    let count = copies(input)?;
    let mut assignments = Vec::with_capacity(count);
    for _ in 0..count {
        let (agent_id, assigned_ns) = (input.u64()?, input.u64()?);
        let state = match input.take(1)?[0] {
            0 => CopyState::Running,
            1 => CopyState::Reported,
            2 => CopyState::Released,
            3 => CopyState::Cancelled,
            other => return Err(format!("unknown copy state {other}")),
        };
        assignments.push(Assignment { agent_id, assigned_ns, state });
    }
    Ok(assignments)
}

fn decode_results(input: &mut Section<'_>) -> Result<Vec<Report>, String> {
    let count = copies(input)?;
    let mut results = Vec::with_capacity(count);
    for _ in 0..count {
        let (agent_id, reported_ns) = (input.u64()?, input.u64()?);
        let outcome = match input.take(1)?[0] {
            0 => Outcome::Success(input.bytes(PAYLOAD_BYTES_MAX)?),
            1 => Outcome::Failure(input.bytes(REASON_BYTES_MAX)?),
            other => return Err(format!("unknown outcome {other}")),
        };
        results.push(Report { agent_id, reported_ns, outcome });
    }
    Ok(results)
}

/// Each agent has at most one copy, and exactly the reported copies have a result.
fn check_copies(task: &Task) -> Result<(), String> {
    let mut agents = HashMap::new();
    for copy in &task.assignments {
        if agents.insert(copy.agent_id, copy.state).is_some() {
            return Err(format!("task {}: agent {} has two copies", task.id, copy.agent_id));
        }
    }
    let reported = agents.values().filter(|state| **state == CopyState::Reported).count();
    let matched = task.results.iter().all(|report| agents.get(&report.agent_id) == Some(&CopyState::Reported));
    let unique: BTreeSet<u64> = task.results.iter().map(|report| report.agent_id).collect();
    if reported != task.results.len() || !matched || unique.len() != task.results.len() {
        return Err(format!("task {}: results do not match reported copies", task.id));
    }
    Ok(())
}

/// The count of a task's copies or results: a `u32` at most [`COPIES_MAX`].
fn copies(input: &mut Section<'_>) -> Result<usize, String> {
    let count = u64::from(input.u32()?);
    if count > COPIES_MAX {
        return Err(format!("{count} copies exceed {COPIES_MAX}"));
    }
    Ok(count as usize)
}
