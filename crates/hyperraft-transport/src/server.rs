//! The serving side: accept connections, then one task per request stream.
//!
//! Bounds: at most `connections_max` connections are served (the next is
//! refused), each connection grants at most `concurrent_streams_max`
//! streams (QUIC stream credit makes callers wait), and request bodies held
//! at once never exceed `inbound_bytes_max` (a request waits for budget
//! before its body is read).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quinn::{Connection, Incoming, RecvStream, SendStream};
use rustls::pki_types::CertificateDer;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use crate::error::RemoteError;
use crate::fault::FaultSwitch;
use crate::framing::{self, CloseCode, Status, StreamCode, REQUEST_HEADER_BYTES};
use crate::handler::{Handler, PeerInfo};
use crate::node_identity;
use crate::stream_io::{self, ReadFailure};

/// What every connection and stream task of one transport shares.
pub(crate) struct ServerContext {
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) faults: FaultSwitch,
    pub(crate) message_bytes_max: u32,
    pub(crate) connect_timeout: Duration,
    /// One permit per connection served.
    pub(crate) connection_slots: Arc<Semaphore>,
    /// One permit per request body byte held.
    pub(crate) inbound_budget: Arc<Semaphore>,
}

/// Accepts connections until the endpoint closes.
pub(crate) async fn accept_loop(context: Arc<ServerContext>) {
    while let Some(incoming) = context.endpoint.accept().await {
        match context.connection_slots.clone().try_acquire_owned() {
            Ok(slot) => {
                tokio::spawn(serve_connection(context.clone(), incoming, slot));
            }
            Err(_) => {
                warn!(remote = %incoming.remote_address(), "connections_max reached; refusing connection");
                incoming.refuse();
            }
        }
    }
    debug!("endpoint closed; accept loop ends");
}

/// Completes the handshake, learns the peer's node id from its verified
/// certificate, then serves its streams until the connection ends.
async fn serve_connection(context: Arc<ServerContext>, incoming: Incoming, _slot: OwnedSemaphorePermit) {
    let remote = incoming.remote_address();
    let connection = match tokio::time::timeout(context.connect_timeout, incoming).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            // Refused certificates land here; the peer sees a TLS alert.
            debug!(%remote, %error, "handshake failed");
            return;
        }
        Err(_) => {
            debug!(%remote, "handshake timed out");
            return;
        }
    };
    let Some(node_id) = peer_node_id(&connection) else {
        warn!(%remote, "peer certificate names no node; closing");
        connection.close(CloseCode::NotANode.code(), b"certificate names no node");
        return;
    };
    let peer = PeerInfo { node_id, address: remote };
    loop {
        match connection.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(serve_stream(context.clone(), peer, send, recv));
            }
            Err(error) => {
                debug!(node_id, %error, "connection ended");
                return;
            }
        }
    }
}

/// The node id in the peer's leaf certificate, which TLS has verified.
fn peer_node_id(connection: &Connection) -> Option<u64> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let leaf = chain.first()?;
    node_identity::node_id_of_certificate(leaf).ok()
}

/// Answers the one request carried by a stream.
async fn serve_stream(context: Arc<ServerContext>, peer: PeerInfo, send: SendStream, mut recv: RecvStream) {
    let response = ResponseStream { send: Some(send) };
    if context.faults.is_partitioned(peer.node_id) {
        let _ = recv.stop(StreamCode::Partitioned.code());
        response.reset(StreamCode::Partitioned);
        return;
    }
    let (request, _budget) = match read_request(&context, &mut recv).await {
        Ok(read) => read,
        Err(Refusal::Respond(reason)) => {
            debug!(node_id = peer.node_id, %reason, "refusing request");
            // Stop first so a caller blocked sending a large body is freed.
            let _ = recv.stop(StreamCode::Refused.code());
            let body = message_body(&reason, context.message_bytes_max);
            response.send(Status::Refused, body).await;
            return;
        }
        Err(Refusal::Silent) => {
            // The stream or connection failed; nobody is listening.
            response.reset(StreamCode::Refused);
            return;
        }
    };
    let outcome = context.handler.handle(peer, request).await;
    let (status, body) = response_body(outcome, context.message_bytes_max);
    response.send(status, body).await;
}

/// Why a request was not handed to the handler.
enum Refusal {
    /// Tell the caller why.
    Respond(String),
    /// The stream is gone; there is no one to tell.
    Silent,
}

/// Reads a request, holding inbound budget for its body until the returned
/// permit is dropped (after the response is written).
async fn read_request(
    context: &ServerContext,
    recv: &mut RecvStream,
) -> Result<(Bytes, OwnedSemaphorePermit), Refusal> {
    let header = stream_io::read_header::<REQUEST_HEADER_BYTES>(recv).await.map_err(refusal)?;
    let length = framing::decode_request_header(header);
    if length > context.message_bytes_max {
        return Err(Refusal::Respond(format!(
            "request of {length} bytes exceeds message_bytes_max of {} bytes",
            context.message_bytes_max
        )));
    }
    // `length` is at most message_bytes_max, which validation keeps at most
    // inbound_bytes_max, so this wait always ends once others finish.
    let budget = context.inbound_budget.clone().acquire_many_owned(length).await.map_err(|_| Refusal::Silent)?;
    let body = stream_io::read_body(recv, length as usize).await.map_err(refusal)?;
    stream_io::read_finish(recv).await.map_err(refusal)?;
    Ok((body, budget))
}

fn refusal(failure: ReadFailure) -> Refusal {
    match failure {
        ReadFailure::Stream(_) => Refusal::Silent,
        ReadFailure::FinishedEarly => Refusal::Respond("request ended before its announced length".to_string()),
        ReadFailure::TrailingBytes => Refusal::Respond("request has bytes after its announced length".to_string()),
    }
}

/// The status and body for a handler's outcome, bounded like a request.
fn response_body(outcome: Result<Bytes, RemoteError>, bytes_max: u32) -> (Status, Bytes) {
    match outcome {
        Ok(body) if body.len() <= bytes_max as usize => (Status::Ok, body),
        Ok(body) => {
            let message =
                format!("handler response of {} bytes exceeds message_bytes_max of {bytes_max} bytes", body.len());
            (Status::HandlerError, message_body(&message, bytes_max))
        }
        Err(error) => (Status::HandlerError, message_body(error.message(), bytes_max)),
    }
}

/// A human-readable message as a response body, cut so that it fits both
/// the message bound and the error-message bound.
fn message_body(message: &str, bytes_max: u32) -> Bytes {
    let bytes_max = framing::ERROR_MESSAGE_BYTES_MAX.min(bytes_max as usize);
    Bytes::copy_from_slice(framing::truncate_message(message, bytes_max).as_bytes())
}

/// The response half of a request stream. If dropped without a response
/// (the handler panicked and the task unwound), it resets the stream with
/// [`StreamCode::HandlerFailed`] so the caller gets a clear error instead
/// of a truncated response.
struct ResponseStream {
    send: Option<SendStream>,
}

impl ResponseStream {
    async fn send(mut self, status: Status, body: Bytes) {
        let Some(mut send) = self.send.take() else {
            return;
        };
        // `body` is bounded by a u32 limit, so the cast cannot truncate.
        debug_assert!(u32::try_from(body.len()).is_ok());
        let header = framing::encode_response_header(status, body.len() as u32);
        if let Err(error) = stream_io::write_message(&mut send, &header, body).await {
            debug!(%error, "response not delivered");
        }
    }

    fn reset(mut self, code: StreamCode) {
        if let Some(mut send) = self.send.take() {
            let _ = send.reset(code.code());
        }
    }
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        if let Some(mut send) = self.send.take() {
            let _ = send.reset(StreamCode::HandlerFailed.code());
        }
    }
}
