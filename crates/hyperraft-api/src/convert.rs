//! Protobuf messages to wire records and back, validating every field the
//! wire cannot hold (16-bit codes and flags) and naming it when it is bad.

use hyperraft_raft::{KvErrorCode, KvPair, KvResult};
use hyperraft_wire::{AccountRecord, TransferRecord};
use tonic::Status;
use zerocopy::byteorder::little_endian::{U128, U16, U32, U64};

use crate::errors::invalid_argument;
use crate::proto;

pub(crate) fn to_u128(value: Option<&proto::Uint128>) -> u128 {
    value.map_or(0, |value| (u128::from(value.high) << 64) | u128::from(value.low))
}

pub(crate) fn from_u128(value: u128) -> Option<proto::Uint128> {
    Some(proto::Uint128 { high: (value >> 64) as u64, low: value as u64 })
}

fn le(value: Option<&proto::Uint128>) -> U128 {
    U128::new(to_u128(value))
}

fn u16_field(value: u32, list: &str, index: usize, field: &str) -> Result<U16, Status> {
    u16::try_from(value)
        .map(U16::new)
        .map_err(|_| invalid_argument(&format!("{list}[{index}].{field}"), format!("{value} exceeds 65535")))
}

/// The wire record of `accounts[index]`.
pub(crate) fn account_record(index: usize, account: &proto::Account) -> Result<AccountRecord, Status> {
    Ok(AccountRecord {
        id: le(account.id.as_ref()),
        debits_posted: le(account.debits_posted.as_ref()),
        credits_posted: le(account.credits_posted.as_ref()),
        user_data: le(account.user_data.as_ref()),
        timestamp: U64::new(account.timestamp),
        ledger: U32::new(account.ledger),
        code: u16_field(account.code, "accounts", index, "code")?,
        flags: u16_field(account.flags, "accounts", index, "flags")?,
    })
}

/// The wire record of `transfers[index]`.
pub(crate) fn transfer_record(index: usize, transfer: &proto::Transfer) -> Result<TransferRecord, Status> {
    Ok(TransferRecord {
        id: le(transfer.id.as_ref()),
        debit_account_id: le(transfer.debit_account_id.as_ref()),
        credit_account_id: le(transfer.credit_account_id.as_ref()),
        amount: le(transfer.amount.as_ref()),
        user_data: le(transfer.user_data.as_ref()),
        timestamp: U64::new(transfer.timestamp),
        ledger: U32::new(transfer.ledger),
        code: u16_field(transfer.code, "transfers", index, "code")?,
        flags: u16_field(transfer.flags, "transfers", index, "flags")?,
    })
}

pub(crate) fn account_message(record: &AccountRecord) -> proto::Account {
    proto::Account {
        id: from_u128(record.id.get()),
        debits_posted: from_u128(record.debits_posted.get()),
        credits_posted: from_u128(record.credits_posted.get()),
        user_data: from_u128(record.user_data.get()),
        timestamp: record.timestamp.get(),
        ledger: record.ledger.get(),
        code: u32::from(record.code.get()),
        flags: u32::from(record.flags.get()),
    }
}

pub(crate) fn transfer_message(record: &TransferRecord) -> proto::Transfer {
    proto::Transfer {
        id: from_u128(record.id.get()),
        debit_account_id: from_u128(record.debit_account_id.get()),
        credit_account_id: from_u128(record.credit_account_id.get()),
        amount: from_u128(record.amount.get()),
        user_data: from_u128(record.user_data.get()),
        timestamp: record.timestamp.get(),
        ledger: record.ledger.get(),
        code: u32::from(record.code.get()),
        flags: u32::from(record.flags.get()),
    }
}

fn key_value(pair: &KvPair) -> proto::KeyValue {
    proto::KeyValue {
        key: pair.key.clone().into(),
        value: pair.value.clone().into(),
        create_revision: pair.create_revision,
        mod_revision: pair.mod_revision,
        version: pair.version,
        lease: pair.lease,
    }
}

fn header(revision: u64, node_id: u64) -> Option<proto::ResponseHeader> {
    Some(proto::ResponseHeader { revision, node_id })
}

/// The response to one key/value command; a refused command is an error
/// status with the store's reason (see [`refused`]).
pub(crate) fn kv_response(result: KvResult, node_id: u64) -> Result<proto::response_op::Response, Status> {
    use proto::response_op::Response;
    Ok(match result {
        KvResult::Put { revision, prev } => Response::Put(proto::PutResponse {
            header: header(revision, node_id),
            prev_kv: prev.as_ref().map(key_value),
        }),
        KvResult::DeleteRange { revision, deleted, prev } => Response::DeleteRange(proto::DeleteRangeResponse {
            header: header(revision, node_id),
            deleted,
            prev_kvs: prev.iter().map(key_value).collect(),
        }),
        KvResult::Range { revision, kvs, count, more } => Response::Range(proto::RangeResponse {
            header: header(revision, node_id),
            kvs: kvs.iter().map(key_value).collect(),
            count,
            more,
        }),
        KvResult::Txn { .. } => return Err(crate::errors::unexpected("a transaction inside a transaction")),
        KvResult::Error { code, message } => return Err(refused(code, message)),
        other @ (KvResult::LeaseGrant { .. }
        | KvResult::LeaseRevoke { .. }
        | KvResult::LeaseKeepAlive { .. }
        | KvResult::LeaseExpire { .. }) => {
            return Err(crate::errors::unexpected(format!("{other:?} for a key/value operation")))
        }
    })
}

/// The response to a whole transaction command.
pub(crate) fn txn_response(result: KvResult, node_id: u64) -> Result<proto::TxnResponse, Status> {
    match result {
        KvResult::Txn { revision, succeeded, responses } => Ok(proto::TxnResponse {
            header: header(revision, node_id),
            succeeded,
            responses: responses
                .into_iter()
                .map(|response| kv_response(response, node_id).map(|r| proto::ResponseOp { response: Some(r) }))
                .collect::<Result<_, _>>()?,
        }),
        KvResult::Error { code, message } => Err(refused(code, message)),
        other => Err(crate::errors::unexpected(format!("{other:?} for a transaction"))),
    }
}

/// The status of a command the state machine refused: `NOT_FOUND` for a
/// lease that does not exist, `RESOURCE_EXHAUSTED` when the lease table is
/// full, otherwise `FAILED_PRECONDITION`; the message is the store's.
pub(crate) fn refused(code: KvErrorCode, message: String) -> Status {
    match code {
        KvErrorCode::LeaseNotFound => Status::not_found(message),
        KvErrorCode::LeasesFull => Status::resource_exhausted(message),
        KvErrorCode::StoreFull
        | KvErrorCode::TxnDuplicateKey
        | KvErrorCode::LeaseExists
        | KvErrorCode::Compacted
        | KvErrorCode::Other => Status::failed_precondition(message),
    }
}

#[cfg(test)]
mod tests;
