//! Authenticated node-to-node transport for hyperraft.
//!
//! This crate moves opaque bytes between cluster nodes and knows nothing
//! about Raft. It has three layers:
//!
//! - [`cert`] and [`node_identity`]: a cluster certificate authority
//!   ([`ClusterCa`]) that issues one certificate per node
//!   ([`NodeIdentity`]), saved to and loaded from PEM files.
//! - [`tls`]: rustls configurations for mutual TLS, where both sides must
//!   present a certificate signed by the cluster CA ([`TlsIdentity`]).
//! - [`endpoint`] and [`peer`]: one QUIC endpoint per node
//!   ([`Transport`]) that serves requests through a [`Handler`] and calls
//!   other nodes through [`Peer`] handles. Every request travels on its own
//!   bidirectional stream, so many requests share one connection without
//!   head-of-line blocking between them. The byte layout on a stream is
//!   documented in [`framing`].
//!
//! Every size, count and wait has an explicit bound in
//! [`TransportConfig`]. Fault injection for tests ([`FaultSwitch`]) exists
//! only when a configuration turns it on.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cert;
pub mod config;
mod der;
pub mod endpoint;
pub mod error;
pub mod fault;
pub mod framing;
pub mod handler;
pub mod node_identity;
pub mod peer;
mod pem_file;
mod server;
mod stream_io;
pub mod tls;

pub use cert::{CertError, ClusterCa};
pub use config::{ConfigError, TransportConfig};
pub use endpoint::Transport;
pub use error::{RemoteError, TransportError};
pub use fault::FaultSwitch;
pub use handler::{Handler, HandlerFuture, PeerInfo};
pub use node_identity::NodeIdentity;
pub use peer::Peer;
pub use tls::{TlsError, TlsIdentity, ALPN_PROTOCOL};
