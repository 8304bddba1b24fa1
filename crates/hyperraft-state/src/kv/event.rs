//! One change of the store, as kept in the history for watchers.

use super::KeyValue;

/// Whether an event wrote or removed a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change of one key. All events of one command share its revision
/// and are kept in the order the command made them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// For a put, the pair after it. For a delete, only `key` and
    /// `mod_revision` (the delete's revision) are set; the rest is zero.
    pub kv: KeyValue,
    /// The pair before the change, if the key existed.
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision of the command that made this event.
    pub fn revision(&self) -> u64 {
        self.kv.mod_revision
    }
}
