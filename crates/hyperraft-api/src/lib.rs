//! The public gRPC API of a hyperraft node (tonic + prost).
//!
//! [`serve`] starts three services of `proto/hyperraft.proto` (package
//! `hyperraft.v1`) on a TCP socket for one [`hyperraft_node::Node`]:
//! `Ledger` (accounts and transfers, as protobuf messages or as packed wire
//! frames), `Kv` (put, range, delete-range, transactions, watches) and
//! `Cluster` (status, adding and removing nodes, leader transfer), `Lease`
//! and `Decisions` (proposals voted by agents). Writes go through the node's leader-side batcher, so
//! concurrent RPCs coalesce into the same Raft entries; reads are
//! linearizable unless a request asks for a serializable one. The proto
//! file documents the conventions (128-bit numbers, leader hints, error
//! codes); [`errors`] names the metadata keys.
//!
//! The `Bus` service (`proto/bus.proto`) carries batched publish/subscribe
//! messages between the clients connected to this node, and, for durable
//! topics, appends them through Raft and replays them by offset; see [`bus`].
//!
//! Every request passes admission control first: bounded requests in
//! flight (checked before the body is read) and request bytes in flight
//! (checked on the decoded message), refused at once with
//! `RESOURCE_EXHAUSTED` and a retry hint when full. Open connections,
//! HTTP/2 streams per connection, message sizes and call durations are
//! bounded too (see [`ApiConfig`]); accepted sockets use TCP_NODELAY and
//! TCP keepalive, connections HTTP/2 keepalive PINGs.
//!
//! With tokens configured ([`ApiConfig::tokens`]) every call needs
//! `authorization: Bearer <token>` whose role (`read`, `write`, `admin`)
//! covers the method; [`auth`] checks it from the headers alone, before
//! admission control (`UNAUTHENTICATED` / `PERMISSION_DENIED`). With
//! [`ApiConfig::tls`] the API speaks TLS (rustls).
//!
//! Every service accepts gzip- and zstd-compressed requests and compresses
//! its responses with whichever of the two the client accepts
//! (`grpc-accept-encoding`); a client that accepts neither gets them plain.
//!
//! To serve a node's API from the binary: start the node, then
//! `serve(Arc::new(node), config.client_listen, ApiConfig { api_addresses,
//! ..ApiConfig::default() })`, keep the returned [`ApiServer`], and call
//! [`ApiServer::shutdown`] before `Node::shutdown`.

mod admission;
pub mod agents;
mod api;
pub mod auth;
pub mod bus;
mod cluster;
mod config;
mod connections;
mod convert;
pub mod decisions;
pub mod errors;
mod kv;
mod lease;
mod ledger;
mod server;
#[doc(hidden)]
pub mod validate;
mod watch;

pub use auth::{ApiToken, Role};
pub use bus::{Bus, BusConfig};
pub use config::{ApiConfig, ApiTls};
pub use decisions::DecisionPolicy;
pub use ledger::{accounts_frame, transfers_frame};
pub use server::{serve, serve_on, ApiError, ApiServer};

/// The generated messages, clients and server traits of `hyperraft.v1`.
pub use hyperraft_proto as proto;
