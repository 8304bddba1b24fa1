//! The Rust SDK of hyperraft's gRPC API (`proto/hyperraft.proto`).
//!
//! A [`Client`] talks to a cluster through a pool of tonic channels per
//! node, finds the leader (from `Status` answers and from the leader hints
//! of `UNAVAILABLE` answers) and sends writes there, retries what is safe
//! to retry, and batches single transfers created by many tasks into one
//! request.
//!
//! ```no_run
//! use hyperraft_client::{Client, ClientConfig, CreateTransferResult};
//! use hyperraft_client::wire::{AccountRecord, TransferRecord};
//!
//! # async fn example() -> Result<(), hyperraft_client::Error> {
//! let client = Client::connect(ClientConfig::new(["127.0.0.1:7001", "127.0.0.1:7002"])).await?;
//!
//! let account = |id: u128| AccountRecord { id: id.into(), ledger: 1.into(), code: 1.into(), ..Default::default() };
//! assert!(client.create_accounts(&[account(1), account(2)]).await?.is_empty());
//! let transfer = TransferRecord {
//!     id: 10.into(),
//!     debit_account_id: 1.into(),
//!     credit_account_id: 2.into(),
//!     amount: 5.into(),
//!     ledger: 1.into(),
//!     code: 1.into(),
//!     ..Default::default()
//! };
//! // Batched with whatever other tasks create at the same moment.
//! assert_eq!(client.create_transfer(transfer).await?, CreateTransferResult::Ok);
//!
//! client.put("greeting", "hello").await?;
//! let value = client.get("greeting").await?.map(|pair| pair.value);
//! # let _ = value;
//! # Ok(())
//! # }
//! ```
//!
//! # Retries
//!
//! Every call is tried up to [`RetryConfig::attempts`] times, with
//! exponential backoff and jitter between attempts, following leader
//! hints. What is retried depends on what a repeat could do:
//!
//! - **Reads** (lookups, get, range, status), **ledger creates** and
//!   `add_node` (adding a voter again changes nothing) are retried after
//!   any transient failure. Creating accounts and transfers
//!   is idempotent by id: a repeat of an item the first attempt applied
//!   answers `EXISTS` and changes nothing. So after a retry whose earlier
//!   attempt may have been applied, the SDK reads `EXISTS` as success and
//!   leaves such items out of the failures. (`EXISTS` from a call that was
//!   not retried that way is reported: the id was created before.)
//! - **Key/value writes** (put, delete, txn), **lease grants and
//!   revokes**, node removals and leader transfers are retried only when
//!   the request certainly changed nothing: the client could not
//!   connect, the server answered `RESOURCE_EXHAUSTED` (after the
//!   `hyperraft-retry-after-ms` it suggests), or it marked a transient
//!   error (such as "not the leader", answered before proposing)
//!   `hyperraft-retry-safe: true`.
//!   Any other failure after the request left is
//!   [`Error::OutcomeUnknown`]: read the key to learn what happened.
//!
//! # Authentication and TLS
//!
//! [`ClientConfig::token`] is sent as `authorization: Bearer <token>` with
//! every call, health checks and watches included; [`ClientConfig::tls`]
//! connects over TLS, trusting the given CA (a cluster's `ca.pem`). A
//! refused token is [`Error::Unauthenticated`], a role too low for the
//! call [`Error::PermissionDenied`]; neither is ever retried.
//!
//! # Auto-batching
//!
//! [`Client::create_transfer`] queues one transfer; a background task packs
//! queued transfers into one packed `CreateTransfers` frame when
//! [`BatchingConfig::max_items`] are waiting or [`BatchingConfig::max_delay`]
//! after the first, and hands each caller its own result code. A full
//! queue ([`BatchingConfig::queue_max`]) makes callers wait (backpressure).
//!
//! # Bus
//!
//! [`Client::bus`] opens one node's message bus: a [`BusPublisher`]
//! streams batches to a topic, a [`BusSubscription`] receives them, in
//! order per publisher, at most once. An ephemeral topic is per node: both
//! sides must name the same address (see the `bus` module). A durable topic
//! ([`BusNode::configure_durable`]) is replicated: publish on the leader,
//! replay from an offset on any node ([`BusNode::subscribe_from`]).
//!
//! # Watches and leases
//!
//! [`Client::watch`] returns a [`WatchStream`] that survives disconnects
//! and node failures: it resumes on any node from the revision after the
//! last one delivered, so each change arrives once, in order.
//! [`Client::keep_alive`] renews a lease in the background until dropped.

#![warn(missing_docs)]

pub mod agent;
mod batcher;
mod bus;
mod client;
mod cluster;
mod config;
mod error;
mod kv;
mod lease;
mod ledger;
mod pool;
mod retry;
mod txn;
mod watch;

pub use bus::{BusNode, BusPublisher, BusSubscription};
pub use client::{Client, ClientStats};
pub use cluster::NewNode;
pub use config::{
    BatchingConfig, ClientConfig, ClientTls, Compression, PoolConfig, RetryConfig, ENDPOINTS_MAX, TOKEN_BYTES_MAX,
};
pub use error::{
    Error, BUS_FIRST_OFFSET_KEY, COMPACT_REVISION_KEY, LEADER_ADDRESS_KEY, LEADER_ID_KEY, RETRY_AFTER_MS_KEY,
    RETRY_SAFE_KEY,
};
pub use kv::prefix_end;
pub use lease::{KeepAlive, KeepAliveState};
pub use ledger::{AccountFailure, CreateFailure, TransferFailure};
pub use txn::{Compare, CompareOp, Op, Txn, TXN_ITEMS_MAX};
pub use watch::{event_revision, WatchStream};

/// The generated messages of `hyperraft.v1` that calls take and return.
pub use hyperraft_proto as proto;
pub use hyperraft_proto::{CreateAccountResult, CreateTransferResult};
/// The wire records (`AccountRecord`, `TransferRecord`) the ledger calls take.
pub use hyperraft_wire as wire;
