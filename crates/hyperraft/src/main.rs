//! `hyperraft`: the node and command-line tool.

mod agents_bench;
mod bench;
mod bench_commit;
mod bench_etcd;
mod bench_guard;
mod bench_load;
mod bench_report;
mod bus_bench;
mod cert;
mod chaos;
mod cluster_bench;
mod ctl;
mod engine_bench;
mod serve;
mod token;

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
    /// Measure throughput and latency: an embedded 3-node cluster over QUIC
    /// with fsync'd logs (the default), an external cluster (`--target`), or
    /// the apply engine alone (`--engine-only`).
    Bench(bench::BenchArgs),
    /// Create the cluster CA and node certificates for mutual TLS.
    Cert(cert::CertArgs),
    /// Fault-injection run of real processes: a loopback cluster under a
    /// recorded workload while nodes are killed, paused and partitioned,
    /// then the bank, linearizability and liveness checks.
    Chaos(chaos::ChaosArgs),
    /// Talk to a running cluster through its gRPC API: status, keys,
    /// leases, accounts, transfers, membership.
    Ctl(ctl::CtlArgs),
    /// Run a node until SIGTERM or SIGINT.
    Serve(serve::ServeArgs),
    /// Bearer tokens for the gRPC API: generate one, or hash one for the
    /// nodes' configuration.
    Token(token::TokenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The benchmark's embedded nodes would otherwise interleave their
    // start-up chatter (elections included) with its progress line.
    let default_filter = match cli.command {
        Command::Bench(_) => "warn,openraft=off",
        _ => "warn,hyperraft=info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Bench(args) => bench::run(&args),
        Command::Cert(args) => cert::run(&args),
        Command::Chaos(args) => chaos::run(&args),
        Command::Ctl(args) => ctl::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Token(args) => token::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
