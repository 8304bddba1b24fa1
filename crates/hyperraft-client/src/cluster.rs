//! Cluster calls: status, membership changes and leader transfer.
//!
//! Membership changes and leader transfers go to the leader. Adding a
//! node that is already a voter changes nothing, so `add_node` is retried
//! like a read; removals and leader transfers, like key/value writes, are
//! retried only when the request certainly changed nothing.

use std::time::Duration;

use hyperraft_proto::{AddNodeRequest, RemoveNodeRequest, StatusRequest, StatusResponse, TransferLeaderRequest};

use crate::pool::Target;
use crate::retry::Safety;
use crate::{Client, Error};

/// A node to add with [`Client::add_node`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewNode {
    /// Its node id.
    pub id: u64,
    /// Where the other nodes reach it (QUIC), `host:port`.
    pub peer_address: String,
    /// Its gRPC API address, for leader hints; may be empty.
    pub api_address: String,
    /// How long it may take to catch up before the change is abandoned;
    /// zero for the server's default (60 s).
    pub catch_up: Duration,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Client {
    /// What the leader (or, when none is known, some node) knows about the cluster.
    pub async fn status(&self) -> Result<StatusResponse, Error> {
        let core = &self.core;
        core.call(Target::Leader, Safety::Idempotent, |channel| {
            let mut cluster = core.cluster(channel);
            let request = core.request(StatusRequest {});
            async move { cluster.status(request).await }
        })
        .await
    }

    /// Every known endpoint's own status (one attempt each), in endpoint order.
    pub async fn status_all(&self) -> Vec<(String, Result<StatusResponse, Error>)> {
        let mut answers = Vec::new();
        for endpoint in self.core.pool.endpoints() {
            let status = self.core.pool.status_of(&endpoint).await.map_err(|status| Error::from_status(&status));
            answers.push((endpoint.address.clone(), status));
        }
        answers
    }

    /// Adds a node: first as a learner, then, once it has caught up, as a
    /// voter. Adding a voter again changes nothing.
    pub async fn add_node(&self, node: NewNode) -> Result<StatusResponse, Error> {
        let core = &self.core;
        let response = core
            .call(Target::Leader, Safety::Idempotent, |channel| {
                let mut cluster = core.cluster(channel);
                let mut request = tonic::Request::new(AddNodeRequest {
                    id: node.id,
                    peer_address: node.peer_address.clone(),
                    api_address: node.api_address.clone(),
                    catch_up_ms: millis(node.catch_up),
                });
                // Catching up may take longer than an ordinary call.
                let catch_up = if node.catch_up.is_zero() { Duration::from_secs(60) } else { node.catch_up };
                request.set_timeout(catch_up + core.pool.config().request_timeout);
                async move { cluster.add_node(request).await }
            })
            .await?;
        response.status.ok_or_else(|| Error::Protocol("AddNode answered no status".into()))
    }

    /// Removes voter `id`.
    pub async fn remove_node(&self, id: u64) -> Result<StatusResponse, Error> {
        let core = &self.core;
        let response = core
            .call(Target::Leader, Safety::NotIdempotent, |channel| {
                let mut cluster = core.cluster(channel);
                let request = core.request(RemoveNodeRequest { id });
                async move { cluster.remove_node(request).await }
            })
            .await?;
        response.status.ok_or_else(|| Error::Protocol("RemoveNode answered no status".into()))
    }

    /// Hands leadership to voter `target_id`, waiting up to `timeout` (zero
    /// for the server's default, 10 s) for it to win.
    pub async fn transfer_leader(&self, target_id: u64, timeout: Duration) -> Result<StatusResponse, Error> {
        let core = &self.core;
        let response = core
            .call(Target::Leader, Safety::NotIdempotent, |channel| {
                let mut cluster = core.cluster(channel);
                let mut request = tonic::Request::new(TransferLeaderRequest { target_id, timeout_ms: millis(timeout) });
                let wait = if timeout.is_zero() { Duration::from_secs(10) } else { timeout };
                request.set_timeout(wait + core.pool.config().request_timeout);
                async move { cluster.transfer_leader(request).await }
            })
            .await?;
        response.status.ok_or_else(|| Error::Protocol("TransferLeader answered no status".into()))
    }
}
