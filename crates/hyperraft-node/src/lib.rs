//! A hyperraft node: the durable log and state machine under openraft,
//! Raft RPCs over the mutually authenticated QUIC transport, and the
//! leader-side batcher that turns concurrent writes into one log entry.

pub mod batcher;
pub mod client;
mod compaction;
pub mod config;
pub mod embedded;
pub mod network;
pub mod node;
pub mod pools;
pub mod protocol;
mod service;
pub mod telemetry;

pub use batcher::{Batcher, BatcherConfig, BatcherStats, WriteError};
pub use client::{Client, ClientError};
pub use config::{AgentsConfig, DispatchPolicyKind, NodeConfig, RaftTuning, TlsPaths};
pub use embedded::EmbeddedCluster;
pub use node::{members, wait_for_leader, Node, NodeError};
pub use pools::{AgentsSection, PoolConfig, PoolManager, PoolStats};
pub use protocol::Status;
pub use telemetry::{MetricsServer, TelemetryError};
