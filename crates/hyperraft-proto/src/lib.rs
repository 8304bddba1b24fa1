//! The messages, clients (`ledger_client::LedgerClient`, `kv_client::KvClient`,
//! …) and server traits of package `hyperraft.v1`, generated at build time
//! from `proto/hyperraft.proto`. The server lives in `hyperraft-api`, the
//! Rust SDK in `hyperraft-client`; both use these types.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("hyperraft.v1");
