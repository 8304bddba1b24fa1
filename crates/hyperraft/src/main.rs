//! `hyperraft`: the node and command-line tool.

mod engine_bench;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A replicated transaction engine and coordination service.
#[derive(Parser)]
#[command(name = "hyperraft", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure throughput. This build measures the apply engine in-process
    /// (`--engine-only`): frame decode + deterministic apply, no network or disk.
    Bench(engine_bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => engine_bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
