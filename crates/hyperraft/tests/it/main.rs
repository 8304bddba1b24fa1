//! Integration tests of the `hyperraft` binary: real processes on loopback.

mod bench;
mod chaos;
mod ctl;
mod kill;
mod nodes;
mod python_sdk;
