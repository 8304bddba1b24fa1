//! The calling side: a handle to one remote node.
//!
//! A [`Peer`] keeps one QUIC connection to its node, opened on the first
//! call and reopened on the first call after it fails. Every call opens a
//! new bidirectional stream on that connection, so concurrent calls are
//! multiplexed and pipelined rather than queued behind each other. The
//! connection is verified as node `node-{id}.hyperraft`, so a wrong address
//! reaches a handshake error, never the wrong node.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use quinn::{
    ConnectError, Connection, ConnectionError, RecvStream, SendStream, TransportErrorCode, VarInt, WriteError,
};

use crate::config::TransportConfig;
use crate::error::{RemoteError, TransportError};
use crate::fault::FaultSwitch;
use crate::framing::{self, Status, StreamCode, ERROR_MESSAGE_BYTES_MAX, RESPONSE_HEADER_BYTES};
use crate::node_identity;
use crate::stream_io::{self, ReadFailure};

/// A handle for calling one node. Cheap to clone; clones share the
/// connection.
#[derive(Clone, Debug)]
pub struct Peer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    node_id: u64,
    address: SocketAddr,
    server_name: String,
    endpoint: quinn::Endpoint,
    message_bytes_max: u32,
    connect_timeout: Duration,
    call_timeout: Duration,
    faults: FaultSwitch,
    /// The live connection, if any. Held only to clone or replace it.
    connection: Mutex<Option<Connection>>,
    /// Serializes connecting, so concurrent first calls share one
    /// connection instead of racing to open several.
    connecting: tokio::sync::Mutex<()>,
}

impl Peer {
    pub(crate) fn new(
        node_id: u64,
        address: SocketAddr,
        endpoint: quinn::Endpoint,
        config: &TransportConfig,
        faults: FaultSwitch,
    ) -> Peer {
        Peer {
            shared: Arc::new(Shared {
                node_id,
                address,
                server_name: node_identity::server_name(node_id),
                endpoint,
                message_bytes_max: config.message_bytes_max,
                connect_timeout: config.connect_timeout,
                call_timeout: config.call_timeout,
                faults,
                connection: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The node this handle calls.
    pub fn node_id(&self) -> u64 {
        self.shared.node_id
    }

    /// The address this handle dials.
    pub fn address(&self) -> SocketAddr {
        self.shared.address
    }

    /// Sends `request` and waits for the response, bounded by the
    /// configured `call_timeout`.
    pub async fn call(&self, request: Bytes) -> Result<Bytes, TransportError> {
        self.call_with_timeout(request, self.shared.call_timeout).await
    }

    /// Sends `request` and waits at most `timeout` for the response.
    pub async fn call_with_timeout(&self, request: Bytes, timeout: Duration) -> Result<Bytes, TransportError> {
        let node_id = self.shared.node_id;
        if self.shared.faults.is_partitioned(node_id) {
            return Err(TransportError::Partitioned { node_id });
        }
        let bytes_max = self.shared.message_bytes_max;
        if request.len() > bytes_max as usize {
            return Err(TransportError::MessageTooLarge { bytes: request.len(), bytes_max });
        }
        match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout { node_id, timeout }),
        }
    }

    /// Opens the connection now instead of on the first call, so that a
    /// handshake failure shows up early.
    pub async fn connect(&self) -> Result<(), TransportError> {
        let node_id = self.shared.node_id;
        if self.shared.faults.is_partitioned(node_id) {
            return Err(TransportError::Partitioned { node_id });
        }
        self.connection().await.map(drop)
    }

    /// One request and its response on a fresh stream.
    async fn exchange(&self, request: Bytes) -> Result<Bytes, TransportError> {
        let (mut send, mut recv) = self.open_stream().await?;
        // The caller checked the length against a u32 bound.
        let header = framing::encode_request_header(request.len() as u32);
        match stream_io::write_message(&mut send, &header, request).await {
            Ok(()) => {}
            // The server stopped reading; its response says why.
            Err(WriteError::Stopped(code)) if StreamCode::from_code(code) == Some(StreamCode::Refused) => {}
            Err(error) => return Err(self.write_failed(error)),
        }
        self.read_response(&mut recv).await
    }

    async fn open_stream(&self) -> Result<(SendStream, RecvStream), TransportError> {
        let connection = self.connection().await?;
        match connection.open_bi().await {
            Ok(streams) => return Ok(streams),
            Err(error) => {
                tracing::debug!(node_id = self.shared.node_id, %error, "cached connection failed; reconnecting");
            }
        }
        // The failed connection carried nothing of this call yet, so one
        // retry on a fresh connection cannot deliver the request twice.
        let connection = self.connection().await?;
        connection.open_bi().await.map_err(|error| connection_error(self.shared.node_id, error))
    }

    /// The live connection, opening one if there is none.
    async fn connection(&self) -> Result<Connection, TransportError> {
        if let Some(connection) = self.live_connection() {
            return Ok(connection);
        }
        let _connecting = self.shared.connecting.lock().await;
        // Another caller may have connected while this one waited.
        if let Some(connection) = self.live_connection() {
            return Ok(connection);
        }
        let connection = self.connect_new().await?;
        *lock(&self.shared.connection) = Some(connection.clone());
        Ok(connection)
    }

    fn live_connection(&self) -> Option<Connection> {
        let slot = lock(&self.shared.connection);
        slot.as_ref().filter(|connection| connection.close_reason().is_none()).cloned()
    }

    async fn connect_new(&self) -> Result<Connection, TransportError> {
        let shared = &self.shared;
        let node_id = shared.node_id;
        let connecting =
            shared.endpoint.connect(shared.address, &shared.server_name).map_err(|source| match source {
                ConnectError::EndpointStopping => TransportError::Closed,
                source => TransportError::Connect { node_id, source },
            })?;
        match tokio::time::timeout(shared.connect_timeout, connecting).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(connection_error(node_id, error)),
            Err(_) => Err(TransportError::Timeout { node_id, timeout: shared.connect_timeout }),
        }
    }

    async fn read_response(&self, recv: &mut RecvStream) -> Result<Bytes, TransportError> {
        let node_id = self.shared.node_id;
        let header =
            stream_io::read_header::<RESPONSE_HEADER_BYTES>(recv).await.map_err(|failure| self.read_failed(failure))?;
        let (status, length) = framing::decode_response_header(header)
            .map_err(|_| TransportError::Protocol { node_id, reason: "unknown response status" })?;
        let bytes_max = self.shared.message_bytes_max;
        if length > bytes_max {
            let _ = recv.stop(StreamCode::ResponseRefused.code());
            return Err(TransportError::ResponseTooLarge { node_id, bytes: length, bytes_max });
        }
        let body = stream_io::read_body(recv, length as usize).await.map_err(|failure| self.read_failed(failure))?;
        stream_io::read_finish(recv).await.map_err(|failure| self.read_failed(failure))?;
        outcome(node_id, status, body)
    }

    fn read_failed(&self, failure: ReadFailure) -> TransportError {
        let node_id = self.shared.node_id;
        match failure {
            ReadFailure::Stream(quinn::ReadError::Reset(code)) => stream_reset(node_id, code),
            ReadFailure::Stream(quinn::ReadError::ConnectionLost(error)) => connection_error(node_id, error),
            ReadFailure::Stream(_) => {
                TransportError::Protocol { node_id, reason: "response stream closed unexpectedly" }
            }
            ReadFailure::FinishedEarly => {
                TransportError::Protocol { node_id, reason: "response ended before its announced length" }
            }
            ReadFailure::TrailingBytes => {
                TransportError::Protocol { node_id, reason: "response has bytes after its announced length" }
            }
        }
    }

    fn write_failed(&self, error: WriteError) -> TransportError {
        let node_id = self.shared.node_id;
        match error {
            WriteError::Stopped(code) => stream_reset(node_id, code),
            WriteError::ConnectionLost(error) => connection_error(node_id, error),
            WriteError::ClosedStream | WriteError::ZeroRttRejected => {
                TransportError::Protocol { node_id, reason: "request stream closed unexpectedly" }
            }
        }
    }
}

/// The caller's result for a complete response.
fn outcome(node_id: u64, status: Status, body: Bytes) -> Result<Bytes, TransportError> {
    match status {
        Status::Ok => Ok(body),
        Status::HandlerError => Err(TransportError::Remote { node_id, error: RemoteError::new(message_text(&body)) }),
        Status::Refused => Err(TransportError::Refused { node_id, reason: message_text(&body) }),
    }
}

/// A peer's error message as text, bounded like every error message.
fn message_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    framing::truncate_message(&text, ERROR_MESSAGE_BYTES_MAX).to_string()
}

fn stream_reset(node_id: u64, code: VarInt) -> TransportError {
    match StreamCode::from_code(code) {
        Some(StreamCode::Partitioned) => TransportError::Partitioned { node_id },
        known => TransportError::StreamReset {
            node_id,
            code: code.into_inner(),
            reason: known.map_or("unknown code", StreamCode::describe),
        },
    }
}

/// Classifies a failed connection. TLS failures (QUIC reports TLS alerts
/// as "crypto" errors 0x100-0x1ff, whichever side detected them) become
/// [`TransportError::Handshake`] so that an untrusted certificate reads as
/// such rather than as a network fault.
fn connection_error(node_id: u64, error: ConnectionError) -> TransportError {
    let handshake = |reason: String| TransportError::Handshake { node_id, reason };
    match error {
        ConnectionError::TransportError(error) if is_crypto(error.code) => handshake(error.to_string()),
        ConnectionError::ConnectionClosed(close) if is_crypto(close.error_code) => {
            handshake(format!("rejected by peer: {close}"))
        }
        ConnectionError::LocallyClosed => TransportError::Closed,
        source => TransportError::ConnectionLost { node_id, source },
    }
}

fn is_crypto(code: TransportErrorCode) -> bool {
    u64::from(code) & !0xff == 0x100
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
