//! Prometheus metrics: the process-wide recorder, the `/metrics` listener,
//! and the sampler of each node's Raft state.
//!
//! Metrics are recorded through the `metrics` facade wherever things
//! happen (the API, the batcher, the log writer); without an installed
//! recorder those calls cost next to nothing and record nothing. [`install`]
//! installs the Prometheus recorder once per process; several nodes may
//! share a process (tests, embedded clusters), so every series carries a
//! `node` label with the node id. [`MetricsServer`] answers `GET /metrics`
//! over plain HTTP/1.1 with everything the process recorded.
//!
//! The series (names are stable; see ARCHITECTURE.md):
//! - `hyperraft_api_requests_total{node,rpc,code}`, `hyperraft_api_request_seconds{node,rpc}`
//! - `hyperraft_api_rejected_total{node,reason}`, `hyperraft_watches_active{node}`
//! - `hyperraft_batch_requests{node}`, `hyperraft_batch_items{node}`, `hyperraft_commit_apply_seconds{node}`
//! - `hyperraft_write_queue_depth{node}`
//! - `hyperraft_log_fsyncs_total{node,kind}`, `hyperraft_log_fsync_seconds{node}`
//! - `hyperraft_raft_append_seconds{node,peer}`: a leader's AppendEntries round
//!   trips that carry entries (the peer's append and sync included)
//! - `hyperraft_raft_term{node}`, `hyperraft_raft_last_log_index{node}`,
//!   `hyperraft_raft_applied_index{node}`, `hyperraft_raft_is_leader{node}`

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hyperraft_raft::NodeId;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use openraft::{BasicNode, RaftMetrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::Batcher;

/// How often each node's Raft state and queue depth are sampled, and how
/// often the recorder drains its histogram windows.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Scrapes served at once; one more connection is closed at once.
const CONNECTIONS_MAX: usize = 16;
/// Largest request head read; a longer one is answered 431.
const REQUEST_HEAD_BYTES_MAX: usize = 8192;
/// How long a scraper may take to send its request head.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Why metrics could not be served.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot install the Prometheus recorder: {0}")]
    Install(String),
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder for this process, once; later calls
/// answer the same handle. Fails if another recorder was installed first.
pub fn install() -> Result<PrometheusHandle, TelemetryError> {
    static INSTALLING: Mutex<()> = Mutex::new(());
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle =
        PrometheusBuilder::new().install_recorder().map_err(|error| TelemetryError::Install(error.to_string()))?;
    let upkeep = handle.clone();
    // Histograms keep a rolling window; upkeep drains it so memory stays bounded.
    std::thread::Builder::new()
        .name("hyperraft-metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(SAMPLE_INTERVAL);
            upkeep.run_upkeep();
        })
        .map_err(|error| TelemetryError::Install(error.to_string()))?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// The `node` label value of node `id`.
pub fn node_label(id: NodeId) -> String {
    id.to_string()
}

/// A running `/metrics` listener. Stop it with [`MetricsServer::shutdown`].
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Installs the recorder (if not yet) and serves `GET /metrics` on `addr`.
    pub async fn start(addr: SocketAddr) -> Result<MetricsServer, TelemetryError> {
        let handle = install()?;
        let listener = TcpListener::bind(addr).await.map_err(|source| TelemetryError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| TelemetryError::Bind { addr, source })?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept(listener, handle, stopped));
        Ok(MetricsServer { local_addr, stop, task })
    }

    /// The address it listens on (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops listening; scrapes in progress finish on their own.
    pub async fn shutdown(self) {
        // The task may have ended already; then there is nobody to tell.
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn accept(listener: TcpListener, handle: PrometheusHandle, mut stopped: oneshot::Receiver<()>) {
    let connections = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            // A failed accept (e.g. out of descriptors) must not end the listener.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(connections_max = CONNECTIONS_MAX, "metrics scrape refused: too many open");
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            // A scraper that goes away is not an error here.
            let _ = answer(stream, &handle).await;
            drop(permit);
        });
    }
}

/// Reads one request head and answers it; the connection closes after.
async fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let read = tokio::time::timeout(REQUEST_HEAD_TIMEOUT, read_head(&mut stream, &mut head)).await;
    let (status, body) = match read {
        Err(_) => return Ok(()),
        Ok(Err(error)) => return Err(error),
        Ok(Ok(false)) => ("431 Request Header Fields Too Large", String::new()),
        Ok(Ok(true)) => route(&head, handle),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads until the end of the head; false when it is over the bound.
async fn read_head(stream: &mut TcpStream, head: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        if head.len() >= REQUEST_HEAD_BYTES_MAX {
            return Ok(false);
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&chunk[..read]);
    }
    Ok(true)
}

fn route(head: &[u8], handle: &PrometheusHandle) -> (&'static str, String) {
    let line = head.split(|byte| *byte == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|byte| *byte == b' ');
    match (parts.next(), parts.next()) {
        (Some(b"GET"), Some(b"/metrics")) => ("200 OK", handle.render()),
        (Some(b"GET"), _) => ("404 Not Found", "only /metrics is served\n".to_string()),
        _ => ("405 Method Not Allowed", "only GET is served\n".to_string()),
    }
}

/// Samples node `id`'s Raft metrics and write queue every
/// [`SAMPLE_INTERVAL`] into gauges, until Raft shuts down.
pub(crate) fn start_sampler(
    id: NodeId,
    mut metrics: watch::Receiver<RaftMetrics<NodeId, BasicNode>>,
    batcher: Batcher,
) {
    let node = node_label(id);
    let term = metrics::gauge!("hyperraft_raft_term", "node" => node.clone());
    let last_log_index = metrics::gauge!("hyperraft_raft_last_log_index", "node" => node.clone());
    let applied_index = metrics::gauge!("hyperraft_raft_applied_index", "node" => node.clone());
    let is_leader = metrics::gauge!("hyperraft_raft_is_leader", "node" => node.clone());
    let queue_depth = metrics::gauge!("hyperraft_write_queue_depth", "node" => node);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            // Raft dropped its side: the node shut down.
            if metrics.has_changed().is_err() {
                return;
            }
            let sample = metrics.borrow_and_update().clone();
            term.set(sample.current_term as f64);
            last_log_index.set(sample.last_log_index.unwrap_or(0) as f64);
            applied_index.set(sample.last_applied.map_or(0, |log_id| log_id.index) as f64);
            is_leader.set(if sample.state.is_leader() { 1.0 } else { 0.0 });
            queue_depth.set(batcher.queue_depth() as f64);
        }
    });
}
