//! Node configuration: a TOML file, validated into [`NodeConfig`].
//!
//! ```toml
//! node_id = 1
//! peer_listen = "127.0.0.1:7001"      # QUIC between nodes
//! client_listen = "127.0.0.1:7101"    # the gRPC API
//! metrics_listen = "127.0.0.1:9101"   # optional; Prometheus scrapes, GET /metrics
//! data_dir = "/var/lib/hyperraft/1"   # top-level keys go before the first [table]
//!
//! [client_addresses]                  # other nodes' gRPC addresses, for leader hints
//! 2 = "127.0.0.1:7102"
//! 3 = "127.0.0.1:7103"
//!
//! [tls]
//! ca_cert = "certs/ca.pem"
//! node_cert = "certs/node-1.pem"
//! node_key = "certs/node-1.key"
//!
//! [initial_members]                   # bootstraps a new cluster; ignored once initialized
//! 1 = "127.0.0.1:7001"
//! 2 = "127.0.0.1:7002"
//! 3 = "127.0.0.1:7003"
//!
//! [api.tls]                          # optional; the gRPC API speaks TLS
//! cert = "certs/node-1.pem"            # e.g. `hyperraft cert issue --node-id 1 --host api1.example.com`
//! key = "certs/node-1.key"
//!
//! [[api.tokens]]                      # optional; none: the API is open to anyone
//! name = "agent-7"
//! role = "write"                      # read | write | admin
//! sha256 = "…"                        # `hyperraft token hash` or `hyperraft token new`
//!
//! [agents]                            # optional; these are the defaults
//! sessions_max = 10000                  # agent sessions on this node
//! session_queue_max = 256               # messages queued to one agent; full: it is disconnected.
//!                                       # An agent runs at most a quarter of it at once (64 here)
//! default_ttl_ms = 10000                # an agent's lease when it asks for none
//! run_timeout_ms = 60000                # a copy without a result this long is released
//! reassign_backoff_ms = 100             # first pause before a released task runs again (doubles)
//! dispatch_interval_ms = 100            # longest pause between dispatch rounds
//! assignments_per_round_max = 1024      # copies assigned in one Raft entry
//! policy = "round-robin"                # round-robin | least-loaded
//!
//! [[agents.pools]]                    # optional; local agent processes (see `pools`)
//! agent_type = "summarize"
//! command = "/usr/local/bin/summarize-agent"
//! args = ["--model", "small"]
//! min = 2                             # kept warm
//! max = 16
//! wave_size = 4                       # scale-up step, wave_pause_ms apart
//!
//! [raft]                              # optional; these are the defaults
//! heartbeat_interval_ms = 200           # also openraft's AppendEntries timeout
//! election_timeout_min_ms = 1000
//! election_timeout_max_ms = 2000
//! snapshot_after_entries = 20000
//! snapshot_after_log_bytes = 1073741824 # 1 GiB, and no less than the snapshot; whichever bound is reached first
//! entries_kept_after_snapshot = 1000
//! log_bytes_kept_after_snapshot = 536870912 # 512 MiB; the tighter of the two holds
//! snapshot_write_bytes_per_second = 134217728 # 128 MiB/s: a 1 GiB state writes in 8 s
//!
//! [testing]                           # optional; never in production
//! fault_control = false                 # `true`: `hyperraft serve` reads partitions from a file (chaos runs)
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod agents;

pub use agents::{AgentsConfig, DispatchPolicyKind};

/// Paths of this node's TLS material (PEM).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    pub ca_cert: PathBuf,
    pub node_cert: PathBuf,
    pub node_key: PathBuf,
}

/// Who may call the gRPC API, and whether it speaks TLS.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Tokens the API accepts; empty: every call is allowed.
    #[serde(default)]
    pub tokens: Vec<ApiTokenEntry>,
    /// The API's server certificate and key; none: plaintext.
    #[serde(default)]
    pub tls: Option<ApiTlsPaths>,
}

/// One API token: its name, role, and the SHA-256 of its secret (the
/// secret itself is never written into the configuration).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenEntry {
    pub name: String,
    pub role: ApiRole,
    /// 64 hex digits.
    pub sha256: String,
}

/// What an API token may do; each includes the ones before it.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ApiRole {
    /// Reads, watches, status.
    Read,
    /// Reads and every write.
    Write,
    /// Writes and membership and leadership changes.
    Admin,
}

impl ApiSection {
    /// Names are given and unique; digests are 64 hex digits. A digest
    /// that looks like anything else is most likely a token pasted in
    /// plain text, which must never sit in a configuration file.
    pub fn validate(&self) -> Result<(), String> {
        for (index, token) in self.tokens.iter().enumerate() {
            if token.name.trim().is_empty() {
                return Err(format!("api.tokens[{index}].name must not be empty"));
            }
            if self.tokens[..index].iter().any(|other| other.name == token.name) {
                return Err(format!("api.tokens[{index}].name {:?} is used twice", token.name));
            }
            let digest = token.sha256.trim();
            if digest.len() != 64 || !digest.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                return Err(format!(
                    "api.tokens[{index}].sha256 must be the 64 hex digits of the token's SHA-256 \
                     (`hyperraft token hash`), never the token itself"
                ));
            }
        }
        Ok(())
    }
}

/// Paths of the API's TLS identity (PEM).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiTlsPaths {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key of the leaf.
    pub key: PathBuf,
}

/// How the leader turns a proposal into the policy it is voted with (read
/// by the gRPC API; see `hyperraft_api::DecisionPolicy`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DecisionsSection {
    /// Action → `low`, `medium`, `high` or `critical`, replacing the
    /// built-in rules when given.
    #[serde(default)]
    pub criticality: Option<BTreeMap<String, String>>,
    /// The criticality of actions no rule names (built in: `low`).
    #[serde(default)]
    pub default_criticality: Option<String>,
    /// Criticality → share, e.g. `low = ">1/2"`, `medium = ">=3/4"`,
    /// `high = "2/3"`; levels not given keep their built-in share.
    #[serde(default)]
    pub thresholds: BTreeMap<String, String>,
    /// Deadline of a proposal that sets none, and the longest accepted.
    #[serde(default)]
    pub default_deadline_ms: Option<u64>,
    #[serde(default)]
    pub deadline_max_ms: Option<u64>,
}

/// Raft timing and log compaction.
///
/// The log is compacted by a snapshot of the state, after which the entries
/// it covers are purged, all but `entries_kept_after_snapshot`. A snapshot
/// is built when either bound is reached: `snapshot_after_entries` entries
/// applied since the last one (openraft's own policy), or
/// `snapshot_after_log_bytes` bytes written to this node's log since the
/// last one (a watcher in the node; see `compaction.rs`). An entry is one
/// batch, up to 8 MiB (about 3 MB at full load), so a count alone lets the
/// log grow to tens of GB.
///
/// Behind each snapshot the log keeps entries for followers that lag a
/// little: at most `entries_kept_after_snapshot` of them and at most
/// `log_bytes_kept_after_snapshot` bytes of them, whichever is fewer; a
/// follower further behind catches up by snapshot instead.
///
/// How far the log can still grow, per replica: about the larger of
/// `snapshot_after_log_bytes` and the snapshot's size, plus
/// `log_bytes_kept_after_snapshot` (1.5 GiB by default while the state is
/// under 1 GiB), plus what is written while a snapshot is built, persisted
/// and purged behind, and plus up to that bound more right after a restart
/// (the byte count starts again at zero). Segment files are deleted whole,
/// so the disk holds up to one segment more. Beside the log, the disk holds
/// the snapshot and, while the next one is written, that one too.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RaftTuning {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and purge the log behind it) every this many entries.
    pub snapshot_after_entries: u64,
    /// Also build one once this many bytes were written to the log since
    /// the last snapshot, and at least as many as the snapshot in place
    /// holds. The default, 1 GiB, is about 20 s of the log at 500 k
    /// transfers/s. Every snapshot writes the whole state, so the second
    /// rule keeps snapshots from writing more than the log does once the
    /// state is larger than the bound; recovery then replays at most about
    /// a state's worth of log.
    pub snapshot_after_log_bytes: u64,
    /// Entries kept behind a snapshot, so briefly lagging followers catch
    /// up from the log instead of needing the whole snapshot.
    pub entries_kept_after_snapshot: u64,
    /// And at most this many bytes of them. Without it the kept entries
    /// are bounded by count only: 1,000 entries of up to 8 MiB, about 3 GB
    /// at full load. The default, 512 MiB, is about 10 s of the log at
    /// 500 k transfers/s.
    pub log_bytes_kept_after_snapshot: u64,
    /// How fast a snapshot is written to disk. A snapshot is the whole
    /// state, and the log's syncs wait behind whatever the disk has queued:
    /// written at full speed, a 1 GiB snapshot stalled commits for seconds.
    /// The default, 128 MiB/s, writes a 1 GiB state in 8 s. Nodes that
    /// share one disk should share this rate.
    pub snapshot_write_bytes_per_second: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        RaftTuning {
            heartbeat_interval_ms: 200,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            snapshot_after_entries: 20_000,
            snapshot_after_log_bytes: 1 << 30,
            entries_kept_after_snapshot: 1_000,
            log_bytes_kept_after_snapshot: 512 << 20,
            snapshot_write_bytes_per_second: hyperraft_raft::state_machine::SNAPSHOT_WRITE_RATE_DEFAULT,
        }
    }
}

/// Switches for fault-injection runs; all off by default, and nothing in
/// it belongs in a production configuration.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TestingSection {
    /// Lets the transport partition this node from chosen peers
    /// (`Node::set_partitioned`); `hyperraft serve` then follows the peer
    /// ids listed in `<data_dir>/partitioned`. Off: every attempt is refused.
    pub fault_control: bool,
}

/// Everything a node needs to start.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub node_id: u64,
    pub peer_listen: SocketAddr,
    /// The address other nodes dial; defaults to `peer_listen`.
    #[serde(default)]
    pub peer_advertise: Option<SocketAddr>,
    /// Where this node serves the gRPC API; none: no API.
    #[serde(default)]
    pub client_listen: Option<SocketAddr>,
    /// Node id → gRPC address of the other nodes, for leader hints.
    #[serde(default)]
    pub client_addresses: BTreeMap<u64, String>,
    pub data_dir: PathBuf,
    pub tls: TlsPaths,
    /// Node id → peer address of the first members of a new cluster.
    #[serde(default)]
    pub initial_members: BTreeMap<u64, SocketAddr>,
    #[serde(default)]
    pub raft: RaftTuning,
    /// Threads that apply one batch (1 = sequential).
    #[serde(default = "default_apply_threads")]
    pub apply_threads: usize,
    /// Key/value events kept for watchers; a watch that starts before the
    /// oldest kept one ends with `OUT_OF_RANGE`. Part of the replicated
    /// state (snapshots carry the history), so every node must use the same.
    #[serde(default = "default_kv_history_events_max")]
    pub kv_history_events_max: usize,
    /// Where `hyperraft serve` answers Prometheus scrapes (`GET /metrics`,
    /// plain HTTP); none: no listener (metrics are still recorded if some
    /// other part of the process installed the recorder).
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Authentication and TLS of the gRPC API.
    #[serde(default)]
    pub api: ApiSection,
    /// Decision rules: criticality of actions, thresholds, deadlines.
    #[serde(default)]
    pub decisions: DecisionsSection,
    /// Local agent process pools (see [`crate::pools`]).
    #[serde(default)]
    pub agents: crate::pools::AgentsSection,
    /// Fault injection for chaos runs; off unless `[testing]` turns it on.
    #[serde(default)]
    pub testing: TestingSection,
    /// Whether the log fsyncs appends before acknowledging them (see
    /// `LogConfig::sync_appends`). `false` is UNSAFE — acknowledged writes
    /// can be lost at a crash — and is deliberately not read from the TOML
    /// file: only `hyperraft bench --fsync off` sets it, for comparison.
    #[serde(skip, default = "default_log_sync")]
    pub log_sync: bool,
}

fn default_log_sync() -> bool {
    true
}

fn default_kv_history_events_max() -> usize {
    hyperraft_state::kv::KvConfig::default().history_events_max
}

fn default_apply_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| cores.get().min(4))
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl NodeConfig {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let config: NodeConfig = toml::from_str(&text)
            .map_err(|source| ConfigError::Parse { path: path.into(), source: Box::new(source) })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: ids, timing order, membership.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |reason: String| Err(ConfigError::Invalid(reason));
        if self.node_id == 0 {
            return invalid("node_id must not be 0".into());
        }
        let raft = &self.raft;
        if raft.heartbeat_interval_ms == 0 || raft.heartbeat_interval_ms >= raft.election_timeout_min_ms {
            return invalid("raft.heartbeat_interval_ms must be > 0 and below raft.election_timeout_min_ms".into());
        }
        if raft.election_timeout_min_ms >= raft.election_timeout_max_ms {
            return invalid("raft.election_timeout_min_ms must be below raft.election_timeout_max_ms".into());
        }
        if raft.snapshot_after_entries == 0 {
            return invalid("raft.snapshot_after_entries must be > 0".into());
        }
        if raft.snapshot_after_log_bytes == 0 {
            return invalid("raft.snapshot_after_log_bytes must be > 0".into());
        }
        if raft.snapshot_write_bytes_per_second == 0 {
            return invalid("raft.snapshot_write_bytes_per_second must be > 0".into());
        }
        if !(1..=64).contains(&self.apply_threads) {
            return invalid("apply_threads must be in 1..=64".into());
        }
        if !self.initial_members.is_empty() && !self.initial_members.contains_key(&self.node_id) {
            return invalid(format!("initial_members does not include this node ({})", self.node_id));
        }
        if self.initial_members.contains_key(&0) {
            return invalid("initial_members has node id 0".into());
        }
        self.agents.validate().map_err(ConfigError::Invalid)?;
        if !self.agents.pools.is_empty() && self.client_listen.is_none() {
            return invalid("agents.pools needs client_listen: the agent processes connect to this node's API".into());
        }
        self.api.validate().map_err(ConfigError::Invalid)
    }

    /// The address peers dial to reach this node.
    pub fn advertised(&self) -> SocketAddr {
        self.peer_advertise.unwrap_or(self.peer_listen)
    }
}

#[cfg(test)]
mod tests;
