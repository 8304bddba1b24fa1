//! Bounds of one key/value store.

/// The limits a [`super::KvStore`] enforces. Every bound is explicit so
/// that what happens at it (a typed error, dropped history) is designed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvConfig {
    /// Most live keys. A put of a new key at this bound is refused with
    /// [`super::KvError::StoreFull`] and changes nothing.
    pub keys_max: usize,
    /// Most events kept for watchers; the oldest are dropped first.
    pub history_events_max: usize,
    /// Most live leases. A grant at this bound is refused with
    /// [`super::KvError::LeasesFull`] and changes nothing.
    pub leases_max: usize,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig { keys_max: 1_000_000, history_events_max: 100_000, leases_max: 100_000 }
    }
}
