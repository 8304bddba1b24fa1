//! Integration tests of `hyperraft-state`, one binary for the whole crate.

mod kv;
mod state_machine;
