//! [`serve`]: the tonic server of one node's API on a TCP socket.

use std::net::SocketAddr;
use std::sync::Arc;

use hyperraft_node::Node;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::admission::Gated;
use crate::agents::{AgentService, Hub as AgentsHub};
use crate::api::Api;
use crate::auth::AuthLayer;
use crate::bus::service::BusService;
use crate::cluster::ClusterService;
use crate::connections::BoundedIncoming;
use crate::decisions::DecisionsService;
use crate::kv::KvService;
use crate::lease::LeaseService;
use crate::ledger::LedgerService;
use crate::proto::agents_server::AgentsServer;
use crate::proto::bus_server::BusServer;
use crate::proto::cluster_server::ClusterServer;
use crate::proto::decisions_server::DecisionsServer;
use crate::proto::kv_server::KvServer;
use crate::proto::lease_server::LeaseServer;
use crate::proto::ledger_server::LedgerServer;
use crate::{ApiConfig, ApiTls};

/// Why the API could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid API configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the API server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("the API server task panicked or was cancelled: {0}")]
    Task(String),
}

/// A running API server. Stop it with [`ApiServer::shutdown`] before
/// shutting its node down: it holds the node.
pub struct ApiServer {
    local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    /// Tells open streams (watches) to end, so that shutdown does not wait on them.
    streams_stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    /// The leader's lease expiry task; it ends with the streams.
    expiry: JoinHandle<()>,
    /// The leader's task dispatcher; it ends with the streams.
    dispatcher: JoinHandle<()>,
    /// Held to learn when every task that holds the node is gone.
    api: Arc<Api>,
}

/// How long shutdown waits for stream tasks (watches, keep-alives) that
/// were told to end to let go of the node.
const STREAMS_END_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl ApiServer {
    /// The address the server listens on (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, ends open watches (`UNAVAILABLE`),
    /// lets other calls in progress finish, and waits for the server to end.
    pub async fn shutdown(self) -> Result<(), ApiError> {
        // Watches may have ended already; then there is nobody to tell.
        self.streams_stop.send_replace(true);
        // The server may have ended already; then there is nobody to tell.
        let _ = self.stop.send(());
        self.task.await.map_err(|error| ApiError::Task(error.to_string()))??;
        self.expiry.await.map_err(|error| ApiError::Task(error.to_string()))?;
        self.dispatcher.await.map_err(|error| ApiError::Task(error.to_string()))?;
        // Stream tasks end at their next wake-up; the caller may then take
        // the node back (`Arc::try_unwrap`), so wait until they have.
        let deadline = tokio::time::Instant::now() + STREAMS_END_TIMEOUT;
        while Arc::strong_count(&self.api) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

/// A generated service with the settings every service shares: gzip and
/// zstd in both directions, and the message size bound.
macro_rules! configured {
    ($service:expr, $message_bytes_max:expr) => {
        $service
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .send_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size($message_bytes_max)
            .max_encoding_message_size($message_bytes_max)
    };
}

/// Binds `addr` and serves the Ledger, Kv and Cluster services of `node`
/// on it, in a task of the current tokio runtime.
pub async fn serve(node: Arc<Node>, addr: SocketAddr, config: ApiConfig) -> Result<ApiServer, ApiError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| ApiError::Bind { addr, source })?;
    serve_on(node, listener, config)
}

/// Like [`serve`], on a listener the caller bound (to learn its port
/// before the server starts, e.g. to fill [`ApiConfig::api_addresses`]).
pub fn serve_on(node: Arc<Node>, listener: TcpListener, config: ApiConfig) -> Result<ApiServer, ApiError> {
    config.validate().map_err(ApiError::Config)?;
    let local_addr = listener.local_addr().map_err(|source| ApiError::Bind { addr: local_addr_unknown(), source })?;
    // Small RPCs must not wait for Nagle's algorithm; TCP keepalive finds
    // peers that vanished without closing.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true)).with_keepalive(Some(config.keepalive_interval));
    let incoming = BoundedIncoming::new(incoming, config.connections_max, config.keepalive_timeout);
    let message_bytes_max = config.message_bytes_max;
    let mut server = Server::builder()
        .max_concurrent_streams(config.streams_per_connection_max)
        .http2_keepalive_interval(Some(config.keepalive_interval))
        .http2_keepalive_timeout(Some(config.keepalive_timeout))
        .timeout(config.request_timeout);
    if let Some(tls) = &config.tls {
        server =
            server.tls_config(tls_config(tls, &config)).map_err(|error| ApiError::Config(format!("tls: {error}")))?;
    }
    let node_label = hyperraft_node::telemetry::node_label(node.id());
    // In front of every service and of admission control: see `crate::auth`.
    let mut server = server.layer(AuthLayer::new(&config.tokens, node_label.clone()));
    let retry_after = config.retry_after;
    let (streams_stop, streams_stopped) = watch::channel(false);
    let api = Arc::new(Api::new(node, config, streams_stopped));
    let admission = api.admission.clone();
    let ledger = configured!(LedgerServer::new(LedgerService { api: api.clone() }), message_bytes_max);
    let kv = configured!(KvServer::new(KvService { api: api.clone() }), message_bytes_max);
    // Ends with the other streams, at shutdown.
    let expiry = crate::lease::expire_leases(api.clone(), api.node.election_timeout_max());
    let lease = configured!(LeaseServer::new(LeaseService { api: api.clone() }), message_bytes_max);
    let hub = Arc::new(AgentsHub::new(api.clone()));
    let dispatcher = crate::agents::start_dispatcher(hub.clone());
    let agents = configured!(AgentsServer::new(AgentService { hub }), message_bytes_max);
    let cluster = configured!(ClusterServer::new(ClusterService { api: api.clone() }), message_bytes_max);
    let decisions = configured!(DecisionsServer::new(DecisionsService { api: api.clone() }), message_bytes_max);
    let bus = configured!(BusServer::new(BusService { api: api.clone() }), message_bytes_max);
    let (stop, stopped) = oneshot::channel::<()>();
    let router = server
        .add_service(Gated::new(ledger, admission.clone(), retry_after, node_label.clone()))
        .add_service(Gated::new(kv, admission.clone(), retry_after, node_label.clone()))
        .add_service(Gated::new(lease, admission.clone(), retry_after, node_label.clone()))
        .add_service(Gated::new(agents, admission.clone(), retry_after, node_label.clone()))
        .add_service(Gated::new(cluster, admission.clone(), retry_after, node_label.clone()))
        .add_service(Gated::new(decisions, admission.clone(), retry_after, node_label.clone()))
        .add_service(Gated::new(bus, admission, retry_after, node_label));
    let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
        // A dropped sender stops the server too.
        let _ = stopped.await;
    }));
    Ok(ApiServer { local_addr, stop, streams_stop, task, expiry, dispatcher, api })
}

/// rustls with the configured identity; a client that has not finished its
/// handshake within the keepalive timeout is dropped, so half-open
/// handshakes cannot pile up.
fn tls_config(tls: &ApiTls, config: &ApiConfig) -> ServerTlsConfig {
    ServerTlsConfig::new()
        .identity(Identity::from_pem(&tls.certificate_pem, &tls.key_pem))
        .timeout(config.keepalive_timeout)
}

fn local_addr_unknown() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}
