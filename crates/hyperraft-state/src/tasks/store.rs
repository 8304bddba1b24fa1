//! [`TaskStore`]: the tasks, their indexes, and the commands that change them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use hyperraft_wire::{
    AssignTaskView, ReleaseCopyView, ReportResultView, SubmitTaskView, TaskCommand, TaskCommands, TaskOutcomeView,
};

use super::task::{Assignment, CopyState, FailReason, Outcome, Report, Task, TaskState};
use super::{Decision, TaskConfig, TaskError, TaskResponse};

/// All kept tasks and the indexes over them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskStore {
    pub(super) config: TaskConfig,
    /// The id the next submission gets.
    pub(super) next_id: u64,
    /// Every kept task by id; ids grow, so this is oldest first.
    pub(super) tasks: BTreeMap<u64, Task>,
    /// Ids of open tasks.
    pub(super) open: BTreeSet<u64>,
    /// Ids of finished tasks in the order they finished, oldest first.
    pub(super) finished: VecDeque<u64>,
    /// Non-empty idempotency keys of kept tasks.
    pub(super) keys: HashMap<Vec<u8>, u64>,
    /// Running copies: agent id → task ids.
    pub(super) running: BTreeMap<u64, BTreeSet<u64>>,
}

impl TaskStore {
    pub fn new(config: TaskConfig) -> TaskStore {
        TaskStore {
            config,
            next_id: 1,
            tasks: BTreeMap::new(),
            open: BTreeSet::new(),
            finished: VecDeque::new(),
            keys: HashMap::new(),
            running: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &TaskConfig {
        &self.config
    }

    /// Number of kept tasks, open and finished.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// A kept task: its state, assignments and results.
    pub fn task(&self, task_id: u64) -> Option<&Task> {
        self.tasks.get(&task_id)
    }

    /// Up to `max` open tasks of `task_type` that need more copies, oldest
    /// first. Scans the open tasks; they are bounded by `tasks_max`.
    pub fn pending(&self, task_type: &[u8], max: usize) -> Vec<u64> {
        let tasks = self.open.iter().map(|id| &self.tasks[id]);
        tasks.filter(|task| task.task_type == task_type && task.needed() > 0).map(|task| task.id).take(max).collect()
    }

    /// Agents that run at least one copy, by id.
    pub fn agents_running(&self) -> impl Iterator<Item = u64> + '_ {
        self.running.keys().copied()
    }

    /// Every running copy as `(task id, agent id, batch timestamp of its
    /// assignment)`, by task id. Bounded by the open tasks times `k`.
    pub fn running_copies(&self) -> Vec<(u64, u64, u64)> {
        let tasks = self.open.iter().map(|id| &self.tasks[id]);
        let copies = tasks.flat_map(|task| {
            let running = task.assignments.iter().filter(|copy| copy.state == CopyState::Running);
            running.map(move |copy| (task.id, copy.agent_id, copy.assigned_ns))
        });
        copies.collect()
    }

    /// Whether some open task's deadline is at or before `now_ns`.
    pub fn any_due(&self, now_ns: u64) -> bool {
        self.open.iter().any(|id| {
            let deadline_ns = self.tasks[id].deadline_ns;
            deadline_ns != 0 && deadline_ns <= now_ns
        })
    }

    /// Distinct task types of open tasks that need more copies.
    pub fn pending_types(&self) -> BTreeSet<Vec<u8>> {
        let tasks = self.open.iter().map(|id| &self.tasks[id]);
        tasks.filter(|task| task.needed() > 0).map(|task| task.task_type.clone()).collect()
    }

    /// How many copies the agent runs, without listing them.
    pub fn running_count(&self, agent_id: u64) -> usize {
        self.running.get(&agent_id).map_or(0, |tasks| tasks.len())
    }

    /// Tasks the agent runs a copy of, oldest first.
    pub fn tasks_of_agent(&self, agent_id: u64) -> Vec<u64> {
        self.running.get(&agent_id).map(|tasks| tasks.iter().copied().collect()).unwrap_or_default()
    }

    /// Applies a batch in order at batch timestamp `now_ns`, one response
    /// per command.
    pub fn apply_batch(&mut self, commands: &TaskCommands<'_>, now_ns: u64, out: &mut Vec<TaskResponse>) {
        out.reserve(commands.len());
        for command in commands.iter() {
            out.push(self.apply(&command, now_ns));
        }
    }

    /// Applies one command at batch timestamp `now_ns`.
    pub fn apply(&mut self, command: &TaskCommand<'_>, now_ns: u64) -> TaskResponse {
        let result = match command {
            TaskCommand::Submit(view) => self.submit(view, now_ns),
            TaskCommand::Assign(view) => self.assign(*view, now_ns),
            TaskCommand::Report(view) => self.report(view, now_ns),
            TaskCommand::Release(view) => Ok(self.release(view.agent_id, now_ns)),
            TaskCommand::Expire => Ok(self.expire(now_ns)),
            TaskCommand::ReleaseCopy(view) => self.release_copy(*view),
        };
        result.unwrap_or_else(TaskResponse::Error)
    }

    fn submit(&mut self, view: &SubmitTaskView<'_>, now_ns: u64) -> Result<TaskResponse, TaskError> {
        if let Some(&task_id) = self.keys.get(view.idempotency_key) {
            let task = &self.tasks[&task_id];
            let same = task.task_type == view.task_type
                && task.payload == view.payload
                && task.criticality == view.criticality
                && task.redundancy == view.redundancy
                && task.threshold_percent == view.threshold_percent
                && task.deadline_ns == view.deadline_ns
                && task.attempts_max == view.attempts_max;
            return Ok(if same {
                TaskResponse::Exists { task_id }
            } else {
                TaskResponse::ExistsWithDifferentFields { task_id }
            });
        }
        if view.payload.len() > self.config.payload_bytes_max {
            return Err(TaskError::PayloadTooLarge { bytes: view.payload.len(), max: self.config.payload_bytes_max });
        }
        if self.open.len() >= self.config.tasks_max {
            return Err(TaskError::TasksFull { max: self.config.tasks_max });
        }
        let task_id = self.next_id;
        self.next_id += 1;
        let task = Task {
            id: task_id,
            idempotency_key: view.idempotency_key.to_vec(),
            task_type: view.task_type.to_vec(),
            payload: view.payload.to_vec(),
            criticality: view.criticality,
            redundancy: view.redundancy,
            threshold_percent: view.threshold_percent,
            deadline_ns: view.deadline_ns,
            attempts_max: view.attempts_max,
            attempts_used: 0,
            submitted_ns: now_ns,
            state: TaskState::Open,
            assignments: Vec::new(),
            results: Vec::new(),
        };
        if !view.idempotency_key.is_empty() {
            self.keys.insert(task.idempotency_key.clone(), task_id);
        }
        self.tasks.insert(task_id, task);
        self.open.insert(task_id);
        Ok(TaskResponse::Submitted { task_id })
    }

    fn assign(&mut self, view: AssignTaskView, now_ns: u64) -> Result<TaskResponse, TaskError> {
        let AssignTaskView { task_id, agent_id } = view;
        let task = self.tasks.get_mut(&task_id).ok_or(TaskError::NotFound { task_id })?;
        if task.is_finished() {
            return Err(TaskError::TaskFinished { task_id });
        }
        if task.assignments.iter().any(|copy| copy.agent_id == agent_id) {
            return Err(TaskError::AgentAlreadyAssigned { task_id, agent_id });
        }
        if task.needed() == 0 {
            return Err(TaskError::CopiesFull { task_id });
        }
        task.assignments.push(Assignment { agent_id, assigned_ns: now_ns, state: CopyState::Running });
        self.running.entry(agent_id).or_default().insert(task_id);
        Ok(TaskResponse::Assigned { task_id, agent_id })
    }

    fn report(&mut self, view: &ReportResultView<'_>, now_ns: u64) -> Result<TaskResponse, TaskError> {
        let ReportResultView { task_id, agent_id, outcome } = *view;
        let task = self.tasks.get_mut(&task_id).ok_or(TaskError::NotFound { task_id })?;
        let copy = task.assignments.iter_mut().find(|copy| copy.agent_id == agent_id);
        let copy = copy.ok_or(TaskError::NotAssigned { task_id, agent_id })?;
        match copy.state {
            CopyState::Reported => return Ok(TaskResponse::Exists { task_id }),
            CopyState::Released => return Err(TaskError::NotAssigned { task_id, agent_id }),
            CopyState::Cancelled => return Err(TaskError::TaskFinished { task_id }),
            CopyState::Running => {}
        }
        copy.state = CopyState::Reported;
        // A running copy means the task is open: finishing cancels them all.
        assert!(!task.is_finished(), "task {task_id} finished with a running copy");
        let outcome = match outcome {
            TaskOutcomeView::Success(output) => Outcome::Success(output.to_vec()),
            TaskOutcomeView::Failure(reason) => {
                task.attempts_used = task.attempts_used.saturating_add(1);
                Outcome::Failure(reason.to_vec())
            }
        };
        task.results.push(Report { agent_id, reported_ns: now_ns, outcome });
        self.stop_running(agent_id, task_id);
        let decision = self.tasks[&task_id].decide(FailReason::NoAgreement);
        if let Some(decision) = &decision {
            self.finish(task_id, decision);
        }
        Ok(TaskResponse::Reported { task_id, decision })
    }

    fn release(&mut self, agent_id: u64, _now_ns: u64) -> TaskResponse {
        let task_ids = self.running.remove(&agent_id).unwrap_or_default();
        let mut failed = Vec::new();
        for &task_id in &task_ids {
            let task = self.tasks.get_mut(&task_id).expect("the running index names kept tasks");
            let copy = task.assignments.iter_mut().find(|copy| copy.agent_id == agent_id);
            let copy = copy.expect("the running index names assigned agents");
            assert_eq!(copy.state, CopyState::Running);
            copy.state = CopyState::Released;
            task.attempts_used = task.attempts_used.saturating_add(1);
            if let Some(decision) = task.decide(FailReason::AttemptsExhausted) {
                self.finish(task_id, &decision);
                failed.push(task_id);
            }
        }
        TaskResponse::Released { agent_id, copies: task_ids.len() as u32, failed }
    }

    fn release_copy(&mut self, view: ReleaseCopyView) -> Result<TaskResponse, TaskError> {
        let ReleaseCopyView { task_id, agent_id } = view;
        let task = self.tasks.get_mut(&task_id).ok_or(TaskError::NotFound { task_id })?;
        let copy =
            task.assignments.iter_mut().find(|copy| copy.agent_id == agent_id && copy.state == CopyState::Running);
        let copy = copy.ok_or(TaskError::NotAssigned { task_id, agent_id })?;
        copy.state = CopyState::Released;
        task.attempts_used = task.attempts_used.saturating_add(1);
        let mut failed = Vec::new();
        if let Some(decision) = task.decide(FailReason::AttemptsExhausted) {
            self.finish(task_id, &decision);
            failed.push(task_id);
        }
        self.stop_running(agent_id, task_id);
        Ok(TaskResponse::Released { agent_id, copies: 1, failed })
    }

    fn expire(&mut self, now_ns: u64) -> TaskResponse {
        let due = |task: &Task| task.deadline_ns != 0 && task.deadline_ns <= now_ns;
        let failed: Vec<u64> = self.open.iter().filter(|id| due(&self.tasks[id])).copied().collect();
        for &task_id in &failed {
            let outputs = self.tasks[&task_id].outputs().map(<[u8]>::to_vec).collect();
            self.finish(task_id, &Decision::Failed { reason: FailReason::DeadlineExceeded, outputs });
        }
        TaskResponse::Expired { failed }
    }

    fn stop_running(&mut self, agent_id: u64, task_id: u64) {
        if let Some(tasks) = self.running.get_mut(&agent_id) {
            tasks.remove(&task_id);
            if tasks.is_empty() {
                self.running.remove(&agent_id);
            }
        }
    }

    /// Makes `decision` the task's final state, cancels its running copies
    /// and evicts the oldest finished tasks past `finished_max`.
    fn finish(&mut self, task_id: u64, decision: &Decision) {
        let task = self.tasks.get_mut(&task_id).expect("finishing a kept task");
        assert_eq!(task.state, TaskState::Open, "a finished task never changes");
        task.state = match decision {
            Decision::Succeeded { output } => TaskState::Succeeded { output: output.clone() },
            Decision::Failed { reason, .. } => TaskState::Failed { reason: *reason },
        };
        let mut cancelled = Vec::new();
        for copy in task.assignments.iter_mut().filter(|copy| copy.state == CopyState::Running) {
            copy.state = CopyState::Cancelled;
            cancelled.push(copy.agent_id);
        }
        for agent_id in cancelled {
            self.stop_running(agent_id, task_id);
        }
        self.open.remove(&task_id);
        self.finished.push_back(task_id);
        while self.finished.len() > self.config.finished_max {
            let evicted = self.finished.pop_front().expect("over a bound, so not empty");
            let task = self.tasks.remove(&evicted).expect("finished tasks are kept");
            if !task.idempotency_key.is_empty() {
                self.keys.remove(&task.idempotency_key);
            }
        }
    }
}
