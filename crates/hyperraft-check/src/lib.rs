//! Checkers for recorded histories.
//!
//! [`bank`] checks a ledger after a run: money conserved, every
//! acknowledged transfer applied exactly once, nothing applied that nobody
//! asked for, balances equal to the sum of the stored transfers, limits
//! kept. [`linearizability`] decides whether a concurrent history of
//! operations on a model (a key/value register here) could have happened in
//! some sequential order consistent with real time.
//!
//! Both are pure: they take what a test, the simulator or a chaos run
//! recorded and return the violations they find.

pub mod bank;
pub mod linearizability;
