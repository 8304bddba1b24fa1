//! Checksummed batch frames: header, validation, typed body views.

use zerocopy::byteorder::little_endian::{U128, U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::kv::{KvCommands, KvDecodeError};
use crate::records::{AccountRecord, ResultRecord, TransferRecord};

/// `b"HRFT"` read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"HRFT");
/// The only format version this build reads and writes.
pub const VERSION: u16 = 1;
/// Size of [`FrameHeader`] in bytes.
pub const HEADER_BYTES: usize = 24;

/// What a frame's body holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Kind {
    /// Body: `count` × [`AccountRecord`].
    CreateAccounts = 1,
    /// Body: `count` × [`TransferRecord`].
    CreateTransfers = 2,
    /// Body: `count` × little-endian u128 account ids.
    LookupAccounts = 3,
    /// Body: `count` × little-endian u128 transfer ids.
    LookupTransfers = 4,
    /// Body: `count` key/value commands in the [`crate::kv`] layout.
    Kv = 5,
    /// Body: `count` × [`ResultRecord`].
    Results = 6,
}

/// The 24-byte frame header.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct FrameHeader {
    pub magic: U32,
    pub version: U16,
    pub kind: U16,
    pub count: U32,
    pub body_len: U32,
    /// crc32c of the body.
    pub body_checksum: U32,
    /// crc32c of the 20 header bytes before this field.
    pub header_checksum: U32,
}

const _: () = assert!(size_of::<FrameHeader>() == HEADER_BYTES);

/// Bounds a decoder enforces before it trusts a length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole frame (header + body) accepted.
    pub frame_bytes_max: u32,
    /// Largest record or command count accepted.
    pub count_max: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { frame_bytes_max: 8 << 20, count_max: 65_536 }
    }
}

/// Why bytes were not accepted as a frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated frame: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("bad magic {found:#010x}")]
    BadMagic { found: u32 },
    #[error("unsupported frame version {found} (this build speaks {VERSION})")]
    UnsupportedVersion { found: u16 },
    #[error("unknown frame kind {found}")]
    UnknownKind { found: u16 },
    #[error("header checksum mismatch")]
    HeaderChecksumMismatch,
    #[error("body checksum mismatch")]
    BodyChecksumMismatch,
    #[error("frame of {bytes} bytes exceeds the limit of {max}")]
    Oversize { bytes: u64, max: u32 },
    #[error("record count {count} exceeds the limit of {max}")]
    CountTooLarge { count: u32, max: u32 },
    #[error("body of {body_len} bytes does not hold {count} records of {record_bytes} bytes")]
    CountMismatch { count: u32, body_len: u32, record_bytes: u32 },
    #[error("{extra} bytes after the end of the frame")]
    TrailingBytes { extra: usize },
    #[error("key/value command {index}: {reason}")]
    Kv { index: u32, reason: KvDecodeError },
}

/// Why a frame could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("frame of {bytes} bytes exceeds the limit of {max}")]
    Oversize { bytes: u64, max: u32 },
    #[error("record count {count} exceeds the limit of {max}")]
    CountTooLarge { count: u64, max: u32 },
    #[error("key/value command {index}: {reason}")]
    Kv { index: u32, reason: KvDecodeError },
}

/// A validated frame borrowed from a buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    header: &'a FrameHeader,
    body: &'a [u8],
}

/// A frame's body, typed by its kind and viewed in place.
#[derive(Clone, Copy, Debug)]
pub enum Body<'a> {
    CreateAccounts(&'a [AccountRecord]),
    CreateTransfers(&'a [TransferRecord]),
    LookupAccounts(&'a [U128]),
    LookupTransfers(&'a [U128]),
    Kv(KvCommands<'a>),
    Results(&'a [ResultRecord]),
}

impl<'a> Frame<'a> {
    /// Validates `bytes` as exactly one frame (no trailing bytes).
    pub fn decode(bytes: &'a [u8], limits: &Limits) -> Result<Frame<'a>, DecodeError> {
        todo!("{bytes:?} {limits:?}")
    }

    /// Validates the frame at the start of `bytes`; returns it and its length.
    pub fn decode_prefix(bytes: &'a [u8], limits: &Limits) -> Result<(Frame<'a>, usize), DecodeError> {
        todo!("{bytes:?} {limits:?}")
    }

    pub fn kind(&self) -> Kind {
        todo!()
    }

    pub fn count(&self) -> u32 {
        self.header.count.get()
    }

    pub fn header(&self) -> &'a FrameHeader {
        self.header
    }

    /// The body's raw bytes.
    pub fn body_bytes(&self) -> &'a [u8] {
        self.body
    }

    /// The body viewed by kind; infallible because `decode` validated it.
    pub fn body(&self) -> Body<'a> {
        todo!()
    }
}

/// Appends one frame of `kind` with `count` items and `body` to `out`.
pub fn encode_frame(kind: Kind, count: u32, body: &[u8], out: &mut Vec<u8>) {
    todo!("{kind:?} {count} {body:?} {out:?}")
}

/// Appends a frame of fixed-size records (`CreateAccounts`, `CreateTransfers`, `Results`).
pub fn encode_records<T: IntoBytes + Immutable>(kind: Kind, records: &[T], out: &mut Vec<u8>) {
    todo!("{kind:?} {} {out:?}", records.len())
}

/// Appends a `LookupAccounts` or `LookupTransfers` frame.
pub fn encode_ids(kind: Kind, ids: &[u128], out: &mut Vec<u8>) {
    todo!("{kind:?} {ids:?} {out:?}")
}
