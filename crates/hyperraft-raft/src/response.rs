//! What a proposer gets back for one applied batch.
//!
//! Responses never travel between replicas (each replica computes its own),
//! but openraft requires them to be serializable, so the key/value results
//! task, decision and bus results are mirrored here as plain serde types at
//! this edge.

use hyperraft_state::kv::{KeyValue, KvError, KvResponse};
use hyperraft_state::BatchOutput;
use serde::{Deserialize, Serialize};
use zerocopy::IntoBytes;

mod bus_result;
mod decision_result;
mod task_result;

pub use bus_result::{BusErrorCode, BusResult};
pub use decision_result::{DecisionErrorCode, DecisionOutcome, DecisionResult};
pub use task_result::{TaskDecision, TaskErrorCode, TaskFailReason, TaskResult};

/// What applying one [`crate::Batch`] returned on the node that proposed it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchResponse {
    /// Entries without application data (blank, membership) answer this.
    #[default]
    Empty,
    /// One code per item of a create batch (`CreateAccountResult` or
    /// `CreateTransferResult` as numbers).
    Codes(Vec<u32>),
    /// Found records of a lookup frame (`AccountRecord`s or `TransferRecord`s, back to back).
    #[serde(with = "serde_bytes")]
    Records(Vec<u8>),
    /// One result per key/value command.
    Kv(Vec<KvResult>),
    /// One result per task command.
    Tasks(Vec<TaskResult>),
    /// One result per decision command.
    Decisions(Vec<DecisionResult>),
    /// One result per durable bus command.
    Bus(Vec<BusResult>),
    /// The frame was not applied on any replica; nothing changed.
    Rejected(String),
}

/// A key with its metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvPair {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub create_revision: u64,
    pub mod_revision: u64,
    pub version: u64,
    pub lease: u64,
}

/// The result of one key/value command (see `hyperraft_state::kv::KvResponse`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResult {
    Put {
        revision: u64,
        prev: Option<KvPair>,
    },
    DeleteRange {
        revision: u64,
        deleted: u64,
        prev: Vec<KvPair>,
    },
    Range {
        revision: u64,
        kvs: Vec<KvPair>,
        count: u64,
        more: bool,
    },
    Txn {
        revision: u64,
        succeeded: bool,
        responses: Vec<KvResult>,
    },
    /// A lease was granted; `id` is the one the store chose when asked for 0.
    LeaseGrant {
        revision: u64,
        id: u64,
        ttl_ms: u64,
    },
    /// A lease was revoked with its `deleted` keys.
    LeaseRevoke {
        revision: u64,
        deleted: u64,
    },
    /// A lease was renewed for its full TTL.
    LeaseKeepAlive {
        revision: u64,
        id: u64,
        ttl_ms: u64,
    },
    /// An expiry ran; `expired` is false when the lease was not due or gone.
    LeaseExpire {
        revision: u64,
        expired: bool,
        deleted: u64,
    },
    /// The command was refused and changed nothing: `code` says why (so the
    /// API can choose a status), `message` says it for people.
    Error {
        code: KvErrorCode,
        message: String,
    },
}

/// Why the state machine refused a key/value command (see
/// `hyperraft_state::kv::KvError`), without its details.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvErrorCode {
    /// The store holds its limit of keys.
    StoreFull,
    /// A transaction branch writes one key twice.
    TxnDuplicateKey,
    /// A lease command, or a put with a lease, names a lease that does not exist.
    LeaseNotFound,
    /// A grant names the id of a live lease.
    LeaseExists,
    /// The store holds its limit of leases.
    LeasesFull,
    /// The history asked for was compacted.
    Compacted,
    /// A refusal with no code of its own.
    Other,
}

impl From<&KvError> for KvErrorCode {
    fn from(error: &KvError) -> KvErrorCode {
        match error {
            KvError::StoreFull { .. } => KvErrorCode::StoreFull,
            KvError::TxnDuplicateKey => KvErrorCode::TxnDuplicateKey,
            KvError::LeaseNotFound { .. } => KvErrorCode::LeaseNotFound,
            KvError::LeaseExists { .. } => KvErrorCode::LeaseExists,
            KvError::LeasesFull { .. } => KvErrorCode::LeasesFull,
            KvError::Compacted { .. } => KvErrorCode::Compacted,
        }
    }
}

impl From<&KeyValue> for KvPair {
    fn from(pair: &KeyValue) -> KvPair {
        KvPair {
            key: pair.key.clone(),
            value: pair.value.clone(),
            create_revision: pair.create_revision,
            mod_revision: pair.mod_revision,
            version: pair.version,
            lease: pair.lease,
        }
    }
}

impl From<&KvResponse> for KvResult {
    fn from(response: &KvResponse) -> KvResult {
        let pairs = |pairs: &[KeyValue]| pairs.iter().map(KvPair::from).collect();
        match response {
            KvResponse::Put { revision, prev } => {
                KvResult::Put { revision: *revision, prev: prev.as_ref().map(KvPair::from) }
            }
            KvResponse::DeleteRange { revision, deleted, prev } => {
                KvResult::DeleteRange { revision: *revision, deleted: *deleted, prev: pairs(prev) }
            }
            KvResponse::Range { revision, kvs, count, more } => {
                KvResult::Range { revision: *revision, kvs: pairs(kvs), count: *count, more: *more }
            }
            KvResponse::Txn { revision, succeeded, responses } => KvResult::Txn {
                revision: *revision,
                succeeded: *succeeded,
                responses: responses.iter().map(KvResult::from).collect(),
            },
            KvResponse::LeaseGrant { revision, id, ttl_ms } => {
                KvResult::LeaseGrant { revision: *revision, id: *id, ttl_ms: *ttl_ms }
            }
            KvResponse::LeaseRevoke { revision, deleted } => {
                KvResult::LeaseRevoke { revision: *revision, deleted: *deleted }
            }
            KvResponse::LeaseKeepAlive { revision, id, ttl_ms } => {
                KvResult::LeaseKeepAlive { revision: *revision, id: *id, ttl_ms: *ttl_ms }
            }
            KvResponse::LeaseExpire { revision, expired, deleted } => {
                KvResult::LeaseExpire { revision: *revision, expired: *expired, deleted: *deleted }
            }
            KvResponse::Error(error) => KvResult::Error { code: error.into(), message: error.to_string() },
        }
    }
}

impl BatchResponse {
    /// The response for a frame of `kind` that `StateMachine::apply` just
    /// wrote into `output`.
    pub fn from_output(kind: hyperraft_wire::Kind, output: &BatchOutput) -> BatchResponse {
        use hyperraft_wire::Kind;
        match kind {
            Kind::CreateAccounts => Self::Codes(output.account_results.iter().map(|r| *r as u32).collect()),
            Kind::CreateTransfers => Self::Codes(output.transfer_results.iter().map(|r| *r as u32).collect()),
            Kind::LookupAccounts => Self::Records(output.accounts.as_bytes().to_vec()),
            Kind::LookupTransfers => Self::Records(output.transfers.as_bytes().to_vec()),
            Kind::Kv => Self::Kv(output.kv.iter().map(KvResult::from).collect()),
            Kind::Tasks => Self::Tasks(output.tasks.iter().map(TaskResult::from).collect()),
            Kind::Decisions => Self::Decisions(output.decisions.iter().map(DecisionResult::from).collect()),
            Kind::Bus => Self::Bus(output.bus.iter().map(BusResult::from).collect()),
            Kind::Results => Self::Rejected("a results frame is not a command".to_string()),
        }
    }
}

#[cfg(test)]
mod tests;
