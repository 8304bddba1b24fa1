//! Integration tests of `hyperraft-state`, one binary for the whole crate.

mod state_machine;
