//! Test wrappers around [`EmbeddedCluster`]: a temporary folder, patient
//! timeouts, and panics with context instead of errors.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use hyperraft_node::{EmbeddedCluster, RaftTuning};
use hyperraft_raft::BatchResponse;

pub use hyperraft_node::embedded::free_loopback_addr;

pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Cluster {
    pub dir: tempfile::TempDir,
    inner: EmbeddedCluster,
}

pub fn fast_raft() -> RaftTuning {
    RaftTuning {
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        ..RaftTuning::default()
    }
}

impl Deref for Cluster {
    type Target = EmbeddedCluster;
    fn deref(&self) -> &EmbeddedCluster {
        &self.inner
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut EmbeddedCluster {
        &mut self.inner
    }
}

impl Cluster {
    /// Nodes `1..=count`, configured but not started.
    pub fn new(count: u64, raft: RaftTuning) -> Cluster {
        // `RUST_LOG=openraft=info cargo test …` shows what the nodes do.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("temporary folder");
        let inner = EmbeddedCluster::new(dir.path(), count, raft, 2).expect("cluster setup");
        Cluster { dir, inner }
    }

    pub async fn start_all(&mut self) {
        self.inner.start_all().await.expect("nodes start");
    }

    pub async fn start(&mut self, id: u64) {
        self.inner.start(id).await.expect("node starts");
    }

    pub async fn stop(&mut self, id: u64) {
        self.inner.stop(id).await.expect("clean shutdown");
    }

    pub async fn leader(&self) -> u64 {
        self.inner.leader(PATIENCE).await.expect("a leader")
    }

    pub async fn write(&self, frame: &[u8]) -> BatchResponse {
        self.inner.write(frame, PATIENCE).await.expect("write committed")
    }

    pub async fn converged(&self) -> u64 {
        self.inner.converged(PATIENCE).await.expect("nodes converge")
    }

    pub async fn shutdown(self) {
        self.inner.shutdown().await.expect("clean shutdown");
    }
}
