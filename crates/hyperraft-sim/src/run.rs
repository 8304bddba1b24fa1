//! One simulated run: set up, fault phase, recovery, checks.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyperraft_check::bank::{self, ClientRecord};
use hyperraft_check::linearizability::{check_kv, Verdict};
use hyperraft_load::Rng;
use hyperraft_raft::{BatchResponse, NodeId};
use hyperraft_wire::{KvBatchWriter, PutView};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::config::{Sabotage, SimConfig};
use crate::faults::{Fault, FaultPlan, NetworkProfile};
use crate::history::History;
use crate::monitor::DigestMonitor;
use crate::network::Network;
use crate::registry::Registry;
use crate::report::{Anomaly, Report, VIOLATIONS_MAX};
use crate::trace::Trace;
use crate::workload::{create_accounts, propose, Client, Outcome};

/// Virtual time allowed for the first election and the accounts.
const SETUP_BOUND: Duration = Duration::from_secs(20);
/// How often replicas' digests are sampled.
const DIGEST_EVERY: Duration = Duration::from_millis(250);
/// Search steps of the linearizability checker before it answers unknown.
const LINEARIZABILITY_STEPS_MAX: u64 = 20_000_000;

/// Runs `seed` under `config` on a fresh current-thread runtime whose
/// clock is paused: timers fire in virtual time, as fast as the work allows.
pub fn run(seed: u64, config: &SimConfig) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
    runtime.block_on(simulate(seed, config))
}

/// The seeds of a run's independent random streams, all drawn from `seed`.
struct Streams {
    nodes: usize,
    profile: NetworkProfile,
    plan: FaultPlan,
    network: Rng,
    elections: Rng,
    clients: u64,
    nemesis: Rng,
}

impl Streams {
    fn draw(seed: u64, config: &SimConfig) -> Streams {
        let mut root = Rng::new(seed);
        let drawn_nodes = if root.below(2) == 0 { 3 } else { 5 };
        let nodes = config.nodes.unwrap_or(drawn_nodes);
        let profile = NetworkProfile::draw(&mut Rng::new(root.next_u64()));
        let plan = FaultPlan::draw(&mut Rng::new(root.next_u64()), nodes, config.fault_phase);
        Streams {
            nodes,
            profile,
            plan: if config.faults { plan } else { FaultPlan::default() },
            network: Rng::new(root.next_u64()),
            elections: Rng::new(root.next_u64()),
            clients: root.next_u64(),
            nemesis: Rng::new(root.next_u64()),
        }
    }
}

async fn simulate(seed: u64, config: &SimConfig) -> Report {
    let streams = Streams::draw(seed, config);
    let trace = Arc::new(Trace::new(config.keep_trace));
    let registry = Arc::new(Registry::default());
    let network = Arc::new(Network::new(registry.clone(), trace.clone(), streams.network.clone(), streams.profile));
    let data =
        tempfile::Builder::new().prefix("hyperraft-sim-").tempdir_in(data_root(config)).expect("a data directory");
    let cluster =
        Arc::new(Cluster::new(data.path().to_owned(), streams.nodes, registry.clone(), network.clone(), trace.clone()));
    let mut report = Report {
        seed,
        nodes: streams.nodes,
        profile: streams.profile,
        plan: streams.plan.clone(),
        network: Default::default(),
        operations: Default::default(),
        transfers_acknowledged: 0,
        kv_operations: 0,
        kv_verdict: None,
        digest_samples: 0,
        recovery: None,
        virtual_time: Duration::ZERO,
        trace_digest: 0,
        trace_events: 0,
        trace_lines: Vec::new(),
        anomalies: Vec::new(),
    };
    let elections = tokio::spawn(crate::elections::drive(
        registry.clone(),
        network.clone(),
        trace.clone(),
        streams.elections.clone(),
    ));
    let monitor = Arc::new(Mutex::new(DigestMonitor::default()));
    let watcher = tokio::spawn(crate::monitor::watch(monitor.clone(), registry.clone(), DIGEST_EVERY));
    let history = Arc::new(Mutex::new(History::default()));
    if let Err(anomaly) = set_up(&cluster, &trace).await {
        report.anomalies.push(anomaly);
    } else {
        fault_phase(&cluster, &streams, config, &history, &mut report).await;
        recover(&cluster, config, &mut report).await;
        check(&cluster, &history, &monitor, &mut report);
    }
    elections.abort();
    watcher.abort();
    cluster.stop_all().await;
    report.network = network.counters();
    report.virtual_time = trace.elapsed();
    (report.trace_digest, report.trace_events) = trace.digest();
    report.trace_lines = trace.take_lines();
    report
}

fn data_root(config: &SimConfig) -> PathBuf {
    if let Some(root) = &config.data_root {
        return root.clone();
    }
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

/// Starts every node, forms the cluster and creates the accounts.
async fn set_up(cluster: &Cluster, trace: &Trace) -> Result<(), Anomaly> {
    for &id in &cluster.ids {
        cluster.start(id).await.map_err(|error| Anomaly::StartFailed { node: id, error })?;
    }
    cluster.bootstrap().await.map_err(|error| Anomaly::SetupFailed(format!("initialize: {error}")))?;
    if !create_accounts(&cluster.registry, trace, Instant::now() + SETUP_BOUND).await {
        return Err(Anomaly::SetupFailed("the accounts were not created in time".to_string()));
    }
    Ok(())
}

/// Clients write while the fault schedule plays; at the end every fault is undone.
async fn fault_phase(
    cluster: &Arc<Cluster>,
    streams: &Streams,
    config: &SimConfig,
    history: &Arc<Mutex<History>>,
    report: &mut Report,
) {
    let start = Instant::now();
    let end = start + config.fault_phase;
    cluster.network.set_message_faults(config.faults);
    let clients: Vec<_> = (1..=config.clients as u64)
        .map(|id| {
            let rng = Rng::new(streams.clients ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let client = Client::new(id, rng, cluster.registry.clone(), history.clone(), cluster.trace());
            tokio::spawn(client.run(end))
        })
        .collect();
    let sabotage =
        config.sabotage.map(|sabotage| tokio::spawn(sabotage_window(cluster.network.clone(), start, sabotage)));
    let mut nemesis = streams.nemesis.clone();
    for (at, fault) in &streams.plan.events {
        tokio::time::sleep_until(start + *at).await;
        apply(cluster, fault, &mut nemesis, report).await;
    }
    tokio::time::sleep_until(end).await;
    for client in clients {
        let _ = client.await;
    }
    if let Some(sabotage) = sabotage {
        sabotage.abort();
    }
    cluster.network.set_sabotage(false);
    cluster.network.set_message_faults(false);
    cluster.network.heal_all();
    for &id in &cluster.ids {
        if cluster.registry.get(id).is_none() {
            if let Err(error) = cluster.start(id).await {
                report.anomalies.push(Anomaly::StartFailed { node: id, error });
            }
        }
    }
}

async fn sabotage_window(network: Arc<Network>, start: Instant, sabotage: Sabotage) {
    let Sabotage::AckWithoutDelivery { from, until } = sabotage;
    tokio::time::sleep_until(start + from).await;
    network.set_sabotage(true);
    tokio::time::sleep_until(start + until).await;
    network.set_sabotage(false);
}

async fn apply(cluster: &Cluster, fault: &Fault, rng: &mut Rng, report: &mut Report) {
    cluster.trace().event(format_args!("fault {fault}"));
    match fault {
        Fault::Partition { id, cut } => cluster.network.cut(*id, cut.clone()),
        Fault::Heal { id } => cluster.network.heal(*id),
        Fault::Crash { node, torn_tail } => {
            let garbage = torn_tail.then(|| (0..1 + rng.below(64)).map(|_| rng.next_u64() as u8).collect());
            cluster.crash(*node, garbage).await;
        }
        Fault::Restart { node } => {
            if let Err(error) = cluster.start(*node).await {
                report.anomalies.push(Anomaly::StartFailed { node: *node, error });
            }
        }
        Fault::ClockJump { node, offset_ms } => cluster.registry.jump_clock(*node, *offset_ms),
    }
}

/// Liveness, then convergence: within the bound a write commits, and then
/// every replica reaches the leader's last log index.
async fn recover(cluster: &Cluster, config: &SimConfig, report: &mut Report) {
    let start = Instant::now();
    let deadline = start + config.recovery_bound;
    let mut frame = Vec::new();
    let mut writer = KvBatchWriter::new(&mut frame);
    writer.put(PutView { key: b"liveness", value: b"probe", lease: 0, prev_kv: false }).expect("a small put encodes");
    writer.finish();
    while Instant::now() < deadline {
        if let Outcome::Applied(BatchResponse::Kv(_)) =
            propose(&cluster.registry, &cluster.trace(), 0, frame.clone()).await
        {
            report.recovery = Some(Instant::now() - start);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if report.recovery.is_none() {
        report.anomalies.push(Anomaly::NoRecovery { bound: config.recovery_bound });
        return;
    }
    let deadline = Instant::now() + config.recovery_bound;
    loop {
        let applied = applied_indexes(cluster);
        let first = applied.first().and_then(|(_, index)| *index);
        let leader_last =
            cluster.registry.leader().and_then(|(_, handle)| handle.raft.metrics().borrow().last_log_index);
        if first.is_some() && first == leader_last && applied.iter().all(|(_, index)| *index == first) {
            return;
        }
        if Instant::now() >= deadline {
            report.anomalies.push(Anomaly::NotConverged { applied });
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn applied_indexes(cluster: &Cluster) -> Vec<(NodeId, Option<u64>)> {
    cluster
        .ids
        .iter()
        .map(|id| {
            (*id, cluster.registry.get(*id).and_then(|handle| handle.state.last_applied().map(|log_id| log_id.index)))
        })
        .collect()
}

/// The bank invariant on every replica, equal digests at equal indexes,
/// and linearizability of the key/value history.
fn check(cluster: &Cluster, history: &Mutex<History>, monitor: &Mutex<DigestMonitor>, report: &mut Report) {
    let history = history.lock().expect("history lock");
    report.operations = history.counts;
    report.transfers_acknowledged = history.transfers.acknowledged.len();
    report.kv_operations = history.kv.len();
    // A replica that did not catch up (reported as `NotConverged`) is held
    // to everything but the acknowledged set: its prefix must still balance,
    // hold no phantoms and nothing twice.
    let applied_max = applied_indexes(cluster).iter().filter_map(|(_, index)| *index).max();
    let prefix_record =
        ClientRecord { acknowledged: Default::default(), attempted: history.transfers.attempted.clone() };
    for (id, handle) in cluster.registry.up() {
        let caught_up = handle.state.last_applied().map(|log_id| log_id.index) == applied_max;
        let record = if caught_up { &history.transfers } else { &prefix_record };
        let mut violations = handle.state.read(|state| bank_check(state, record));
        if !violations.is_empty() {
            violations.truncate(VIOLATIONS_MAX);
            report.anomalies.push(Anomaly::Bank { node: id, violations });
        }
    }
    let mut monitor = monitor.lock().expect("monitor lock");
    monitor.sample(&cluster.registry);
    report.digest_samples = monitor.samples;
    report.anomalies.extend(monitor.divergences.iter().copied().map(Anomaly::DigestDiverged));
    let verdict = check_kv(&history.kv, LINEARIZABILITY_STEPS_MAX);
    if verdict == Verdict::NotLinearizable {
        report.anomalies.push(Anomaly::NotLinearizable);
    }
    report.kv_verdict = Some(verdict);
}

fn bank_check(state: &hyperraft_state::StateMachine, record: &ClientRecord) -> Vec<bank::Violation> {
    let transfers: Vec<_> = state.ledger().transfers().copied().collect();
    bank::check(state.ledger().accounts(), &transfers, record)
}
