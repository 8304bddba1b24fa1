//! [`Api`]: what every service shares — the node, the configuration and
//! the admission gate — and the two ways a request reaches the node: a
//! write through the leader's batcher, a read from the local state.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use hyperraft_node::{Node, WriteError};
use hyperraft_raft::{BatchResponse, NodeId};
use hyperraft_state::BatchOutput;
use hyperraft_wire::{Frame, FrameHeader, Kind, Limits};
use openraft::error::{CheckIsLeaderError, RaftError};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use zerocopy::FromBytes;

use crate::admission::{Admission, Permit};
use crate::errors::{self, invalid_argument, not_leader, resource_exhausted, retry_safe};
use crate::ApiConfig;

pub(crate) struct Api {
    pub(crate) node: Arc<Node>,
    pub(crate) config: ApiConfig,
    pub(crate) admission: Admission,
    /// Turns true when the server shuts down: streams (watches) end then.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// One permit per open watch.
    watches: Arc<Semaphore>,
    /// Each node's gRPC address: `ApiConfig::api_addresses`, then what
    /// `AddNode` told. Read for leader hints and `Status`.
    api_addresses: RwLock<BTreeMap<NodeId, String>>,
    /// Held while a membership change or leader transfer runs: one at a time.
    pub(crate) membership: Arc<tokio::sync::Mutex<()>>,
    /// The `node` label of this API's metrics.
    pub(crate) node_label: String,
    /// This node's message bus.
    pub(crate) bus: Arc<crate::bus::Bus>,
}

impl Api {
    pub(crate) fn new(node: Arc<Node>, config: ApiConfig, shutdown: watch::Receiver<bool>) -> Api {
        let admission = Admission::new(config.requests_in_flight_max, config.request_bytes_in_flight_max);
        let watches = Arc::new(Semaphore::new(config.watches_max));
        let api_addresses = RwLock::new(config.api_addresses.clone());
        let membership = Arc::new(tokio::sync::Mutex::new(()));
        let node_label = hyperraft_node::telemetry::node_label(node.id());
        let bus = Arc::new(crate::bus::Bus::new(config.bus.clone()));
        Api { node, config, admission, shutdown, watches, api_addresses, membership, node_label, bus }
    }

    /// The gRPC address of node `id`, when known.
    pub(crate) fn api_address(&self, id: NodeId) -> Option<String> {
        self.api_addresses.read().expect("the address map lock is never poisoned").get(&id).cloned()
    }

    /// Remembers (or, with `None`, forgets) node `id`'s gRPC address.
    pub(crate) fn set_api_address(&self, id: NodeId, address: Option<String>) {
        let mut addresses = self.api_addresses.write().expect("the address map lock is never poisoned");
        match address {
            Some(address) => addresses.insert(id, address),
            None => addresses.remove(&id),
        };
    }

    /// A place for one more watch, or `RESOURCE_EXHAUSTED` when all
    /// `watches_max` are taken.
    pub(crate) fn admit_watch(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.watches.clone().try_acquire_owned().map_err(|_| {
            self.count_rejected("watches");
            let max = self.config.watches_max;
            resource_exhausted(format!("{max} watches are open, the most this node serves"), self.config.retry_after)
        })
    }

    /// Watches open now.
    #[allow(dead_code)]
    pub(crate) fn watches_open(&self) -> usize {
        self.config.watches_max - self.watches.available_permits()
    }

    pub(crate) fn node_id(&self) -> NodeId {
        self.node.id()
    }

    /// Admits a decoded request of `bytes` encoded bytes under the byte
    /// bound, or refuses it with a retry hint. (The request bound was
    /// checked before the body was read, by [`crate::admission::Gated`].)
    pub(crate) fn admit(&self, bytes: usize) -> Result<Permit, Status> {
        self.admission.try_admit_bytes(bytes).map_err(|refusal| {
            self.count_rejected("bytes");
            resource_exhausted(refusal, self.config.retry_after)
        })
    }

    /// Counts a request refused for lack of room, by `reason`.
    pub(crate) fn count_rejected(&self, reason: &'static str) {
        metrics::counter!("hyperraft_api_rejected_total", "node" => self.node_label.clone(), "reason" => reason)
            .increment(1);
    }

    /// Proposes a write frame through this node's batcher (it must lead) and
    /// waits until it is committed and applied.
    pub(crate) async fn write(&self, frame: &[u8]) -> Result<BatchResponse, Status> {
        // A follower's batcher would learn the same from Raft, after a trip
        // through its queue; the metrics answer at once.
        let leader = self.node.raft().metrics().borrow().current_leader;
        if leader != Some(self.node_id()) {
            return Err(self.not_leader_before_proposal(leader));
        }
        match self.node.write(frame).await {
            Ok(BatchResponse::Rejected(reason)) => Err(Status::failed_precondition(reason)),
            Ok(response) => Ok(response),
            Err(error) => Err(self.write_error(error)),
        }
    }

    /// Queues a write frame in this node's batcher (it must lead) without
    /// waiting: writes queued one after another are committed in that
    /// order. [`Api::queued_answer`] waits for the answer.
    pub(crate) fn enqueue_write(&self, frame: &[u8]) -> Result<hyperraft_node::batcher::Queued, Status> {
        let leader = self.node.raft().metrics().borrow().current_leader;
        if leader != Some(self.node_id()) {
            return Err(self.not_leader_before_proposal(leader));
        }
        self.node.writer().enqueue(frame).map_err(|error| self.write_error(error))
    }

    /// Waits for the answer to a write queued by [`Api::enqueue_write`].
    pub(crate) async fn queued_answer(&self, queued: hyperraft_node::batcher::Queued) -> Result<BatchResponse, Status> {
        match queued.await {
            Err(_) => Err(Status::unavailable("the batcher stopped; the write's outcome is unknown")),
            Ok(Ok(BatchResponse::Rejected(reason))) => Err(Status::failed_precondition(reason)),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(self.write_error(error)),
        }
    }

    /// Answers a read-only frame (lookups, key/value ranges) from this
    /// node's state: after a read-index round unless `serializable`.
    pub(crate) async fn read(&self, frame: &[u8], serializable: bool) -> Result<BatchResponse, Status> {
        let decoded = Frame::decode(frame, &Limits::default()).map_err(|error| invalid_argument("frame", error))?;
        if !serializable {
            self.linearizable().await?;
        }
        let mut output = BatchOutput::default();
        self.node
            .state()
            .read(|state| state.read(&decoded, &mut output))
            .map_err(|error| invalid_argument("frame", error))?;
        Ok(BatchResponse::from_output(decoded.kind(), &output))
    }

    /// Waits until this node may answer a linearizable read from its state:
    /// it confirms it leads (a read-index round) and has applied everything
    /// committed before the read.
    pub(crate) async fn linearizable(&self) -> Result<(), Status> {
        // A read proposes nothing: retrying it is always safe.
        self.node.raft().ensure_linearizable().await.map(|_| ()).map_err(|error| match error {
            RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)) => {
                self.not_leader_before_proposal(forward.leader_id)
            }
            other => {
                retry_safe(Status::unavailable(format!("cannot confirm leadership for a linearizable read: {other}")))
            }
        })
    }

    /// [`Api::not_leader`] from a check made before anything was proposed.
    pub(crate) fn not_leader_before_proposal(&self, leader: Option<NodeId>) -> Status {
        retry_safe(self.not_leader(leader))
    }

    pub(crate) fn not_leader(&self, leader: Option<NodeId>) -> Status {
        let address = leader.and_then(|leader| self.api_address(leader));
        not_leader(self.node_id(), leader, address.as_deref())
    }

    fn write_error(&self, error: WriteError) -> Status {
        if matches!(error, WriteError::Overloaded(_)) {
            self.count_rejected("write_queue");
        }
        errors::write_error(error, self.config.retry_after, |leader| self.not_leader(leader))
    }
}

/// Checks what a packed frame's header claims without reading its body:
/// its kind must be `expected` and it must hold at least one item. The
/// batcher or the reader validates the whole frame (checksums included)
/// exactly once afterwards, so a damaged frame is still refused there.
pub(crate) fn check_packed(frame: &[u8], expected: Kind) -> Result<(), Status> {
    let (header, _) =
        FrameHeader::ref_from_prefix(frame).map_err(|_| invalid_argument("frame", "shorter than a frame header"))?;
    let kind = Kind::try_from(header.kind.get()).map_err(|error| invalid_argument("frame", error))?;
    if kind != expected {
        return Err(invalid_argument("frame", format!("a {kind:?} frame where {expected:?} is expected")));
    }
    if header.count.get() == 0 {
        return Err(invalid_argument("frame", "holds no items"));
    }
    Ok(())
}

/// Refuses an empty batch or one over the frame count limit, naming `field`.
pub(crate) fn check_batch_len(field: &str, len: usize) -> Result<(), Status> {
    let max = Limits::default().count_max as usize;
    if len == 0 {
        return Err(invalid_argument(field, "holds no items; give the batch as messages or as a frame"));
    }
    if len > max {
        return Err(invalid_argument(field, format!("{len} items, more than the {max} one batch may hold")));
    }
    Ok(())
}
