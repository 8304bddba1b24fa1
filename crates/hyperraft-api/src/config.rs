//! [`ApiConfig`]: the bounds and timings of one node's gRPC API.

use std::collections::BTreeMap;
use std::time::Duration;

use hyperraft_node::AgentsConfig;
use hyperraft_raft::NodeId;

use crate::auth::ApiToken;
use crate::bus::BusConfig;
use crate::decisions::DecisionPolicy;

/// Bounds and timings of the gRPC API. Every queue and message has a limit;
/// what happens at each limit is documented on its field.
///
/// Memory for requests is bounded by `requests_in_flight_max ×
/// message_bytes_max` for decoded messages (a call beyond the request bound
/// is refused before its body is read), plus what HTTP/2 flow control lets
/// clients send ahead: at most `connections_max × streams_per_connection_max`
/// streams, each within its flow-control window.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Requests being served at once, over all connections. One more is
    /// refused with `RESOURCE_EXHAUSTED` before its body is read (never
    /// queued), so a flood costs the node no memory beyond this bound. 0
    /// refuses everything (useful only to test the refusal).
    pub requests_in_flight_max: usize,
    /// Encoded request bytes being served at once, over all connections;
    /// beyond it requests are refused like above. At least `message_bytes_max`.
    pub request_bytes_in_flight_max: u32,
    /// Largest request or response message, encoded. A larger one is
    /// refused by tonic (`OUT_OF_RANGE` / `RESOURCE_EXHAUSTED`). The default
    /// fits the largest wire frame (8 MiB) plus protobuf framing.
    pub message_bytes_max: usize,
    /// Open client connections. One more is closed as soon as it is
    /// accepted, so the client reconnects later or elsewhere.
    pub connections_max: usize,
    /// Concurrent HTTP/2 streams (calls) one connection may open.
    pub streams_per_connection_max: u32,
    /// How long a client should wait before retrying a refused request;
    /// sent as `hyperraft-retry-after-ms` with every `RESOURCE_EXHAUSTED`.
    pub retry_after: Duration,
    /// HTTP/2 PING interval on idle connections, and how long a PING may
    /// go unanswered before the connection is closed. A new connection
    /// must also send the HTTP/2 preface (or start its TLS handshake)
    /// within `keepalive_timeout`, or it is closed.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// Longest a call may run when the client sets no shorter deadline
    /// (`grpc-timeout`); then it ends with `CANCELLED`. A write that
    /// reached the batcher may still commit.
    pub request_timeout: Duration,
    /// The gRPC address of each node's API, by node id, for leader hints
    /// and `Status`. Nodes know each other's peer (QUIC) addresses only, so
    /// a node whose map lacks the leader hints its id alone.
    pub api_addresses: BTreeMap<NodeId, String>,
    /// Open `Kv.Watch` streams at once. One more is refused with
    /// `RESOURCE_EXHAUSTED` and a retry hint. A watch holds no request
    /// permit (those are given back once its stream starts), only this one.
    pub watches_max: usize,
    /// Events in one watch response. A response ends at a revision
    /// boundary; a single revision with more events is sent alone.
    pub watch_events_per_response_max: usize,
    /// Encoded event bytes in one watch response, with the same rule. A
    /// single revision over `message_bytes_max` ends its watch with the
    /// error tonic gives for an oversized message.
    pub watch_response_bytes_max: usize,
    /// Responses queued per watch for a client that reads slowly; when
    /// full, the watch waits for the client (backpressure), it never
    /// buffers more.
    pub watch_responses_buffered: usize,
    /// The tokens this node accepts (see [`crate::auth`]). Empty: the API
    /// is open to anyone who reaches it. Otherwise every call needs
    /// `authorization: Bearer <token>` with one of them, whose role covers
    /// the method.
    pub tokens: Vec<ApiToken>,
    /// The server certificate and key: the API speaks TLS (HTTP/2 over
    /// TLS 1.2/1.3, rustls). None: plaintext HTTP/2.
    pub tls: Option<ApiTls>,
    /// How proposals get their criticality, threshold and deadline.
    pub decisions: DecisionPolicy,
    /// The bounds and defaults of this node's message bus (see [`crate::bus`]).
    pub bus: BusConfig,
    /// Agent sessions and task dispatch (the node configuration's `[agents]`).
    pub agents: AgentsConfig,
}

/// The API's TLS identity, in PEM: the certificate chain (leaf first) and
/// its private key (PKCS#8, SEC1 or PKCS#1).
#[derive(Clone)]
pub struct ApiTls {
    pub certificate_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ApiTls {
    // The key stays out of logs.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ApiTls").field("certificate_pem", &self.certificate_pem).finish_non_exhaustive()
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            requests_in_flight_max: 4096,
            request_bytes_in_flight_max: 256 << 20,
            message_bytes_max: (8 << 20) + (1 << 20),
            connections_max: 1024,
            streams_per_connection_max: 128,
            retry_after: Duration::from_millis(50),
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(30),
            api_addresses: BTreeMap::new(),
            watches_max: 4096,
            watch_events_per_response_max: 1024,
            watch_response_bytes_max: 1 << 20,
            watch_responses_buffered: 4,
            tokens: Vec::new(),
            tls: None,
            decisions: DecisionPolicy::default(),
            bus: BusConfig::default(),
            agents: AgentsConfig::default(),
        }
    }
}

impl ApiConfig {
    /// Checks the bounds against each other.
    pub fn validate(&self) -> Result<(), String> {
        if (self.request_bytes_in_flight_max as usize) < self.message_bytes_max {
            return Err(format!(
                "request_bytes_in_flight_max ({}) is below message_bytes_max ({}): the largest request could never be admitted",
                self.request_bytes_in_flight_max, self.message_bytes_max
            ));
        }
        if self.streams_per_connection_max == 0 || self.connections_max == 0 {
            return Err("streams_per_connection_max and connections_max must be at least 1".to_string());
        }
        if self.keepalive_interval.is_zero() || self.keepalive_timeout.is_zero() || self.request_timeout.is_zero() {
            return Err("keepalive_interval, keepalive_timeout and request_timeout must not be zero".to_string());
        }
        if self.watch_events_per_response_max == 0
            || self.watch_response_bytes_max == 0
            || self.watch_responses_buffered == 0
        {
            return Err(
                "watch_events_per_response_max, watch_response_bytes_max and watch_responses_buffered must not be zero"
                    .to_string(),
            );
        }
        self.decisions.validate()?;
        self.bus.validate()?;
        self.agents.validate()?;
        self.validate_security()
    }

    /// Token names and digests are unique (one secret, one role); a TLS
    /// identity has both parts.
    fn validate_security(&self) -> Result<(), String> {
        for (index, token) in self.tokens.iter().enumerate() {
            let earlier = &self.tokens[..index];
            if earlier.iter().any(|other| other.name() == token.name()) {
                return Err(format!("tokens: the name {:?} is used twice", token.name()));
            }
            if earlier.iter().any(|other| other.sha256_hex() == token.sha256_hex()) {
                return Err(format!("tokens: {:?} has the same secret as another token", token.name()));
            }
        }
        if let Some(tls) = &self.tls {
            if tls.certificate_pem.trim().is_empty() || tls.key_pem.trim().is_empty() {
                return Err("tls: the certificate and the key must not be empty".to_string());
            }
        }
        Ok(())
    }
}
