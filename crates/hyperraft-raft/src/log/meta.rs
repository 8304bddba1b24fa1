//! Small metadata files (vote, purged log id, committed log id), each
//! `[crc u32][postcard of the value]`, replaced whole by rename.

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

/// Decodes the contents of a metadata file; `None` if damaged.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let crc = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
    let payload = &bytes[4..];
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

/// Reads a metadata file: `Ok(None)` if it does not exist.
pub(crate) fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, LogError> {
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

/// How hard to push a replacement to the disk before returning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// fsync the new file, rename, fsync the directory: the value survives a
    /// crash once this returns.
    Synced,
    /// Rename only: atomic (old or new value) but may be lost in a crash.
    Eventual,
}

/// Replaces `path` with `bytes` through a temporary file and a rename.
/// `Synced` costs one file fsync and one directory fsync.
pub(crate) fn replace(path: &Path, bytes: &[u8], durability: Durability) -> io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = File::create(&temporary)?;
    file.write_all(bytes)?;
    if durability == Durability::Synced {
        file.sync_data()?;
    }
    drop(file);
    fs::rename(&temporary, path)?;
    if durability == Durability::Synced {
        sync_directory(path.parent().expect("metadata files live in the log directory"))?;
    }
    Ok(())
}

/// Makes creations, renames and deletions in `dir` durable.
pub(crate) fn sync_directory(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
