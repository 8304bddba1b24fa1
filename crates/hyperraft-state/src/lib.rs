//! Deterministic state machines and the batch executor.
//!
//! This crate does no IO and knows nothing about the network: it takes
//! validated frames (from `hyperraft-wire`) and returns results. The same
//! batch applied to the same state gives the same results and the same
//! state on every node, whatever the thread count.

pub mod bus;
pub mod decisions;
pub mod kv;
pub mod ledger;
pub mod snapshot;
pub mod state_machine;
pub mod tasks;

pub use snapshot::{SnapshotCopy, SnapshotError};
pub use state_machine::{ApplyError, BatchOutput, StateConfig, StateError, StateMachine};
