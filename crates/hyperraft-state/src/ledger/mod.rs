//! The double-entry ledger: accounts, transfers, per-item results.
//!
//! A create batch is applied item by item in batch order; each item either
//! succeeds or gets a [`CreateTransferResult`] / [`CreateAccountResult`]
//! that says why, and a failed item changes nothing. Consecutive items with
//! the `LINKED` flag form a chain that succeeds or fails as a whole.
//! Creating an id that exists with identical fields answers `Exists` and
//! changes nothing, so a client may retry any batch safely.
//!
//! Money is conserved by construction: a transfer adds the same amount to
//! one account's `debits_posted` and another's `credits_posted`. Debug
//! builds re-add every account after each batch to check it.

mod account;
mod accounts;
mod check;
mod planned;
mod result;
mod sequential;
mod transfer;
mod transfers;

#[cfg(test)]
mod tests;

pub use account::Account;
pub use result::{CreateAccountResult, CreateTransferResult};
pub use transfer::Transfer;
pub use transfers::TRANSFERS_MAX_LIMIT;

pub(crate) use planned::PlannedOutcome;

use hyperraft_wire::{AccountRecord, TransferRecord};

use accounts::AccountStore;
use planned::PlanScratch;
use transfers::TransferStore;

/// Bounds of one ledger. Creating past a bound is a per-item error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerConfig {
    pub accounts_max: u32,
    pub transfers_max: u64,
    pub parallel: ParallelTuning,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig { accounts_max: 10_000_000, transfers_max: 100_000_000, parallel: ParallelTuning::default() }
    }
}

/// When a transfer batch is worth applying in parallel. The defaults come
/// from the `apply` benchmark (see BENCHMARKS.md); results never depend on
/// them, only speed does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParallelTuning {
    /// Smaller batches go sequential.
    pub batch_min: usize,
    /// Batches with fewer units (transfers or chains) per level on average
    /// go sequential: they conflict too densely to gain from threads.
    pub level_width_min: usize,
}

impl Default for ParallelTuning {
    fn default() -> Self {
        ParallelTuning { batch_min: 2048, level_width_min: 64 }
    }
}

/// Accounts and transfers, with the scratch space the executor reuses.
pub struct Ledger {
    config: LedgerConfig,
    accounts: AccountStore,
    transfers: TransferStore,
    /// Reused across batches so steady-state apply does not allocate.
    undo: Vec<(accounts::Slot, Account)>,
    plan: PlanScratch,
}

impl Ledger {
    /// `config.transfers_max` must be at most [`TRANSFERS_MAX_LIMIT`]
    /// (`StateMachine::new` checks it and reports a clear error).
    pub fn new(config: LedgerConfig) -> Ledger {
        assert!(config.transfers_max <= TRANSFERS_MAX_LIMIT, "transfers_max over TRANSFERS_MAX_LIMIT");
        Ledger {
            config,
            accounts: AccountStore::default(),
            transfers: TransferStore::default(),
            undo: Vec::new(),
            plan: PlanScratch::default(),
        }
    }

    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }

    pub fn account(&self, id: u128) -> Option<&Account> {
        self.accounts.get(id)
    }

    pub fn transfer(&self, id: u128) -> Option<&Transfer> {
        self.transfers.get(id)
    }

    /// Every account, in creation order.
    pub fn accounts(&self) -> &[Account] {
        self.accounts.slots()
    }

    /// Every transfer, in creation order.
    pub fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.transfers.iter()
    }

    /// Every transfer, in creation order, in chunks: the store's full
    /// chunks, shared (it never changes them), and a copy of the one being
    /// filled.
    pub(crate) fn share_transfer_chunks(&self) -> Vec<std::sync::Arc<Vec<Transfer>>> {
        self.transfers.share_chunks()
    }

    pub fn accounts_len(&self) -> usize {
        self.accounts.len()
    }

    pub fn transfers_len(&self) -> u64 {
        self.transfers.len()
    }

    /// Σ debits_posted and Σ credits_posted over all accounts (mod 2^128).
    /// Equal whenever the ledger is consistent.
    pub fn totals(&self) -> (u128, u128) {
        self.accounts.slots().iter().fold((0u128, 0u128), |(debits, credits), account| {
            (debits.wrapping_add(account.debits_posted), credits.wrapping_add(account.credits_posted))
        })
    }

    /// Creates accounts; item `i` gets timestamp `timestamp + i`.
    pub fn create_accounts(
        &mut self,
        records: &[AccountRecord],
        timestamp: u64,
        results: &mut Vec<CreateAccountResult>,
    ) {
        self.create_accounts_sequential(records, timestamp, results);
        self.assert_balanced();
    }

    /// Creates transfers; item `i` gets timestamp `timestamp + i`. Batches
    /// go through the planned path (batched lookups; parallel levels with a
    /// pool of two or more threads) unless it declines them; the outcome is
    /// exactly that of [`Self::create_transfers_sequential`] either way.
    pub fn create_transfers(
        &mut self,
        records: &[TransferRecord],
        timestamp: u64,
        pool: Option<&rayon::ThreadPool>,
        results: &mut Vec<CreateTransferResult>,
    ) {
        let outcome = self.create_transfers_planned(records, timestamp, pool, results);
        if outcome == PlannedOutcome::Declined {
            self.create_transfers_sequential(records, timestamp, results);
        }
        self.assert_balanced();
    }

    /// Re-adds every account in debug builds: money neither appears nor vanishes.
    fn assert_balanced(&self) {
        if cfg!(debug_assertions) {
            let (debits, credits) = self.totals();
            assert_eq!(debits, credits, "ledger out of balance");
        }
    }

    /// Rebuilds a ledger from a snapshot's accounts and transfers,
    /// rejecting content no ledger could have produced.
    pub(crate) fn restore(
        config: LedgerConfig,
        accounts: Vec<Account>,
        transfers: Vec<Transfer>,
    ) -> Result<Ledger, String> {
        let mut ledger = Ledger::new(config);
        for account in accounts {
            if account.id == 0 || ledger.accounts.slot_of(account.id).is_some() {
                return Err(format!("account id {} is zero or repeated", account.id));
            }
            ledger.accounts.insert(account);
        }
        for transfer in transfers {
            if transfer.id == 0 || ledger.transfers.get(transfer.id).is_some() {
                return Err(format!("transfer id {} is zero or repeated", transfer.id));
            }
            ledger.transfers.insert(transfer);
        }
        let (debits, credits) = ledger.totals();
        if debits != credits {
            return Err(format!("accounts out of balance: debits {debits} != credits {credits}"));
        }
        Ok(ledger)
    }
}

/// Starts loading the cache line holding `address` into the cache. A hint
/// only: it never faults and changes nothing the program reads.
#[inline]
fn prefetch_line(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch reads nothing into the program and never
        // faults, whatever the address; callers pass addresses inside live
        // values anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(address.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// The end (exclusive) of the unit starting at `start`, and whether it is a
/// linked chain left open by the end of the batch.
fn unit_end(len: usize, start: usize, is_linked: impl Fn(usize) -> bool) -> (usize, bool) {
    let mut end = start;
    while end < len && is_linked(end) {
        end += 1;
    }
    if end == len {
        // Every item from `start` to the end is linked: the chain never closed.
        (len, end > start)
    } else {
        (end + 1, false)
    }
}
