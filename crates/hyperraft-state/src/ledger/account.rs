//! The in-memory account and its conversion to and from the wire record.

use hyperraft_wire::records::account_flags;
use hyperraft_wire::AccountRecord;

/// An account as the ledger holds it: native integers, aligned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub id: u128,
    pub debits_posted: u128,
    pub credits_posted: u128,
    pub user_data: u128,
    pub timestamp: u64,
    pub ledger: u32,
    pub code: u16,
    pub flags: u16,
}

impl Account {
    pub fn from_record(record: &AccountRecord) -> Account {
        Account {
            id: record.id.get(),
            debits_posted: record.debits_posted.get(),
            credits_posted: record.credits_posted.get(),
            user_data: record.user_data.get(),
            timestamp: record.timestamp.get(),
            ledger: record.ledger.get(),
            code: record.code.get(),
            flags: record.flags.get(),
        }
    }

    pub fn to_record(&self) -> AccountRecord {
        AccountRecord {
            id: self.id.into(),
            debits_posted: self.debits_posted.into(),
            credits_posted: self.credits_posted.into(),
            user_data: self.user_data.into(),
            timestamp: self.timestamp.into(),
            ledger: self.ledger.into(),
            code: self.code.into(),
            flags: self.flags.into(),
        }
    }

    pub fn is_linked(&self) -> bool {
        self.flags & account_flags::LINKED != 0
    }

    /// Whether posting `amount` more debits would break this account's limit.
    pub fn debit_exceeds_limit(&self, debits_posted_new: u128) -> bool {
        self.flags & account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS != 0 && debits_posted_new > self.credits_posted
    }

    /// Whether posting `amount` more credits would break this account's limit.
    pub fn credit_exceeds_limit(&self, credits_posted_new: u128) -> bool {
        self.flags & account_flags::CREDITS_MUST_NOT_EXCEED_DEBITS != 0 && credits_posted_new > self.debits_posted
    }
}
