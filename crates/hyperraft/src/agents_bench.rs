//! `hyperraft bench --workload agents`: agent sessions and task dispatch.
//!
//! Starts an embedded cluster of `--nodes` nodes, each serving its gRPC
//! API on loopback, and connects `--agents` agents to the leader, all in
//! this process: each agent is its own `Agents.Session` stream, and the
//! streams share `ceil(agents / STREAMS_PER_CONNECTION)` HTTP/2
//! connections, so the file-descriptor limit is not what bounds them (the
//! server takes at most 128 streams per connection by default). Agents
//! register with the node's default lease TTL and heartbeat as the node
//! asks, as a real agent does, and answer each assignment at once with its
//! payload as output. Then `--clients` submitters each submit a task of
//! `--redundancy` copies through the SDK (`SubmitTask`) and wait for it
//! (`WaitTask`), one at a time (or on a fixed schedule with `--rate`).
//!
//! Measured: agents connected, the time to connect them, the process's
//! RSS before and with all of them connected (the agents' client side and
//! every node share the process), tasks completed per second,
//! submit→result latency (from the submission's start, or its scheduled
//! time with `--rate`, to `WaitTask` answering it finished), and three
//! times per assignment, each from the leader's clock (stamped in the
//! `Assignment`) to the agent's receipt (the same machine's clock):
//!
//! - dispatch overhead: submission applied on the leader → assignment
//!   received, less the Raft commit of the dispatch round that assigned it
//!   (the node's own work: waking, planning, delivering);
//! - delivery: dispatch round applied → assignment received;
//! - applied → received: the same with that round's commit included.
//!
//! BENCHMARKS.md ("Agents") states these definitions with the numbers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context};
use hdrhistogram::Histogram;
use hyperraft_api::{ApiConfig, ApiServer};
use hyperraft_client::proto::agents_client::AgentsClient;
use hyperraft_client::proto::{
    self, agent_to_node, node_to_agent, task_result, AgentToNode, SubmitTaskRequest, TaskStatus,
};
use hyperraft_client::{Client, ClientConfig};
use hyperraft_node::{AgentsConfig, EmbeddedCluster, Node, RaftTuning};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_stream::wrappers::ReceiverStream;

use crate::bench::{BenchArgs, Fsync};

/// Session streams per HTTP/2 connection: under the server's default of 128.
const STREAMS_PER_CONNECTION: usize = 100;
/// Agents registering at once; each registration is two Raft writes.
const REGISTERING_MAX: usize = 512;
/// Messages an agent queues to the node (heartbeats, results).
const AGENT_OUTBOUND: usize = 16;
/// Copies one agent runs at once.
const AGENT_MAX_CONCURRENT: u32 = 4;
const TASK_TYPE: &str = "bench";
/// How long the cluster may take to elect, to connect every agent, or to
/// finish one task.
const PATIENCE: Duration = Duration::from_secs(120);
/// Latencies above a minute are recorded as a minute.
const LATENCY_US_MAX: u64 = 60_000_000;
const AGENTS_MAX: usize = 100_000;

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_micros() as u64)
}

fn histogram() -> Mutex<Histogram<u64>> {
    Mutex::new(Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds"))
}

fn record(histogram: &Mutex<Histogram<u64>>, micros: u64) {
    histogram.lock().expect("no recorder panics holding the lock").saturating_record(micros.clamp(1, LATENCY_US_MAX));
}

/// What the agents and submitters count; latencies only while measuring.
struct Shared {
    measuring: AtomicBool,
    connected: AtomicU64,
    /// Sessions that failed or that the node closed before the run ended.
    agent_errors: AtomicU64,
    assignments: AtomicU64,
    results_refused: AtomicU64,
    completed: AtomicU64,
    /// Submissions or waits that failed, and tasks that did not succeed.
    task_errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    dispatch_overhead_us: Mutex<Histogram<u64>>,
    delivery_us: Mutex<Histogram<u64>>,
    applied_to_received_us: Mutex<Histogram<u64>>,
    submit_to_result_us: Mutex<Histogram<u64>>,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            measuring: AtomicBool::new(false),
            connected: AtomicU64::new(0),
            agent_errors: AtomicU64::new(0),
            assignments: AtomicU64::new(0),
            results_refused: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            task_errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
            dispatch_overhead_us: histogram(),
            delivery_us: histogram(),
            applied_to_received_us: histogram(),
            submit_to_result_us: histogram(),
        }
    }

    fn error(&self, counter: &AtomicU64, error: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.first_error.lock().expect("no recorder panics holding the lock").get_or_insert(error);
    }

    /// Records the three dispatch times of an assignment received at `received_us`.
    fn assignment(&self, assignment: &proto::Assignment, received_us: u64) {
        self.assignments.fetch_add(1, Ordering::Relaxed);
        if !self.measuring.load(Ordering::Relaxed) {
            return;
        }
        if assignment.assign_applied_unix_us != 0 {
            record(&self.delivery_us, received_us.saturating_sub(assignment.assign_applied_unix_us));
        }
        if assignment.task_applied_unix_us != 0 {
            let applied_to_received = received_us.saturating_sub(assignment.task_applied_unix_us);
            record(&self.applied_to_received_us, applied_to_received);
            record(&self.dispatch_overhead_us, applied_to_received.saturating_sub(assignment.assign_commit_us));
        }
    }
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    ensure!((1..=AGENTS_MAX).contains(&args.agents), "--agents must be in 1..={AGENTS_MAX}");
    ensure!((1..=7).contains(&args.redundancy), "--redundancy must be in 1..=7");
    ensure!(
        args.agents >= args.redundancy as usize,
        "--agents must be at least --redundancy: each copy runs on a distinct agent"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the runtime")?;
    let root = std::env::temp_dir().join(format!("hyperraft-agents-bench-{}", std::process::id()));
    let result = runtime.block_on(embedded(args, &root));
    std::fs::remove_dir_all(&root).ok();
    result
}

/// The nodes and their API servers, stopped in [`Cluster::shutdown`].
struct Cluster {
    nodes: Vec<Arc<Node>>,
    servers: Vec<ApiServer>,
    leader_address: String,
    addresses: Vec<String>,
}

impl Cluster {
    async fn start(args: &BenchArgs, root: &std::path::Path) -> anyhow::Result<Cluster> {
        let mut setup = EmbeddedCluster::new(root, args.nodes, RaftTuning::default(), args.apply_threads)?;
        if args.fsync == Fsync::Off {
            let configs: Vec<_> = setup.configs().values().cloned().collect();
            for config in configs {
                setup.set_config(hyperraft_node::NodeConfig { log_sync: false, ..config });
            }
        }
        let mut nodes = Vec::new();
        let mut listeners = Vec::new();
        let mut api_addresses = std::collections::BTreeMap::new();
        for (&id, config) in setup.configs() {
            nodes.push(Arc::new(Node::start(config.clone()).await?));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            api_addresses.insert(id, listener.local_addr()?.to_string());
            listeners.push((id, listener));
        }
        // The node's defaults, except room for more sessions than the default when asked.
        let agents = AgentsConfig {
            sessions_max: AgentsConfig::default().sessions_max.max(args.agents),
            ..AgentsConfig::default()
        };
        let api = ApiConfig { api_addresses: api_addresses.clone(), agents, ..ApiConfig::default() };
        let mut servers = Vec::new();
        for ((_, listener), node) in listeners.into_iter().zip(&nodes) {
            servers.push(hyperraft_api::serve_on(node.clone(), listener, api.clone())?);
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let leader = loop {
            let leaders: Vec<Option<u64>> = nodes.iter().map(|node| node.metrics().current_leader).collect();
            if let Some(Some(leader)) = leaders.first() {
                let leading = nodes.iter().any(|node| node.id() == *leader && node.metrics().state.is_leader());
                if leading && leaders.iter().all(|seen| *seen == Some(*leader)) {
                    break *leader;
                }
            }
            ensure!(tokio::time::Instant::now() < deadline, "no leader within {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let addresses = api_addresses.values().cloned().collect();
        Ok(Cluster { nodes, servers, leader_address: api_addresses[&leader].clone(), addresses })
    }

    async fn shutdown(self) -> anyhow::Result<()> {
        for server in self.servers {
            server.shutdown().await?;
        }
        for mut node in self.nodes {
            let deadline = tokio::time::Instant::now() + PATIENCE;
            let node = loop {
                match Arc::try_unwrap(node) {
                    Ok(node) => break node,
                    Err(shared) => node = shared,
                }
                ensure!(tokio::time::Instant::now() < deadline, "a node is still held after its API stopped");
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            node.shutdown().await?;
        }
        Ok(())
    }
}

/// The resident set of this process now, from `/proc/self/statm`.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages = statm.split_whitespace().nth(1).and_then(|pages| pages.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    pages * page
}

/// The sum of every series of `metric` in Prometheus text.
fn metric_total(exposition: &str, metric: &str) -> u64 {
    exposition
        .lines()
        .filter(|line| line.starts_with(metric) && line[metric.len()..].starts_with(['{', ' ']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn embedded(args: &BenchArgs, root: &std::path::Path) -> anyhow::Result<()> {
    // The session metrics of the nodes count into this process's recorder.
    let metrics = hyperraft_node::telemetry::install().ok();
    let render = move || metrics.as_ref().map(|handle| handle.render()).unwrap_or_default();
    let cluster = Cluster::start(args, root).await?;
    let result = drive(args, &cluster, render).await;
    cluster.shutdown().await?;
    let report = result?;
    if args.json {
        println!("{report}");
    } else {
        print_text(args, &report);
    }
    Ok(())
}

async fn drive(
    args: &BenchArgs,
    cluster: &Cluster,
    render_metrics: impl Fn() -> String,
) -> anyhow::Result<serde_json::Value> {
    let shared = Arc::new(Shared::new());
    // The submitters stop first and the agents only once every submitted
    // task has finished, so that no task loses its agents.
    let (stop_agents, agents_stopped) = watch::channel(false);
    let (stop_submitters, submitters_stopped) = watch::channel(false);
    let connections = args.agents.div_ceil(STREAMS_PER_CONNECTION);
    let mut channels = Vec::with_capacity(connections);
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.leader_address))?;
    for _ in 0..connections {
        channels.push(endpoint.connect().await.context("connect to the leader")?);
    }
    let rss_before = rss_bytes();
    let registering = Arc::new(Semaphore::new(REGISTERING_MAX));
    let connect_start = Instant::now();
    let mut agents = Vec::with_capacity(args.agents);
    for number in 0..args.agents {
        let channel = channels[number / STREAMS_PER_CONNECTION].clone();
        let (shared, stopped, registering) = (shared.clone(), agents_stopped.clone(), registering.clone());
        agents.push(tokio::spawn(async move {
            if let Err(error) = agent(channel, &shared, stopped.clone(), registering).await {
                // After the run the cluster shuts down under the agents: not an error.
                if !*stopped.borrow() {
                    shared.error(&shared.agent_errors, error);
                }
            }
        }));
    }
    let deadline = Instant::now() + PATIENCE;
    while shared.connected.load(Ordering::Relaxed) < args.agents as u64 {
        let failed = shared.agent_errors.load(Ordering::Relaxed);
        if failed > 0 {
            let error = shared.first_error.lock().expect("no recorder panics holding the lock").clone();
            anyhow::bail!("{failed} agents failed to connect; the first: {}", error.unwrap_or_default());
        }
        ensure!(
            Instant::now() < deadline,
            "only {} of {} agents connected within {PATIENCE:?}",
            shared.connected.load(Ordering::Relaxed),
            args.agents
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let connect_time = connect_start.elapsed();
    // Let the registrations' allocations settle before measuring memory.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_connected = rss_bytes();

    let mut config = ClientConfig::new(cluster.addresses.iter().cloned());
    config.retry.attempts = 30;
    let client = Client::connect(config).await.context("connect the submitters")?;
    let submitters: Vec<_> = (0..args.clients)
        .map(|number| {
            let (client, shared, stopped) = (client.clone(), shared.clone(), submitters_stopped.clone());
            let interval = args.rate.map(|rate| Duration::from_secs_f64(args.clients as f64 / rate));
            let redundancy = args.redundancy;
            tokio::spawn(async move { submitter(number, client, redundancy, interval, &shared, stopped).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    shared.measuring.store(true, Ordering::Relaxed);
    let (start, completed_before) = (Instant::now(), shared.completed.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let completed = shared.completed.load(Ordering::Relaxed) - completed_before;
    let still_connected = shared.connected.load(Ordering::Relaxed);
    let exposition = render_metrics();
    stop_submitters.send_replace(true);
    for submitter in submitters {
        submitter.await.context("a submitter panicked")?;
    }
    stop_agents.send_replace(true);
    for agent in agents {
        agent.abort();
    }

    let quantiles = |histogram: &Mutex<Histogram<u64>>| {
        let histogram = histogram.lock().expect("no recorder panics holding the lock");
        let ms = |micros: u64| (micros as f64 / 10.0).round() / 100.0;
        serde_json::json!({
            "count": histogram.len(),
            "p50": ms(histogram.value_at_quantile(0.5)),
            "p99": ms(histogram.value_at_quantile(0.99)),
            "max": ms(histogram.max()),
        })
    };
    // Over the whole run, warm-up included.
    let errors: u64 = [&shared.task_errors, &shared.agent_errors, &shared.results_refused]
        .iter()
        .map(|count| count.load(Ordering::Relaxed))
        .sum();
    let first_error = shared.first_error.lock().expect("no recorder panics holding the lock").clone();
    Ok(serde_json::json!({
        "workload": "agents",
        "nodes": args.nodes,
        "fsync": args.fsync == Fsync::On,
        "agents": args.agents,
        "agents_connected": still_connected,
        "connections": connections,
        "streams_per_connection_max": STREAMS_PER_CONNECTION,
        "agent_max_concurrent": AGENT_MAX_CONCURRENT,
        "connect_s": (connect_time.as_secs_f64() * 1000.0).round() / 1000.0,
        "rss_before_bytes": rss_before,
        "rss_connected_bytes": rss_connected,
        "rss_per_agent_bytes": rss_connected.saturating_sub(rss_before) / args.agents as u64,
        "clients": args.clients,
        "rate": args.rate,
        "redundancy": args.redundancy,
        "duration_s": (elapsed * 1000.0).round() / 1000.0,
        "warmup_s": args.warmup,
        "completed": completed,
        "tasks_per_s": (completed as f64 / elapsed.max(1e-9)).round(),
        "errors": errors,
        "first_error": first_error,
        "dispatch_overhead_ms": quantiles(&shared.dispatch_overhead_us),
        "delivery_ms": quantiles(&shared.delivery_us),
        "applied_to_received_ms": quantiles(&shared.applied_to_received_us),
        "submit_to_result_ms": quantiles(&shared.submit_to_result_us),
        "node_sessions_closed": metric_total(&exposition, "hyperraft_agent_sessions_closed_total"),
        "node_assignments_sent": metric_total(&exposition, "hyperraft_agent_assignments_sent_total"),
        "node_results_received": metric_total(&exposition, "hyperraft_agent_results_received_total"),
    }))
}

/// One agent: registers, heartbeats as the node asks, and answers every
/// assignment at once with its payload. Ends with `Err` if the session
/// fails or the node closes it.
async fn agent(
    channel: tonic::transport::Channel,
    shared: &Shared,
    mut stopped: watch::Receiver<bool>,
    registering: Arc<Semaphore>,
) -> Result<(), String> {
    let permit = registering.acquire_owned().await.map_err(|error| error.to_string())?;
    let (outbound, receiver) = mpsc::channel(AGENT_OUTBOUND);
    let message = |message| AgentToNode { message: Some(message) };
    let register = proto::Register {
        agent_type: TASK_TYPE.into(),
        max_concurrent: AGENT_MAX_CONCURRENT,
        ..proto::Register::default()
    };
    outbound.try_send(message(agent_to_node::Message::Register(register))).expect("an empty queue has room");
    let mut client = AgentsClient::new(channel);
    let mut inbound = client
        .session(ReceiverStream::new(receiver))
        .await
        .map_err(|status| format!("open a session: {status}"))?
        .into_inner();
    let period = match inbound.message().await.map_err(|status| format!("register: {status}"))? {
        Some(proto::NodeToAgent { message: Some(node_to_agent::Message::Registered(registered)) }) => {
            Duration::from_millis(registered.heartbeat_interval_ms.max(1))
        }
        other => return Err(format!("expected registered, got {other:?}")),
    };
    drop(permit);
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            // Only the wake-up matters: the guard it returns must not live on.
            () = async { drop(stopped.wait_for(|stopped| *stopped).await) } => return Ok(()),
            _ = heartbeat.tick() => {
                // A full queue holds messages that prove the agent alive already.
                let _ = outbound.try_send(message(agent_to_node::Message::Heartbeat(proto::Heartbeat {})));
            }
            next = inbound.message() => match next.map_err(|status| format!("session: {status}"))? {
                None => return Err("the node ended the session".into()),
                Some(reply) => match reply.message {
                    Some(node_to_agent::Message::Assignment(assignment)) => {
                        shared.assignment(&assignment, now_us());
                        let outcome = task_result::Outcome::Output(assignment.payload);
                        let result = proto::TaskResult { task_id: assignment.task_id, outcome: Some(outcome) };
                        outbound
                            .send(message(agent_to_node::Message::Result(result)))
                            .await
                            .map_err(|_| "the session's sender closed".to_string())?;
                    }
                    Some(node_to_agent::Message::ResultAck(ack)) if !ack.accepted => {
                        shared.error(&shared.results_refused, format!("result refused: {}", ack.error));
                    }
                    Some(node_to_agent::Message::Closing(closing)) => {
                        return Err(format!("the node closed the session: {}", closing.reason));
                    }
                    _ => {}
                },
            },
        }
    }
}

/// One submitter: submits a task, waits for it, and again, until stopped;
/// with `interval`, on a fixed schedule (latency counts from the scheduled time).
async fn submitter(
    number: usize,
    client: Client,
    redundancy: u32,
    interval: Option<Duration>,
    shared: &Shared,
    stopped: watch::Receiver<bool>,
) {
    let mut next = tokio::time::Instant::now();
    let mut sequence = 0u64;
    while !*stopped.borrow() {
        let started = match interval {
            Some(interval) => {
                tokio::time::sleep_until(next).await;
                let scheduled = next;
                next += interval;
                scheduled.into_std()
            }
            None => Instant::now(),
        };
        sequence += 1;
        let request = SubmitTaskRequest {
            task_type: TASK_TYPE.into(),
            payload: format!("{number}/{sequence}").into_bytes().into(),
            redundancy,
            ..SubmitTaskRequest::default()
        };
        let measuring = shared.measuring.load(Ordering::Relaxed);
        let task_id = match client.submit_task(request).await {
            Ok(response) => response.task_id,
            Err(error) => {
                shared.error(&shared.task_errors, format!("submit: {error}"));
                // The SDK retried already; pause rather than spin on a failing cluster.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        match client.wait_task(task_id, PATIENCE).await {
            Ok(task) if task.status() == TaskStatus::Succeeded => {
                shared.completed.fetch_add(1, Ordering::Relaxed);
                if measuring && shared.measuring.load(Ordering::Relaxed) {
                    record(&shared.submit_to_result_us, started.elapsed().as_micros() as u64);
                }
            }
            Ok(task) => shared.error(&shared.task_errors, format!("task {task_id} ended {:?}", task.status())),
            Err(error) => shared.error(&shared.task_errors, format!("wait for task {task_id}: {error}")),
        }
    }
}

fn print_text(args: &BenchArgs, report: &serde_json::Value) {
    let mib = |bytes: &serde_json::Value| bytes.as_u64().unwrap_or(0) as f64 / (1024.0 * 1024.0);
    let line = |name: &str, key: &str| {
        let times = &report[key];
        println!(
            "  {name:<22} p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  ({} samples)",
            times["p50"].as_f64().unwrap_or(0.0),
            times["p99"].as_f64().unwrap_or(0.0),
            times["max"].as_f64().unwrap_or(0.0),
            times["count"]
        );
    };
    println!("hyperraft bench: agents, embedded {}-node cluster, over gRPC", args.nodes);
    println!(
        "  agents                 {} connected of {} over {} HTTP/2 connections, in {:.2} s",
        report["agents_connected"],
        args.agents,
        report["connections"],
        report["connect_s"].as_f64().unwrap_or(0.0)
    );
    println!(
        "  memory                 RSS {:.0} MiB before, {:.0} MiB connected ({} bytes per agent, node and agent sides)",
        mib(&report["rss_before_bytes"]),
        mib(&report["rss_connected_bytes"]),
        report["rss_per_agent_bytes"]
    );
    let loop_kind = args.rate.map_or("closed loop".to_string(), |rate| format!("open loop at {rate} tasks/s"));
    println!(
        "  load                   {} submitters, k={}, {loop_kind}, {:.1} s after {} s warm-up",
        args.clients,
        args.redundancy,
        report["duration_s"].as_f64().unwrap_or(0.0),
        args.warmup
    );
    println!(
        "  completed              {} tasks = {} tasks/s",
        report["completed"],
        report["tasks_per_s"].as_f64().unwrap_or(0.0)
    );
    line("dispatch overhead", "dispatch_overhead_ms");
    line("delivery", "delivery_ms");
    line("applied → received", "applied_to_received_ms");
    line("submit → result", "submit_to_result_ms");
    println!("  errors                 {} (first: {})", report["errors"], report["first_error"]);
}
