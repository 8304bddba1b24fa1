//! The `Kv` service: put, range, delete-range and compare-and-set
//! transactions on the etcd-like store. Every request becomes one command
//! of a `Kv` wire frame (built with `KvBatchWriter`); writes go through the
//! leader's batcher, ranges are read from the local state.

use std::sync::Arc;
use std::time::Duration;

use hyperraft_raft::{BatchResponse, KvResult};
use hyperraft_wire::kv::{KEY_BYTES_MAX, TXN_OPS_MAX, VALUE_BYTES_MAX};
use hyperraft_wire::{
    Compare, CompareOp, CompareTarget, DeleteView, EncodeError, KvBatchWriter, KvOp, PutView, RangeView,
};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::api::Api;
use crate::convert::{kv_response, txn_response};
use crate::errors::{invalid_argument, unexpected};
use crate::proto;
use crate::proto::kv_server::Kv;
use crate::proto::response_op::Response as OpResponse;
use crate::watch::{self, WatchResponses, WatchSpec, PROGRESS_INTERVAL_MS_MIN};

pub(crate) struct KvService {
    pub(crate) api: Arc<Api>,
}

/// `prefix.name`, or `name` alone at the top level.
fn field(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn check_key(prefix: &str, name: &str, key: &[u8]) -> Result<(), Status> {
    if key.is_empty() {
        return Err(invalid_argument(&field(prefix, name), "empty; a key has 1 to 4096 bytes"));
    }
    check_range_end(prefix, name, key)
}

fn check_range_end(prefix: &str, name: &str, key: &[u8]) -> Result<(), Status> {
    if key.len() > KEY_BYTES_MAX {
        return Err(invalid_argument(&field(prefix, name), format!("{} bytes, more than {KEY_BYTES_MAX}", key.len())));
    }
    Ok(())
}

fn check_value(prefix: &str, name: &str, value: &[u8]) -> Result<(), Status> {
    if value.len() > VALUE_BYTES_MAX {
        return Err(invalid_argument(
            &field(prefix, name),
            format!("{} bytes, more than {VALUE_BYTES_MAX}", value.len()),
        ));
    }
    Ok(())
}

fn check_count(name: &str, count: usize) -> Result<(), Status> {
    if count > TXN_OPS_MAX {
        return Err(invalid_argument(name, format!("{count} items, more than {TXN_OPS_MAX}")));
    }
    Ok(())
}

fn put_view<'a>(prefix: &str, put: &'a proto::PutRequest) -> Result<PutView<'a>, Status> {
    check_key(prefix, "key", &put.key)?;
    check_value(prefix, "value", &put.value)?;
    Ok(PutView { key: &put.key, value: &put.value, lease: put.lease, prev_kv: put.prev_kv })
}

fn delete_view<'a>(prefix: &str, delete: &'a proto::DeleteRangeRequest) -> Result<DeleteView<'a>, Status> {
    check_key(prefix, "key", &delete.key)?;
    check_range_end(prefix, "range_end", &delete.range_end)?;
    Ok(DeleteView { key: &delete.key, range_end: &delete.range_end, prev_kv: delete.prev_kv })
}

fn range_view<'a>(prefix: &str, range: &'a proto::RangeRequest) -> Result<RangeView<'a>, Status> {
    check_key(prefix, "key", &range.key)?;
    check_range_end(prefix, "range_end", &range.range_end)?;
    Ok(RangeView {
        key: &range.key,
        range_end: &range.range_end,
        limit: range.limit,
        keys_only: range.keys_only,
        count_only: range.count_only,
    })
}

fn compare_view<'a>(prefix: &str, compare: &'a proto::Compare) -> Result<Compare<'a>, Status> {
    use proto::compare::{Result as Op, Target};
    check_key(prefix, "key", &compare.key)?;
    let op = match Op::try_from(compare.result) {
        Ok(Op::Equal) => CompareOp::Equal,
        Ok(Op::NotEqual) => CompareOp::NotEqual,
        Ok(Op::Less) => CompareOp::Less,
        Ok(Op::Greater) => CompareOp::Greater,
        Err(_) => return Err(invalid_argument(&field(prefix, "result"), format!("unknown value {}", compare.result))),
    };
    let target = match &compare.target {
        Some(Target::Value(value)) => {
            check_value(prefix, "value", value)?;
            CompareTarget::Value(value)
        }
        Some(Target::Version(version)) => CompareTarget::Version(*version),
        Some(Target::CreateRevision(revision)) => CompareTarget::CreateRevision(*revision),
        Some(Target::ModRevision(revision)) => CompareTarget::ModRevision(*revision),
        Some(Target::Lease(lease)) => CompareTarget::Lease(*lease),
        None => {
            return Err(invalid_argument(
                &field(prefix, "target"),
                "not set; set one of value, version, create_revision, mod_revision, lease",
            ))
        }
    };
    Ok(Compare { key: &compare.key, op, target })
}

fn op_view<'a>(prefix: &str, op: &'a proto::RequestOp) -> Result<KvOp<'a>, Status> {
    use proto::request_op::Request as Op;
    match &op.request {
        Some(Op::Put(put)) => Ok(KvOp::Put(put_view(&field(prefix, "put"), put)?)),
        Some(Op::DeleteRange(delete)) => Ok(KvOp::DeleteRange(delete_view(&field(prefix, "delete_range"), delete)?)),
        Some(Op::Range(range)) => Ok(KvOp::Range(range_view(&field(prefix, "range"), range)?)),
        None => Err(invalid_argument(&field(prefix, "request"), "not set; set one of range, put, delete_range")),
    }
}

fn op_views<'a>(name: &str, ops: &'a [proto::RequestOp]) -> Result<Vec<KvOp<'a>>, Status> {
    check_count(name, ops.len())?;
    ops.iter().enumerate().map(|(index, op)| op_view(&format!("{name}[{index}]"), op)).collect()
}

/// A frame holding the commands `append` writes (one, for every request
/// but the leader's lease expiry).
pub(crate) fn kv_frame(
    append: impl FnOnce(&mut KvBatchWriter<'_>) -> Result<(), EncodeError>,
) -> Result<Vec<u8>, Status> {
    let mut frame = Vec::new();
    let mut writer = KvBatchWriter::new(&mut frame);
    // Fields were checked above; what is left is the frame's size bound.
    append(&mut writer).map_err(|error| invalid_argument("request", error))?;
    writer.finish();
    Ok(frame)
}

/// The one-command frame of a checked put.
pub(crate) fn put_frame(request: &proto::PutRequest) -> Result<Vec<u8>, Status> {
    let put = put_view("", request)?;
    kv_frame(|writer| writer.put(put))
}

/// The one-command frame of a checked range read.
pub(crate) fn range_frame(request: &proto::RangeRequest) -> Result<Vec<u8>, Status> {
    let range = range_view("", request)?;
    kv_frame(|writer| writer.range(range))
}

/// The one-command frame of a checked delete-range.
pub(crate) fn delete_range_frame(request: &proto::DeleteRangeRequest) -> Result<Vec<u8>, Status> {
    let delete = delete_view("", request)?;
    kv_frame(|writer| writer.delete_range(delete))
}

/// The one-command frame of a checked transaction.
pub(crate) fn txn_frame(request: &proto::TxnRequest) -> Result<Vec<u8>, Status> {
    check_count("compare", request.compare.len())?;
    let compares = request
        .compare
        .iter()
        .enumerate()
        .map(|(index, compare)| compare_view(&format!("compare[{index}]"), compare))
        .collect::<Result<Vec<_>, _>>()?;
    let success = op_views("success", &request.success)?;
    let failure = op_views("failure", &request.failure)?;
    kv_frame(|writer| writer.txn(&compares, &success, &failure))
}

/// The single result of a one-command frame.
pub(crate) fn only_result(response: BatchResponse) -> Result<KvResult, Status> {
    match response {
        BatchResponse::Kv(mut results) if results.len() == 1 => Ok(results.pop().expect("one result")),
        other => Err(unexpected(format!("{other:?} for one key/value command"))),
    }
}

impl KvService {
    async fn write_one(&self, frame: &[u8]) -> Result<OpResponse, Status> {
        let result = only_result(self.api.write(frame).await?)?;
        kv_response(result, self.api.node_id())
    }
}

/// The watch of a checked request.
fn watch_spec(request: proto::WatchRequest) -> Result<WatchSpec, Status> {
    check_key("", "key", &request.key)?;
    check_range_end("", "range_end", &request.range_end)?;
    let progress_interval = match request.progress_interval_ms {
        0 => None,
        millis if millis < PROGRESS_INTERVAL_MS_MIN => {
            return Err(invalid_argument(
                "progress_interval_ms",
                format!("{millis} ms, below the {PROGRESS_INTERVAL_MS_MIN} ms this node sends at most; 0 for none"),
            ))
        }
        millis => Some(Duration::from_millis(millis)),
    };
    Ok(WatchSpec {
        key: request.key.into(),
        range_end: request.range_end.into(),
        prev_kv: request.prev_kv,
        start_revision: request.start_revision,
        progress_interval,
    })
}

#[tonic::async_trait]
impl Kv for KvService {
    type WatchStream = WatchResponses;

    async fn watch(&self, request: Request<proto::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let request = request.into_inner();
        // The request's bytes are held only while it is checked; the watch
        // itself is bounded by `watches_max`.
        let _permit = self.api.admit(request.encoded_len())?;
        let spec = watch_spec(request)?;
        let watch = self.api.admit_watch()?;
        Ok(Response::new(watch::start(self.api.clone(), spec, watch)))
    }

    async fn put(&self, request: Request<proto::PutRequest>) -> Result<Response<proto::PutResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(request.encoded_len())?;
        match self.write_one(&put_frame(&request)?).await? {
            OpResponse::Put(response) => Ok(Response::new(response)),
            other => Err(unexpected(format!("{other:?} for a put"))),
        }
    }

    async fn range(&self, request: Request<proto::RangeRequest>) -> Result<Response<proto::RangeResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(request.encoded_len())?;
        let frame = range_frame(&request)?;
        let result = only_result(self.api.read(&frame, request.serializable).await?)?;
        match kv_response(result, self.api.node_id())? {
            OpResponse::Range(response) => Ok(Response::new(response)),
            other => Err(unexpected(format!("{other:?} for a range"))),
        }
    }

    async fn delete_range(
        &self,
        request: Request<proto::DeleteRangeRequest>,
    ) -> Result<Response<proto::DeleteRangeResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(request.encoded_len())?;
        match self.write_one(&delete_range_frame(&request)?).await? {
            OpResponse::DeleteRange(response) => Ok(Response::new(response)),
            other => Err(unexpected(format!("{other:?} for a delete"))),
        }
    }

    async fn txn(&self, request: Request<proto::TxnRequest>) -> Result<Response<proto::TxnResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(request.encoded_len())?;
        let frame = txn_frame(&request)?;
        let result = only_result(self.api.write(&frame).await?)?;
        Ok(Response::new(txn_response(result, self.api.node_id())?))
    }
}
