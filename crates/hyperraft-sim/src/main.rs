//! `hyperraft-sim`: runs simulated clusters, one per seed, and reports
//! every seed whose run breaks a guarantee, with what it takes to replay it.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use hyperraft_sim::{run, SimConfig};

/// Deterministic cluster simulation: real openraft, log and state machine
/// under a seeded network, clock and fault schedule.
#[derive(Parser)]
#[command(name = "hyperraft-sim")]
struct Arguments {
    /// Run this one seed (prints its fault schedule).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run this many seeds, starting at `--first`.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// The first seed of `--seeds`.
    #[arg(long, default_value_t = 1)]
    first: u64,
    /// Voters (3 or 5); by default the seed picks.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=7))]
    nodes: Option<u64>,
    /// Virtual seconds of client load under faults.
    #[arg(long, default_value_t = 20)]
    phase_secs: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 3)]
    clients: usize,
    /// No fault schedule and no message faults (delays only).
    #[arg(long)]
    no_faults: bool,
    /// Run every seed twice and compare the trace digests.
    #[arg(long)]
    twice: bool,
    /// Print every event of the trace.
    #[arg(long)]
    trace: bool,
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    let config = SimConfig {
        nodes: arguments.nodes.map(|nodes| nodes as usize),
        fault_phase: Duration::from_secs(arguments.phase_secs),
        clients: arguments.clients,
        faults: !arguments.no_faults,
        keep_trace: arguments.trace,
        ..SimConfig::default()
    };
    let seeds: Vec<u64> = match arguments.seed {
        Some(seed) => vec![seed],
        None => (arguments.first..arguments.first.saturating_add(arguments.seeds)).collect(),
    };
    let (mut failed, mut diverged) = (Vec::new(), Vec::new());
    for seed in seeds.iter().copied() {
        let started = std::time::Instant::now();
        let report = run(seed, &config);
        print!("{report}");
        if arguments.seed.is_some() && report.passed() {
            print!("  fault schedule (offsets into the fault phase):\n{}", report.plan);
        }
        for line in &report.trace_lines {
            println!("    {line}");
        }
        if arguments.twice {
            let again = run(seed, &config);
            let same = (again.trace_digest, again.trace_events) == (report.trace_digest, report.trace_events);
            println!(
                "  second run: trace {:016x} ({} events): {}",
                again.trace_digest,
                again.trace_events,
                if same { "identical" } else { "DIFFERENT" }
            );
            if !same {
                diverged.push(seed);
            }
        }
        println!("  ({:.1}s wall)", started.elapsed().as_secs_f64());
        if !report.passed() {
            failed.push(seed);
        }
    }
    println!("{} seeds, {} failed {failed:?}", seeds.len(), failed.len());
    if arguments.twice {
        println!("{} of {} seeds replayed with a different trace {diverged:?}", diverged.len(), seeds.len());
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
