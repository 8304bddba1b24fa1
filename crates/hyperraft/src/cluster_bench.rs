//! `hyperraft bench --cluster`: transfers through an embedded cluster.
//!
//! Starts `--nodes` nodes in this process on loopback — real QUIC with
//! mutual TLS between them, real fsync'd logs in a temporary folder —
//! creates the accounts, then runs `--clients` writers against the leader
//! for `--duration` seconds, each sending `--batch` transfers per request.
//! Without `--rate` every writer sends its next request when the last one
//! is answered (closed loop, the maximum). With `--rate R` the writers
//! together send R requests per second on a fixed schedule (open loop), and
//! latency counts from the scheduled send time, so queueing shows.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use hdrhistogram::Histogram;
use hyperraft_load::TransferGenerator;
use hyperraft_node::{Batcher, EmbeddedCluster, RaftTuning};
use hyperraft_raft::BatchResponse;

use crate::engine_bench::BenchArgs;

/// When one writer sends: from `first` until `deadline`, every `interval`
/// (open loop) or as soon as the previous request is answered (closed loop).
struct Schedule {
    first: Instant,
    deadline: Instant,
    interval: Option<Duration>,
}

/// Outcome of one writer.
struct WriterReport {
    latency_us: Histogram<u64>,
    committed: u64,
    failed_items: u64,
    failed_requests: u64,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    ensure!(matches!(args.nodes, 1 | 3 | 5), "--nodes must be 1, 3 or 5");
    ensure!((1..=4096).contains(&args.clients), "--clients must be in 1..=4096");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the runtime")?;
    let root = std::env::temp_dir().join(format!("hyperraft-bench-{}", std::process::id()));
    let result = runtime.block_on(drive(args, &root));
    std::fs::remove_dir_all(&root).ok();
    result
}

async fn drive(args: &BenchArgs, root: &std::path::Path) -> anyhow::Result<()> {
    let mut cluster = EmbeddedCluster::new(root, args.nodes, RaftTuning::default(), args.apply_threads)?;
    cluster.start_all().await?;
    let patience = Duration::from_secs(30);
    let leader = cluster.leader(patience).await?;
    let mut frames = Vec::new();
    hyperraft_load::account_frames(args.accounts, 8192, &mut frames);
    for frame in &frames {
        cluster.write(frame, patience).await.context("create the accounts")?;
    }
    let before = cluster.node(leader).batcher_stats();
    let started = Instant::now();
    let duration = Duration::from_secs_f64(args.duration);
    let mut writers = tokio::task::JoinSet::new();
    for client in 0..args.clients {
        let writer = cluster.node(leader).writer();
        let generator = TransferGenerator::new(args.accounts, args.skew, args.seed + client as u64)
            .with_first_id(((client as u128) << 48) + 1);
        let interval = args.rate.map(|rate| Duration::from_secs_f64(args.clients as f64 / rate));
        // Open-loop writers start staggered over one interval, so together they send evenly.
        let offset = interval.map_or(Duration::ZERO, |interval| interval.mul_f64(client as f64 / args.clients as f64));
        let schedule = Schedule { first: started + offset, deadline: started + duration, interval };
        writers.spawn(write_loop(writer, generator, args.batch(), schedule));
    }
    let mut total = WriterReport { latency_us: histogram(), committed: 0, failed_items: 0, failed_requests: 0 };
    while let Some(report) = writers.join_next().await {
        let report = report.context("a writer panicked")?;
        total.latency_us.add(&report.latency_us).expect("same histogram bounds");
        total.committed += report.committed;
        total.failed_items += report.failed_items;
        total.failed_requests += report.failed_requests;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = cluster.node(leader).batcher_stats();
    cluster.converged(patience).await?;
    cluster.shutdown().await?;
    print_report(args, &total, elapsed, after.proposals - before.proposals, after.requests - before.requests);
    Ok(())
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

async fn write_loop(
    writer: Batcher,
    mut generator: TransferGenerator,
    batch: usize,
    schedule: Schedule,
) -> WriterReport {
    let Schedule { first, deadline, interval } = schedule;
    let mut report = WriterReport { latency_us: histogram(), committed: 0, failed_items: 0, failed_requests: 0 };
    let mut frame = Vec::new();
    let mut scheduled = first;
    while Instant::now() < deadline {
        if interval.is_some() {
            if scheduled >= deadline {
                break;
            }
            tokio::time::sleep_until(scheduled.into()).await;
        } else {
            scheduled = Instant::now();
        }
        generator.next_frame(batch, &mut frame);
        match writer.submit(&frame).await {
            Ok(BatchResponse::Codes(codes)) => {
                let failed = codes.iter().filter(|code| **code != 0).count() as u64;
                report.failed_items += failed;
                report.committed += codes.len() as u64 - failed;
            }
            Ok(_) | Err(_) => report.failed_requests += 1,
        }
        let latency = scheduled.elapsed().as_micros() as u64;
        report.latency_us.saturating_record(latency.max(1));
        if let Some(interval) = interval {
            scheduled += interval;
        }
    }
    report
}

fn print_report(args: &BenchArgs, report: &WriterReport, elapsed: f64, entries: u64, requests: u64) {
    let latency = &report.latency_us;
    let ms = |quantile: f64| latency.value_at_quantile(quantile) as f64 / 1000.0;
    let tps = report.committed as f64 / elapsed;
    let items_per_entry = report.committed as f64 / entries.max(1) as f64;
    let requests_per_entry = requests as f64 / entries.max(1) as f64;
    if args.json {
        println!(
            "{{\"mode\":\"cluster\",\"nodes\":{},\"clients\":{},\"batch\":{},\"rate\":{},\"duration_s\":{elapsed:.3},\"committed\":{},\"tps\":{tps:.0},\"entries_per_s\":{:.0},\"transfers_per_entry\":{items_per_entry:.1},\"requests_per_entry\":{requests_per_entry:.2},\"errors\":{{\"items\":{},\"requests\":{}}},\"latency_ms\":{{\"p50\":{:.3},\"p90\":{:.3},\"p99\":{:.3},\"p999\":{:.3},\"max\":{:.3}}}}}",
            args.nodes, args.clients, args.batch(), args.rate.map_or("null".to_string(), |rate| rate.to_string()),
            report.committed, entries as f64 / elapsed, report.failed_items, report.failed_requests,
            ms(0.5), ms(0.9), ms(0.99), ms(0.999), latency.max() as f64 / 1000.0
        );
        return;
    }
    println!(
        "cluster bench: {} nodes, {} clients × {} transfers/request, {}",
        args.nodes,
        args.clients,
        args.batch(),
        args.rate.map_or("closed loop".to_string(), |rate| format!("open loop at {rate} requests/s"))
    );
    println!("  committed      {} transfers in {elapsed:.2} s = {tps:.0} transfers/s", report.committed);
    println!("  raft entries   {entries} = {:.0}/s, {items_per_entry:.1} transfers and {requests_per_entry:.2} requests per entry", entries as f64 / elapsed);
    println!(
        "  latency        p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        latency.max() as f64 / 1000.0
    );
    println!("  errors         {} failed transfers, {} failed requests", report.failed_items, report.failed_requests);
}
