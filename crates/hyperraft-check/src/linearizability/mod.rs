//! A linearizability checker (Wing & Gong's search with Lowe's memoization,
//! as in Porcupine) for histories of operations on a sequential model.
//!
//! A history is linearizable if every operation can be given one instant
//! between its call and its return such that, in the order of those
//! instants, each operation's output is what the model gives. The search
//! walks the history's call and return events in time order; at a call it
//! tries to linearize that operation now (the model must accept its
//! output), and it backtracks when it meets the return of an operation not
//! yet linearized. A cache of (set of linearized operations, model state)
//! pairs already explored keeps the search from repeating itself. Key/value
//! histories are checked key by key ([`check_kv`]): operations on different
//! keys never constrain each other.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    type State: Clone + Eq + Hash;
    type Input;
    type Output;
    fn init(&self) -> Self::State;
    /// The state after `input` if the model could answer `output`, else `None`.
    fn step(&self, state: &Self::State, input: &Self::Input, output: &Self::Output) -> Option<Self::State>;
}

/// One completed operation: called at `call`, returned at `ret` (any clock
/// that orders events; `call < ret`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    pub call: u64,
    pub ret: u64,
    pub input: I,
    pub output: O,
}

/// The verdict on a history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The search exceeded its step budget; nothing is known.
    Unknown,
}

/// Events in time order; calls sort before returns at equal times, which
/// lets operations that touch at an instant overlap (the lenient reading).
fn events<I, O>(operations: &[Operation<I, O>]) -> Vec<(usize, bool)> {
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * operations.len());
    for (index, operation) in operations.iter().enumerate() {
        assert!(operation.call <= operation.ret, "operation {index} returns before it is called");
        events.push((operation.call, false, index));
        events.push((operation.ret, true, index));
    }
    events.sort();
    events.into_iter().map(|(_, is_return, index)| (index, is_return)).collect()
}

/// A doubly linked list over the event vector, with O(1) removal and reinsertion.
struct EventList {
    events: Vec<(usize, bool)>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Position of each operation's return event.
    return_of: Vec<usize>,
}

const HEAD: usize = usize::MAX;

impl EventList {
    fn new(events: Vec<(usize, bool)>, operations: usize) -> EventList {
        let len = events.len();
        let mut return_of = vec![0; operations];
        for (position, &(operation, is_return)) in events.iter().enumerate() {
            if is_return {
                return_of[operation] = position;
            }
        }
        let next = (0..len).map(|i| if i + 1 < len { i + 1 } else { HEAD }).collect();
        let prev = (0..len).map(|i| if i == 0 { HEAD } else { i - 1 }).collect();
        EventList { events, next, prev, return_of }
    }

    fn unlink(&mut self, position: usize, head: &mut usize) {
        let (before, after) = (self.prev[position], self.next[position]);
        if before == HEAD {
            *head = after
        } else {
            self.next[before] = after
        }
        if after != HEAD {
            self.prev[after] = before;
        }
    }

    fn relink(&mut self, position: usize, head: &mut usize) {
        let (before, after) = (self.prev[position], self.next[position]);
        if before == HEAD {
            *head = position
        } else {
            self.next[before] = position
        }
        if after != HEAD {
            self.prev[after] = position;
        }
    }
}

/// Checks one history against `model`, giving up after `steps_max` search steps.
pub fn check<M: Model>(model: &M, operations: &[Operation<M::Input, M::Output>], steps_max: u64) -> Verdict {
    let mut list = EventList::new(events(operations), operations.len());
    let mut head = if list.events.is_empty() { HEAD } else { 0 };
    let mut state = model.init();
    let mut linearized = vec![0u64; operations.len().div_ceil(64)];
    let mut cache: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut entry = head;
    for _ in 0..steps_max {
        if head == HEAD {
            return Verdict::Linearizable;
        }
        let (operation, is_return) = list.events[entry];
        if !is_return {
            let op = &operations[operation];
            if let Some(next_state) = model.step(&state, &op.input, &op.output) {
                linearized[operation / 64] |= 1 << (operation % 64);
                if cache.insert((linearized.clone(), next_state.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, next_state)));
                    list.unlink(entry, &mut head);
                    list.unlink(list.return_of[operation], &mut head);
                    entry = head;
                    continue;
                }
                linearized[operation / 64] &= !(1 << (operation % 64));
            }
            entry = list.next[entry];
        } else {
            // The earliest pending return: something before it must be undone.
            let Some((call, previous)) = stack.pop() else { return Verdict::NotLinearizable };
            let operation = list.events[call].0;
            list.relink(list.return_of[operation], &mut head);
            list.relink(call, &mut head);
            linearized[operation / 64] &= !(1 << (operation % 64));
            state = previous;
            entry = list.next[call];
        }
    }
    Verdict::Unknown
}

/// A key/value operation as a client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvInput {
    Put(Vec<u8>),
    Get,
    Delete,
    /// Put `new` if the current value equals `expected` (None: key absent).
    CompareAndSet {
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    },
}

/// What the client got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOutput {
    Done,
    Value(Option<Vec<u8>>),
    /// Whether a compare-and-set took effect.
    Swapped(bool),
}

/// One key's register.
pub struct Register;

impl Model for Register {
    type State = Option<Vec<u8>>;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> Option<Vec<u8>> {
        None
    }

    fn step(&self, state: &Option<Vec<u8>>, input: &KvInput, output: &KvOutput) -> Option<Option<Vec<u8>>> {
        match (input, output) {
            (KvInput::Put(value), KvOutput::Done) => Some(Some(value.clone())),
            (KvInput::Delete, KvOutput::Done) => Some(None),
            (KvInput::Get, KvOutput::Value(seen)) => (seen == state).then(|| state.clone()),
            (KvInput::CompareAndSet { expected, new }, KvOutput::Swapped(swapped)) => {
                match (expected == state, swapped) {
                    (true, true) => Some(Some(new.clone())),
                    (false, false) => Some(state.clone()),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// Checks a key/value history key by key; the worst verdict wins.
pub fn check_kv(operations: &[(Vec<u8>, Operation<KvInput, KvOutput>)], steps_max: u64) -> Verdict {
    let mut by_key: BTreeMap<&[u8], Vec<Operation<KvInput, KvOutput>>> = BTreeMap::new();
    for (key, operation) in operations {
        by_key.entry(key).or_default().push(operation.clone());
    }
    let mut verdict = Verdict::Linearizable;
    for history in by_key.values() {
        match check(&Register, history, steps_max) {
            Verdict::NotLinearizable => return Verdict::NotLinearizable,
            Verdict::Unknown => verdict = Verdict::Unknown,
            Verdict::Linearizable => {}
        }
    }
    verdict
}

#[cfg(test)]
mod tests;
