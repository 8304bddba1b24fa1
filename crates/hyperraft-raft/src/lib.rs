//! Raft for hyperraft: the `openraft` type configuration, the durable
//! group-committed log ([`log`]), and the adapter that applies committed
//! batches to `hyperraft_state::StateMachine` ([`state_machine`]).
//!
//! One Raft log entry carries one [`Batch`]: a whole wire frame and the
//! leader's timestamp for it, so consensus and fsync are paid per batch.

pub mod log;
mod page_cache;
mod response;
pub mod state_machine;
mod types;

pub use response::{
    BatchResponse, BusErrorCode, BusResult, DecisionErrorCode, DecisionOutcome, DecisionResult, KvErrorCode, KvPair,
    KvResult, TaskDecision, TaskErrorCode, TaskFailReason, TaskResult,
};
pub use types::{Batch, NodeId, TypeConfig};
