//! Small metadata files. The vote and the purged log id are each
//! `[crc u32][postcard of the value]`, replaced whole by rename. The
//! committed log id, written after every group commit, is a fixed-size
//! record overwritten in place ([`encode_in_place`]): a create and a rename
//! per group cost as much as the group's sync on ext4, and stalled the log
//! for milliseconds whenever they met a journal commit.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::LogError;

/// Names of the metadata files inside the log directory.
#[derive(Clone, Debug)]
pub(crate) struct MetaPaths {
    pub vote: PathBuf,
    pub purged: PathBuf,
    pub committed: PathBuf,
}

impl MetaPaths {
    pub(crate) fn new(dir: &Path) -> Self {
        Self { vote: dir.join("vote.meta"), purged: dir.join("purged.meta"), committed: dir.join("committed.meta") }
    }
}

/// Encodes a value as the full contents of a metadata file.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![0; 4];
    // Metadata values are plain structs of integers; postcard cannot fail on them.
    postcard::to_io(value, &mut bytes).expect("postcard encodes log metadata");
    let crc = crc32c::crc32c(&bytes[4..]);
    bytes[0..4].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Bytes of a record overwritten in place.
pub(crate) const IN_PLACE_BYTES: usize = 64;

/// Encodes a small value as `[crc u32][len u8][postcard of the value][zeros]`,
/// [`IN_PLACE_BYTES`] long, the crc over everything after itself. A write of
/// it torn by a crash fails the crc and reads as damaged.
pub(crate) fn encode_in_place<T: Serialize>(value: &T) -> [u8; IN_PLACE_BYTES] {
    let mut record = [0u8; IN_PLACE_BYTES];
    // Only log ids are stored this way: at most 31 bytes of varints.
    let len = postcard::to_slice(value, &mut record[5..]).expect("a log id fits a metadata record").len();
    record[4] = len as u8;
    let crc = crc32c::crc32c(&record[4..]);
    record[..4].copy_from_slice(&crc.to_le_bytes());
    record
}

/// Decodes a record of [`encode_in_place`]; `None` if damaged.
pub(crate) fn decode_in_place<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    if bytes.len() != IN_PLACE_BYTES {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[..4].try_into().ok()?);
    if crc32c::crc32c(&bytes[4..]) != crc {
        return None;
    }
    decode_exact(bytes[5..].get(..usize::from(bytes[4]))?)
}

/// Decodes a file written by either [`encode_in_place`] or, as files of
/// earlier versions were, [`encode`]; `None` if damaged.
pub(crate) fn decode_in_place_or_whole<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    if bytes.len() == IN_PLACE_BYTES {
        decode_in_place(bytes)
    } else {
        decode(bytes)
    }
}

/// Decodes the contents of a metadata file; `None` if damaged.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let crc = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
    let payload = &bytes[4..];
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    decode_exact(payload)
}

/// The postcard value that is all of `payload`; `None` if it is not.
fn decode_exact<T: DeserializeOwned>(payload: &[u8]) -> Option<T> {
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

/// Reads a metadata file written by [`encode`]: `Ok(None)` if it does not exist.
pub(crate) fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, LogError> {
    read_with(path, decode)
}

/// Reads a metadata file with `decode`: `Ok(None)` if it does not exist,
/// [`LogError::CorruptMeta`] if `decode` finds it damaged.
pub(crate) fn read_with<T>(path: &Path, decode: impl FnOnce(&[u8]) -> Option<T>) -> Result<Option<T>, LogError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(LogError::io(path, error)),
    };
    match decode(&bytes) {
        Some(value) => Ok(Some(value)),
        None => Err(LogError::CorruptMeta { path: path.to_owned() }),
    }
}

/// Replaces `path` with `bytes` through a temporary file and a rename, so
/// the value survives a crash once this returns: one fsync of the new file
/// and one of the directory.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    drop(file);
    fs::rename(&temporary, path)?;
    sync_directory(path.parent().expect("metadata files live in the log directory"))
}

/// Makes creations, renames and deletions in `dir` durable.
pub(crate) fn sync_directory(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
