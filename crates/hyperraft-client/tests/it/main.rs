//! Integration tests of `hyperraft-client`: the SDK against real nodes
//! (QUIC with mutual TLS between them, fsync'd logs in temporary folders)
//! serving their gRPC API on loopback.

mod agents;
mod auth;
mod bus;
mod cluster;
mod compression;
mod durable_bus;
mod errors;
mod failover;
mod harness;
mod kv;
mod lease;
mod ledger;
mod watch;
