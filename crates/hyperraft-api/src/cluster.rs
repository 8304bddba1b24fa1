//! The `Cluster` service: what this node knows about the cluster.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::api::Api;
use crate::proto;
use crate::proto::cluster_server::Cluster;

pub(crate) struct ClusterService {
    pub(crate) api: Arc<Api>,
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn status(&self, request: Request<proto::StatusRequest>) -> Result<Response<proto::StatusResponse>, Status> {
        let _permit = self.api.admit(prost::Message::encoded_len(request.get_ref()))?;
        let metrics = self.api.node.metrics();
        let (voters, learners) = hyperraft_node::members(&metrics);
        let member = |(id, peer_address): (u64, String)| proto::Member {
            id,
            peer_address,
            api_address: self.api.config.api_addresses.get(&id).cloned().unwrap_or_default(),
            matched_index: None,
            lag: None,
        };
        let (voters, learners) = (voters.into_iter().map(member).collect(), learners.into_iter().map(member).collect());
        Ok(Response::new(proto::StatusResponse {
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
        }))
    }

    async fn add_node(&self, _: Request<proto::AddNodeRequest>) -> Result<Response<proto::AddNodeResponse>, Status> {
        Err(Status::unimplemented("AddNode is not served by this version"))
    }

    async fn remove_node(
        &self,
        _: Request<proto::RemoveNodeRequest>,
    ) -> Result<Response<proto::RemoveNodeResponse>, Status> {
        Err(Status::unimplemented("RemoveNode is not served by this version"))
    }

    async fn transfer_leader(
        &self,
        _: Request<proto::TransferLeaderRequest>,
    ) -> Result<Response<proto::TransferLeaderResponse>, Status> {
        Err(Status::unimplemented("TransferLeader is not served by this version"))
    }
}
