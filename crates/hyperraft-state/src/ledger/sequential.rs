//! Sequential apply: the reference semantics every other path must match.

use hyperraft_wire::records::{account_flags, transfer_flags};
use hyperraft_wire::{AccountRecord, TransferRecord};

use super::account::Account;
use super::check;
use super::result::{CreateAccountResult, CreateTransferResult};
use super::transfer::Transfer;
use super::{unit_end, Ledger};

/// A transfer that passed every check: where and what to post.
struct Posting {
    debit: super::accounts::Slot,
    credit: super::accounts::Slot,
    debits_posted: u128,
    credits_posted: u128,
}

impl Ledger {
    /// Applies transfers one by one in batch order.
    pub fn create_transfers_sequential(
        &mut self,
        records: &[TransferRecord],
        timestamp: u64,
        results: &mut Vec<CreateTransferResult>,
    ) {
        results.clear();
        results.reserve(records.len());
        let mut start = 0;
        while start < records.len() {
            let (end, open) = unit_end(records.len(), start, |i| records[i].flags.get() & transfer_flags::LINKED != 0);
            if open {
                fail_open_chain(
                    results,
                    end - start,
                    CreateTransferResult::LinkedEventFailed,
                    CreateTransferResult::LinkedEventChainOpen,
                );
            } else {
                self.transfer_chain(&records[start..end], timestamp + start as u64, results);
            }
            start = end;
        }
        debug_assert_eq!(results.len(), records.len());
    }

    /// Applies one chain (or a lone transfer); on a failure undoes the chain.
    fn transfer_chain(&mut self, chain: &[TransferRecord], timestamp: u64, results: &mut Vec<CreateTransferResult>) {
        let results_start = results.len();
        let transfers_len_before = self.transfers.len();
        self.undo.clear();
        for (offset, record) in chain.iter().enumerate() {
            let request = Transfer::from_record(record);
            match self.transfer_check(&request) {
                Ok(posting) => {
                    results.push(CreateTransferResult::Ok);
                    self.transfer_post(request, &posting, timestamp + offset as u64);
                }
                Err(code) => {
                    results.push(code);
                    self.transfer_chain_undo(transfers_len_before);
                    fail_chain_except(
                        results,
                        results_start,
                        offset,
                        chain.len(),
                        CreateTransferResult::LinkedEventFailed,
                    );
                    return;
                }
            }
        }
    }

    fn transfer_check(&self, request: &Transfer) -> Result<Posting, CreateTransferResult> {
        ok_or(check::transfer_fields(request))?;
        if let Some(stored) = self.transfers.get(request.id) {
            return Err(check::transfer_exists(stored, request));
        }
        if self.transfers.len() >= self.config.transfers_max {
            return Err(CreateTransferResult::TransfersFull);
        }
        let debit = self.accounts.slot_of(request.debit_account_id);
        let credit = self.accounts.slot_of(request.credit_account_id);
        let slots = self.accounts.slots();
        let debit_account = debit.map(|slot| &slots[slot as usize]);
        let credit_account = credit.map(|slot| &slots[slot as usize]);
        ok_or(check::transfer_accounts(request, debit_account, credit_account))?;
        let (debit, credit) = (debit.expect("checked"), credit.expect("checked"));
        let (debits_posted, credits_posted) =
            check::transfer_balances(request, &slots[debit as usize], &slots[credit as usize])?;
        Ok(Posting { debit, credit, debits_posted, credits_posted })
    }

    fn transfer_post(&mut self, mut request: Transfer, posting: &Posting, timestamp: u64) {
        let slots = self.accounts.slots_mut();
        self.undo.push((posting.debit, slots[posting.debit as usize]));
        self.undo.push((posting.credit, slots[posting.credit as usize]));
        slots[posting.debit as usize].debits_posted = posting.debits_posted;
        slots[posting.credit as usize].credits_posted = posting.credits_posted;
        request.timestamp = timestamp;
        self.transfers.insert(request);
    }

    fn transfer_chain_undo(&mut self, transfers_len_before: u64) {
        let slots = self.accounts.slots_mut();
        for (slot, account) in self.undo.drain(..).rev() {
            slots[slot as usize] = account;
        }
        while self.transfers.len() > transfers_len_before {
            self.transfers.pop();
        }
    }

    /// Applies account creations one by one in batch order.
    pub(super) fn create_accounts_sequential(
        &mut self,
        records: &[AccountRecord],
        timestamp: u64,
        results: &mut Vec<CreateAccountResult>,
    ) {
        results.clear();
        results.reserve(records.len());
        let mut start = 0;
        while start < records.len() {
            let (end, open) = unit_end(records.len(), start, |i| records[i].flags.get() & account_flags::LINKED != 0);
            if open {
                fail_open_chain(
                    results,
                    end - start,
                    CreateAccountResult::LinkedEventFailed,
                    CreateAccountResult::LinkedEventChainOpen,
                );
            } else {
                self.account_chain(&records[start..end], timestamp + start as u64, results);
            }
            start = end;
        }
    }

    fn account_chain(&mut self, chain: &[AccountRecord], timestamp: u64, results: &mut Vec<CreateAccountResult>) {
        let results_start = results.len();
        let accounts_len_before = self.accounts.len();
        for (offset, record) in chain.iter().enumerate() {
            let mut request = Account::from_record(record);
            let code = self.account_check(&request);
            results.push(code);
            if code.is_ok() {
                request.timestamp = timestamp + offset as u64;
                self.accounts.insert(request);
            } else {
                while self.accounts.len() > accounts_len_before {
                    self.accounts.pop();
                }
                fail_chain_except(results, results_start, offset, chain.len(), CreateAccountResult::LinkedEventFailed);
                return;
            }
        }
    }

    fn account_check(&self, request: &Account) -> CreateAccountResult {
        let code = check::account_fields(request);
        if !code.is_ok() {
            return code;
        }
        if let Some(stored) = self.accounts.get(request.id) {
            return check::account_exists(stored, request);
        }
        if self.accounts.len() >= self.config.accounts_max as usize {
            return CreateAccountResult::AccountsFull;
        }
        CreateAccountResult::Ok
    }
}

fn ok_or(code: CreateTransferResult) -> Result<(), CreateTransferResult> {
    if code.is_ok() {
        Ok(())
    } else {
        Err(code)
    }
}

/// Results for a chain the batch left open: every item fails, the last one
/// saying why.
pub(super) fn fail_open_chain<R: Copy>(results: &mut Vec<R>, len: usize, failed: R, open: R) {
    for _ in 1..len {
        results.push(failed);
    }
    results.push(open);
}

/// After item `failed_at` of the chain starting at `chain_start` failed with
/// its own code (already the last entry of `results`), every other item of
/// the chain fails with `failed`.
pub(super) fn fail_chain_except<R: Copy>(
    results: &mut Vec<R>,
    chain_start: usize,
    failed_at: usize,
    chain_len: usize,
    failed: R,
) {
    debug_assert_eq!(results.len(), chain_start + failed_at + 1);
    for result in &mut results[chain_start..chain_start + failed_at] {
        *result = failed;
    }
    results.resize(chain_start + chain_len, failed);
}
