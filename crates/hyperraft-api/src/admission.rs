//! Admission control: a bound on requests and on request bytes in flight.
//!
//! A request is admitted only if the bounds have room *now*; otherwise it
//! is refused at once, not queued, so a flood beyond the bounds costs no
//! memory and the client learns to back off (`RESOURCE_EXHAUSTED` with a
//! retry hint). The request bound is checked by [`Gated`] around each
//! service, before the request body is read or decoded; the byte bound is
//! checked by the handler, which knows the decoded message's size. Each
//! admitted request holds its permits until its response is ready;
//! dropping a permit gives the room back. For a server-streaming call
//! (`Kv.Watch`) "ready" is when the stream starts, so a long watch holds
//! no request permit; watches have their own bound (`watches_max`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tonic::codegen::{http, Service};
use tonic::server::NamedService;

use crate::errors::resource_exhausted;

/// The shared gate of one API server.
#[derive(Clone, Debug)]
pub(crate) struct Admission {
    requests: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    requests_max: usize,
    bytes_max: u32,
}

/// Room held by one admitted request or by its bytes.
#[derive(Debug)]
pub(crate) struct Permit {
    _permit: Option<OwnedSemaphorePermit>,
}

/// Why a request was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("{max} requests are in flight, the most this node admits; retry later")]
    Requests { max: usize },
    #[error("a request of {bytes} bytes does not fit the {max} request bytes this node admits in flight; retry later")]
    Bytes { bytes: usize, max: u32 },
}

impl Admission {
    pub(crate) fn new(requests_max: usize, bytes_max: u32) -> Admission {
        Admission {
            requests: Arc::new(Semaphore::new(requests_max)),
            bytes: Arc::new(Semaphore::new(bytes_max as usize)),
            requests_max,
            bytes_max,
        }
    }

    /// Admits one more request if the request bound has room.
    pub(crate) fn try_admit_request(&self) -> Result<Permit, Refusal> {
        let permit =
            self.requests.clone().try_acquire_owned().map_err(|_| Refusal::Requests { max: self.requests_max })?;
        Ok(Permit { _permit: Some(permit) })
    }

    /// Admits `bytes` more request bytes if the byte bound has room.
    pub(crate) fn try_admit_bytes(&self, bytes: usize) -> Result<Permit, Refusal> {
        let refused = Refusal::Bytes { bytes, max: self.bytes_max };
        // A request larger than the whole bound can never fit; an empty
        // message takes no room.
        match u32::try_from(bytes) {
            Ok(0) => Ok(Permit { _permit: None }),
            Ok(count) if count <= self.bytes_max => {
                let permit = self.bytes.clone().try_acquire_many_owned(count).map_err(|_| refused)?;
                Ok(Permit { _permit: Some(permit) })
            }
            _ => Err(refused),
        }
    }

    /// Requests admitted now (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn requests_in_flight(&self) -> usize {
        self.requests_max - self.requests.available_permits()
    }
}

/// A gRPC service behind the request bound: a call beyond it is answered
/// `RESOURCE_EXHAUSTED` before its body is read. It also counts every call
/// by RPC and gRPC code and times it (`hyperraft_api_requests_total`,
/// `hyperraft_api_request_seconds`): to its response head, which for a
/// unary call is the whole call and for a stream (a watch) its start; the
/// code is the one in the response head (`OK` when it comes in trailers).
#[derive(Clone, Debug)]
pub(crate) struct Gated<S> {
    inner: S,
    admission: Admission,
    retry_after: Duration,
    /// The `node` label of the metrics.
    node: String,
}

impl<S> Gated<S> {
    pub(crate) fn new(inner: S, admission: Admission, retry_after: Duration, node: String) -> Gated<S> {
        Gated { inner, admission, retry_after, node }
    }
}

/// The `rpc` label: `Service/Method` for a method the service answered,
/// `Service/unknown` when it answered UNIMPLEMENTED, so that clients
/// cannot grow the label set with made-up method names.
fn rpc_label(service: &str, path: &str, code: &str) -> String {
    let method = path.rsplit('/').next().unwrap_or_default();
    let service = service.rsplit('.').next().unwrap_or(service);
    if code == "12" || method.is_empty() {
        format!("{service}/unknown")
    } else {
        format!("{service}/{method}")
    }
}

/// The gRPC code in a response head, as its number; "0" (OK) when the
/// status comes later, in the trailers.
fn code_label<B>(response: &http::Response<B>) -> String {
    response
        .headers()
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .map_or_else(|| "0".to_string(), str::to_string)
}

impl<S: NamedService> NamedService for Gated<S> {
    const NAME: &'static str = S::NAME;
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

fn record_call(node: String, rpc: String, code: String, started: Instant) {
    metrics::histogram!("hyperraft_api_request_seconds", "node" => node.clone(), "rpc" => rpc.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("hyperraft_api_requests_total", "node" => node, "rpc" => rpc, "code" => code).increment(1);
}

impl<S, B> Service<http::Request<B>> for Gated<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible> + NamedService,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> ResponseFuture {
        let started = Instant::now();
        let path = request.uri().path().to_string();
        let node = self.node.clone();
        match self.admission.try_admit_request() {
            Ok(permit) => {
                let response = self.inner.call(request);
                Box::pin(async move {
                    let response = response.await;
                    drop(permit);
                    if let Ok(response) = &response {
                        let code = code_label(response);
                        let rpc = rpc_label(S::NAME, &path, &code);
                        record_call(node, rpc, code, started);
                    }
                    response
                })
            }
            Err(refusal) => {
                metrics::counter!("hyperraft_api_rejected_total", "node" => node.clone(), "reason" => "requests")
                    .increment(1);
                let response = resource_exhausted(refusal, self.retry_after).into_http();
                let code = code_label(&response);
                record_call(node, rpc_label(S::NAME, &path, &code), code, started);
                Box::pin(std::future::ready(Ok(response)))
            }
        }
    }
}

#[cfg(test)]
mod tests;
