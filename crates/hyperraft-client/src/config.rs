//! [`ClientConfig`]: where the cluster is and every bound and timing of the
//! client, checked once by [`ClientConfig::validate`].

use std::time::Duration;

use crate::Error;

/// Most endpoints a client keeps: the configured ones plus the API
/// addresses it learns from leader hints and `Status` answers.
pub const ENDPOINTS_MAX: usize = 64;

/// Longest token the client sends (the server refuses longer ones).
pub const TOKEN_BYTES_MAX: usize = 512;

/// How the client reaches a cluster. Start from [`ClientConfig::new`] (or
/// `default()` plus `endpoints`) and change what you need; the client
/// checks the whole with [`ClientConfig::validate`] when it connects.
#[derive(Clone)]
pub struct ClientConfig {
    /// gRPC API addresses of some or all nodes, `"host:port"` or
    /// `"http://host:port"`. One reachable node is enough: the others are
    /// learned from its `Status`.
    pub endpoints: Vec<String>,
    /// Longest a TCP + HTTP/2 connection attempt may take.
    pub connect_timeout: Duration,
    /// Longest one attempt of a call may take (sent as the gRPC deadline).
    /// A write whose attempt times out may still commit: see
    /// [`Error::OutcomeUnknown`].
    pub request_timeout: Duration,
    /// Channels per endpoint.
    pub pool: PoolConfig,
    /// The window of [`crate::Client::create_transfer`].
    pub batching: BatchingConfig,
    /// Attempts and backoff of retried calls.
    pub retry: RetryConfig,
    /// Compression of requests, and of responses (the client asks the
    /// server for the same encoding). `None`, the default, compresses
    /// nothing: worth it only for large batches over slow links.
    pub compression: Option<Compression>,
    /// The bearer token sent with every call (`authorization: Bearer
    /// <token>`), health checks and watches included. Needed when the
    /// nodes have tokens configured; its role decides which calls succeed.
    pub token: Option<String>,
    /// TLS to the nodes' API. None: plaintext HTTP/2.
    pub tls: Option<ClientTls>,
}

/// How the client checks the nodes' API certificates.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// The certificate authority (PEM) the nodes' certificates chain to;
    /// for certificates made by `hyperraft cert`, the cluster's `ca.pem`.
    pub ca_pem: String,
    /// The name the certificates must carry. None: the host of each
    /// endpoint's address (an IP address works when the certificate names
    /// it). Nodes' own certificates also carry `node-{id}.hyperraft`.
    pub domain: Option<String>,
}

impl std::fmt::Debug for ClientConfig {
    // The token stays out of logs.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ClientConfig")
            .field("endpoints", &self.endpoints)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("pool", &self.pool)
            .field("batching", &self.batching)
            .field("retry", &self.retry)
            .field("compression", &self.compression)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .finish()
    }
}

/// Connection pool bounds: HTTP/2 multiplexes many calls on one channel,
/// so a few channels per endpoint carry a lot of load; more are opened
/// only when every open one is busy.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Channels kept per endpoint even when idle (at least 1).
    pub channels_min: usize,
    /// Most channels per endpoint.
    pub channels_max: usize,
    /// A new channel is opened (up to `channels_max`) when every open one
    /// carries at least this many calls.
    pub calls_per_channel_target: usize,
    /// How often every endpoint is asked for its `Status`: marks endpoints
    /// up or down, learns the leader and the other nodes' addresses.
    pub health_check_interval: Duration,
    /// A channel above `channels_min` unused this long is closed.
    pub idle_timeout: Duration,
}

/// The auto-batching window of [`crate::Client::create_transfer`]: a batch
/// is sent when it holds `max_items` transfers or `max_delay` after its
/// first one arrived, whichever comes first.
#[derive(Clone, Debug)]
pub struct BatchingConfig {
    /// Most transfers per batch (1..=65,536, the wire frame's bound).
    pub max_items: usize,
    /// Longest a transfer waits for its batch to fill.
    pub max_delay: Duration,
    /// Transfers waiting for a batch. A caller beyond it waits for room
    /// (backpressure); it is never refused and never buffered unboundedly.
    pub queue_max: usize,
    /// Batches sent at once; the next batch waits for one to finish.
    pub batches_in_flight_max: usize,
}

/// Which calls are retried is fixed by their safety (see the crate docs);
/// how often and how patiently is set here.
#[derive(Clone, Debug)]
pub struct RetryConfig {
    /// Attempts per call, the first included (at least 1).
    pub attempts: u32,
    /// Wait before the first retry; doubled each retry, with jitter.
    pub backoff_initial: Duration,
    /// Longest wait between two attempts.
    pub backoff_max: Duration,
}

/// Request compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            endpoints: Vec::new(),
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            pool: PoolConfig::default(),
            batching: BatchingConfig::default(),
            retry: RetryConfig::default(),
            compression: None,
            token: None,
            tls: None,
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            channels_min: 1,
            channels_max: 4,
            calls_per_channel_target: 64,
            health_check_interval: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Default for BatchingConfig {
    fn default() -> Self {
        BatchingConfig {
            max_items: 8192,
            max_delay: Duration::from_millis(1),
            queue_max: 65_536,
            batches_in_flight_max: 4,
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        // Patient enough to wait out an election (a few hundred milliseconds
        // to a few seconds) before giving up.
        RetryConfig { attempts: 12, backoff_initial: Duration::from_millis(20), backoff_max: Duration::from_secs(1) }
    }
}

impl ClientConfig {
    /// The defaults, with `endpoints`.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> ClientConfig {
        ClientConfig { endpoints: endpoints.into_iter().map(Into::into).collect(), ..ClientConfig::default() }
    }

    /// Checks every bound; the error names the field.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |field: &str, message: &str| Err(Error::InvalidConfig(format!("{field}: {message}")));
        if self.endpoints.is_empty() {
            return invalid("endpoints", "empty; give at least one node's API address");
        }
        if self.endpoints.len() > ENDPOINTS_MAX {
            return invalid("endpoints", &format!("more than {ENDPOINTS_MAX}"));
        }
        let tls = self.tls.is_some();
        if let Some(bad) = self.endpoints.iter().find(|endpoint| crate::pool::endpoint_uri(endpoint, tls).is_err()) {
            return invalid("endpoints", &format!("{bad:?} is not host:port, http://host:port or https://host:port"));
        }
        if let Some(token) = &self.token {
            if token.is_empty() || token.len() > TOKEN_BYTES_MAX || !token.bytes().all(|byte| byte.is_ascii_graphic()) {
                return invalid("token", &format!("must be 1..={TOKEN_BYTES_MAX} printable ASCII characters"));
            }
        }
        if let Some(tls) = &self.tls {
            if !tls.ca_pem.contains("-----BEGIN CERTIFICATE-----") {
                return invalid("tls.ca_pem", "holds no PEM certificate");
            }
            if tls.domain.as_ref().is_some_and(|domain| domain.is_empty()) {
                return invalid("tls.domain", "empty; leave it None to use each endpoint's host");
            }
        }
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return invalid("connect_timeout/request_timeout", "must not be zero");
        }
        let pool = &self.pool;
        if pool.channels_min == 0 || pool.channels_max < pool.channels_min {
            return invalid("pool.channels_min/channels_max", "need 1 <= channels_min <= channels_max");
        }
        if pool.calls_per_channel_target == 0 {
            return invalid("pool.calls_per_channel_target", "must be at least 1");
        }
        if pool.health_check_interval.is_zero() || pool.idle_timeout.is_zero() {
            return invalid("pool.health_check_interval/idle_timeout", "must not be zero");
        }
        let batching = &self.batching;
        let items_max = hyperraft_wire::Limits::default().count_max as usize;
        if batching.max_items == 0 || batching.max_items > items_max {
            return invalid("batching.max_items", &format!("must be 1..={items_max}"));
        }
        if batching.queue_max == 0 || batching.batches_in_flight_max == 0 {
            return invalid("batching.queue_max/batches_in_flight_max", "must be at least 1");
        }
        if self.retry.attempts == 0 {
            return invalid("retry.attempts", "must be at least 1 (the first attempt counts)");
        }
        if self.retry.backoff_max < self.retry.backoff_initial {
            return invalid("retry.backoff_max", "below backoff_initial");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
