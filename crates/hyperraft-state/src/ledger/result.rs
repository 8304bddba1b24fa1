//! Per-item result codes of create batches.
//!
//! Codes are stable numbers: they cross the wire in `ResultRecord::code`.
//! When several apply, the first in the order of checks wins: static fields
//! (timestamp, flags, ids, amount, ledger, code), then `Exists`, then the
//! capacity bound, then the accounts, then balances.

/// The outcome of creating one account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CreateAccountResult {
    Ok = 0,
    /// Another account of the same linked chain failed.
    LinkedEventFailed = 1,
    /// The batch ended inside a linked chain.
    LinkedEventChainOpen = 2,
    TimestampMustBeZero = 3,
    ReservedFlag = 4,
    IdMustNotBeZero = 5,
    FlagsAreMutuallyExclusive = 6,
    DebitsPostedMustBeZero = 7,
    CreditsPostedMustBeZero = 8,
    LedgerMustNotBeZero = 9,
    CodeMustNotBeZero = 10,
    /// An account with this id exists with other fields.
    ExistsWithDifferentFields = 11,
    /// An identical account exists: the request was a retry; nothing changed.
    Exists = 12,
    /// The ledger holds its configured maximum of accounts.
    AccountsFull = 13,
}

/// The outcome of creating one transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CreateTransferResult {
    Ok = 0,
    /// Another transfer of the same linked chain failed.
    LinkedEventFailed = 1,
    /// The batch ended inside a linked chain.
    LinkedEventChainOpen = 2,
    TimestampMustBeZero = 3,
    ReservedFlag = 4,
    IdMustNotBeZero = 5,
    DebitAccountIdMustNotBeZero = 6,
    CreditAccountIdMustNotBeZero = 7,
    AccountsMustBeDifferent = 8,
    AmountMustNotBeZero = 9,
    LedgerMustNotBeZero = 10,
    CodeMustNotBeZero = 11,
    /// A transfer with this id exists with other fields.
    ExistsWithDifferentFields = 12,
    /// An identical transfer exists: the request was a retry; nothing changed.
    Exists = 13,
    DebitAccountNotFound = 14,
    CreditAccountNotFound = 15,
    AccountsMustHaveTheSameLedger = 16,
    TransferMustHaveTheSameLedgerAsAccounts = 17,
    OverflowsDebitsPosted = 18,
    OverflowsCreditsPosted = 19,
    /// The debit account has `DEBITS_MUST_NOT_EXCEED_CREDITS` and too few credits.
    ExceedsCredits = 20,
    /// The credit account has `CREDITS_MUST_NOT_EXCEED_DEBITS` and too few debits.
    ExceedsDebits = 21,
    /// The ledger holds its configured maximum of transfers.
    TransfersFull = 22,
}

impl CreateAccountResult {
    pub fn is_ok(self) -> bool {
        self == CreateAccountResult::Ok
    }
}

impl CreateTransferResult {
    pub fn is_ok(self) -> bool {
        self == CreateTransferResult::Ok
    }
}
