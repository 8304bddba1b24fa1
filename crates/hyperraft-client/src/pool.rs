//! [`Pool`]: the client's endpoints, the tonic channels open to each, and
//! what the client believes about the cluster (which endpoint leads,
//! which are down).
//!
//! Each endpoint keeps between `channels_min` and `channels_max` channels.
//! HTTP/2 multiplexes calls on a channel, so a call goes to the channel
//! carrying the fewest calls, and a new channel opens only when every open
//! one carries `calls_per_channel_target` calls. A background task asks
//! every endpoint for its `Status` each `health_check_interval`: it marks
//! endpoints up or down, learns the leader and the API addresses of nodes
//! the configuration did not name, and closes channels above the minimum
//! that stayed idle for `idle_timeout`.
//!
//! Every channel carries the configured token ([`Credentials`]) and, with
//! [`crate::ClientTls`], speaks TLS trusting the configured CA.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use hyperraft_proto::cluster_client::ClusterClient;
use hyperraft_proto::{StatusRequest, StatusResponse};
use tokio::task::JoinHandle;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint as ChannelTarget};

use crate::config::{ClientConfig, ENDPOINTS_MAX};
use crate::error::{client_side, describe_chain};
use crate::Error;

/// A channel of the pool: a tonic channel that adds the token to every call.
pub(crate) type Channel = InterceptedService<tonic::transport::Channel, Credentials>;

/// Puts `authorization: Bearer <token>` on every request (nothing when no
/// token is configured). The header value is built once.
#[derive(Clone, Debug)]
pub(crate) struct Credentials {
    authorization: Option<AsciiMetadataValue>,
}

impl Credentials {
    fn new(token: Option<&str>) -> Result<Credentials, String> {
        let authorization = match token {
            Some(token) => {
                let mut value: AsciiMetadataValue = format!("Bearer {token}")
                    .parse()
                    .map_err(|_| "token: not a valid header value (printable ASCII only)".to_string())?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Credentials { authorization })
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(authorization) = &self.authorization {
            request.metadata_mut().insert("authorization", authorization.clone());
        }
        Ok(request)
    }
}

/// HTTP/2 PINGs find a dead connection without waiting for a call to fail.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which node a call must reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Writes and linearizable reads.
    Leader,
    /// Status, watches, serializable reads.
    Any,
}

/// One node's API address and its channels.
pub(crate) struct Endpoint {
    /// `host:port`, as leader hints name it.
    pub(crate) address: String,
    target: ChannelTarget,
    credentials: Credentials,
    /// The node id behind the address, 0 until a `Status` names it.
    node_id: AtomicU64,
    up: AtomicBool,
    channels: Mutex<Vec<Pooled>>,
}

struct Pooled {
    channel: Channel,
    calls: Arc<AtomicUsize>,
    last_used: Arc<Mutex<Instant>>,
}

/// A channel checked out for one call; the call count drops with it.
pub(crate) struct Checkout {
    pub(crate) channel: Channel,
    pub(crate) endpoint: Arc<Endpoint>,
    calls: Arc<AtomicUsize>,
    last_used: Arc<Mutex<Instant>>,
}

impl Drop for Checkout {
    fn drop(&mut self) {
        self.calls.fetch_sub(1, Ordering::Relaxed);
        *self.last_used.lock().expect("not poisoned") = Instant::now();
    }
}

/// The channel target of `endpoint` ("host:port", "http://host:port" or
/// "https://host:port"); its scheme follows `tls`, whatever the address says.
pub(crate) fn endpoint_uri(endpoint: &str, tls: bool) -> Result<(String, ChannelTarget), String> {
    let address = endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://")).unwrap_or(endpoint);
    let address = address.trim_end_matches('/');
    if address.is_empty() || address.contains('/') || !address.contains(':') {
        return Err(format!("{endpoint:?} is not host:port"));
    }
    let scheme = if tls { "https" } else { "http" };
    let target = ChannelTarget::from_shared(format!("{scheme}://{address}")).map_err(|error| error.to_string())?;
    Ok((address.to_string(), target))
}

pub(crate) struct Pool {
    config: ClientConfig,
    endpoints: RwLock<Vec<Arc<Endpoint>>>,
    /// Index + 1 into `endpoints` of the believed leader; 0 when unknown.
    leader: AtomicUsize,
    /// Round-robin position for calls that may go anywhere.
    next: AtomicUsize,
}

impl Pool {
    pub(crate) fn new(config: ClientConfig) -> Result<Pool, Error> {
        let pool =
            Pool { endpoints: RwLock::new(Vec::new()), leader: AtomicUsize::new(0), next: AtomicUsize::new(0), config };
        for endpoint in &pool.config.endpoints {
            pool.add(endpoint).map_err(Error::InvalidConfig)?;
        }
        Ok(pool)
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The endpoint at `address`, added when new (up to [`ENDPOINTS_MAX`]).
    fn add(&self, address: &str) -> Result<Arc<Endpoint>, String> {
        let (address, target) = endpoint_uri(address, self.config.tls.is_some())?;
        let mut endpoints = self.endpoints.write().expect("not poisoned");
        if let Some(known) = endpoints.iter().find(|endpoint| endpoint.address == address) {
            return Ok(known.clone());
        }
        if endpoints.len() >= ENDPOINTS_MAX {
            return Err(format!("more than {ENDPOINTS_MAX} endpoints"));
        }
        let target = target
            .connect_timeout(self.config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let target = match &self.config.tls {
            Some(tls) => {
                let mut settings = ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                    .timeout(self.config.connect_timeout);
                if let Some(domain) = &tls.domain {
                    settings = settings.domain_name(domain.clone());
                }
                target.tls_config(settings).map_err(|error| format!("tls: {}", describe_error(&error)))?
            }
            None => target,
        };
        let credentials = Credentials::new(self.config.token.as_deref())?;
        let endpoint = Arc::new(Endpoint {
            address,
            target,
            credentials,
            node_id: AtomicU64::new(0),
            // Believed up until a call or a health check says otherwise.
            up: AtomicBool::new(true),
            channels: Mutex::new(Vec::new()),
        });
        endpoints.push(endpoint.clone());
        Ok(endpoint)
    }

    pub(crate) fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        self.endpoints.read().expect("not poisoned").clone()
    }

    fn position(&self, endpoint: &Arc<Endpoint>) -> Option<usize> {
        self.endpoints.read().expect("not poisoned").iter().position(|known| Arc::ptr_eq(known, endpoint))
    }

    /// The endpoint believed to lead, if any.
    pub(crate) fn leader(&self) -> Option<Arc<Endpoint>> {
        let index = self.leader.load(Ordering::Relaxed).checked_sub(1)?;
        self.endpoints.read().expect("not poisoned").get(index).cloned()
    }

    /// The endpoint for the next attempt of a call to `target`, other than
    /// `avoid` (the endpoint that just failed) when there is a choice.
    pub(crate) fn pick(&self, target: Target, avoid: Option<&Arc<Endpoint>>) -> Arc<Endpoint> {
        let avoided = |endpoint: &Arc<Endpoint>| avoid.is_some_and(|avoid| Arc::ptr_eq(avoid, endpoint));
        if target == Target::Leader {
            if let Some(leader) = self.leader().filter(|leader| !avoided(leader)) {
                return leader;
            }
        }
        let endpoints = self.endpoints();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let candidates = (0..endpoints.len()).map(|offset| &endpoints[(start + offset) % endpoints.len()]);
        let mut fallback = None;
        for endpoint in candidates {
            if avoided(endpoint) {
                continue;
            }
            if endpoint.up.load(Ordering::Relaxed) {
                return endpoint.clone();
            }
            fallback.get_or_insert(endpoint);
        }
        // Every other endpoint is down (or there is no other): try one anyway.
        fallback.cloned().unwrap_or_else(|| endpoints[start % endpoints.len()].clone())
    }

    /// A channel of `endpoint` for one call: the least busy one, or a new
    /// one when all are busy and the bound allows.
    pub(crate) fn checkout(&self, endpoint: &Arc<Endpoint>) -> Checkout {
        let pool = &self.config.pool;
        let mut channels = endpoint.channels.lock().expect("not poisoned");
        let least_busy = channels.iter().min_by_key(|pooled| pooled.calls.load(Ordering::Relaxed));
        let busy =
            least_busy.is_none_or(|pooled| pooled.calls.load(Ordering::Relaxed) >= pool.calls_per_channel_target);
        if channels.len() < pool.channels_min || (busy && channels.len() < pool.channels_max) {
            channels.push(Pooled {
                channel: InterceptedService::new(endpoint.target.connect_lazy(), endpoint.credentials.clone()),
                calls: Arc::new(AtomicUsize::new(0)),
                last_used: Arc::new(Mutex::new(Instant::now())),
            });
        }
        let pooled =
            channels.iter().min_by_key(|pooled| pooled.calls.load(Ordering::Relaxed)).expect("at least one channel");
        pooled.calls.fetch_add(1, Ordering::Relaxed);
        Checkout {
            channel: pooled.channel.clone(),
            endpoint: endpoint.clone(),
            calls: pooled.calls.clone(),
            last_used: pooled.last_used.clone(),
        }
    }

    /// Channels open to `endpoint` (for tests and diagnostics).
    pub(crate) fn channel_count(endpoint: &Endpoint) -> usize {
        endpoint.channels.lock().expect("not poisoned").len()
    }

    /// Follows a leader hint: node `id`, at `address` when the hint has one.
    pub(crate) fn learn_leader(&self, id: u64, address: Option<&str>) {
        let endpoint = match address {
            Some(address) => self.add(address).ok(),
            None => self.endpoints().into_iter().find(|endpoint| endpoint.node_id.load(Ordering::Relaxed) == id),
        };
        if let Some(endpoint) = endpoint {
            endpoint.node_id.store(id, Ordering::Relaxed);
            self.set_leader(&endpoint);
        }
    }

    fn set_leader(&self, endpoint: &Arc<Endpoint>) {
        if let Some(position) = self.position(endpoint) {
            self.leader.store(position + 1, Ordering::Relaxed);
        }
    }

    /// After `endpoint` failed a call: it is not (or no longer) the leader
    /// as far as the client knows, and when `down`, it is unreachable.
    pub(crate) fn failed(&self, endpoint: &Arc<Endpoint>, down: bool) {
        if let Some(position) = self.position(endpoint) {
            let _ = self.leader.compare_exchange(position + 1, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
        if down {
            endpoint.up.store(false, Ordering::Relaxed);
        }
    }

    /// After `endpoint` answered a call.
    pub(crate) fn answered(&self, endpoint: &Arc<Endpoint>) {
        endpoint.up.store(true, Ordering::Relaxed);
    }

    /// Asks `endpoint` for its status (one attempt).
    pub(crate) async fn status_of(&self, endpoint: &Arc<Endpoint>) -> Result<StatusResponse, tonic::Status> {
        let checkout = self.checkout(endpoint);
        let mut request = tonic::Request::new(StatusRequest {});
        request.set_timeout(self.config.request_timeout);
        let result = ClusterClient::new(checkout.channel.clone()).status(request).await;
        let status = result.map(tonic::Response::into_inner);
        match &status {
            Ok(status) => self.learn(endpoint, status),
            // A node that answers, even with a refusal (overloaded), is up.
            Err(refused) if !client_side(refused) => self.answered(endpoint),
            Err(_) => self.failed(endpoint, true),
        }
        status
    }

    /// The first health round of a new client: `Ok` when some endpoint
    /// answered, otherwise an error that says why — a refused token, or
    /// the connection failure (a refused TLS certificate included).
    pub(crate) async fn first_round(self: &Arc<Self>) -> Result<(), Error> {
        let mut checks = tokio::task::JoinSet::new();
        for endpoint in self.endpoints() {
            let pool = self.clone();
            checks.spawn(async move { (endpoint.address.clone(), pool.status_of(&endpoint).await) });
        }
        let (mut answered, mut failures, mut refused) = (0, Vec::new(), None);
        while let Some(check) = checks.join_next().await {
            let Ok((address, result)) = check else { continue };
            match result {
                Ok(_) => answered += 1,
                Err(status) if !client_side(&status) => {
                    let error = Error::from_status(&status);
                    if matches!(error, Error::Unauthenticated(_) | Error::PermissionDenied(_)) {
                        refused = Some(error);
                    } else {
                        answered += 1;
                    }
                }
                Err(status) => {
                    failures.push(format!("{address}: {}{}", describe_chain(&status), self.tls_hint(&status)))
                }
            }
        }
        if answered > 0 {
            return Ok(());
        }
        if let Some(refused) = refused {
            return Err(refused);
        }
        Err(Error::Unavailable(format!("no endpoint answered: {}", failures.join("; "))))
    }

    /// A hint for a plaintext client whose connection the node closed at
    /// once: what a node whose API speaks TLS does to plaintext.
    fn tls_hint(&self, status: &tonic::Status) -> &'static str {
        let text = describe_chain(status);
        let closed = ["broken pipe", "connection reset", "closed", "frame with invalid size"]
            .iter()
            .any(|sign| text.contains(sign));
        if self.config.tls.is_none() && closed {
            " (if the node's API speaks TLS, set ClientConfig::tls)"
        } else {
            ""
        }
    }

    /// What a `Status` answer of `endpoint` teaches.
    fn learn(&self, endpoint: &Arc<Endpoint>, status: &StatusResponse) {
        self.answered(endpoint);
        endpoint.node_id.store(status.node_id, Ordering::Relaxed);
        for member in status.voters.iter().chain(&status.learners) {
            if !member.api_address.is_empty() {
                if let Ok(known) = self.add(&member.api_address) {
                    known.node_id.store(member.id, Ordering::Relaxed);
                }
            }
        }
        if status.is_leader {
            self.set_leader(endpoint);
        } else if let Some(leader) = status.leader_id {
            let address = status.voters.iter().find(|member| member.id == leader).map(|member| &member.api_address);
            self.learn_leader(leader, address.filter(|address| !address.is_empty()).map(String::as_str));
        }
    }

    /// One round of health checks over every endpoint, at once; then closes
    /// idle channels. Returns how many endpoints answered (a refusal, such
    /// as `RESOURCE_EXHAUSTED`, is an answer: the node is up).
    pub(crate) async fn health_round(self: &Arc<Self>) -> usize {
        let mut checks = tokio::task::JoinSet::new();
        for endpoint in self.endpoints() {
            let pool = self.clone();
            checks.spawn(
                async move { pool.status_of(&endpoint).await.map_or_else(|error| !client_side(&error), |_| true) },
            );
        }
        let mut answered = 0;
        while let Some(check) = checks.join_next().await {
            answered += usize::from(check.unwrap_or(false));
        }
        self.close_idle();
        answered
    }

    fn close_idle(&self) {
        let (channels_min, idle_timeout) = (self.config.pool.channels_min, self.config.pool.idle_timeout);
        for endpoint in self.endpoints() {
            let mut channels = endpoint.channels.lock().expect("not poisoned");
            let mut index = channels.len();
            while index > 0 && channels.len() > channels_min {
                index -= 1;
                let pooled = &channels[index];
                let idle = pooled.calls.load(Ordering::Relaxed) == 0
                    && pooled.last_used.lock().expect("not poisoned").elapsed() >= idle_timeout;
                if idle {
                    channels.swap_remove(index);
                }
            }
        }
    }
}

fn describe_error(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Runs health checks every `health_check_interval` until the pool is dropped.
pub(crate) fn spawn_health_checks(pool: &Arc<Pool>) -> JoinHandle<()> {
    let weak: Weak<Pool> = Arc::downgrade(pool);
    let interval = pool.config.pool.health_check_interval;
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(pool) = weak.upgrade() else { return };
            pool.health_round().await;
        }
    })
}
