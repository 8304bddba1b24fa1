//! [`Registry`]: the nodes that are up right now, by id, and each node's
//! wall-clock offset. The network delivers to what it finds here, so a
//! message sent to a node before a crash reaches its next incarnation or
//! nobody.

use std::collections::BTreeMap;
use std::sync::Mutex;

use hyperraft_raft::state_machine::StateMachineStore;
use hyperraft_raft::{NodeId, TypeConfig};
use openraft::{Raft, ServerState};

/// A running node's handles.
#[derive(Clone)]
pub struct NodeHandle {
    pub raft: Raft<TypeConfig>,
    pub state: StateMachineStore,
}

/// Nodes that are up, and every node's clock offset.
#[derive(Default)]
pub struct Registry {
    up: Mutex<BTreeMap<NodeId, NodeHandle>>,
    clock_offsets_ms: Mutex<BTreeMap<NodeId, i64>>,
}

impl Registry {
    pub fn insert(&self, id: NodeId, handle: NodeHandle) {
        let previous = self.up.lock().expect("registry lock").insert(id, handle);
        assert!(previous.is_none(), "node {id} started twice");
    }

    pub fn remove(&self, id: NodeId) -> Option<NodeHandle> {
        self.up.lock().expect("registry lock").remove(&id)
    }

    pub fn get(&self, id: NodeId) -> Option<NodeHandle> {
        self.up.lock().expect("registry lock").get(&id).cloned()
    }

    /// The nodes that are up, in id order.
    pub fn up(&self) -> Vec<(NodeId, NodeHandle)> {
        self.up.lock().expect("registry lock").iter().map(|(id, handle)| (*id, handle.clone())).collect()
    }

    /// The node that claims leadership in the highest term, if any. Clients
    /// use it as their leader discovery (an oracle: a real client learns
    /// the same from redirects).
    pub fn leader(&self) -> Option<(NodeId, NodeHandle)> {
        let mut best: Option<(u64, NodeId, NodeHandle)> = None;
        for (id, handle) in self.up() {
            let (state, term) = {
                let metrics = handle.raft.metrics();
                let metrics = metrics.borrow();
                (metrics.state, metrics.current_term)
            };
            if state == ServerState::Leader && best.as_ref().is_none_or(|(best_term, _, _)| term > *best_term) {
                best = Some((term, id, handle));
            }
        }
        best.map(|(_, id, handle)| (id, handle))
    }

    pub fn clock_offset_ms(&self, id: NodeId) -> i64 {
        self.clock_offsets_ms.lock().expect("registry lock").get(&id).copied().unwrap_or(0)
    }

    pub fn jump_clock(&self, id: NodeId, offset_ms: i64) {
        *self.clock_offsets_ms.lock().expect("registry lock").entry(id).or_default() += offset_ms;
    }
}
