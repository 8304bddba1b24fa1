//! Snapshots: the whole state as one checksummed byte stream.
//!
//! Layout (little-endian):
//!
//! ```text
//! magic u32 "HRSS" · version u16 · reserved u16 (0)
//! timestamp_last u64 · accounts u64 · transfers u64 · kv_bytes u64
//! tasks_bytes u64 · decisions_bytes u64 · bus_bytes u64
//! accounts × AccountRecord (80 B) · transfers × TransferRecord (96 B)
//! kv_bytes of the key/value store's own snapshot
//! tasks_bytes of the task store's own snapshot
//! decisions_bytes of the decision store's own snapshot
//! bus_bytes of the durable bus store's own snapshot
//! crc32c u32 of every byte before it
//! ```
//!
//! Version 3 is the same without `bus_bytes` and its section; it is still
//! read (as a state with no durable topic), and version 4 is written.
//!
//! Accounts and transfers are written in creation order, so two replicas
//! with the same state write the same bytes; [`StateMachine::digest`]
//! relies on that. Reading trusts nothing: counts are checked against the
//! configured bounds before anything is read, memory grows only as bytes
//! actually arrive, and the checksum is verified before the state is used.
//!
//! A replica takes a [`SnapshotCopy`] (`snapshot/copy.rs`) of the state under
//! its lock, which costs little, and writes the stream from the copy after
//! releasing it; the live state and a copy write through the same function,
//! so their bytes cannot differ.

use std::io::{Read, Write};

use hyperraft_wire::{AccountRecord, TransferRecord};
use zerocopy::{FromBytes, IntoBytes};

use crate::bus::BusStore;
use crate::decisions::DecisionStore;
use crate::kv::KvStore;
use crate::ledger::{Account, Ledger, Transfer};
use crate::state_machine::{StateConfig, StateError, StateMachine, Stores};
use crate::tasks::TaskStore;

mod copy;

pub use copy::SnapshotCopy;

const MAGIC: u32 = u32::from_le_bytes(*b"HRSS");
/// Version 2 added the task store, version 3 the decision store, version 4
/// the durable bus store.
const VERSION: u16 = 4;
/// The oldest version this build still reads.
const VERSION_OLDEST_READ: u16 = 3;
const HEADER_BYTES: usize = 64;
/// Version 3's header: no `bus_bytes`.
const HEADER_BYTES_V3: usize = 56;

/// Why bytes were not accepted as a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot read failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a snapshot (magic {found:#010x})")]
    BadMagic { found: u32 },
    #[error("unsupported snapshot version {found} (this build reads {VERSION_OLDEST_READ} to {VERSION})")]
    UnsupportedVersion { found: u16 },
    #[error("snapshot holds {count} {what}, more than the configured {max}")]
    TooMany { what: &'static str, count: u64, max: u64 },
    #[error("snapshot is truncated")]
    Truncated,
    #[error("snapshot checksum mismatch")]
    ChecksumMismatch,
    #[error("snapshot content is invalid: {0}")]
    Invalid(String),
    #[error(transparent)]
    State(#[from] StateError),
}

/// A writer that checksums what passes through it.
struct Checksummed<W> {
    inner: W,
    crc: u32,
    len: u64,
}

/// The digest of the stream `write` produces: its length and checksum as
/// one number.
fn stream_digest(write: impl FnOnce(&mut Checksummed<std::io::Sink>) -> std::io::Result<()>) -> u64 {
    let mut sink = Checksummed { inner: std::io::sink(), crc: 0, len: 0 };
    write(&mut sink).expect("writing to a sink cannot fail");
    (sink.len << 32) ^ u64::from(sink.crc)
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.crc = crc32c::crc32c_append(self.crc, &bytes[..written]);
        self.len += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl StateMachine {
    /// Writes the whole state to `out`.
    pub fn write_snapshot(&self, out: impl Write) -> std::io::Result<()> {
        let ledger = self.ledger();
        let stores = StoreSections::encode(self);
        let parts = Parts {
            timestamp_last: self.timestamp_last(),
            accounts: ledger.accounts(),
            transfers_len: ledger.transfers_len(),
            transfers: ledger.transfers(),
            stores: &stores,
        };
        write_stream(out, parts)
    }

    /// A digest of the whole state: equal on replicas that agree. It is the
    /// snapshot's length and checksum, computed without keeping the bytes.
    pub fn digest(&self) -> u64 {
        stream_digest(|sink| self.write_snapshot(sink))
    }

    /// Rebuilds a state machine from a snapshot written by [`Self::write_snapshot`].
    pub fn read_snapshot(input: impl Read, config: StateConfig) -> Result<StateMachine, SnapshotError> {
        let mut input = Verified { inner: input, crc: 0 };
        let mut header = [0u8; HEADER_BYTES];
        input.read_exact_or_truncated(&mut header[..HEADER_BYTES_V3])?;
        let magic = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
        if magic != MAGIC {
            return Err(SnapshotError::BadMagic { found: magic });
        }
        let version = u16::from_le_bytes([header[4], header[5]]);
        if !(VERSION_OLDEST_READ..=VERSION).contains(&version) {
            return Err(SnapshotError::UnsupportedVersion { found: version });
        }
        if version >= 4 {
            input.read_exact_or_truncated(&mut header[HEADER_BYTES_V3..])?;
        }
        let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
        let (timestamp_last, accounts_len, transfers_len, kv_len) = (word(8), word(16), word(24), word(32));
        // A version 3 header ends before `bus_bytes`, which stays zero.
        let (tasks_len, decisions_len, bus_len) = (word(40), word(48), word(56));
        bound("accounts", accounts_len, u64::from(config.ledger.accounts_max))?;
        bound("transfers", transfers_len, config.ledger.transfers_max)?;
        let accounts = read_records::<AccountRecord, _>(&mut input, accounts_len, Account::from_record)?;
        let transfers = read_records::<TransferRecord, _>(&mut input, transfers_len, Transfer::from_record)?;
        let kv_bytes = read_section(&mut input, kv_len)?;
        let tasks_bytes = read_section(&mut input, tasks_len)?;
        let decisions_bytes = read_section(&mut input, decisions_len)?;
        let bus_bytes = read_section(&mut input, bus_len)?;
        let crc_expected = input.crc;
        let mut crc = [0u8; 4];
        input.inner.read_exact(&mut crc).map_err(|_| SnapshotError::Truncated)?;
        if u32::from_le_bytes(crc) != crc_expected {
            return Err(SnapshotError::ChecksumMismatch);
        }
        let kv = KvStore::decode_snapshot(&kv_bytes, config.kv)
            .map_err(|error| SnapshotError::Invalid(error.to_string()))?;
        let tasks = TaskStore::decode_snapshot(&tasks_bytes, config.tasks).map_err(SnapshotError::Invalid)?;
        let decisions =
            DecisionStore::decode_snapshot(&decisions_bytes, config.decisions).map_err(SnapshotError::Invalid)?;
        let bus = match version {
            3 => BusStore::new(config.bus),
            _ => BusStore::decode_snapshot(&bus_bytes, config.bus).map_err(SnapshotError::Invalid)?,
        };
        let ledger = Ledger::restore(config.ledger, accounts, transfers).map_err(SnapshotError::Invalid)?;
        Ok(StateMachine::from_parts(config, Stores { ledger, kv, tasks, decisions, bus }, timestamp_last)?)
    }
}

/// The snapshot sections of the stores other than the ledger, each encoded
/// by its own store.
pub(crate) struct StoreSections {
    kv: Vec<u8>,
    tasks: Vec<u8>,
    decisions: Vec<u8>,
    bus: Vec<u8>,
}

impl StoreSections {
    pub(crate) fn encode(state: &StateMachine) -> StoreSections {
        let mut sections = StoreSections { kv: Vec::new(), tasks: Vec::new(), decisions: Vec::new(), bus: Vec::new() };
        state.kv().encode_snapshot(&mut sections.kv);
        state.tasks().encode_snapshot(&mut sections.tasks);
        state.decisions().encode_snapshot(&mut sections.decisions);
        state.bus().encode_snapshot(&mut sections.bus);
        sections
    }

    fn in_order(&self) -> [&[u8]; 4] {
        [&self.kv, &self.tasks, &self.decisions, &self.bus]
    }
}

/// Everything a snapshot stream holds, borrowed from the live state or from
/// a [`SnapshotCopy`]; both write through [`write_stream`], so a copy's
/// snapshot is the live state's bytes by construction.
pub(crate) struct Parts<'a, T> {
    pub(crate) timestamp_last: u64,
    pub(crate) accounts: &'a [Account],
    pub(crate) transfers_len: u64,
    pub(crate) transfers: T,
    pub(crate) stores: &'a StoreSections,
}

/// Bytes staged before they reach the checksum and the writer: records are
/// 80 and 96 bytes, and crc32c runs several times faster on long slices.
const STAGED_BYTES: usize = 1 << 16;

pub(crate) fn write_stream<'a>(
    out: impl Write,
    parts: Parts<'a, impl Iterator<Item = &'a Transfer>>,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(STAGED_BYTES, Checksummed { inner: out, crc: 0, len: 0 });
    let stores = parts.stores.in_order();
    let mut header = Vec::with_capacity(HEADER_BYTES);
    header.extend_from_slice(&MAGIC.to_le_bytes());
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&0u16.to_le_bytes());
    header.extend_from_slice(&parts.timestamp_last.to_le_bytes());
    header.extend_from_slice(&(parts.accounts.len() as u64).to_le_bytes());
    header.extend_from_slice(&parts.transfers_len.to_le_bytes());
    for section in stores {
        header.extend_from_slice(&(section.len() as u64).to_le_bytes());
    }
    assert_eq!(header.len(), HEADER_BYTES);
    out.write_all(&header)?;
    for account in parts.accounts {
        out.write_all(account.to_record().as_bytes())?;
    }
    let mut transfers_written = 0u64;
    for transfer in parts.transfers {
        out.write_all(transfer.to_record().as_bytes())?;
        transfers_written += 1;
    }
    assert_eq!(transfers_written, parts.transfers_len, "the header's transfer count matches the records written");
    for section in stores {
        out.write_all(section)?;
    }
    let mut out = out.into_inner().map_err(|error| error.into_error())?;
    let crc = out.crc;
    out.inner.write_all(&crc.to_le_bytes())?;
    out.flush()
}

/// Reads one store's section of `len` bytes; memory grows only as bytes arrive.
fn read_section(input: &mut impl Read, len: u64) -> Result<Vec<u8>, SnapshotError> {
    let mut bytes = Vec::new();
    input.take(len).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != len {
        return Err(SnapshotError::Truncated);
    }
    Ok(bytes)
}

fn bound(what: &'static str, count: u64, max: u64) -> Result<(), SnapshotError> {
    if count > max {
        return Err(SnapshotError::TooMany { what, count, max });
    }
    Ok(())
}

/// Reads `count` fixed-size records, growing memory only as they arrive.
fn read_records<R, T>(input: &mut impl Read, count: u64, convert: impl Fn(&R) -> T) -> Result<Vec<T>, SnapshotError>
where
    R: FromBytes + IntoBytes + zerocopy::Immutable + zerocopy::KnownLayout + Default + Clone,
{
    // Read in blocks, so the checksum runs on long slices.
    const BLOCK_RECORDS: usize = 512;
    let mut items = Vec::with_capacity(count.min(1 << 16) as usize);
    let mut block = vec![R::default(); BLOCK_RECORDS.min(count as usize)];
    let mut left = count;
    while left > 0 {
        let records = &mut block[..left.min(BLOCK_RECORDS as u64) as usize];
        input.read_exact(records.as_mut_bytes()).map_err(truncated)?;
        items.extend(records.iter().map(&convert));
        left -= records.len() as u64;
    }
    Ok(items)
}

fn truncated(error: std::io::Error) -> SnapshotError {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        SnapshotError::Truncated
    } else {
        SnapshotError::Io(error)
    }
}

/// A reader that checksums what passes through it.
struct Verified<R> {
    inner: R,
    crc: u32,
}

impl<R: Read> Verified<R> {
    fn read_exact_or_truncated(&mut self, buffer: &mut [u8]) -> Result<(), SnapshotError> {
        self.read_exact(buffer).map_err(truncated)
    }
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.crc = crc32c::crc32c_append(self.crc, &buffer[..read]);
        Ok(read)
    }
}

/// A reader over one store's section of a snapshot: every read is bounded
/// by the bytes left, and a short section is an error naming `what`.
pub(crate) struct Section<'a> {
    pub(crate) bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Section<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Section<'a> {
        Section { bytes, what }
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        if len > self.bytes.len() {
            return Err(format!("{} snapshot is truncated", self.what));
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    /// A `len u32 · bytes` field of at most `max` bytes.
    pub(crate) fn bytes(&mut self, max: usize) -> Result<Vec<u8>, String> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(format!("a field of {len} bytes exceeds {max}"));
        }
        Ok(self.take(len)?.to_vec())
    }
}
