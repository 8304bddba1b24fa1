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
#[derive(
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
)]
#[repr(C)]
pub struct AccountRecord {
    pub id: U128,
    pub debits_posted: U128,
    pub credits_posted: U128,
    pub user_data: U128,
    /// Nanoseconds; assigned by the cluster, zero in a create request.
    pub timestamp: U64,
    pub ledger: U32,
    pub code: U16,
    pub flags: U16,
}

/// A transfer: 96 bytes on the wire.
#[derive(
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
)]
#[repr(C)]
pub struct TransferRecord {
    pub id: U128,
    pub debit_account_id: U128,
    pub credit_account_id: U128,
    pub amount: U128,
    pub user_data: U128,
    /// Nanoseconds; assigned by the cluster, zero in a create request.
    pub timestamp: U64,
    pub ledger: U32,
    pub code: U16,
    pub flags: U16,
}

/// One per-item result of a create batch: 8 bytes.
#[derive(
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
)]
#[repr(C)]
pub struct ResultRecord {
    pub index: U32,
    pub code: U32,
}

const _: () = assert!(size_of::<AccountRecord>() == 80);
const _: () = assert!(size_of::<TransferRecord>() == 96);
const _: () = assert!(size_of::<ResultRecord>() == 8);
