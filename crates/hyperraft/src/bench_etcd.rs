//! `hyperraft bench --target-etcd ADDR`: the same writers, driving an etcd
//! v3 server's `KV` service over gRPC, so the two are compared side by side
//! with one load generator.
//!
//! Only the messages the driver sends are declared here (field numbers from
//! etcd's `etcdserverpb/rpc.proto`): `Put` for one item per request and
//! `Txn` whose success branch holds the request's puts or ranges for more.
//! Each writer gets its own HTTP/2 connection (etcd serves each connection's
//! streams in order of arrival, and one shared connection would make the
//! driver, not etcd, the limit).

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

/// etcd's `PutRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// etcd's `RangeRequest` (point reads only).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
}

/// etcd's `RequestOp`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestOp {
    #[prost(oneof = "Request", tags = "1, 2")]
    pub request: Option<Request>,
}

/// The operations of a `RequestOp` the driver sends.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Request {
    #[prost(message, tag = "1")]
    Range(RangeRequest),
    #[prost(message, tag = "2")]
    Put(PutRequest),
}

/// etcd's `TxnRequest` with no compares: the success branch always runs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TxnRequest {
    #[prost(message, repeated, tag = "2")]
    pub success: Vec<RequestOp>,
}

/// Any etcd response, read only as far as knowing it succeeded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {}

/// One connection to an etcd server's `KV` service.
#[derive(Clone)]
pub struct EtcdKv {
    grpc: tonic::client::Grpc<Channel>,
}

impl EtcdKv {
    /// Connects to `addr` (`host:port`, plain HTTP/2).
    pub async fn connect(addr: &str) -> anyhow::Result<EtcdKv> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))?.connect().await?;
        Ok(EtcdKv { grpc: tonic::client::Grpc::new(channel) })
    }

    /// One `Put`.
    pub async fn put(&mut self, request: PutRequest) -> Result<(), tonic::Status> {
        self.unary("/etcdserverpb.KV/Put", request).await
    }

    /// One `Txn`.
    pub async fn txn(&mut self, request: TxnRequest) -> Result<(), tonic::Status> {
        self.unary("/etcdserverpb.KV/Txn", request).await
    }

    async fn unary<M: prost::Message + Send + Sync + 'static>(
        &mut self,
        path: &'static str,
        request: M,
    ) -> Result<(), tonic::Status> {
        self.grpc.ready().await.map_err(|error| tonic::Status::unavailable(error.to_string()))?;
        let codec = tonic_prost::ProstCodec::<M, Response>::default();
        self.grpc.unary(tonic::Request::new(request), PathAndQuery::from_static(path), codec).await.map(drop)
    }
}
