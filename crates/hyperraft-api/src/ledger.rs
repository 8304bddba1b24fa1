//! The `Ledger` service: create and look up accounts and transfers, as
//! protobuf messages or as packed wire frames.

use std::sync::Arc;

use bytes::Bytes;
use hyperraft_raft::BatchResponse;
use hyperraft_wire::{encode_frame, encode_ids, AccountRecord, Kind, TransferRecord};
use prost::Message;
use tonic::{Request, Response, Status};
use zerocopy::{FromBytes, IntoBytes};

use crate::api::{check_batch_len, check_packed, Api};
use crate::convert::{account_message, account_record, to_u128, transfer_message, transfer_record};
use crate::errors::{invalid_argument, unexpected};
use crate::proto;
use crate::proto::ledger_server::Ledger;

pub(crate) struct LedgerService {
    pub(crate) api: Arc<Api>,
}

/// Which of a request's two forms was given.
enum Form<'a, T> {
    Messages(&'a [T]),
    Packed(&'a Bytes),
}

/// Exactly one of `messages` (named `field`) and `frame` must be given.
fn form<'a, T>(field: &str, messages: &'a [T], frame: &'a Bytes) -> Result<Form<'a, T>, Status> {
    match (messages.is_empty(), frame.is_empty()) {
        (false, true) => Ok(Form::Messages(messages)),
        (true, false) => Ok(Form::Packed(frame)),
        (false, false) => Err(invalid_argument(field, "given together with frame; give one of them")),
        (true, true) => Err(invalid_argument(field, "empty, and so is frame; give one of them")),
    }
}

/// The failed items of a create batch, in order.
fn failures(response: BatchResponse, count: usize) -> Result<Vec<(u32, i32)>, Status> {
    let BatchResponse::Codes(codes) = response else {
        return Err(unexpected(format!("{response:?} for a create batch")));
    };
    if codes.len() != count {
        return Err(unexpected(format!("{} result codes for {count} items", codes.len())));
    }
    // Indexes fit a u32: the batch was bounded by the frame's count limit.
    Ok(codes
        .iter()
        .enumerate()
        .filter(|(_, code)| **code != 0)
        .map(|(index, code)| (index as u32, *code as i32))
        .collect())
}

/// How many items a packed frame claims (checked by `check_packed`).
fn packed_count(frame: &[u8]) -> usize {
    hyperraft_wire::FrameHeader::ref_from_prefix(frame).map_or(0, |(header, _)| header.count.get() as usize)
}

/// The wire frame of a create batch given as messages, `field` naming the
/// list in errors.
fn batch_frame<T>(
    field: &str,
    kind: Kind,
    messages: &[T],
    append_record: impl Fn(usize, &T, &mut Vec<u8>) -> Result<(), Status>,
) -> Result<Vec<u8>, Status> {
    check_batch_len(field, messages.len())?;
    // One allocation for the body, one for the frame: nothing per record.
    let record_bytes = kind.record_bytes().expect("create kinds have fixed-size records");
    let mut body = Vec::with_capacity(messages.len() * record_bytes);
    for (index, message) in messages.iter().enumerate() {
        append_record(index, message, &mut body)?;
    }
    let mut frame = Vec::new();
    // The count fits a u32: `check_batch_len` bounded it.
    encode_frame(kind, messages.len() as u32, &body, &mut frame);
    Ok(frame)
}

/// The `CreateAccounts` wire frame of `accounts`: what the node builds from
/// a plain protobuf request, and what a client may send as the packed form.
/// Fields the wire cannot hold are `INVALID_ARGUMENT`, named as in a request.
pub fn accounts_frame(accounts: &[proto::Account]) -> Result<Vec<u8>, Status> {
    batch_frame("accounts", Kind::CreateAccounts, accounts, append_account)
}

/// The `CreateTransfers` wire frame of `transfers`; see [`accounts_frame`].
pub fn transfers_frame(transfers: &[proto::Transfer]) -> Result<Vec<u8>, Status> {
    batch_frame("transfers", Kind::CreateTransfers, transfers, append_transfer)
}

impl LedgerService {
    /// Builds (or checks) the create frame, writes it, returns the failures.
    async fn create<T>(
        &self,
        field: &str,
        kind: Kind,
        messages: &[T],
        frame: &Bytes,
        append_record: impl Fn(usize, &T, &mut Vec<u8>) -> Result<(), Status>,
    ) -> Result<Vec<(u32, i32)>, Status> {
        let (response, count) = match form(field, messages, frame)? {
            Form::Messages(messages) => {
                let frame = batch_frame(field, kind, messages, append_record)?;
                (self.api.write(&frame).await?, messages.len())
            }
            Form::Packed(frame) => {
                check_packed(frame, kind)?;
                (self.api.write(frame).await?, packed_count(frame))
            }
        };
        failures(response, count)
    }

    /// Builds (or checks) the lookup frame and reads it; returns the found
    /// records, back to back.
    async fn lookup(
        &self,
        kind: Kind,
        ids: &[proto::Uint128],
        frame: &Bytes,
        serializable: bool,
    ) -> Result<Vec<u8>, Status> {
        let response = match form("ids", ids, frame)? {
            Form::Messages(ids) => {
                check_batch_len("ids", ids.len())?;
                let ids: Vec<u128> = ids.iter().map(|id| to_u128(Some(id))).collect();
                let mut frame = Vec::new();
                encode_ids(kind, &ids, &mut frame);
                self.api.read(&frame, serializable).await?
            }
            Form::Packed(frame) => {
                check_packed(frame, kind)?;
                self.api.read(frame, serializable).await?
            }
        };
        match response {
            BatchResponse::Records(records) => Ok(records),
            other => Err(unexpected(format!("{other:?} for a lookup"))),
        }
    }
}

fn append_account(index: usize, account: &proto::Account, body: &mut Vec<u8>) -> Result<(), Status> {
    body.extend_from_slice(account_record(index, account)?.as_bytes());
    Ok(())
}

fn append_transfer(index: usize, transfer: &proto::Transfer, body: &mut Vec<u8>) -> Result<(), Status> {
    body.extend_from_slice(transfer_record(index, transfer)?.as_bytes());
    Ok(())
}

#[tonic::async_trait]
impl Ledger for LedgerService {
    async fn create_accounts(
        &self,
        request: Request<proto::CreateAccountsRequest>,
    ) -> Result<Response<proto::CreateAccountsResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(request.encoded_len())?;
        let failed =
            self.create("accounts", Kind::CreateAccounts, &request.accounts, &request.frame, append_account).await?;
        let results = failed.into_iter().map(|(index, code)| proto::CreateAccountsResult { index, code }).collect();
        Ok(Response::new(proto::CreateAccountsResponse { results }))
    }

    async fn create_transfers(
        &self,
        request: Request<proto::CreateTransfersRequest>,
    ) -> Result<Response<proto::CreateTransfersResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(request.encoded_len())?;
        let failed = self
            .create("transfers", Kind::CreateTransfers, &request.transfers, &request.frame, append_transfer)
            .await?;
        let results = failed.into_iter().map(|(index, code)| proto::CreateTransfersResult { index, code }).collect();
        Ok(Response::new(proto::CreateTransfersResponse { results }))
    }

    async fn lookup_accounts(
        &self,
        request: Request<proto::LookupAccountsRequest>,
    ) -> Result<Response<proto::LookupAccountsResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(request.encoded_len())?;
        let records = self.lookup(Kind::LookupAccounts, &request.ids, &request.frame, request.serializable).await?;
        if !request.frame.is_empty() {
            return Ok(Response::new(proto::LookupAccountsResponse { accounts: Vec::new(), records: records.into() }));
        }
        let view = <[AccountRecord]>::ref_from_bytes(&records).map_err(|_| unexpected("a partial account record"))?;
        let accounts = view.iter().map(account_message).collect();
        Ok(Response::new(proto::LookupAccountsResponse { accounts, records: Bytes::new() }))
    }

    async fn lookup_transfers(
        &self,
        request: Request<proto::LookupTransfersRequest>,
    ) -> Result<Response<proto::LookupTransfersResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(request.encoded_len())?;
        let records = self.lookup(Kind::LookupTransfers, &request.ids, &request.frame, request.serializable).await?;
        if !request.frame.is_empty() {
            return Ok(Response::new(proto::LookupTransfersResponse {
                transfers: Vec::new(),
                records: records.into(),
            }));
        }
        let view = <[TransferRecord]>::ref_from_bytes(&records).map_err(|_| unexpected("a partial transfer record"))?;
        let transfers = view.iter().map(transfer_message).collect();
        Ok(Response::new(proto::LookupTransfersResponse { transfers, records: Bytes::new() }))
    }
}
