//! [`Txn`]: a compare-and-set transaction built from [`Compare`]s and
//! [`Op`]s, sent with [`crate::Client::txn`].

use bytes::Bytes;
use hyperraft_proto::compare::{Result as CompareResult, Target as CompareTarget};
use hyperraft_proto::request_op::Request as OpRequest;
use hyperraft_proto::{DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};

use crate::Error;

/// Most compares, and most operations per branch, of one transaction.
pub const TXN_ITEMS_MAX: usize = 128;

/// How a compare relates the key's current value to the given one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// The current value equals the given one.
    Equal,
    /// The current value differs from the given one.
    NotEqual,
    /// The current value is less than the given one.
    Less,
    /// The current value is greater than the given one.
    Greater,
}

/// One condition of a transaction. A missing key has version,
/// create_revision and mod_revision 0, so `Compare::version(key,
/// CompareOp::Equal, 0)` holds exactly when the key does not exist.
#[derive(Clone, Debug, PartialEq)]
pub struct Compare(hyperraft_proto::Compare);

impl Compare {
    fn new(key: impl Into<Bytes>, op: CompareOp, target: CompareTarget) -> Compare {
        let result = match op {
            CompareOp::Equal => CompareResult::Equal,
            CompareOp::NotEqual => CompareResult::NotEqual,
            CompareOp::Less => CompareResult::Less,
            CompareOp::Greater => CompareResult::Greater,
        };
        Compare(hyperraft_proto::Compare { result: result as i32, key: key.into(), target: Some(target) })
    }

    /// Compares the key's value.
    pub fn value(key: impl Into<Bytes>, op: CompareOp, value: impl Into<Bytes>) -> Compare {
        Compare::new(key, op, CompareTarget::Value(value.into()))
    }

    /// Compares the key's version (writes since creation; 0 when absent).
    pub fn version(key: impl Into<Bytes>, op: CompareOp, version: u64) -> Compare {
        Compare::new(key, op, CompareTarget::Version(version))
    }

    /// Compares the revision that created the key.
    pub fn create_revision(key: impl Into<Bytes>, op: CompareOp, revision: u64) -> Compare {
        Compare::new(key, op, CompareTarget::CreateRevision(revision))
    }

    /// Compares the revision that last changed the key.
    pub fn mod_revision(key: impl Into<Bytes>, op: CompareOp, revision: u64) -> Compare {
        Compare::new(key, op, CompareTarget::ModRevision(revision))
    }

    /// Compares the key's lease id (0 for none).
    pub fn lease(key: impl Into<Bytes>, op: CompareOp, lease: u64) -> Compare {
        Compare::new(key, op, CompareTarget::Lease(lease))
    }
}

/// One operation of a transaction branch.
#[derive(Clone, Debug, PartialEq)]
pub struct Op(RequestOp);

impl Op {
    /// Puts `value` at `key`.
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Op {
        Op::put_request(PutRequest { key: key.into(), value: value.into(), ..PutRequest::default() })
    }

    /// A put with every option (lease, prev_kv).
    pub fn put_request(request: PutRequest) -> Op {
        Op(RequestOp { request: Some(OpRequest::Put(request)) })
    }

    /// Reads `key`.
    pub fn get(key: impl Into<Bytes>) -> Op {
        Op::range_request(RangeRequest { key: key.into(), ..RangeRequest::default() })
    }

    /// A read with every option (range_end, limit, keys_only, ...).
    pub fn range_request(request: RangeRequest) -> Op {
        Op(RequestOp { request: Some(OpRequest::Range(request)) })
    }

    /// Deletes `key`.
    pub fn delete(key: impl Into<Bytes>) -> Op {
        Op::delete_request(DeleteRangeRequest { key: key.into(), ..DeleteRangeRequest::default() })
    }

    /// A delete with every option (range_end, prev_kv).
    pub fn delete_request(request: DeleteRangeRequest) -> Op {
        Op(RequestOp { request: Some(OpRequest::DeleteRange(request)) })
    }
}

/// A transaction: if every compare holds, the `and_then` operations run,
/// else the `or_else` ones; atomically, in one log entry.
///
/// ```
/// use hyperraft_client::{Compare, CompareOp, Op, Txn};
/// // Take a lock key only if nobody holds it.
/// let txn = Txn::new()
///     .when([Compare::version("lock", CompareOp::Equal, 0)])
///     .and_then([Op::put("lock", "me")])
///     .or_else([Op::get("lock")]);
/// # let _ = txn;
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Txn {
    request: TxnRequest,
}

impl Txn {
    /// An empty transaction (no compares: `and_then` always runs).
    pub fn new() -> Txn {
        Txn::default()
    }

    /// Adds compares; all must hold for `and_then` to run.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Txn {
        self.request.compare.extend(compares.into_iter().map(|compare| compare.0));
        self
    }

    /// Adds operations run when every compare holds.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = Op>) -> Txn {
        self.request.success.extend(ops.into_iter().map(|op| op.0));
        self
    }

    /// Adds operations run when some compare fails.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = Op>) -> Txn {
        self.request.failure.extend(ops.into_iter().map(|op| op.0));
        self
    }

    /// The request, checked against the per-transaction bounds.
    pub(crate) fn into_request(self) -> Result<TxnRequest, Error> {
        let counts = [
            ("compare", self.request.compare.len()),
            ("success", self.request.success.len()),
            ("failure", self.request.failure.len()),
        ];
        for (field, count) in counts {
            if count > TXN_ITEMS_MAX {
                return Err(Error::InvalidArgument {
                    field: field.into(),
                    message: format!("{count} items, more than {TXN_ITEMS_MAX}"),
                });
            }
        }
        Ok(self.request)
    }
}
