//! Ledger calls: create and look up accounts and transfers, each batch
//! sent as one packed wire frame (the server's fast path: it checks the
//! frame once and decodes no record).

use bytes::Bytes;
use hyperraft_proto::{
    CreateAccountResult, CreateAccountsRequest, CreateTransferResult, CreateTransfersRequest, LookupAccountsRequest,
    LookupTransfersRequest,
};
use hyperraft_wire::{encode_ids, encode_records, AccountRecord, Kind, Limits, TransferRecord};
use zerocopy::FromBytes;

use crate::client::Core;
use crate::pool::Target;
use crate::retry::Safety;
use crate::{Client, Error};

/// One item of a create batch that was not created, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateFailure<Code> {
    /// Position of the item in the batch, from 0.
    pub index: u32,
    /// Why it was not created.
    pub code: Code,
}

/// An account of a create batch that was not created.
pub type AccountFailure = CreateFailure<CreateAccountResult>;
/// A transfer of a create batch that was not created.
pub type TransferFailure = CreateFailure<CreateTransferResult>;

/// Refuses an empty batch or one over the wire frame's count bound.
fn check_batch(field: &str, len: usize) -> Result<(), Error> {
    let max = Limits::default().count_max as usize;
    if len == 0 || len > max {
        return Err(Error::InvalidArgument { field: field.into(), message: format!("{len} items; give 1 to {max}") });
    }
    Ok(())
}

impl Client {
    /// Creates `accounts` in one batch; returns the accounts that were not
    /// created (sparse, in batch order): an empty list means all were.
    ///
    /// Retried through failovers: creation is idempotent by id. After a
    /// retry whose first attempt may have been applied, `EXISTS` for an
    /// item means that attempt created it; such items are reported as
    /// created (left out of the list).
    pub async fn create_accounts(&self, accounts: &[AccountRecord]) -> Result<Vec<AccountFailure>, Error> {
        check_batch("accounts", accounts.len())?;
        let mut frame = Vec::new();
        encode_records(Kind::CreateAccounts, accounts, &mut frame);
        let frame = Bytes::from(frame);
        let core = &self.core;
        let answer = core
            .call_tracked(Target::Leader, Safety::Idempotent, |channel| {
                let mut ledger = core.ledger(channel);
                let request = core.request(CreateAccountsRequest { accounts: Vec::new(), frame: frame.clone() });
                async move { ledger.create_accounts(request).await }
            })
            .await?;
        let mut failures = Vec::with_capacity(answer.value.results.len());
        for result in answer.value.results {
            let code = CreateAccountResult::try_from(result.code)
                .map_err(|_| Error::Protocol(format!("unknown account result code {}", result.code)))?;
            if !(answer.retried_after_unknown && code == CreateAccountResult::Exists) {
                failures.push(CreateFailure { index: result.index, code });
            }
        }
        Ok(failures)
    }

    /// Creates `transfers` in one batch; returns the transfers that were
    /// not created. Retries like [`Client::create_accounts`], with the same
    /// reading of `EXISTS`.
    pub async fn create_transfers(&self, transfers: &[TransferRecord]) -> Result<Vec<TransferFailure>, Error> {
        check_batch("transfers", transfers.len())?;
        let mut frame = Vec::new();
        encode_records(Kind::CreateTransfers, transfers, &mut frame);
        self.core.create_transfers_frame(Bytes::from(frame)).await
    }

    /// Looks accounts up by id (linearizable); ids not found are left out.
    pub async fn lookup_accounts(&self, ids: &[u128]) -> Result<Vec<AccountRecord>, Error> {
        check_batch("ids", ids.len())?;
        let mut frame = Vec::new();
        encode_ids(Kind::LookupAccounts, ids, &mut frame);
        let frame = Bytes::from(frame);
        let core = &self.core;
        let response = core
            .call(Target::Leader, Safety::Idempotent, |channel| {
                let mut ledger = core.ledger(channel);
                let request =
                    core.request(LookupAccountsRequest { ids: Vec::new(), frame: frame.clone(), serializable: false });
                async move { ledger.lookup_accounts(request).await }
            })
            .await?;
        let records = <[AccountRecord]>::ref_from_bytes(&response.records)
            .map_err(|_| Error::Protocol(format!("{} bytes are not whole account records", response.records.len())))?;
        Ok(records.to_vec())
    }

    /// Looks transfers up by id (linearizable); ids not found are left out.
    pub async fn lookup_transfers(&self, ids: &[u128]) -> Result<Vec<TransferRecord>, Error> {
        check_batch("ids", ids.len())?;
        let mut frame = Vec::new();
        encode_ids(Kind::LookupTransfers, ids, &mut frame);
        let frame = Bytes::from(frame);
        let core = &self.core;
        let response = core
            .call(Target::Leader, Safety::Idempotent, |channel| {
                let mut ledger = core.ledger(channel);
                let request =
                    core.request(LookupTransfersRequest { ids: Vec::new(), frame: frame.clone(), serializable: false });
                async move { ledger.lookup_transfers(request).await }
            })
            .await?;
        let records = <[TransferRecord]>::ref_from_bytes(&response.records)
            .map_err(|_| Error::Protocol(format!("{} bytes are not whole transfer records", response.records.len())))?;
        Ok(records.to_vec())
    }
}

impl Core {
    /// Sends one `CreateTransfers` frame; shared by the batch call and the
    /// auto-batcher.
    pub(crate) async fn create_transfers_frame(&self, frame: Bytes) -> Result<Vec<TransferFailure>, Error> {
        let answer = self
            .call_tracked(Target::Leader, Safety::Idempotent, |channel| {
                let mut ledger = self.ledger(channel);
                let request = self.request(CreateTransfersRequest { transfers: Vec::new(), frame: frame.clone() });
                async move { ledger.create_transfers(request).await }
            })
            .await?;
        let mut failures = Vec::with_capacity(answer.value.results.len());
        for result in answer.value.results {
            let code = CreateTransferResult::try_from(result.code)
                .map_err(|_| Error::Protocol(format!("unknown transfer result code {}", result.code)))?;
            if !(answer.retried_after_unknown && code == CreateTransferResult::Exists) {
                failures.push(CreateFailure { index: result.index, code });
            }
        }
        Ok(failures)
    }
}
