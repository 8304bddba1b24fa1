//! The key/value state machine (owned by the KV work; placeholder).
