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
        let membership = metrics.membership_config.membership();
        let voter_ids: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        let (mut voters, mut learners) = (Vec::new(), Vec::new());
        for (id, node) in membership.nodes() {
            let member = proto::Member {
                id: *id,
                peer_address: node.addr.clone(),
                api_address: self.api.config.api_addresses.get(id).cloned().unwrap_or_default(),
            };
            if voter_ids.contains(id) {
                voters.push(member);
            } else {
                learners.push(member);
            }
        }
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
        }))
    }
}
