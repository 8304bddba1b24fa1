//! `hyperraft bench --workload bus`: the message bus over gRPC.
//!
//! Starts one embedded node with its API on loopback (or uses the first
//! `--target`), then `--clients` publishers and `--subscribers`
//! subscribers, all in this process and all through the SDK over gRPC, on
//! one topic. Each publisher streams batches of `--batch` messages of
//! `--message-bytes` bytes as fast as the node takes them; each subscriber
//! counts what it receives. The report gives messages published and
//! delivered per second (every subscriber's copy counts), the mean
//! delivered batch, and the messages dropped for subscribers that fell
//! behind (the topic's default drop-oldest policy).
//!
//! With `--durable` the embedded cluster has `--nodes` nodes and, after the
//! ephemeral topic, the same load runs against a durable topic (every
//! publish appended through Raft and acknowledged after commit); both are
//! reported, with their ratio, so the baseline is measured in the same run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hyperraft_client::{Client, ClientConfig};
use hyperraft_node::{EmbeddedCluster, Node, RaftTuning};

use crate::bench::BenchArgs;

const TOPIC: &str = "bench";
const DURABLE_TOPIC: &str = "bench-durable";
/// Messages per delivered batch a subscriber asks for.
const DELIVERY_BATCH: u32 = 8192;
/// How long a delivered batch may wait to fill.
const DELIVERY_WINDOW: Duration = Duration::from_millis(1);
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Counts {
    published: AtomicU64,
    delivered: AtomicU64,
    batches: AtomicU64,
    /// Sum of each subscriber's latest drop counter.
    dropped: AtomicU64,
}

impl Counts {
    fn read(&self) -> [u64; 4] {
        [&self.published, &self.delivered, &self.batches, &self.dropped].map(|count| count.load(Ordering::Relaxed))
    }
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=1 << 20).contains(&args.message_bytes), "--message-bytes must be in 1..=1048576");
    anyhow::ensure!((1..=1024).contains(&args.subscribers), "--subscribers must be in 1..=1024");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the runtime")?;
    runtime.block_on(async {
        if !args.target.is_empty() {
            return drive_all(args, &args.target[0]).await;
        }
        let root = tempfile_root();
        let result = embedded(args, &root).await;
        std::fs::remove_dir_all(&root).ok();
        result
    })
}

fn tempfile_root() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hyperraft-bus-bench-{}", std::process::id()))
}

async fn embedded(args: &BenchArgs, root: &std::path::Path) -> anyhow::Result<()> {
    let count = if args.durable { args.nodes } else { 1 };
    // Every node and every client share this process: on a loaded machine
    // a saturated runtime can delay heartbeats past the default election
    // timeout, and a change of leader would end the durable publishers.
    let tuning =
        RaftTuning { election_timeout_min_ms: 5_000, election_timeout_max_ms: 10_000, ..RaftTuning::default() };
    let setup = EmbeddedCluster::new(root, count, tuning, 1)?;
    let mut nodes = Vec::new();
    for config in setup.configs().values() {
        nodes.push(Arc::new(Node::start(config.clone()).await?));
    }
    let leader = hyperraft_node::wait_for_leader(&nodes[0], PATIENCE).await.context("no leader")?;
    let node = nodes.iter().find(|node| node.id() == leader).context("the leader is one of the nodes")?.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let server = hyperraft_api::serve_on(node.clone(), listener, hyperraft_api::ApiConfig::default())?;
    let result = drive_all(args, &address).await;
    server.shutdown().await?;
    drop(node);
    for node in nodes {
        stop(node).await?;
    }
    result
}

async fn stop(node: Arc<Node>) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut node = node;
    let node = loop {
        match Arc::try_unwrap(node) {
            Ok(node) => break node,
            Err(shared) => node = shared,
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the node is still held after the API stopped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    node.shutdown().await?;
    Ok(())
}

/// The ephemeral run, then with `--durable` the durable one and the ratio.
async fn drive_all(args: &BenchArgs, address: &str) -> anyhow::Result<()> {
    // A publisher is one call for the whole run, so the call's deadline
    // must outlast the run and the drain of its last durable commits.
    let mut config = ClientConfig::new([address.to_string()]);
    config.request_timeout = Duration::from_secs_f64(args.warmup + args.duration) + PATIENCE;
    let client = Client::connect(config).await.with_context(|| format!("connect to {address}"))?;
    let bus = client.bus(None)?;
    let ephemeral = drive(args, &bus, TOPIC).await?;
    if !args.durable {
        return Ok(());
    }
    bus.configure_durable(DURABLE_TOPIC, 0, 0).await.context("make the topic durable (the address must lead)")?;
    let durable = drive(args, &bus, DURABLE_TOPIC).await?;
    let ratio = durable / ephemeral.max(f64::MIN_POSITIVE);
    if args.json {
        println!("{}", serde_json::json!({ "workload": "bus", "durable_over_ephemeral_published": ratio }));
    } else {
        println!("  durable / ephemeral published: {ratio:.3}");
    }
    Ok(())
}

/// One measured run on `topic`; answers the messages published per second.
async fn drive(args: &BenchArgs, bus: &hyperraft_client::BusNode, topic: &'static str) -> anyhow::Result<f64> {
    let address = bus.address().to_string();
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut subscribers = Vec::new();
    for _ in 0..args.subscribers {
        let mut subscription = bus.subscribe(topic, DELIVERY_BATCH, DELIVERY_WINDOW).await?;
        let (counts, stop) = (counts.clone(), stop.clone());
        subscribers.push(tokio::spawn(async move {
            let mut dropped_seen = 0;
            while !stop.load(Ordering::Relaxed) {
                let Ok(Some(response)) = subscription.next().await else { break };
                let messages: usize = response.runs.iter().map(|run| run.payloads.len()).sum();
                counts.delivered.fetch_add(messages as u64, Ordering::Relaxed);
                counts.batches.fetch_add(1, Ordering::Relaxed);
                counts.dropped.fetch_add(response.dropped - dropped_seen, Ordering::Relaxed);
                dropped_seen = response.dropped;
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while bus.topics(topic).await?.first().map_or(0, |info| info.subscribers as usize) < args.subscribers
        && topic == TOPIC
    {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the subscriptions did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let payloads: Vec<Bytes> = (0..args.batch()).map(|_| Bytes::from(vec![7u8; args.message_bytes])).collect();
    let mut publishers = Vec::new();
    for number in 0..args.clients {
        let mut publisher = bus.publisher(&format!("publisher-{number}"));
        let (counts, stop, payloads) = (counts.clone(), stop.clone(), payloads.clone());
        publishers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if publisher.publish(topic, payloads.clone()).await.is_err() {
                    break;
                }
                counts.published.fetch_add(payloads.len() as u64, Ordering::Relaxed);
            }
            publisher.finish().await
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let (start, before) = (Instant::now(), counts.read());
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let (elapsed, after) = (start.elapsed().as_secs_f64(), counts.read());
    stop.store(true, Ordering::Relaxed);
    for publisher in publishers {
        publisher.await?.context("a publisher failed")?;
    }
    for subscriber in subscribers {
        subscriber.abort();
    }
    let [published, delivered, batches, dropped] = [0, 1, 2, 3].map(|index| after[index] - before[index]);
    let batch_mean = if batches == 0 { 0.0 } else { delivered as f64 / batches as f64 };
    let report = serde_json::json!({
        "workload": "bus",
        "topic": topic,
        "durable": topic == DURABLE_TOPIC,
        "publishers": args.clients,
        "subscribers": args.subscribers,
        "message_bytes": args.message_bytes,
        "publish_batch": args.batch(),
        "seconds": elapsed,
        "published_per_second": published as f64 / elapsed,
        "delivered_per_second": delivered as f64 / elapsed,
        "delivered_batch_mean": batch_mean,
        "dropped": dropped,
    });
    if args.json {
        println!("{report}");
    } else {
        let kind = if topic == DURABLE_TOPIC { "durable topic (through Raft)" } else { "ephemeral topic" };
        println!("hyperraft bench: bus, {kind}, node on {address}, over gRPC");
        println!(
            "  {} publishers × batches of {} messages of {} bytes → {} subscribers, {:.1} s measured",
            args.clients,
            args.batch(),
            args.message_bytes,
            args.subscribers,
            elapsed
        );
        println!("  published   {:>12.0} messages/s", published as f64 / elapsed);
        println!("  delivered   {:>12.0} messages/s (every subscriber's copy)", delivered as f64 / elapsed);
        println!("  batch       {batch_mean:>12.1} messages per delivered batch (mean)");
        println!("  dropped     {dropped:>12} messages (drop-oldest, subscribers behind)");
    }
    Ok(published as f64 / elapsed)
}
