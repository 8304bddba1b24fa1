//! What the store, its readers and the writer thread share: the index under
//! a lock, the counters, and a small pool of encode buffers.

use std::path::PathBuf;
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::index::LogIndex;
use super::meta::MetaPaths;
use super::writer::Counters;

/// Encode buffers returned by the writer are kept for reuse, at most this
/// many, so steady-state appends do not allocate.
const BUFFERS_KEPT_MAX: usize = 8;
/// A buffer that grew past this (one unusually large append) is freed
/// rather than kept, so the pool's memory stays bounded.
const BUFFER_KEPT_BYTES_MAX: usize = 16 * 1024 * 1024;

pub(crate) struct Shared {
    pub dir: PathBuf,
    pub meta: MetaPaths,
    pub read_bytes_max: u64,
    pub counters: Counters,
    index: RwLock<LogIndex>,
    buffers: Mutex<Vec<Vec<u8>>>,
}

impl Shared {
    pub(crate) fn new(dir: PathBuf, index: LogIndex, read_bytes_max: u64) -> Self {
        Self {
            meta: MetaPaths::new(&dir),
            dir,
            read_bytes_max,
            counters: Counters::default(),
            index: RwLock::new(index),
            buffers: Mutex::new(Vec::with_capacity(BUFFERS_KEPT_MAX)),
        }
    }

    // A panic while holding the index lock leaves the index half-updated;
    // nothing may read or write the log after that, so poisoning panics too.
    pub(crate) fn index(&self) -> RwLockReadGuard<'_, LogIndex> {
        self.index.read().expect("log index lock poisoned")
    }

    pub(crate) fn index_mut(&self) -> RwLockWriteGuard<'_, LogIndex> {
        self.index.write().expect("log index lock poisoned")
    }

    pub(crate) fn take_buffer(&self) -> Vec<u8> {
        let mut buffers = self.buffers.lock().expect("buffer pool lock poisoned");
        buffers.pop().unwrap_or_default()
    }

    pub(crate) fn recycle(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() > BUFFER_KEPT_BYTES_MAX {
            return;
        }
        buffer.clear();
        let mut buffers = self.buffers.lock().expect("buffer pool lock poisoned");
        if buffers.len() < BUFFERS_KEPT_MAX {
            buffers.push(buffer);
        }
    }
}
