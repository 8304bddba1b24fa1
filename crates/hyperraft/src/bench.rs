//! `hyperraft bench`: the system benchmark and its options.
//!
//! Without options it starts an embedded 3-node cluster on loopback (real
//! QUIC between the nodes, real fsync'd logs in a temporary folder), creates
//! the accounts, warms up, drives ledger transfers for 10 seconds and prints
//! a report. `--target` drives an external cluster through the SDK over
//! gRPC instead; `--engine-only` measures the apply engine alone;
//! `--workload bus` measures one node's message bus (`bus_bench`);
//! `--workload agents` connects thousands of agents to the leader and
//! measures task dispatch (`agents_bench`).

use std::num::NonZeroUsize;

use anyhow::ensure;
use clap::{Args, ValueEnum};
use hyperraft_load::Skew;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Measure the apply engine alone, in-process: frame decode + apply, no network or disk.
    #[arg(long, conflicts_with = "target")]
    pub engine_only: bool,
    /// The embedded cluster run, which is also the default (kept for older scripts).
    #[arg(long, hide = true, conflicts_with = "engine_only")]
    pub cluster: bool,
    /// Nodes of the embedded cluster: 1, 3 or 5.
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// What each request holds: ledger transfers, key/value puts, or half gets and half puts.
    #[arg(long, value_enum, default_value_t = Workload::Transfers)]
    pub workload: Workload,
    /// Accounts (transfers) or keys (kv-put, kv-mixed) the workload spreads over.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: u64,
    /// Access distribution: `uniform` or `zipf:S`.
    #[arg(long, default_value = "uniform")]
    pub skew: Skew,
    /// Transfer ids of each writer: `sequential` counts up (as clients that
    /// number their transfers, or use time-ordered ids, do); `scattered`
    /// passes the same ids through a bijective mix, so no two are
    /// neighbours. The ledger's index keeps neighbouring ids together.
    #[arg(long, value_enum, default_value_t = Ids::Sequential, conflicts_with = "engine_only")]
    pub ids: Ids,
    /// Concurrent writers, each with one request in flight.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Items per request (default 1024; 128 for key/value through the SDK,
    /// whose transactions hold at most 128 operations); with --engine-only,
    /// commands per applied batch (default 8192).
    #[arg(long)]
    batch: Option<usize>,
    /// Offered load in items per second from all writers together, on a
    /// fixed schedule (open loop); latency counts from each request's
    /// scheduled send time, so queueing shows. Without it every writer sends
    /// as soon as its last request is answered (closed loop: the maximum).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds measured (per thread count with --engine-only). An embedded
    /// run ends sooner, and its report says why, if the machine's memory or
    /// disk runs low: every replica keeps the whole ledger in memory.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// gRPC addresses of an external cluster (`host:port,…`), driven
    /// through the SDK; accounts are created there if missing.
    #[arg(long, value_delimiter = ',')]
    pub target: Vec<String>,
    /// Address of an etcd v3 server (`host:port`, plain gRPC) to drive with
    /// the key/value workloads instead of hyperraft, for a side-by-side
    /// comparison; one put per request is etcd's `Put`, more are one `Txn`.
    #[arg(long, conflicts_with_all = ["target", "engine_only"])]
    pub target_etcd: Option<String>,
    /// `off` skips the log's fdatasync on the embedded nodes. UNSAFE:
    /// acknowledged writes can be lost at a crash. For comparison only.
    #[arg(long, value_enum, default_value_t = Fsync::On)]
    pub fsync: Fsync,
    /// Apply threads per node of the embedded cluster.
    #[arg(long, default_value_t = 1)]
    pub apply_threads: usize,
    /// Apply thread counts to compare with --engine-only, the first being the baseline.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<NonZeroUsize>,
    /// Ledger tuning for experiments (--engine-only): smallest transfer batch applied in parallel levels.
    #[arg(long, hide = true)]
    pub parallel_batch_min: Option<usize>,
    /// Ledger tuning for experiments (--engine-only): fewest units per level for parallel levels.
    #[arg(long, hide = true)]
    pub level_width_min: Option<usize>,
    /// Seed of the workload generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Subscribers of the bus workload (its publishers are --clients).
    #[arg(long, default_value_t = 1)]
    pub subscribers: usize,
    /// Bytes of each bus message (bus workload).
    #[arg(long, default_value_t = 16)]
    pub message_bytes: usize,
    /// Agents the agents workload connects to the leader, each its own session.
    #[arg(long, default_value_t = 10_000)]
    pub agents: usize,
    /// Copies of each task the agents workload submits (k, run by distinct agents).
    #[arg(long, default_value_t = 1)]
    pub redundancy: u32,
    /// Bus workload: also measure a durable topic (appended through Raft on
    /// an embedded cluster of --nodes) after the ephemeral one, in the same run.
    #[arg(long)]
    pub durable: bool,
    /// Print one JSON object (per run) on stdout instead of a report.
    #[arg(long)]
    pub json: bool,
}

/// How a writer numbers its transfers (`--ids`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Ids {
    Sequential,
    Scattered,
}

impl Ids {
    pub fn name(self) -> &'static str {
        match self {
            Ids::Sequential => "sequential",
            Ids::Scattered => "scattered",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    Transfers,
    KvPut,
    KvMixed,
    /// Publish/subscribe on one node's message bus (see `bus_bench`).
    Bus,
    /// Agent sessions and task dispatch on the leader (see `agents_bench`).
    Agents,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Transfers => "transfers",
            Workload::KvPut => "kv-put",
            Workload::KvMixed => "kv-mixed",
            Workload::Bus => "bus",
            Workload::Agents => "agents",
        }
    }

    /// What one item of this workload is called in the report.
    pub fn items(self) -> &'static str {
        match self {
            Workload::Transfers => "transfers",
            Workload::KvPut => "puts",
            Workload::KvMixed => "operations",
            Workload::Bus => "messages",
            Workload::Agents => "tasks",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Fsync {
    On,
    Off,
}

impl BenchArgs {
    /// Whether the run drives a cluster this process starts.
    pub fn embedded(&self) -> bool {
        self.target.is_empty() && self.target_etcd.is_none()
    }

    pub fn batch(&self) -> usize {
        let sdk_kv = (!self.target.is_empty() || self.target_etcd.is_some()) && self.workload != Workload::Transfers;
        match self.batch {
            Some(batch) => batch,
            None if self.engine_only => 8192,
            None if sdk_kv => hyperraft_client::TXN_ITEMS_MAX,
            None => 1024,
        }
    }

    /// Refuses options that make no sense, before anything starts.
    fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.accounts >= 2, "--accounts must be at least 2");
        ensure!(self.duration > 0.0 && self.duration <= 3600.0, "--duration must be in (0, 3600] seconds");
        ensure!((0.0..=600.0).contains(&self.warmup), "--warmup must be in [0, 600] seconds");
        if self.engine_only {
            ensure!((1..=65_536).contains(&self.batch()), "--batch must be in 1..=65536");
            return Ok(());
        }
        ensure!(matches!(self.nodes, 1 | 3 | 5), "--nodes must be 1, 3 or 5");
        ensure!((1..=4096).contains(&self.clients), "--clients must be in 1..=4096");
        ensure!((1..=8192).contains(&self.batch()), "--batch must be in 1..=8192");
        if !self.target.is_empty() && self.workload != Workload::Transfers {
            let max = hyperraft_client::TXN_ITEMS_MAX;
            ensure!(
                self.batch() <= max,
                "--batch must be at most {max} for key/value through the SDK (one transaction)"
            );
        }
        if self.target_etcd.is_some() {
            ensure!(self.workload != Workload::Transfers, "--target-etcd drives the key/value workloads only");
            ensure!(self.batch() <= 128, "--batch must be at most 128 for etcd (its default --max-txn-ops)");
        }
        let external = !self.target.is_empty() || self.target_etcd.is_some();
        ensure!(!external || self.fsync == Fsync::On, "--fsync off applies to the embedded cluster only");
        if let Some(rate) = self.rate {
            ensure!(rate.is_finite() && rate > 0.0, "--rate must be a positive number of items per second");
        }
        Ok(())
    }
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    args.validate()?;
    if args.workload == Workload::Bus {
        ensure!(!args.engine_only, "--workload bus runs a node; it has no --engine-only form");
        crate::bus_bench::run(args)
    } else if args.workload == Workload::Agents {
        ensure!(!args.engine_only, "--workload agents runs a cluster; it has no --engine-only form");
        ensure!(args.embedded(), "--workload agents runs on the embedded cluster only");
        crate::agents_bench::run(args)
    } else if args.engine_only {
        crate::engine_bench::run(args)
    } else {
        crate::cluster_bench::run(args)
    }
}
