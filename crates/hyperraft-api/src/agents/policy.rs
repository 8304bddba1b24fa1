//! [`DispatchPolicy`]: which agent runs the next copy of a task.

use std::collections::HashMap;

use hyperraft_node::DispatchPolicyKind;

/// An agent that could run a copy: of the task's type, with free capacity,
/// and without a copy of the task already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub agent_id: u64,
    /// Copies it runs now (including ones assigned earlier this round).
    pub running: u32,
    pub max_concurrent: u32,
}

impl Candidate {
    /// Copies it can still take.
    pub fn free(&self) -> u32 {
        self.max_concurrent.saturating_sub(self.running)
    }
}

/// Chooses among candidates. Called by the leader's dispatcher for each copy
/// it assigns, in task order (oldest first). `candidates` holds every agent
/// of the task's type that had free capacity when the round began, sorted
/// by agent id; only those for which `eligible` holds may run this copy
/// (free capacity left, no copy of the task yet). The dispatcher passes all
/// of them rather than a filtered copy so that one pick need not cost a
/// pass over ten thousand agents.
pub trait DispatchPolicy: Send {
    /// The index in `candidates` of the agent to run a copy of `task_id`
    /// (of `task_type`), or `None` when no candidate is eligible.
    fn pick(
        &mut self,
        task_type: &[u8],
        task_id: u64,
        candidates: &[Candidate],
        eligible: &dyn Fn(&Candidate) -> bool,
    ) -> Option<usize>;
}

/// Each agent of a type in turn: the first eligible candidate after the one
/// chosen last for that type, by agent id, wrapping around. Costs a binary
/// search plus one step per ineligible agent skipped.
#[derive(Debug, Default)]
pub struct RoundRobin {
    last: HashMap<Vec<u8>, u64>,
}

impl DispatchPolicy for RoundRobin {
    fn pick(
        &mut self,
        task_type: &[u8],
        _task_id: u64,
        candidates: &[Candidate],
        eligible: &dyn Fn(&Candidate) -> bool,
    ) -> Option<usize> {
        let last = self.last.get(task_type).copied().unwrap_or(0);
        let start = candidates.partition_point(|candidate| candidate.agent_id <= last);
        let index = (start..candidates.len()).chain(0..start).find(|index| eligible(&candidates[*index]))?;
        self.last.insert(task_type.to_vec(), candidates[index].agent_id);
        Some(index)
    }
}

/// The eligible candidate with the most free capacity; ties go to the one
/// running fewer copies, then to the lowest id. Looks at every candidate.
#[derive(Debug, Default)]
pub struct LeastLoaded;

impl DispatchPolicy for LeastLoaded {
    fn pick(
        &mut self,
        _task_type: &[u8],
        _task_id: u64,
        candidates: &[Candidate],
        eligible: &dyn Fn(&Candidate) -> bool,
    ) -> Option<usize> {
        let best =
            candidates.iter().enumerate().filter(|(_, candidate)| eligible(candidate)).max_by_key(|(_, candidate)| {
                (candidate.free(), std::cmp::Reverse(candidate.running), std::cmp::Reverse(candidate.agent_id))
            });
        best.map(|(index, _)| index)
    }
}

/// The policy the configuration names.
pub fn policy_for(kind: DispatchPolicyKind) -> Box<dyn DispatchPolicy> {
    match kind {
        DispatchPolicyKind::RoundRobin => Box::new(RoundRobin::default()),
        DispatchPolicyKind::LeastLoaded => Box::new(LeastLoaded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(agent_id: u64, running: u32, max_concurrent: u32) -> Candidate {
        Candidate { agent_id, running, max_concurrent }
    }

    #[test]
    fn round_robin_takes_each_agent_in_turn_per_type() {
        // Proves round-robin cycles through the candidates by id, wraps, and keeps a separate turn per task type.
        let mut policy = RoundRobin::default();
        let any = |_: &Candidate| true;
        let all = [candidate(3, 0, 1), candidate(5, 0, 1), candidate(9, 0, 1)];
        let picks: Vec<u64> = (0..4).map(|task| all[policy.pick(b"a", task, &all, &any).unwrap()].agent_id).collect();
        assert_eq!(picks, vec![3, 5, 9, 3]);
        assert_eq!(all[policy.pick(b"b", 9, &all, &any).unwrap()].agent_id, 3);
        // A missing candidate is skipped, not waited for.
        let some = [candidate(3, 0, 1), candidate(9, 0, 1)];
        assert_eq!(some[policy.pick(b"a", 5, &some, &any).unwrap()].agent_id, 9);
        // So is an ineligible one, wrapping around; none eligible is no pick.
        assert_eq!(all[policy.pick(b"a", 6, &all, &|candidate| candidate.agent_id != 3).unwrap()].agent_id, 5);
        assert_eq!(policy.pick(b"a", 7, &all, &|_| false), None);
    }

    #[test]
    fn least_loaded_prefers_free_capacity() {
        // Proves least-loaded picks the most free capacity, then the fewest running, then the lowest id.
        let mut policy = LeastLoaded;
        let any = |_: &Candidate| true;
        let all = [candidate(1, 3, 4), candidate(2, 0, 2), candidate(3, 1, 4)];
        assert_eq!(all[policy.pick(b"a", 1, &all, &any).unwrap()].agent_id, 3);
        let tied = [candidate(4, 2, 4), candidate(5, 0, 2), candidate(6, 0, 2)];
        assert_eq!(tied[policy.pick(b"a", 1, &tied, &any).unwrap()].agent_id, 5);
        assert_eq!(all[policy.pick(b"a", 1, &all, &|candidate| candidate.agent_id != 3).unwrap()].agent_id, 2);
    }
}
