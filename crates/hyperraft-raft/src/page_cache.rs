//! Dropping file pages this process wrote and will not read again.
//!
//! The log and the snapshot files are written once, synced, and read back
//! only in rare cases (a lagging follower behind the log's entry cache, a
//! snapshot sent to a follower, a restart). Left in the page cache, their
//! pages grow it by the log's write rate — hundreds of MB/s under load —
//! and push out pages that are read again, while every write takes a fresh
//! page. Dropping them once they are clean returns the pages for the next
//! writes to reuse. A hint only: what it fails to drop stays cached.

use std::fs::File;

/// Drops the cached pages of `file` wholly inside `start..start + len`
/// that are clean (already written back). Dirty pages and the partial
/// pages at either end stay, so a later write to the last page never has
/// to read it back from disk.
#[cfg(target_os = "linux")]
pub(crate) fn drop_clean(file: &File, start: u64, len: u64) {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return;
    }
    // SAFETY: the descriptor is open for the whole call (borrowed from
    // `file`); posix_fadvise reads no memory of this process.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), start as libc::off_t, len as libc::off_t, libc::POSIX_FADV_DONTNEED);
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn drop_clean(_file: &File, _start: u64, _len: u64) {}
