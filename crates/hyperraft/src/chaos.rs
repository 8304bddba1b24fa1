//! `hyperraft chaos`: a real-process fault run. Starts a cluster of
//! `hyperraft serve` processes on loopback in a fresh directory, drives a
//! recorded workload through the SDK while a nemesis kills, pauses and
//! partitions nodes, then heals everything and judges the run: the nodes
//! converge to one state, the cluster serves again, the bank invariant
//! holds and the key/value history is linearizable. Exits non-zero on any
//! anomaly.

mod cluster;
mod nemesis;
mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hyperraft_check::bank;
use hyperraft_check::linearizability::{check_kv, Verdict};
use hyperraft_client::{Client, ClientConfig};
use hyperraft_load::{CODE, LEDGER};
use hyperraft_state::ledger::{Account, Transfer};
use hyperraft_wire::AccountRecord;

use cluster::Processes;
use nemesis::FaultCounts;
use workload::{Recorder, ACCOUNTS};

/// Search steps allowed per key for the linearizability check.
const LINEARIZABILITY_STEPS_MAX: u64 = 5_000_000;
/// How long the healed cluster has to converge and serve again.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Args, Debug)]
pub struct ChaosArgs {
    /// Nodes in the cluster (3 or 5).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=5))]
    nodes: u64,
    /// Seconds of workload under faults.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    clients: u64,
    /// Seed of the fault schedule and the workload; by default the clock's.
    #[arg(long)]
    seed: Option<u64>,
    /// Keep the run's directory (configurations, data, node logs) here
    /// instead of a temporary one that is removed at the end.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Run without the nemesis (a baseline for the checks).
    #[arg(long)]
    no_faults: bool,
}

/// What a run found.
struct Report {
    seed: u64,
    nodes: u64,
    duration: Duration,
    faults: FaultCounts,
    counts: workload::Counts,
    transfers_attempted: usize,
    transfers_acknowledged: usize,
    kv_operations: usize,
    verdict: Verdict,
    violations: Vec<bank::Violation>,
    converged: Option<(Option<u64>, u64)>,
    live: bool,
    unclean_exits: Vec<u64>,
}

impl Report {
    fn anomalies(&self) -> Vec<String> {
        let mut anomalies: Vec<String> =
            self.violations.iter().map(|violation| format!("bank: {violation:?}")).collect();
        match self.verdict {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable => anomalies.push("key/value history is not linearizable".into()),
            Verdict::Unknown => anomalies.push("key/value linearizability search ran out of steps".into()),
        }
        if self.converged.is_none() {
            anomalies.push(format!("nodes did not converge to one digest within {RECOVERY_TIMEOUT:?}"));
        }
        if !self.live {
            anomalies.push("the healed cluster did not serve a put and a get".into());
        }
        if self.transfers_acknowledged == 0 {
            anomalies.push("no transfer was acknowledged during the run".into());
        }
        for id in &self.unclean_exits {
            anomalies.push(format!("node {id} did not stop cleanly on SIGTERM"));
        }
        anomalies
    }

    fn print(&self) {
        println!("chaos run: seed {}, {} nodes, {:.1}s of faults", self.seed, self.nodes, self.duration.as_secs_f64());
        let kinds: Vec<String> = self.faults.0.iter().map(|(kind, count)| format!("{kind} {count}")).collect();
        println!(
            "  faults: {} ({})",
            self.faults.total(),
            if kinds.is_empty() { "none".into() } else { kinds.join(", ") }
        );
        let counts = &self.counts;
        println!(
            "  transfers: {} batches ({} failed), {} attempted, {} acknowledged",
            counts.transfer_batches,
            counts.transfer_batches_failed,
            self.transfers_attempted,
            self.transfers_acknowledged
        );
        println!(
            "  key/value: {} puts ({} outcome unknown), {} gets ({} failed); {} operations checked: {:?}",
            counts.puts, counts.puts_unknown, counts.gets, counts.gets_failed, self.kv_operations, self.verdict
        );
        println!("  bank: {} violations", self.violations.len());
        match self.converged {
            Some((applied, digest)) => println!("  converged: applied index {applied:?}, digest {digest:016x}"),
            None => println!("  converged: no"),
        }
        println!("  serves after healing: {}", if self.live { "yes" } else { "no" });
        let anomalies = self.anomalies();
        println!("  anomalies: {}", anomalies.len());
        for anomaly in anomalies.iter().take(20) {
            println!("    {anomaly}");
        }
    }
}

pub fn run(args: &ChaosArgs) -> anyhow::Result<()> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |time| time.as_nanos() as u64)
    });
    let temporary;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temporary = tempfile::Builder::new().prefix("hyperraft-chaos-").tempdir().context("temporary directory")?;
            temporary.path().to_path_buf()
        }
    };
    let binary = std::env::current_exe().context("the hyperraft binary's path")?;
    let mut processes = Processes::prepare(&dir, args.nodes, binary)?;
    for id in processes.ids() {
        processes.start(id)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the runtime")?;
    let (report, processes) = runtime.block_on(drive(args, seed, processes))?;
    let mut processes = processes;
    let mut report = report;
    report.unclean_exits = processes.terminate_all();
    report.print();
    let anomalies = report.anomalies();
    if !anomalies.is_empty() {
        if args.dir.is_none() {
            // Keep the evidence: the node logs and data directories.
            let kept = dir.with_file_name(format!("hyperraft-chaos-failed-{seed}"));
            if std::fs::rename(&dir, &kept).is_ok() {
                println!("  kept the run's directory: {}", kept.display());
            }
        }
        anyhow::bail!("{} anomalies (replay with --seed {seed})", anomalies.len());
    }
    Ok(())
}

async fn connect(endpoints: Vec<String>) -> anyhow::Result<Client> {
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    let mut config = ClientConfig::new(endpoints);
    config.request_timeout = Duration::from_secs(3);
    config.connect_timeout = Duration::from_secs(1);
    config.pool.health_check_interval = Duration::from_millis(500);
    loop {
        match Client::connect(config.clone()).await {
            Ok(client) => return Ok(client),
            Err(error) if Instant::now() > deadline => return Err(error).context("connect to the cluster"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn drive(args: &ChaosArgs, seed: u64, mut processes: Processes) -> anyhow::Result<(Report, Processes)> {
    let sdk = connect(processes.api_endpoints()).await?;
    let accounts: Vec<AccountRecord> = (1..=ACCOUNTS)
        .map(|id| AccountRecord {
            id: u128::from(id).into(),
            ledger: LEDGER.into(),
            code: CODE.into(),
            ..Default::default()
        })
        .collect();
    let failures = sdk.create_accounts(&accounts).await.context("create the accounts")?;
    anyhow::ensure!(failures.is_empty(), "accounts not created: {failures:?}");

    let recorder = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (1..=args.clients)
        .map(|id| tokio::spawn(workload::client(id, seed, sdk.clone(), recorder.clone(), stop.clone())))
        .collect();
    let started = Instant::now();
    let until = started + Duration::from_secs(args.duration);
    let no_faults = args.no_faults;
    let nemesis = tokio::task::spawn_blocking(move || {
        let mut faults = FaultCounts::default();
        let result = if no_faults {
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            Ok(())
        } else {
            nemesis::run(&mut processes, seed, until, &mut faults)
        };
        (processes, faults, result)
    });
    let (processes, faults, result) = nemesis.await.context("the nemesis thread")?;
    let duration = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.context("a client task")?;
    }
    result?;

    let converged = converge(&processes).await?;
    let live = serves(&sdk, &recorder).await;
    let (violations, attempted, acknowledged) = bank_check(&sdk, &recorder).await?;
    let (history, counts) = {
        let history = recorder.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (history.kv.clone(), history.counts)
    };
    let verdict = tokio::task::spawn_blocking(move || check_kv(&history, LINEARIZABILITY_STEPS_MAX))
        .await
        .context("the linearizability check")?;
    let kv_operations = recorder.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner).kv.len();
    drop(sdk);
    let report = Report {
        seed,
        nodes: args.nodes,
        duration,
        faults,
        counts,
        transfers_attempted: attempted,
        transfers_acknowledged: acknowledged,
        kv_operations,
        verdict,
        violations,
        converged,
        live,
        unclean_exits: Vec::new(),
    };
    Ok((report, processes))
}

/// Waits until every node reports the same applied index and digest.
async fn converge(processes: &Processes) -> anyhow::Result<Option<(Option<u64>, u64)>> {
    let native = hyperraft_node::Client::connect(processes.checker_identity()?, &processes.peer_endpoints())?;
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    let result = loop {
        let mut seen = Vec::new();
        for id in processes.ids() {
            seen.push(native.digest(id).await.ok());
        }
        if seen.iter().all(Option::is_some) && seen.windows(2).all(|pair| pair[0] == pair[1]) {
            break seen[0];
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    native.close().await;
    Ok(result)
}

/// Liveness: a put and a get of a fresh key succeed (both recorded).
async fn serves(sdk: &Client, recorder: &Recorder) -> bool {
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    let key = b"chaos/after-healing".to_vec();
    while Instant::now() < deadline {
        if workload::put(sdk, recorder, key.clone(), b"healed".to_vec()).await
            && workload::get(sdk, recorder, key.clone()).await
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Reads every account and every attempted transfer back and checks the
/// bank invariant; also returns the attempted and acknowledged counts.
async fn bank_check(sdk: &Client, recorder: &Recorder) -> anyhow::Result<(Vec<bank::Violation>, usize, usize)> {
    let record = recorder.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner).transfers.clone();
    let ids: Vec<u128> = (1..=u128::from(ACCOUNTS)).collect();
    let accounts: Vec<Account> =
        sdk.lookup_accounts(&ids).await.context("look the accounts up")?.iter().map(Account::from_record).collect();
    anyhow::ensure!(accounts.len() as u64 == ACCOUNTS, "{} of {ACCOUNTS} accounts found", accounts.len());
    let attempted: Vec<u128> = record.attempted.iter().copied().collect();
    let mut transfers = Vec::new();
    for chunk in attempted.chunks(4096) {
        let found = sdk.lookup_transfers(chunk).await.context("look the transfers up")?;
        transfers.extend(found.iter().map(Transfer::from_record));
    }
    Ok((bank::check(&accounts, &transfers, &record), record.attempted.len(), record.acknowledged.len()))
}
