//! A deterministic simulator of a hyperraft cluster.
//!
//! It runs 3 or 5 replicas of the real replication code in one process —
//! openraft, our segmented log (`hyperraft_raft::log::LogStore`, real files
//! in a temporary directory) and our state machine
//! (`hyperraft_raft::state_machine::StateMachineStore`) — and replaces only
//! what is outside a replica: the network, the clock, and the clients. One
//! seed decides everything the simulator chooses (cluster size, message
//! delay, loss, duplication and reordering, partitions, crashes with torn
//! log tails, clock jumps, election timers, client operations), so a failing
//! seed replays. At the end the checkers of `hyperraft_check` judge the run:
//! the bank invariant on every replica, equal state digests at equal applied
//! indexes, linearizability of the key/value history, and liveness once the
//! faults stop.
//!
//! # Design: our own simulated network over paused tokio time
//!
//! openraft is generic over its network (`RaftNetworkFactory`), so the
//! simulated network is one small trait implementation ([`network`]) that
//! calls the target's `Raft` directly after seeded delays; nothing else in
//! the node has to change. Time is tokio's, paused: a current-thread runtime
//! built with `start_paused` jumps the clock to the next timer whenever every
//! task waits, so minutes of election timeouts and heartbeats pass in
//! seconds, and one thread polls tasks in a repeatable order.
//!
//! turmoil simulates hosts and sockets (TCP/UDP) and would need our QUIC
//! transport underneath, which we do not want to simulate byte by byte;
//! madsim replaces tokio and std at build time (`--cfg madsim`), which would
//! rebuild the workspace against a different runtime and cannot reach the
//! OS thread that our log writer runs on. Both buy determinism we get
//! mostly for free here; what they would add (simulated disks, a patched
//! `rand`) is listed below as the remaining non-determinism.
//!
//! # What is not deterministic, and how it is contained
//!
//! - openraft 0.9 draws its election timeout from `rand::thread_rng`. Its
//!   elections are switched off (`enable_elect: false`) and the simulator
//!   runs seeded election timers instead ([`elections`]); the timeout range
//!   openraft still draws from (for the leader lease) is one value wide.
//! - The log's writer is an OS thread doing real fsyncs. Every log write is
//!   waited for on the runtime thread ([`storage`]), so disk speed never
//!   shows in virtual time.
//! - tokio's `select!` without `biased` picks a branch at random (seeded per
//!   runtime, settable only with `--cfg tokio_unstable`); openraft's main
//!   loop is biased, its replication backoff is not. Runs of the same seed
//!   are compared by the digest of their event trace (`--twice`); see
//!   ARCHITECTURE.md ("Simulator") for the measured rate.

pub mod cluster;
pub mod config;
pub mod elections;
pub mod faults;
pub mod history;
pub mod monitor;
pub mod network;
pub mod registry;
pub mod report;
mod run;
pub mod storage;
pub mod trace;
pub mod workload;

pub use config::{Sabotage, SimConfig};
pub use faults::{Cut, Fault, FaultPlan, NetworkProfile};
pub use report::{Anomaly, Report};
pub use run::run;
