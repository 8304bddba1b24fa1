//! The `Cluster` service: what this node knows about the cluster, and the
//! leader's membership changes (add, remove) and leader transfer.
//!
//! A change runs in a task of its own, one at a time per node (another is
//! refused with `ABORTED` meanwhile): if the client gives up (deadline,
//! cancel) the change still finishes as `hyperraft_node::Node` defines it —
//! a node that does not catch up is removed again — instead of stopping
//! half way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyperraft_node::NodeError;
use hyperraft_raft::NodeId;
use openraft::{BasicNode, RaftMetrics};
use tonic::{Request, Response, Status};

use crate::api::Api;
use crate::errors::{invalid_argument, retry_safe};
use crate::proto;
use crate::proto::cluster_server::Cluster;

/// How long a new node may take to catch up when the request says 0.
const CATCH_UP_DEFAULT: Duration = Duration::from_secs(60);
/// How long a leader transfer may take when the request says 0.
const TRANSFER_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// The longest wait a request may ask for.
const WAIT_MS_MAX: u64 = 600_000;

pub(crate) struct ClusterService {
    pub(crate) api: Arc<Api>,
}

/// `millis` of the field `field` as a duration, `default` for 0.
fn wait_field(field: &str, millis: u64, default: Duration) -> Result<Duration, Status> {
    match millis {
        0 => Ok(default),
        millis if millis > WAIT_MS_MAX => {
            Err(invalid_argument(field, format!("{millis} ms, more than the {WAIT_MS_MAX} ms allowed")))
        }
        millis => Ok(Duration::from_millis(millis)),
    }
}

fn node_id_field(field: &str, id: u64) -> Result<NodeId, Status> {
    if id == 0 {
        return Err(invalid_argument(field, "must not be 0"));
    }
    Ok(id)
}

fn peer_address_field(address: &str) -> Result<SocketAddr, Status> {
    address.parse().map_err(|error| invalid_argument("peer_address", format!("{address:?} is not an ip:port: {error}")))
}

/// A gRPC address must be "host:port" and fit in ASCII metadata (it is
/// sent in leader hints); empty means unknown.
fn api_address_field(address: &str) -> Result<Option<String>, Status> {
    if address.is_empty() {
        return Ok(None);
    }
    let well_formed = address.bytes().all(|byte| byte.is_ascii_graphic())
        && address.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !well_formed {
        return Err(invalid_argument("api_address", format!("{address:?} is not a host:port")));
    }
    Ok(Some(address.to_string()))
}

/// The index `member` holds, and how far it is behind `last_log_index`;
/// on the leader only.
fn health(metrics: &RaftMetrics<NodeId, BasicNode>, member: NodeId) -> (Option<u64>, Option<u64>) {
    if !metrics.state.is_leader() {
        return (None, None);
    }
    let last_log_index = metrics.last_log_index.unwrap_or(0);
    let matched = if member == metrics.id {
        Some(last_log_index)
    } else {
        metrics.replication.as_ref().and_then(|replication| replication.get(&member)).map(|matched| {
            // A member nothing was replicated to yet holds nothing.
            matched.map_or(0, |log_id| log_id.index)
        })
    };
    (matched, matched.map(|matched| last_log_index.saturating_sub(matched)))
}

impl ClusterService {
    /// What this node knows now.
    fn status_now(&self) -> proto::StatusResponse {
        let metrics = self.api.node.metrics();
        let (voters, learners) = hyperraft_node::members(&metrics);
        let member = |(id, peer_address): (u64, String)| {
            let (matched_index, lag) = health(&metrics, id);
            proto::Member {
                id,
                peer_address,
                api_address: self.api.api_address(id).unwrap_or_default(),
                matched_index,
                lag,
            }
        };
        let (voters, learners) = (voters.into_iter().map(member).collect(), learners.into_iter().map(member).collect());
        proto::StatusResponse {
            node_id: metrics.id,
            leader_id: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            applied_index: metrics.last_applied.map_or(0, |log_id| log_id.index),
            voters,
            learners,
            is_leader: metrics.state.is_leader(),
            millis_since_quorum_ack: metrics.millis_since_quorum_ack,
            kv_revision: self.api.node.state().read(|state| state.kv().revision()),
        }
    }

    /// Refuses a change on a node that does not lead, before anything is proposed.
    fn lead(&self) -> Result<RaftMetrics<NodeId, BasicNode>, Status> {
        let metrics = self.api.node.metrics();
        if metrics.current_leader != Some(self.api.node_id()) || !metrics.state.is_leader() {
            return Err(self.api.not_leader_before_proposal(metrics.current_leader));
        }
        Ok(metrics)
    }

    /// The status of a change that failed; `field` names the node id asked for.
    fn change_error(&self, field: &str, error: NodeError) -> Status {
        match error {
            NodeError::Config(reason) => invalid_argument(field, reason),
            NodeError::Transport(reason) | NodeError::PeerAddressInUse(reason) => Status::unavailable(reason),
            NodeError::Raft(reason) | NodeError::Storage(reason) => {
                let metrics = self.api.node.metrics();
                if metrics.state.is_leader() {
                    Status::failed_precondition(reason)
                } else {
                    // Leadership moved while the change ran: it may or may not have been proposed.
                    self.api.not_leader(metrics.current_leader)
                }
            }
        }
    }

    /// Runs `change` in its own task, so that a client that gives up does
    /// not stop it half way. One change at a time: while one runs, another
    /// is refused at once (`ABORTED`, retry-safe) rather than queued, so
    /// retrying clients cannot pile up changes that would run long after
    /// they gave up.
    async fn run_change<F>(&self, field: &str, change: F) -> Result<(), Status>
    where
        F: std::future::Future<Output = Result<(), NodeError>> + Send + 'static,
    {
        let one_at_a_time = self.api.membership.clone().try_lock_owned().map_err(|_| {
            retry_safe(Status::aborted("another membership change or leader transfer is running on this node; retry"))
        })?;
        let task = tokio::spawn(async move {
            let outcome = change.await;
            drop(one_at_a_time);
            outcome
        });
        let outcome = task.await.map_err(|error| Status::internal(format!("the change task failed: {error}")))?;
        outcome.map_err(|error| self.change_error(field, error))
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(&self, request: Request<proto::StatusRequest>) -> Result<Response<proto::StatusResponse>, Status> {
        let _permit = self.api.admit(prost::Message::encoded_len(request.get_ref()))?;
        Ok(Response::new(self.status_now()))
    }

    async fn add_node(
        &self,
        request: Request<proto::AddNodeRequest>,
    ) -> Result<Response<proto::AddNodeResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(prost::Message::encoded_len(&request))?;
        let id = node_id_field("id", request.id)?;
        let peer_address = peer_address_field(&request.peer_address)?;
        let api_address = api_address_field(&request.api_address)?;
        let catch_up = wait_field("catch_up_ms", request.catch_up_ms, CATCH_UP_DEFAULT)?;
        let metrics = self.lead()?;
        let membership = metrics.membership_config.membership();
        let voter = membership.voter_ids().any(|voter| voter == id);
        let known_address = membership.get_node(&id).map(|node| node.addr.clone());
        match known_address {
            // A retry of an addition that succeeded: nothing to do.
            Some(address) if voter && address == peer_address.to_string() => {}
            Some(address) if voter => {
                return Err(invalid_argument("id", format!("node {id} is already a voter, at {address}")));
            }
            _ => {
                let node = self.api.node.clone();
                self.run_change("id", async move { node.add_node(id, peer_address, catch_up).await }).await?;
            }
        }
        if api_address.is_some() {
            self.api.set_api_address(id, api_address);
        }
        Ok(Response::new(proto::AddNodeResponse { status: Some(self.status_now()) }))
    }

    async fn remove_node(
        &self,
        request: Request<proto::RemoveNodeRequest>,
    ) -> Result<Response<proto::RemoveNodeResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(prost::Message::encoded_len(&request))?;
        let id = node_id_field("id", request.id)?;
        let metrics = self.lead()?;
        let voters: Vec<NodeId> = metrics.membership_config.membership().voter_ids().collect();
        if !voters.contains(&id) {
            return Err(invalid_argument("id", format!("node {id} is not a voter")));
        }
        if voters.len() == 1 {
            return Err(invalid_argument("id", format!("node {id} is the last voter")));
        }
        let node = self.api.node.clone();
        self.run_change("id", async move { node.remove_node(id).await }).await?;
        self.api.set_api_address(id, None);
        Ok(Response::new(proto::RemoveNodeResponse { status: Some(self.status_now()) }))
    }

    async fn transfer_leader(
        &self,
        request: Request<proto::TransferLeaderRequest>,
    ) -> Result<Response<proto::TransferLeaderResponse>, Status> {
        let request = request.into_inner();
        let _permit = self.api.admit(prost::Message::encoded_len(&request))?;
        let target = node_id_field("target_id", request.target_id)?;
        let timeout = wait_field("timeout_ms", request.timeout_ms, TRANSFER_TIMEOUT_DEFAULT)?;
        let metrics = self.lead()?;
        if !metrics.membership_config.membership().voter_ids().any(|voter| voter == target) {
            return Err(invalid_argument("target_id", format!("node {target} is not a voter")));
        }
        let node = self.api.node.clone();
        self.run_change("target_id", async move { node.transfer_leader(target, timeout).await }).await?;
        // The target won; this node learns it from the new leader's first
        // heartbeat. Answer once it has, or with what it knows after `timeout`.
        let mut metrics = self.api.node.raft().metrics();
        let learned = metrics.wait_for(|metrics| metrics.current_leader == Some(target));
        let _ = tokio::time::timeout(timeout, learned).await;
        Ok(Response::new(proto::TransferLeaderResponse { status: Some(self.status_now()) }))
    }
}
