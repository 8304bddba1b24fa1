//! Serves the node protocol: Raft RPCs from peers, writes, reads and status from clients.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use hyperraft_raft::state_machine::StateMachineStore;
use hyperraft_raft::{BatchResponse, TypeConfig};
use hyperraft_state::BatchOutput;
use hyperraft_transport::{Handler, PeerInfo, RemoteError};
use hyperraft_wire::{Frame, Limits};
use openraft::Raft;

use crate::batcher::{Batcher, WriteError};
use crate::network::{RaftReply, RaftRequest};
use crate::protocol::{self, NodeReply, NodeRequest, Status};

/// The transport handler of a node.
#[derive(Clone)]
pub(crate) struct NodeService {
    pub(crate) raft: Raft<TypeConfig>,
    pub(crate) batcher: Batcher,
    pub(crate) state: StateMachineStore,
}

impl Handler for NodeService {
    fn handle(
        &self,
        _peer: PeerInfo,
        request: Bytes,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, RemoteError>> + Send>> {
        let service = self.clone();
        Box::pin(async move {
            let request: NodeRequest = protocol::decode(&request)
                .map_err(|error| RemoteError::new(format!("undecodable request: {error}")))?;
            let reply = match request {
                NodeRequest::Raft(rpc) => NodeReply::Raft(service.raft_rpc(rpc).await),
                NodeRequest::Write(frame) => NodeReply::Write(service.batcher.submit(&frame).await),
                NodeRequest::Read(frame) => NodeReply::Read(service.read(&frame).await),
                NodeRequest::Status => NodeReply::Status(service.status()),
                NodeRequest::HoldElections { millis } => {
                    hold_elections(&service.raft, Duration::from_millis(millis.min(HOLD_MILLIS_MAX)));
                    NodeReply::Leading(service.raft.metrics().borrow().state.is_leader())
                }
                NodeRequest::Campaign { millis } => NodeReply::Leading(
                    campaign(&service.raft, Duration::from_millis(millis.min(HOLD_MILLIS_MAX))).await,
                ),
                NodeRequest::Digest => {
                    let (applied, digest) = service.state.applied_digest();
                    NodeReply::Digest { applied_index: applied.map(|log_id| log_id.index), digest }
                }
            };
            Ok(Bytes::from(protocol::encode(&reply)))
        })
    }
}

/// Pause between election rounds of a campaign: several loopback or LAN
/// round trips, well under any sane election timeout.
const CAMPAIGN_ROUND: Duration = Duration::from_millis(150);

/// Longest election hold or campaign a request may ask for.
const HOLD_MILLIS_MAX: u64 = 30_000;

/// Stops this node from starting elections for `duration`, then lets it
/// again on its own, so a lost follow-up message cannot leave it silent.
pub(crate) fn hold_elections(raft: &Raft<TypeConfig>, duration: Duration) {
    raft.runtime_config().elect(false);
    let raft = raft.clone();
    tokio::spawn(async move {
        tokio::time::sleep(duration).await;
        raft.runtime_config().elect(true);
    });
}

/// Asks for votes every few ticks until this node leads or `duration` ends.
/// Voters refuse while the old leader's lease lasts, so the first rounds
/// may fail; the others hold their elections meanwhile.
async fn campaign(raft: &Raft<TypeConfig>, duration: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + duration;
    let leading = || raft.metrics().borrow().state.is_leader();
    while tokio::time::Instant::now() < deadline {
        if leading() {
            return true;
        }
        if raft.trigger().elect().await.is_err() {
            return false;
        }
        // Give each round time to collect its votes; a new round would cancel it.
        tokio::time::sleep(CAMPAIGN_ROUND).await;
    }
    leading()
}

impl NodeService {
    async fn raft_rpc(&self, rpc: RaftRequest) -> RaftReply {
        match rpc {
            RaftRequest::Append(rpc) => RaftReply::Append(self.raft.append_entries(rpc).await),
            RaftRequest::Vote(rpc) => RaftReply::Vote(self.raft.vote(rpc).await),
            RaftRequest::Snapshot(rpc) => RaftReply::Snapshot(self.raft.install_snapshot(rpc).await),
        }
    }

    /// A linearizable read: the leader confirms it still leads and waits
    /// until its state has applied everything committed before answering.
    async fn read(&self, frame: &[u8]) -> Result<BatchResponse, WriteError> {
        let decoded =
            Frame::decode(frame, &Limits::default()).map_err(|error| WriteError::InvalidFrame(error.to_string()))?;
        self.raft.ensure_linearizable().await.map_err(|error| match error {
            openraft::error::RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(forward)) => {
                WriteError::NotLeader { leader: forward.leader_id.zip(forward.leader_node.map(|node| node.addr)) }
            }
            other => WriteError::Unavailable(other.to_string()),
        })?;
        let mut output = BatchOutput::default();
        self.state
            .read(|state| state.read(&decoded, &mut output))
            .map_err(|error| WriteError::Refused(error.to_string()))?;
        Ok(BatchResponse::from_output(decoded.kind(), &output))
    }

    fn status(&self) -> Status {
        let metrics = self.raft.metrics().borrow().clone();
        let (voters, learners) = crate::node::members(&metrics);
        Status {
            node_id: metrics.id,
            leader: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index,
            applied_index: metrics.last_applied.map(|log_id| log_id.index),
            voters,
            learners,
        }
    }
}
