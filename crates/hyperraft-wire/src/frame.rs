//! Checksummed batch frames: header, validation, typed body views.

use zerocopy::byteorder::little_endian::{U128, U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::bus::{BusCommands, BusDecodeError};
use crate::decisions::{DecisionCommands, DecisionDecodeError};
use crate::kv::{KvCommands, KvDecodeError};
use crate::records::{AccountRecord, ResultRecord, TransferRecord};
use crate::tasks::{TaskCommands, TaskDecodeError};

/// `b"HRFT"` read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"HRFT");
/// The only format version this build reads and writes.
pub const VERSION: u16 = 1;
/// Size of [`FrameHeader`] in bytes.
pub const HEADER_BYTES: usize = 24;

/// What a frame's body holds.
///
/// Converts from the header's `u16` with [`Kind::try_from`], which rejects
/// unknown values with [`DecodeError::UnknownKind`].
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
    /// Body: `count` task commands in the [`crate::tasks`] layout.
    Tasks = 7,
    /// Body: `count` decision commands in the [`crate::decisions`] layout.
    Decisions = 8,
    /// Body: `count` durable bus commands in the [`crate::bus`] layout.
    Bus = 9,
}

/// The 24-byte frame header.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct FrameHeader {
    /// Always [`MAGIC`].
    pub magic: U32,
    /// Always [`VERSION`] for frames this build reads.
    pub version: U16,
    /// A [`Kind`] as its `u16` wire value.
    pub kind: U16,
    /// Number of records or commands in the body.
    pub count: U32,
    /// Body length in bytes, not counting this header.
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
    /// Fewer bytes than the header or the header's body length needs.
    #[error("truncated frame: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes that were there.
        available: usize,
    },
    /// The first four bytes are not [`MAGIC`]: not a frame at all.
    #[error("bad magic {found:#010x}")]
    BadMagic {
        /// The magic read, as a little-endian u32.
        found: u32,
    },
    /// A format version this build does not speak.
    #[error("unsupported frame version {found} (this build speaks {VERSION})")]
    UnsupportedVersion {
        /// The version read.
        found: u16,
    },
    /// A kind value with no [`Kind`].
    #[error("unknown frame kind {found}")]
    UnknownKind {
        /// The kind value read.
        found: u16,
    },
    /// The header was corrupted; none of its lengths can be trusted.
    #[error("header checksum mismatch")]
    HeaderChecksumMismatch,
    /// The body was corrupted.
    #[error("body checksum mismatch")]
    BodyChecksumMismatch,
    /// The header declares a frame larger than [`Limits::frame_bytes_max`].
    #[error("frame of {bytes} bytes exceeds the limit of {max}")]
    Oversize {
        /// Declared frame size, header included.
        bytes: u64,
        /// The limit.
        max: u32,
    },
    /// The header declares more items than [`Limits::count_max`].
    #[error("record count {count} exceeds the limit of {max}")]
    CountTooLarge {
        /// Declared count.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// A fixed-size body whose length is not `count` records.
    #[error("body of {body_len} bytes does not hold {count} records of {record_bytes} bytes")]
    CountMismatch {
        /// Declared count.
        count: u32,
        /// Body length in bytes.
        body_len: u32,
        /// Size of one record of the frame's kind.
        record_bytes: u32,
    },
    /// Bytes after the frame where [`Frame::decode`] expected the input to end.
    #[error("{extra} bytes after the end of the frame")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A key/value command that is not valid.
    #[error("key/value command {index}: {reason}")]
    Kv {
        /// Position of the command in the body, from 0.
        index: u32,
        /// What is wrong with it.
        reason: KvDecodeError,
    },
    /// A task command that is not valid.
    #[error("task command {index}: {reason}")]
    Tasks {
        /// Position of the command in the body, from 0.
        index: u32,
        /// What is wrong with it.
        reason: TaskDecodeError,
    },
    /// A decision command that is not valid.
    #[error("decision command {index}: {reason}")]
    Decisions {
        /// Position of the command in the body, from 0.
        index: u32,
        /// What is wrong with it.
        reason: DecisionDecodeError,
    },
    /// A durable bus command that is not valid.
    #[error("bus command {index}: {reason}")]
    Bus {
        /// Position of the command in the body, from 0.
        index: u32,
        /// What is wrong with it.
        reason: BusDecodeError,
    },
}

/// Why a frame could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The frame would grow past [`Limits::frame_bytes_max`].
    #[error("frame of {bytes} bytes exceeds the limit of {max}")]
    Oversize {
        /// Frame size with the refused item, header included.
        bytes: u64,
        /// The limit.
        max: u32,
    },
    /// The frame would hold more items than [`Limits::count_max`].
    #[error("record count {count} exceeds the limit of {max}")]
    CountTooLarge {
        /// Count with the refused item.
        count: u64,
        /// The limit.
        max: u32,
    },
    /// A key/value command breaks a bound the decoder enforces.
    #[error("key/value command {index}: {reason}")]
    Kv {
        /// Position the command would have had in the body, from 0.
        index: u32,
        /// What is wrong with it.
        reason: KvDecodeError,
    },
    /// A task command breaks a bound the decoder enforces.
    #[error("task command {index}: {reason}")]
    Tasks {
        /// Position the command would have had in the body, from 0.
        index: u32,
        /// What is wrong with it.
        reason: TaskDecodeError,
    },
    /// A decision command breaks a bound the decoder enforces.
    #[error("decision command {index}: {reason}")]
    Decisions {
        /// Position the command would have had in the body, from 0.
        index: u32,
        /// What is wrong with it.
        reason: DecisionDecodeError,
    },
    /// A bus command breaks a bound the decoder enforces.
    #[error("bus command {index}: {reason}")]
    Bus {
        /// Position the command would have had in the body, from 0.
        index: u32,
        /// What is wrong with it.
        reason: BusDecodeError,
    },
}

impl Kind {
    /// Every kind, in wire-value order.
    pub const ALL: [Kind; 9] = [
        Kind::CreateAccounts,
        Kind::CreateTransfers,
        Kind::LookupAccounts,
        Kind::LookupTransfers,
        Kind::Kv,
        Kind::Results,
        Kind::Tasks,
        Kind::Decisions,
        Kind::Bus,
    ];

    /// Size of one body record for fixed-size kinds; `None` for [`Kind::Kv`],
    /// [`Kind::Tasks`], [`Kind::Decisions`] and [`Kind::Bus`], whose commands
    /// vary in size.
    pub const fn record_bytes(self) -> Option<usize> {
        match self {
            Kind::CreateAccounts => Some(size_of::<AccountRecord>()),
            Kind::CreateTransfers => Some(size_of::<TransferRecord>()),
            Kind::LookupAccounts | Kind::LookupTransfers => Some(size_of::<U128>()),
            Kind::Results => Some(size_of::<ResultRecord>()),
            Kind::Kv | Kind::Tasks | Kind::Decisions | Kind::Bus => None,
        }
    }
}

impl From<Kind> for u16 {
    fn from(kind: Kind) -> u16 {
        kind as u16
    }
}

impl TryFrom<u16> for Kind {
    type Error = DecodeError;

    fn try_from(value: u16) -> Result<Kind, DecodeError> {
        Kind::ALL.into_iter().find(|kind| u16::from(*kind) == value).ok_or(DecodeError::UnknownKind { found: value })
    }
}

/// A validated frame borrowed from a buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    header: &'a FrameHeader,
    body_bytes: &'a [u8],
    // The typed view is built once during validation, so `body()` needs no
    // second cast that could (in theory) fail.
    body: Body<'a>,
}

/// A frame's body, typed by its kind and viewed in place.
#[derive(Clone, Copy, Debug)]
pub enum Body<'a> {
    /// Accounts to create.
    CreateAccounts(&'a [AccountRecord]),
    /// Transfers to create.
    CreateTransfers(&'a [TransferRecord]),
    /// Ids of accounts to look up.
    LookupAccounts(&'a [U128]),
    /// Ids of transfers to look up.
    LookupTransfers(&'a [U128]),
    /// Key/value commands, validated.
    Kv(KvCommands<'a>),
    /// Per-item results of a create batch.
    Results(&'a [ResultRecord]),
    /// Task commands, validated.
    Tasks(TaskCommands<'a>),
    /// Decision commands, validated.
    Decisions(DecisionCommands<'a>),
    /// Durable bus commands, validated.
    Bus(BusCommands<'a>),
}

impl<'a> Frame<'a> {
    /// Validates `bytes` as exactly one frame (no trailing bytes).
    pub fn decode(bytes: &'a [u8], limits: &Limits) -> Result<Frame<'a>, DecodeError> {
        let (frame, frame_bytes) = Frame::decode_prefix(bytes, limits)?;
        match bytes.len() - frame_bytes {
            0 => Ok(frame),
            extra => Err(DecodeError::TrailingBytes { extra }),
        }
    }

    /// Validates the frame at the start of `bytes`; returns it and its length.
    ///
    /// Checks run cheapest-first and never trust a length before bounding
    /// it: header size, magic, version, header checksum, kind, frame size,
    /// count, body presence, body checksum, then the body's structure.
    pub fn decode_prefix(bytes: &'a [u8], limits: &Limits) -> Result<(Frame<'a>, usize), DecodeError> {
        let (header, kind) = decode_header(bytes)?;
        let body_len = header.body_len.get();
        let frame_bytes = HEADER_BYTES as u64 + u64::from(body_len);
        if frame_bytes > u64::from(limits.frame_bytes_max) {
            return Err(DecodeError::Oversize { bytes: frame_bytes, max: limits.frame_bytes_max });
        }
        let count = header.count.get();
        if count > limits.count_max {
            return Err(DecodeError::CountTooLarge { count, max: limits.count_max });
        }
        // Bounded by `frame_bytes_max` (a u32) above, so this fits a usize.
        let frame_bytes = HEADER_BYTES + body_len as usize;
        let body_bytes = bytes
            .get(HEADER_BYTES..frame_bytes)
            .ok_or(DecodeError::Truncated { needed: frame_bytes, available: bytes.len() })?;
        if crc32c::crc32c(body_bytes) != header.body_checksum.get() {
            return Err(DecodeError::BodyChecksumMismatch);
        }
        let body = view_body(kind, count, body_bytes)?;
        Ok((Frame { header, body_bytes, body }, frame_bytes))
    }

    /// What the body holds.
    pub fn kind(&self) -> Kind {
        match self.body {
            Body::CreateAccounts(_) => Kind::CreateAccounts,
            Body::CreateTransfers(_) => Kind::CreateTransfers,
            Body::LookupAccounts(_) => Kind::LookupAccounts,
            Body::LookupTransfers(_) => Kind::LookupTransfers,
            Body::Kv(_) => Kind::Kv,
            Body::Results(_) => Kind::Results,
            Body::Tasks(_) => Kind::Tasks,
            Body::Decisions(_) => Kind::Decisions,
            Body::Bus(_) => Kind::Bus,
        }
    }

    /// Number of records or commands in the body.
    pub fn count(&self) -> u32 {
        self.header.count.get()
    }

    /// The validated header, in place.
    pub fn header(&self) -> &'a FrameHeader {
        self.header
    }

    /// The body's raw bytes.
    pub fn body_bytes(&self) -> &'a [u8] {
        self.body_bytes
    }

    /// The body viewed by kind; infallible because `decode` validated it.
    pub fn body(&self) -> Body<'a> {
        self.body
    }
}

/// Validates the fixed-size header fields that need no limits.
fn decode_header(bytes: &[u8]) -> Result<(&FrameHeader, Kind), DecodeError> {
    let (header, _) = FrameHeader::ref_from_prefix(bytes)
        .map_err(|_| DecodeError::Truncated { needed: HEADER_BYTES, available: bytes.len() })?;
    if header.magic.get() != MAGIC {
        return Err(DecodeError::BadMagic { found: header.magic.get() });
    }
    if header.version.get() != VERSION {
        return Err(DecodeError::UnsupportedVersion { found: header.version.get() });
    }
    if header_checksum(header) != header.header_checksum.get() {
        return Err(DecodeError::HeaderChecksumMismatch);
    }
    let kind = Kind::try_from(header.kind.get())?;
    Ok((header, kind))
}

/// crc32c over every header byte before the header checksum itself.
fn header_checksum(header: &FrameHeader) -> u32 {
    crc32c::crc32c(&header.as_bytes()[..HEADER_BYTES - size_of::<U32>()])
}

/// Views a checksummed body as its kind's records or commands.
fn view_body(kind: Kind, count: u32, body: &[u8]) -> Result<Body<'_>, DecodeError> {
    Ok(match kind {
        Kind::CreateAccounts => Body::CreateAccounts(view_records(count, body)?),
        Kind::CreateTransfers => Body::CreateTransfers(view_records(count, body)?),
        Kind::LookupAccounts => Body::LookupAccounts(view_records(count, body)?),
        Kind::LookupTransfers => Body::LookupTransfers(view_records(count, body)?),
        Kind::Results => Body::Results(view_records(count, body)?),
        Kind::Kv => {
            Body::Kv(KvCommands::validate(body, count).map_err(|(index, reason)| DecodeError::Kv { index, reason })?)
        }
        Kind::Tasks => Body::Tasks(
            TaskCommands::validate(body, count).map_err(|(index, reason)| DecodeError::Tasks { index, reason })?,
        ),
        Kind::Decisions => Body::Decisions(
            DecisionCommands::validate(body, count)
                .map_err(|(index, reason)| DecodeError::Decisions { index, reason })?,
        ),
        Kind::Bus => {
            Body::Bus(BusCommands::validate(body, count).map_err(|(index, reason)| DecodeError::Bus { index, reason })?)
        }
    })
}

/// Views `body` as exactly `count` records of `T`, in place.
fn view_records<T>(count: u32, body: &[u8]) -> Result<&[T], DecodeError>
where
    T: FromBytes + KnownLayout + Immutable,
{
    let record_bytes = size_of::<T>();
    let mismatch = DecodeError::CountMismatch { count, body_len: body.len() as u32, record_bytes: record_bytes as u32 };
    if body.len() as u64 != u64::from(count) * record_bytes as u64 {
        return Err(mismatch);
    }
    // Every record type has alignment 1 and the length was checked above,
    // so the cast cannot fail; mapping the error keeps hostile input from
    // ever reaching a panic even if that reasoning were wrong.
    <[T]>::ref_from_bytes(body).map_err(|_| mismatch)
}

/// Reserves room for a frame with `body_bytes` of body at the end of `out`
/// and writes a placeholder header; returns where the frame starts.
///
/// The one `reserve` is the only allocation an encoder makes.
pub(crate) fn begin_frame(out: &mut Vec<u8>, body_bytes: usize) -> usize {
    out.reserve(HEADER_BYTES + body_bytes);
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    start
}

/// Fills in the header of the frame that starts at `start` and whose body
/// runs to the end of `out`; returns the frame length in bytes.
///
/// # Panics
///
/// If the body is longer than `u32::MAX` bytes: callers bound it first.
pub(crate) fn seal_frame(out: &mut [u8], start: usize, kind: Kind, count: u32) -> usize {
    let (header_bytes, body) = out[start..].split_at_mut(HEADER_BYTES);
    let body_len = u32::try_from(body.len()).expect("frame body longer than u32::MAX bytes");
    let mut header = FrameHeader {
        magic: U32::new(MAGIC),
        version: U16::new(VERSION),
        kind: U16::new(kind.into()),
        count: U32::new(count),
        body_len: U32::new(body_len),
        body_checksum: U32::new(crc32c::crc32c(body)),
        header_checksum: U32::new(0),
    };
    header.header_checksum = U32::new(header_checksum(&header));
    header_bytes.copy_from_slice(header.as_bytes());
    HEADER_BYTES + body.len()
}

/// Appends one frame of `kind` with `count` items and `body` to `out`.
///
/// The body is copied as given; a body that does not match `kind` and
/// `count` produces a frame that [`Frame::decode`] rejects.
///
/// # Panics
///
/// If `body` is longer than `u32::MAX` bytes.
pub fn encode_frame(kind: Kind, count: u32, body: &[u8], out: &mut Vec<u8>) {
    let start = begin_frame(out, body.len());
    out.extend_from_slice(body);
    seal_frame(out, start, kind, count);
}

/// Appends a frame of fixed-size records (`CreateAccounts`, `CreateTransfers`, `Results`).
///
/// The frame is not checked against [`Limits`]; a frame over them is
/// rejected by the decoder.
///
/// # Panics
///
/// If `kind` is [`Kind::Kv`] or [`Kind::Tasks`] or its records are not the size of `T`, or if
/// there are more than `u32::MAX` records: all are caller bugs.
pub fn encode_records<T: IntoBytes + Immutable>(kind: Kind, records: &[T], out: &mut Vec<u8>) {
    assert_eq!(kind.record_bytes(), Some(size_of::<T>()), "record type does not match {kind:?}");
    let count = u32::try_from(records.len()).expect("more than u32::MAX records");
    encode_frame(kind, count, records.as_bytes(), out);
}

/// Appends a `LookupAccounts` or `LookupTransfers` frame.
///
/// # Panics
///
/// If `kind` is not a lookup kind or there are more than `u32::MAX` ids.
pub fn encode_ids(kind: Kind, ids: &[u128], out: &mut Vec<u8>) {
    assert!(matches!(kind, Kind::LookupAccounts | Kind::LookupTransfers), "{kind:?} is not a lookup kind");
    let count = u32::try_from(ids.len()).expect("more than u32::MAX ids");
    let start = begin_frame(out, size_of_val(ids));
    for id in ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
    seal_frame(out, start, kind, count);
}

#[cfg(test)]
mod tests;
