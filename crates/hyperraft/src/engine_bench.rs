//! `hyperraft bench --engine-only`: the apply engine measured in-process.
//!
//! Frames are generated outside the timed region; the clock covers exactly
//! what a replica does per committed batch: validate the frame (checksums
//! included) and apply it. Each thread count runs on a fresh state with the
//! same seed, so the runs differ only in parallelism and the first is the
//! baseline of the ratio.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use hyperraft_load::{PutGenerator, TransferGenerator};
use hyperraft_state::kv::KvResponse;
use hyperraft_state::ledger::{LedgerConfig, ParallelTuning};
use hyperraft_state::{BatchOutput, StateConfig, StateMachine};
use hyperraft_wire::{Frame, Limits};

use crate::bench::{BenchArgs, Workload};

/// The frame source of a run.
enum Generator {
    Transfers(TransferGenerator),
    Puts(PutGenerator),
}

impl Generator {
    fn new(args: &BenchArgs) -> Generator {
        match args.workload {
            Workload::Transfers => Generator::Transfers(TransferGenerator::new(args.accounts, args.skew, args.seed)),
            Workload::KvPut | Workload::KvMixed => {
                Generator::Puts(PutGenerator::new(args.accounts, args.skew, 64, args.seed))
            }
            Workload::Bus | Workload::Agents => {
                unreachable!("`bench::run` sends the bus and agents workloads to their own modules")
            }
        }
    }

    fn next_frame(&mut self, batch: usize, frame: &mut Vec<u8>) {
        match self {
            Generator::Transfers(generator) => generator.next_frame(batch, frame),
            Generator::Puts(generator) => generator.next_frame(batch, frame),
        }
    }
}

struct Report {
    threads: usize,
    applied: u64,
    failed: u64,
    applying: Duration,
    batch_micros: Vec<f64>,
}

impl Report {
    fn per_second(&self) -> f64 {
        self.applied as f64 / self.applying.as_secs_f64()
    }

    fn batch_percentile(&self, percentile: f64) -> f64 {
        let index = ((self.batch_micros.len() - 1) as f64 * percentile).round() as usize;
        self.batch_micros[index]
    }
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.workload == Workload::KvMixed {
        bail!("--engine-only runs the transfers and kv-put workloads");
    }
    ensure!(!args.threads.is_empty(), "--threads needs at least one count");
    let mut reports = Vec::new();
    for &threads in &args.threads {
        let report = run_one(args, threads).with_context(|| format!("run with {threads} apply threads"))?;
        print_report(args, &report, reports.first());
        reports.push(report);
    }
    Ok(())
}

fn run_one(args: &BenchArgs, threads: NonZeroUsize) -> anyhow::Result<Report> {
    let duration = Duration::from_secs_f64(args.duration);
    let config = StateConfig {
        ledger: LedgerConfig {
            accounts_max: u32::try_from(args.accounts).context("--accounts must fit in u32")?,
            transfers_max: hyperraft_state::ledger::TRANSFERS_MAX_LIMIT,
            parallel: ParallelTuning {
                batch_min: args.parallel_batch_min.unwrap_or(ParallelTuning::default().batch_min),
                level_width_min: args.level_width_min.unwrap_or(ParallelTuning::default().level_width_min),
            },
        },
        apply_threads: threads,
        ..StateConfig::default()
    };
    let mut state = StateMachine::new(config)?;
    let mut output = BatchOutput::default();
    let mut timestamp = 1u64;
    if let Workload::Transfers = args.workload {
        let mut frames = Vec::new();
        hyperraft_load::account_frames(args.accounts, 8192, &mut frames);
        for frame in &frames {
            apply(&mut state, frame, &mut timestamp, &mut output)?;
        }
    }
    let mut generator = Generator::new(args);
    let mut report =
        Report { threads: threads.get(), applied: 0, failed: 0, applying: Duration::ZERO, batch_micros: Vec::new() };
    let mut frame = Vec::new();
    while report.applying < duration {
        generator.next_frame(args.batch(), &mut frame);
        let started = Instant::now();
        apply(&mut state, &frame, &mut timestamp, &mut output)?;
        let elapsed = started.elapsed();
        report.applying += elapsed;
        report.batch_micros.push(elapsed.as_secs_f64() * 1e6);
        let failed = count_failed(args.workload, &output);
        report.failed += failed;
        report.applied += args.batch() as u64 - failed;
    }
    let (debits, credits) = state.ledger().totals();
    ensure!(debits == credits, "ledger out of balance after the run: {debits} != {credits}");
    report.batch_micros.sort_by(f64::total_cmp);
    Ok(report)
}

fn apply(state: &mut StateMachine, frame: &[u8], timestamp: &mut u64, output: &mut BatchOutput) -> anyhow::Result<()> {
    let frame = Frame::decode(frame, &Limits::default())?;
    state.apply(&frame, *timestamp, output)?;
    *timestamp += u64::from(frame.count());
    Ok(())
}

fn count_failed(workload: Workload, output: &BatchOutput) -> u64 {
    match workload {
        Workload::Transfers => output.transfer_results.iter().filter(|result| !result.is_ok()).count() as u64,
        Workload::KvPut | Workload::KvMixed => {
            output.kv.iter().filter(|response| matches!(response, KvResponse::Error(_))).count() as u64
        }
        Workload::Bus | Workload::Agents => 0,
    }
}

fn print_report(args: &BenchArgs, report: &Report, baseline: Option<&Report>) {
    let ratio = baseline.map_or(1.0, |baseline| report.per_second() / baseline.per_second());
    let (p50, p99) = (report.batch_percentile(0.50), report.batch_percentile(0.99));
    if args.json {
        println!(
            "{{\"mode\":\"engine\",\"workload\":\"{}\",\"skew\":\"{:?}\",\"accounts\":{},\"batch\":{},\"threads\":{},\"applied\":{},\"failed\":{},\"seconds\":{:.3},\"per_second\":{:.0},\"batch_us_p50\":{:.1},\"batch_us_p99\":{:.1},\"ratio_to_first\":{:.3}}}",
            args.workload.name(), args.skew, args.accounts, args.batch(), report.threads, report.applied, report.failed,
            report.applying.as_secs_f64(), report.per_second(), p50, p99, ratio
        );
        return;
    }
    if baseline.is_none() {
        println!(
            "engine bench: {:?}, {:?} over {} accounts/keys, {} per batch",
            args.workload,
            args.skew,
            args.accounts,
            args.batch()
        );
        println!(
            "{:>8} {:>14} {:>10} {:>14} {:>12} {:>12} {:>8}",
            "threads", "applied", "failed", "per second", "batch p50", "batch p99", "ratio"
        );
    }
    println!(
        "{:>8} {:>14} {:>10} {:>14.0} {:>10.0}us {:>10.0}us {:>7.2}x",
        report.threads,
        report.applied,
        report.failed,
        report.per_second(),
        p50,
        p99,
        ratio
    );
}
