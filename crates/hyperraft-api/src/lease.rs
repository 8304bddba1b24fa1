//! The `Lease` service. Not served yet: every call answers UNIMPLEMENTED
//! until leases exist in the state machine.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::api::Api;
use crate::proto;
use crate::proto::lease_server::Lease;

pub(crate) struct LeaseService {
    #[allow(dead_code)]
    pub(crate) api: Arc<Api>,
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<proto::LeaseKeepAliveResponse, Status>> + Send>>;

fn not_yet() -> Status {
    Status::unimplemented("leases are not served by this version")
}

#[tonic::async_trait]
impl Lease for LeaseService {
    type KeepAliveStream = KeepAliveStream;

    async fn grant(&self, _: Request<proto::LeaseGrantRequest>) -> Result<Response<proto::LeaseGrantResponse>, Status> {
        Err(not_yet())
    }

    async fn revoke(
        &self,
        _: Request<proto::LeaseRevokeRequest>,
    ) -> Result<Response<proto::LeaseRevokeResponse>, Status> {
        Err(not_yet())
    }

    async fn keep_alive(
        &self,
        _: Request<Streaming<proto::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::KeepAliveStream>, Status> {
        Err(not_yet())
    }

    async fn time_to_live(
        &self,
        _: Request<proto::LeaseTimeToLiveRequest>,
    ) -> Result<Response<proto::LeaseTimeToLiveResponse>, Status> {
        Err(not_yet())
    }

    async fn leases(
        &self,
        _: Request<proto::LeaseLeasesRequest>,
    ) -> Result<Response<proto::LeaseLeasesResponse>, Status> {
        Err(not_yet())
    }
}
