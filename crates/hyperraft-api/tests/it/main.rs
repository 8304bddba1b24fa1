//! Integration tests of `hyperraft-api`: real nodes (QUIC with mutual TLS,
//! fsync'd logs in temporary folders) with their gRPC API on loopback TCP,
//! driven by the generated tonic clients.

mod admission;
mod auth;
mod bad_input;
mod bus;
mod compression;
mod decisions;
mod harness;
mod kv;
mod lease;
mod ledger;
mod membership;
mod metrics;
mod routing;
mod watch;
