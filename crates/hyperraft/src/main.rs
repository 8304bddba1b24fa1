//! `hyperraft`: the node and command-line tool.

mod cert;
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
    /// Measure throughput: the apply engine alone (`--engine-only`) or an
    /// embedded cluster over QUIC with fsync'd logs (`--cluster`).
    Bench(engine_bench::BenchArgs),
    /// Create the cluster CA and node certificates for mutual TLS.
    Cert(cert::CertArgs),
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,hyperraft=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Bench(args) => engine_bench::run(&args),
        Command::Cert(args) => cert::run(&args),
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
