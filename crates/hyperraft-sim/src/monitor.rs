//! [`DigestMonitor`]: samples every running replica's applied index and
//! state digest during the run; two replicas that applied the same index
//! must hold the same state.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyperraft_raft::NodeId;

use crate::registry::Registry;

/// Two replicas with different state at the same applied index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Divergence {
    pub index: u64,
    pub first: (NodeId, u64),
    pub second: (NodeId, u64),
}

/// Digests seen per applied index.
#[derive(Default)]
pub struct DigestMonitor {
    seen: BTreeMap<u64, (NodeId, u64)>,
    pub divergences: Vec<Divergence>,
    pub samples: u64,
}

/// Divergences kept (the first ones tell the story).
const DIVERGENCES_MAX: usize = 16;

impl DigestMonitor {
    /// Samples every node that is up now.
    pub fn sample(&mut self, registry: &Registry) {
        for (id, handle) in registry.up() {
            let (applied, digest) = handle.state.applied_digest();
            let Some(applied) = applied else { continue };
            self.samples += 1;
            let (first_node, first_digest) = *self.seen.entry(applied.index).or_insert((id, digest));
            if first_digest != digest && self.divergences.len() < DIVERGENCES_MAX {
                let divergence =
                    Divergence { index: applied.index, first: (first_node, first_digest), second: (id, digest) };
                self.divergences.push(divergence);
            }
        }
    }
}

/// Samples every `every` until the task is aborted.
pub async fn watch(monitor: Arc<Mutex<DigestMonitor>>, registry: Arc<Registry>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        monitor.lock().expect("monitor lock").sample(&registry);
    }
}
