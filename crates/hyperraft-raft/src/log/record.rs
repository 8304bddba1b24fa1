//! One log record: `[len u32][crc u32][index u64][term u64][payload]`.
//!
//! Leaf functions only (encode into a caller's buffer, parse a byte slice),
//! so the framing is tested without files.

use openraft::{Entry, LogId};

use super::error::LogError;
use crate::{NodeId, TypeConfig};

/// Bytes of `len` and `crc`, which the length and checksum do not cover.
pub(crate) const PREFIX_BYTES: usize = 8;
/// Bytes of the whole header: `len`, `crc`, `index`, `term`.
pub(crate) const HEADER_BYTES: usize = 24;

/// What one record's identity and place look like, without its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordHead {
    pub index: u64,
    pub term: u64,
    pub node_id: NodeId,
    /// Bytes of the whole record, header included.
    pub len: u32,
}

/// Appends the record of `entry` to `buffer` and returns its head.
///
/// On error the buffer is left as it was, so a batch can be encoded into one
/// buffer and abandoned as a whole.
pub(crate) fn encode(
    buffer: &mut Vec<u8>,
    entry: &Entry<TypeConfig>,
    record_bytes_max: u32,
) -> Result<RecordHead, LogError> {
    let start = buffer.len();
    let index = entry.log_id.index;
    let term = entry.log_id.leader_id.term;
    buffer.resize(start + HEADER_BYTES, 0);
    if let Err(source) = postcard::to_io(entry, &mut *buffer) {
        buffer.truncate(start);
        return Err(LogError::Encode { index, source });
    }
    let record_bytes = buffer.len() - start;
    if record_bytes > record_bytes_max as usize {
        buffer.truncate(start);
        return Err(LogError::RecordTooLarge { index, bytes: record_bytes as u64, max: record_bytes_max });
    }
    let record = &mut buffer[start..];
    let len = (record_bytes - PREFIX_BYTES) as u32;
    record[8..16].copy_from_slice(&index.to_le_bytes());
    record[16..24].copy_from_slice(&term.to_le_bytes());
    let crc = crc32c::crc32c(&record[PREFIX_BYTES..]);
    record[0..4].copy_from_slice(&len.to_le_bytes());
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(RecordHead { index, term, node_id: entry.log_id.leader_id.node_id, len: record_bytes as u32 })
}

/// The outcome of reading one record from the start of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed<'a> {
    /// A whole record whose checksum matches.
    Valid {
        index: u64,
        term: u64,
        payload: &'a [u8],
        /// Bytes of the whole record, header included.
        record_bytes: usize,
    },
    /// Fewer bytes remain than the header or the declared length.
    Short,
    /// The declared length cannot even hold `index` and `term`.
    BadLength,
    /// The bytes do not match the checksum.
    BadChecksum,
}

impl Parsed<'_> {
    /// Why a record that is not valid is damaged, in words for errors.
    pub(crate) fn damage(&self) -> &'static str {
        match self {
            Parsed::Valid { .. } => "valid record",
            Parsed::Short => "record extends past the end of the segment",
            Parsed::BadLength => "record length too small for a header",
            Parsed::BadChecksum => "record checksum mismatch",
        }
    }
}

/// Reads the record at the start of `bytes`, checking length and checksum.
pub(crate) fn parse(bytes: &[u8]) -> Parsed<'_> {
    if bytes.len() < PREFIX_BYTES {
        return Parsed::Short;
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len < HEADER_BYTES - PREFIX_BYTES {
        return Parsed::BadLength;
    }
    let Some(body) = bytes.get(PREFIX_BYTES..PREFIX_BYTES + len) else {
        return Parsed::Short;
    };
    if crc32c::crc32c(body) != crc {
        return Parsed::BadChecksum;
    }
    Parsed::Valid {
        index: u64::from_le_bytes(body[0..8].try_into().expect("8 bytes")),
        term: u64::from_le_bytes(body[8..16].try_into().expect("8 bytes")),
        payload: &body[16..],
        record_bytes: PREFIX_BYTES + len,
    }
}

/// The index a header at the start of `bytes` claims, if there is a header.
/// Used to pick candidates cheaply before checking a checksum.
pub(crate) fn peek_index(bytes: &[u8]) -> Option<u64> {
    let index = bytes.get(8..16)?;
    Some(u64::from_le_bytes(index.try_into().expect("8 bytes")))
}

/// Decodes only the log id at the front of a payload. Postcard writes a
/// struct's fields in order with no framing, and `log_id` is `Entry`'s first
/// field, so recovery learns the node id without decoding whole entries.
pub(crate) fn decode_log_id(payload: &[u8]) -> Option<LogId<NodeId>> {
    postcard::take_from_bytes::<LogId<NodeId>>(payload).ok().map(|(log_id, _rest)| log_id)
}

/// Decodes a whole payload; trailing bytes make it invalid.
pub(crate) fn decode_entry(payload: &[u8]) -> Option<Entry<TypeConfig>> {
    match postcard::take_from_bytes::<Entry<TypeConfig>>(payload) {
        Ok((entry, [])) => Some(entry),
        _ => None,
    }
}
