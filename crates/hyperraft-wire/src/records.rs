//! Fixed-size ledger records, little-endian, alignment 1, read in place.

use zerocopy::byteorder::little_endian::{U128, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Bits of [`AccountRecord::flags`].
pub mod account_flags {
    /// Part of a chain of consecutive accounts that is created as a whole or not at all.
    pub const LINKED: u16 = 1 << 0;
    /// `debits_posted` may never exceed `credits_posted`.
    pub const DEBITS_MUST_NOT_EXCEED_CREDITS: u16 = 1 << 1;
    /// `credits_posted` may never exceed `debits_posted`.
    pub const CREDITS_MUST_NOT_EXCEED_DEBITS: u16 = 1 << 2;
    /// Every defined bit; the others are reserved and must be zero.
    pub const ALL: u16 = LINKED | DEBITS_MUST_NOT_EXCEED_CREDITS | CREDITS_MUST_NOT_EXCEED_DEBITS;
}

/// Bits of [`TransferRecord::flags`].
pub mod transfer_flags {
    /// Part of a chain of consecutive transfers that succeeds or fails as a whole.
    pub const LINKED: u16 = 1 << 0;
    /// Every defined bit; the others are reserved and must be zero.
    pub const ALL: u16 = LINKED;
}

/// An account: 80 bytes on the wire.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct AccountRecord {
    /// Unique account id.
    pub id: U128,
    /// Sum of the amounts of posted transfers that debit this account.
    pub debits_posted: U128,
    /// Sum of the amounts of posted transfers that credit this account.
    pub credits_posted: U128,
    /// Opaque to the cluster; for the client's own references.
    pub user_data: U128,
    /// Nanoseconds; assigned by the cluster, zero in a create request.
    pub timestamp: U64,
    /// Ledger the account belongs to; transfers stay within one ledger.
    pub ledger: U32,
    /// Account type, chosen by the client.
    pub code: U16,
    /// Bits of [`account_flags`].
    pub flags: U16,
}

/// A transfer: 96 bytes on the wire.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct TransferRecord {
    /// Unique transfer id.
    pub id: U128,
    /// Account whose debits increase by `amount`.
    pub debit_account_id: U128,
    /// Account whose credits increase by `amount`.
    pub credit_account_id: U128,
    /// Amount moved, in the ledger's smallest unit.
    pub amount: U128,
    /// Opaque to the cluster; for the client's own references.
    pub user_data: U128,
    /// Nanoseconds; assigned by the cluster, zero in a create request.
    pub timestamp: U64,
    /// Ledger of both accounts.
    pub ledger: U32,
    /// Transfer type, chosen by the client.
    pub code: U16,
    /// Bits of [`transfer_flags`].
    pub flags: U16,
}

/// One per-item result of a create batch: 8 bytes.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct ResultRecord {
    /// Position of the item in its create batch, from 0.
    pub index: U32,
    /// Outcome of creating that item.
    pub code: U32,
}

const _: () = assert!(size_of::<AccountRecord>() == 80);
const _: () = assert!(size_of::<TransferRecord>() == 96);
const _: () = assert!(size_of::<ResultRecord>() == 8);
