//! Reading and writing the PEM files of a cluster's certificates.
//!
//! Writes never replace an existing file: overwriting `ca.key` by a second
//! `cert init` would orphan every certificate the old key signed, so the
//! operator has to remove files deliberately. Private keys are created with
//! mode 0600 so that only the node's user can read them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::cert::CertError;

/// PEM certificates and keys of this crate are a few hundred bytes; a
/// larger file is not one of ours and is refused before it is read whole.
pub(crate) const PEM_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// Whether a file holds a secret (mode 0600) or public data (mode 0644).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secrecy {
    Public,
    Private,
}

/// Creates `directory` (mode 0700 where new) if it does not exist.
pub(crate) fn create_directory(directory: &Path) -> Result<(), CertError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(directory).map_err(|source| CertError::Io { path: directory.to_path_buf(), source })
}

/// Writes `contents` to a file that must not exist yet, and syncs it.
pub(crate) fn write_new(path: &Path, contents: &str, secrecy: Secrecy) -> Result<(), CertError> {
    let io_error = |source: io::Error| match source.kind() {
        io::ErrorKind::AlreadyExists => CertError::Exists { path: path.to_path_buf() },
        _ => CertError::Io { path: path.to_path_buf(), source },
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(
        &mut options,
        match secrecy {
            Secrecy::Private => 0o600,
            Secrecy::Public => 0o644,
        },
    );
    #[cfg(not(unix))]
    let _ = secrecy;
    let mut file = options.open(path).map_err(io_error)?;
    file.write_all(contents.as_bytes()).map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

/// Reads a PEM file as text, refusing files over [`PEM_FILE_BYTES_MAX`].
pub(crate) fn read_bounded(path: &Path) -> Result<String, CertError> {
    let io_error = |source: io::Error| CertError::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io_error)?;
    let mut contents = String::new();
    file.take(PEM_FILE_BYTES_MAX + 1).read_to_string(&mut contents).map_err(io_error)?;
    if contents.len() as u64 > PEM_FILE_BYTES_MAX {
        return Err(CertError::FileTooLarge { path: path.to_path_buf(), bytes_max: PEM_FILE_BYTES_MAX });
    }
    Ok(contents)
}
