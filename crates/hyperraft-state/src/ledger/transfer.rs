//! The in-memory transfer and its conversion to and from the wire record.

use hyperraft_wire::records::transfer_flags;
use hyperraft_wire::TransferRecord;

/// A transfer as the ledger holds it: native integers, aligned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfer {
    pub id: u128,
    pub debit_account_id: u128,
    pub credit_account_id: u128,
    pub amount: u128,
    pub user_data: u128,
    pub timestamp: u64,
    pub ledger: u32,
    pub code: u16,
    pub flags: u16,
}

impl Transfer {
    pub fn from_record(record: &TransferRecord) -> Transfer {
        Transfer {
            id: record.id.get(),
            debit_account_id: record.debit_account_id.get(),
            credit_account_id: record.credit_account_id.get(),
            amount: record.amount.get(),
            user_data: record.user_data.get(),
            timestamp: record.timestamp.get(),
            ledger: record.ledger.get(),
            code: record.code.get(),
            flags: record.flags.get(),
        }
    }

    pub fn to_record(&self) -> TransferRecord {
        TransferRecord {
            id: self.id.into(),
            debit_account_id: self.debit_account_id.into(),
            credit_account_id: self.credit_account_id.into(),
            amount: self.amount.into(),
            user_data: self.user_data.into(),
            timestamp: self.timestamp.into(),
            ledger: self.ledger.into(),
            code: self.code.into(),
            flags: self.flags.into(),
        }
    }

    pub fn is_linked(&self) -> bool {
        self.flags & transfer_flags::LINKED != 0
    }

    /// Whether `self` (stored) and a create request for the same id agree on
    /// every field the client sets, so the request is a harmless retry.
    pub fn same_request(&self, request: &Transfer) -> bool {
        self.debit_account_id == request.debit_account_id
            && self.credit_account_id == request.credit_account_id
            && self.amount == request.amount
            && self.user_data == request.user_data
            && self.ledger == request.ledger
            && self.code == request.code
            && self.flags == request.flags
    }
}
