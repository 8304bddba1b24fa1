//! Fault injection for tests: partitions between nodes on a real network.
//!
//! A [`FaultSwitch`] marks peers as partitioned. Calls to a partitioned
//! peer fail at once with [`TransportError::Partitioned`], and requests
//! from it are refused with the same outcome on its side, so either node
//! can cut the link in both directions. Failing fast (rather than dropping
//! packets and waiting for timeouts) keeps cluster tests quick and free of
//! timing assumptions.
//!
//! The switch exists only when `TransportConfig::faults_enabled` is set; on
//! a production transport every attempt to partition returns
//! [`TransportError::FaultsDisabled`] and the check costs one branch.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::TransportError;

/// Node ids that may be partitioned at once; a cluster test with more is a
/// runaway loop.
pub const PARTITIONED_PEERS_MAX: usize = 1024;

/// A shared, cheaply cloned set of partitioned peers.
#[derive(Debug, Clone, Default)]
pub struct FaultSwitch {
    /// `None` when fault injection is disabled.
    partitioned: Option<Arc<Mutex<HashSet<u64>>>>,
}

impl FaultSwitch {
    /// A switch that works (`enabled`) or refuses every change.
    pub fn new(enabled: bool) -> FaultSwitch {
        FaultSwitch { partitioned: enabled.then(Arc::default) }
    }

    /// Whether fault injection is enabled.
    pub fn is_enabled(&self) -> bool {
        self.partitioned.is_some()
    }

    /// Partitions this node from `node_id` (`true`) or heals it (`false`).
    pub fn set_partitioned(&self, node_id: u64, partitioned: bool) -> Result<(), TransportError> {
        let set = self.partitioned.as_ref().ok_or(TransportError::FaultsDisabled)?;
        // A panic elsewhere while holding the lock cannot leave the set
        // half-updated (inserts and removes are atomic), so poison is moot.
        let mut set = set.lock().unwrap_or_else(PoisonError::into_inner);
        if !partitioned {
            set.remove(&node_id);
            return Ok(());
        }
        if set.len() >= PARTITIONED_PEERS_MAX && !set.contains(&node_id) {
            return Err(TransportError::PartitionTableFull { peers_max: PARTITIONED_PEERS_MAX });
        }
        set.insert(node_id);
        Ok(())
    }

    /// Whether calls to and from `node_id` are currently cut.
    pub fn is_partitioned(&self, node_id: u64) -> bool {
        match &self.partitioned {
            None => false,
            Some(set) => set.lock().unwrap_or_else(PoisonError::into_inner).contains(&node_id),
        }
    }
}
