//! `hyperraft bench` against a cluster: an embedded one (the default) or an
//! external one (`--target`).
//!
//! The embedded cluster runs `--nodes` nodes in this process on loopback —
//! real QUIC with mutual TLS between them, real fsync'd logs in a temporary
//! folder removed afterwards — and the writers use the leader's own client
//! (the in-process batcher, which proposes through Raft). With `--target`
//! the writers use the SDK over gRPC.
//!
//! `--clients` writers each keep one request of `--batch` items in flight.
//! Without `--rate` each sends its next request when the last one is
//! answered (closed loop, the maximum). With `--rate R` they together offer
//! R items per second on a fixed schedule (open loop), and latency counts
//! from the scheduled send time, so queueing shows instead of being hidden
//! by a writer that waits (coordinated omission). Only requests scheduled
//! after the `--warmup` seconds count. An embedded run ends its measured
//! window early if the machine's memory or disk runs low (`bench_guard.rs`),
//! and its report says so.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{ensure, Context};
use hyperraft_client::{Client, ClientConfig, CreateAccountResult};
use hyperraft_node::{EmbeddedCluster, RaftTuning};
use hyperraft_wire::AccountRecord;

use crate::bench::{BenchArgs, Fsync, Workload};
use crate::bench_commit::commit_path;
use crate::bench_etcd::EtcdKv;
use crate::bench_guard::{ResourceGuard, Stop};
use crate::bench_load::{Load, Sink};
use crate::bench_report::{Progress, Snapshot, Summary, Tally, Usage};

/// How long the cluster may take to elect a leader, converge or answer setup writes.
const PATIENCE: Duration = Duration::from_secs(30);
/// How long a writer waits after a request that failed whole.
const REFUSED_PAUSE: Duration = Duration::from_millis(10);
/// Accounts per create request.
const ACCOUNTS_PER_REQUEST: usize = 8190;

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the runtime")?;
    let summary = if let Some(addr) = &args.target_etcd {
        runtime.block_on(drive_etcd(args, addr))?
    } else if args.target.is_empty() {
        let root = std::env::temp_dir().join(format!("hyperraft-bench-{}", std::process::id()));
        let result = runtime.block_on(drive_embedded(args, &root));
        std::fs::remove_dir_all(&root).ok();
        result?
    } else {
        runtime.block_on(drive_target(args))?
    };
    summary.print(args);
    Ok(())
}

async fn drive_embedded(args: &BenchArgs, root: &Path) -> anyhow::Result<Summary> {
    // The log writers count their fsyncs into this process's metrics recorder.
    let metrics = hyperraft_node::telemetry::install().ok();
    // The embedded nodes share one disk, so they share its snapshot write rate.
    let defaults = RaftTuning::default();
    let raft = RaftTuning {
        snapshot_write_bytes_per_second: defaults.snapshot_write_bytes_per_second / args.nodes,
        ..defaults
    };
    let mut cluster = EmbeddedCluster::new(root, args.nodes, raft, args.apply_threads)?;
    if args.fsync == Fsync::Off {
        let configs: Vec<_> = cluster.configs().values().cloned().collect();
        for config in configs {
            cluster.set_config(hyperraft_node::NodeConfig { log_sync: false, ..config });
        }
    }
    cluster.start_all().await?;
    let leader = cluster.leader(PATIENCE).await?;
    if args.workload == Workload::Transfers {
        let mut frames = Vec::new();
        hyperraft_load::account_frames(args.accounts, ACCOUNTS_PER_REQUEST, &mut frames);
        for frame in &frames {
            cluster.write(frame, PATIENCE).await.context("create the accounts")?;
        }
    }
    let batcher = cluster.node(leader).writer();
    let snapshot = || {
        let stats = batcher.stats();
        let fsyncs = metrics.as_ref().map(|handle| fsyncs_total(&handle.render()));
        Snapshot { usage: Usage::now(), entries: Some((stats.proposals, stats.items)), fsyncs }
    };
    let sink = Sink::Native(cluster.node(leader).writer());
    let mut summary = drive(args, vec![sink], "native", snapshot, Some((root, args.nodes))).await?;
    summary.commit_path = metrics.as_ref().and_then(|handle| commit_path(&handle.render(), leader));
    cluster.converged(PATIENCE).await.context("the nodes did not converge after the run")?;
    cluster.shutdown().await?;
    Ok(summary)
}

/// The sum of every `hyperraft_log_fsyncs_total` series in Prometheus text.
fn fsyncs_total(exposition: &str) -> u64 {
    exposition
        .lines()
        .filter(|line| line.starts_with("hyperraft_log_fsyncs_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn drive_target(args: &BenchArgs) -> anyhow::Result<Summary> {
    let client = Client::connect(ClientConfig::new(args.target.iter().cloned()))
        .await
        .with_context(|| format!("connect to {}", args.target.join(",")))?;
    if args.workload == Workload::Transfers {
        create_accounts(&client, args.accounts).await?;
    }
    let snapshot = || Snapshot { usage: Usage::now(), entries: None, fsyncs: None };
    drive(args, vec![Sink::Sdk(Arc::new(client))], "grpc", snapshot, None).await
}

/// Connections to etcd: one per writer, at most this many (shared round robin beyond).
const ETCD_CONNECTIONS_MAX: usize = 64;

async fn drive_etcd(args: &BenchArgs, addr: &str) -> anyhow::Result<Summary> {
    let mut sinks = Vec::new();
    for _ in 0..args.clients.min(ETCD_CONNECTIONS_MAX) {
        let etcd = EtcdKv::connect(addr).await.with_context(|| format!("connect to etcd at {addr}"))?;
        sinks.push(Sink::Etcd(etcd));
    }
    let snapshot = || Snapshot { usage: Usage::now(), entries: None, fsyncs: None };
    drive(args, sinks, "etcd", snapshot, None).await
}

/// Creates accounts `1..=accounts`; ones that exist already (an earlier run) are fine.
async fn create_accounts(client: &Client, accounts: u64) -> anyhow::Result<()> {
    let ids: Vec<u64> = (1..=accounts).collect();
    for chunk in ids.chunks(ACCOUNTS_PER_REQUEST) {
        let records: Vec<AccountRecord> = chunk
            .iter()
            .map(|&id| AccountRecord {
                id: u128::from(id).into(),
                ledger: hyperraft_load::LEDGER.into(),
                code: hyperraft_load::CODE.into(),
                ..AccountRecord::default()
            })
            .collect();
        let failures = client.create_accounts(&records).await.context("create the accounts")?;
        let refused = failures.iter().find(|failure| failure.code != CreateAccountResult::Exists);
        ensure!(refused.is_none(), "creating the accounts failed: {:?}", refused.map(|failure| failure.code));
    }
    Ok(())
}

/// Runs the writers through warm-up and the measured window; with
/// `embedded` (the cluster's folder and node count) under a [`ResourceGuard`].
async fn drive(
    args: &BenchArgs,
    sinks: Vec<Sink>,
    client: &'static str,
    snapshot: impl Fn() -> Snapshot,
    embedded: Option<(&Path, u64)>,
) -> anyhow::Result<Summary> {
    let tally = Arc::new(Tally::new());
    let stop = Arc::new(Stop::default());
    let guard = embedded.map(|(root, nodes)| ResourceGuard::start(stop.clone(), root.to_path_buf(), nodes));
    let started = Instant::now();
    let measuring = started + Duration::from_secs_f64(args.warmup);
    let deadline = measuring + Duration::from_secs_f64(args.duration);
    let progress = Progress::start(tally.clone(), measuring, deadline - measuring, args.workload.items());
    // Transfer ids differ between runs, so a run against an external cluster never repeats an earlier one's.
    let id_base = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |since| since.as_micros());
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..args.clients {
        let first_id = (id_base << 64) | ((writer as u128) << 48) | 1;
        let seed = args.seed.wrapping_add(writer as u64);
        let load = Load::new(args.workload, args.ids, args.accounts, args.skew, seed, first_id);
        let interval = args.rate.map(|rate| Duration::from_secs_f64((args.clients * args.batch()) as f64 / rate));
        // Open-loop writers start staggered over one interval, so together they send evenly.
        let offset = interval.map_or(Duration::ZERO, |interval| interval.mul_f64(writer as f64 / args.clients as f64));
        let schedule = Schedule { first: started + offset, measuring, deadline, interval };
        let sink = sinks[writer % sinks.len()].clone();
        writers.spawn(write_loop(sink, load, args.batch(), schedule, tally.clone(), stop.clone()));
    }
    tokio::time::sleep_until(measuring.into()).await;
    let before = snapshot();
    while let Some(result) = writers.join_next().await {
        result.context("a writer panicked")?;
    }
    let after = snapshot();
    let elapsed = measuring.elapsed();
    drop((progress, guard));
    // The progress task may still hold the tally for a moment after its abort; read it in place.
    let summary = Summary {
        elapsed,
        committed: tally.committed.load(Ordering::Relaxed),
        requests: tally.requests.load(Ordering::Relaxed),
        errors: tally.errors.lock().expect("no writer panicked").clone(),
        latency_us: tally.latency_us.lock().expect("no writer panicked").clone(),
        before,
        after,
        client,
        stopped_early: stop.reason(),
        commit_path: None,
    };
    Ok(summary)
}

/// When one writer sends: from `first` until `deadline`, every `interval`
/// (open loop) or as soon as the previous request is answered (closed loop);
/// requests scheduled before `measuring` are warm-up and not counted.
struct Schedule {
    first: Instant,
    measuring: Instant,
    deadline: Instant,
    interval: Option<Duration>,
}

async fn write_loop(sink: Sink, mut load: Load, batch: usize, schedule: Schedule, tally: Arc<Tally>, stop: Arc<Stop>) {
    let Schedule { first, measuring, deadline, interval } = schedule;
    let mut scheduled = first;
    loop {
        if stop.is_set() {
            break;
        }
        match interval {
            Some(_) if scheduled >= deadline => break,
            Some(_) => tokio::time::sleep_until(scheduled.into()).await,
            None if Instant::now() >= deadline => break,
            None => scheduled = Instant::now(),
        }
        load.next(batch);
        let outcome = sink.send(&mut load).await;
        let refused = outcome.committed == 0 && !outcome.failures.is_empty();
        if scheduled >= measuring {
            tally.record(outcome, scheduled.elapsed());
        }
        if refused {
            // A cluster that refuses answers at once; writers resending at
            // once would keep every runtime thread busy and starve the rest.
            tokio::time::sleep(REFUSED_PAUSE).await;
        }
        if let Some(interval) = interval {
            scheduled += interval;
        }
    }
}
