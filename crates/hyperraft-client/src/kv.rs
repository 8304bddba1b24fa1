//! Key/value calls: put, get, range, delete and transactions.
//!
//! Writes are not idempotent (a repeated put makes a new revision), so
//! they are retried only when the request certainly changed nothing (see
//! [`crate::retry`]); otherwise a failure is [`Error::OutcomeUnknown`].
//! Reads are retried freely.

use bytes::Bytes;
use hyperraft_proto::{
    DeleteRangeRequest, DeleteRangeResponse, KeyValue, PutRequest, PutResponse, RangeRequest, RangeResponse,
    TxnResponse,
};

use crate::pool::Target;
use crate::retry::Safety;
use crate::txn::Txn;
use crate::{Client, Error};

/// The `range_end` that makes a range cover every key starting with
/// `prefix` (etcd's convention): the prefix with its last byte below 0xff
/// incremented and what follows dropped; `"\0"` (every key) when there is
/// no such byte.
pub fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bytes::from(end);
        }
    }
    Bytes::from_static(b"\0")
}

impl Client {
    /// Puts `value` at `key`.
    pub async fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<PutResponse, Error> {
        self.put_request(PutRequest { key: key.into(), value: value.into(), ..PutRequest::default() }).await
    }

    /// A put with every option: a lease, or the previous pair returned.
    pub async fn put_request(&self, request: PutRequest) -> Result<PutResponse, Error> {
        let core = &self.core;
        core.call(Target::Leader, Safety::NotIdempotent, |channel| {
            let mut kv = core.kv(channel);
            let request = core.request(request.clone());
            async move { kv.put(request).await }
        })
        .await
    }

    /// The pair at `key`, if any (a linearizable read).
    pub async fn get(&self, key: impl Into<Bytes>) -> Result<Option<KeyValue>, Error> {
        let response = self.range(RangeRequest { key: key.into(), ..RangeRequest::default() }).await?;
        Ok(response.kvs.into_iter().next())
    }

    /// Reads a key or a range `[key, range_end)`; linearizable unless the
    /// request asks for `serializable` (then any node answers from its own
    /// state, possibly stale).
    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse, Error> {
        let target = if request.serializable { Target::Any } else { Target::Leader };
        let core = &self.core;
        core.call(target, Safety::Idempotent, |channel| {
            let mut kv = core.kv(channel);
            let request = core.request(request.clone());
            async move { kv.range(request).await }
        })
        .await
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<DeleteRangeResponse, Error> {
        self.delete_range(DeleteRangeRequest { key: key.into(), ..DeleteRangeRequest::default() }).await
    }

    /// Deletes a key or a range `[key, range_end)`, optionally returning
    /// the deleted pairs.
    pub async fn delete_range(&self, request: DeleteRangeRequest) -> Result<DeleteRangeResponse, Error> {
        let core = &self.core;
        core.call(Target::Leader, Safety::NotIdempotent, |channel| {
            let mut kv = core.kv(channel);
            let request = core.request(request.clone());
            async move { kv.delete_range(request).await }
        })
        .await
    }

    /// Runs a compare-and-set transaction. Compares that fail are not an
    /// error: the answer says `succeeded = false` and holds the `or_else`
    /// branch's results.
    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse, Error> {
        let request = txn.into_request()?;
        let core = &self.core;
        core.call(Target::Leader, Safety::NotIdempotent, |channel| {
            let mut kv = core.kv(channel);
            let request = core.request(request.clone());
            async move { kv.txn(request).await }
        })
        .await
    }
}
