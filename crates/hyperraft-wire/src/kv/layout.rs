//! The fixed headers of the key/value layout (see the `kv` module doc),
//! as little-endian, alignment-1 structs shared by the decoder and writer.

use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

pub(super) const TAG_PUT: u8 = 1;
pub(super) const TAG_DELETE_RANGE: u8 = 2;
pub(super) const TAG_RANGE: u8 = 3;
pub(super) const TAG_TXN: u8 = 4;
pub(super) const TAG_LEASE_GRANT: u8 = 5;
pub(super) const TAG_LEASE_REVOKE: u8 = 6;
pub(super) const TAG_LEASE_KEEP_ALIVE: u8 = 7;
pub(super) const TAG_LEASE_EXPIRE: u8 = 8;

/// Put and DeleteRange flag: return the previous key-value pair.
pub(super) const FLAG_PREV_KV: u8 = 1 << 0;
/// Range flag: return keys without values.
pub(super) const FLAG_KEYS_ONLY: u8 = 1 << 0;
/// Range flag: return only the number of keys.
pub(super) const FLAG_COUNT_ONLY: u8 = 1 << 1;

pub(super) const TARGET_VALUE: u8 = 0;
pub(super) const TARGET_VERSION: u8 = 1;
pub(super) const TARGET_CREATE_REVISION: u8 = 2;
pub(super) const TARGET_MOD_REVISION: u8 = 3;
pub(super) const TARGET_LEASE: u8 = 4;

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct PutHeader {
    pub tag: u8,
    pub flags: u8,
    pub key_len: U16,
    pub value_len: U32,
    pub lease: U64,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct DeleteHeader {
    pub tag: u8,
    pub flags: u8,
    pub key_len: U16,
    pub end_len: U16,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct RangeHeader {
    pub tag: u8,
    pub flags: u8,
    pub key_len: U16,
    pub end_len: U16,
    pub limit: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct TxnHeader {
    pub tag: u8,
    pub flags: u8,
    pub compare_count: U16,
    pub success_count: U16,
    pub failure_count: U16,
    pub compares_len: U32,
    pub success_len: U32,
    pub failure_len: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct CompareHeader {
    pub target: u8,
    pub op: u8,
    pub key_len: U16,
}

/// LeaseGrant.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct LeaseGrantHeader {
    pub tag: u8,
    pub flags: u8,
    pub id: U64,
    pub ttl_ms: U64,
}

/// LeaseRevoke, LeaseKeepAlive and LeaseExpire: a lease id and nothing else.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(super) struct LeaseHeader {
    pub tag: u8,
    pub flags: u8,
    pub id: U64,
}

const _: () = assert!(size_of::<PutHeader>() == 16);
const _: () = assert!(size_of::<DeleteHeader>() == 6);
const _: () = assert!(size_of::<RangeHeader>() == 10);
const _: () = assert!(size_of::<TxnHeader>() == 20);
const _: () = assert!(size_of::<CompareHeader>() == 4);
const _: () = assert!(size_of::<LeaseGrantHeader>() == 18);
const _: () = assert!(size_of::<LeaseHeader>() == 10);
