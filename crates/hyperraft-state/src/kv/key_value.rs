//! The key/value pair as callers see it.

/// One key with its value and metadata, as returned by reads and events
/// (etcd's `mvccpb.KeyValue`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyValue {
    /// The key; never empty for a live key.
    pub key: Vec<u8>,
    /// The value; empty in `keys_only` reads and in delete events.
    pub value: Vec<u8>,
    /// Revision of the put that created the key (since its last delete).
    pub create_revision: u64,
    /// Revision of the last write of the key.
    pub mod_revision: u64,
    /// Number of puts since the key was created; 1 after the first.
    pub version: u64,
    /// Lease id attached by the last put, 0 for none.
    pub lease: u64,
}
