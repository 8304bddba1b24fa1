//! Integration tests of the `hyperraft` binary: real processes on loopback.

mod ctl;
mod kill;
