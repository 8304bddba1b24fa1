//! Integration tests of `hyperraft-node`: real QUIC with mutual TLS on
//! loopback, real fsync'd storage in temporary folders.

mod cluster;
mod harness;
mod pools;
