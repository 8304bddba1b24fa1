//! [`Client`]: one simulated client proposing ledger transfers, key/value
//! puts and key/value gets (a range read through the log) to whichever node
//! leads, and recording what it sent and saw in the shared [`History`].
//!
//! A transfer batch whose outcome is unknown (timeout, leader lost) is sent
//! again with the same ids, so the ledger's idempotency is exercised: a
//! retry answers `Exists` if the first attempt was applied.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyperraft_check::linearizability::{KvInput, KvOutput, Operation};
use hyperraft_load::{Rng, CODE, LEDGER};
use hyperraft_raft::{Batch, BatchResponse, KvResult, NodeId};
use hyperraft_state::ledger::{CreateAccountResult, CreateTransferResult};
use hyperraft_wire::{encode_records, AccountRecord, Kind, KvBatchWriter, PutView, RangeView, TransferRecord};
use tokio::time::Instant;

use crate::history::History;
use crate::registry::Registry;
use crate::trace::Trace;

/// Accounts `1..=ACCOUNTS` exist before the fault phase.
pub const ACCOUNTS: u64 = 16;
/// Keys the clients contend on.
const KEYS: u64 = 6;
/// A write not answered in this much virtual time has an unknown outcome.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Attempts per transfer batch (the first and its retries).
const TRANSFER_ATTEMPTS_MAX: usize = 3;
/// Virtual wall clock at the start of every run (2026-01-01T00:00:00Z), so
/// batch timestamps do not depend on when a run happens.
const EPOCH_NS: u64 = 1_767_225_600_000_000_000;

/// What became of one proposal.
pub enum Outcome {
    /// Applied; the response is the leader's.
    Applied(BatchResponse),
    /// It may or may not have been applied.
    Unknown(String),
    /// Not proposed: no node leads.
    NotSent,
}

/// One client of the simulated cluster.
pub struct Client {
    pub id: u64,
    pub rng: Rng,
    pub registry: Arc<Registry>,
    pub history: Arc<Mutex<History>>,
    pub trace: Arc<Trace>,
    transfer_id_next: u128,
    value_next: u64,
}

impl Client {
    pub fn new(id: u64, rng: Rng, registry: Arc<Registry>, history: Arc<Mutex<History>>, trace: Arc<Trace>) -> Client {
        // Disjoint transfer id ranges per client; ids are never 0.
        let transfer_id_next = (u128::from(id) << 64) + 1;
        Client { id, rng, registry, history, trace, transfer_id_next, value_next: 0 }
    }

    /// Sends operations until `until` (virtual time).
    pub async fn run(mut self, until: Instant) {
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(1 + self.rng.below(40))).await;
            match self.rng.below(10) {
                0..=4 => self.transfers().await,
                5..=7 => self.put().await,
                _ => self.get().await,
            }
        }
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().expect("history lock")
    }

    async fn transfers(&mut self) {
        let count = 1 + self.rng.below(8);
        let mut records = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let debit = 1 + self.rng.below(ACCOUNTS);
            let credit = 1 + (debit + self.rng.below(ACCOUNTS - 1)) % ACCOUNTS;
            records.push(TransferRecord {
                id: self.transfer_id_next.into(),
                debit_account_id: u128::from(debit).into(),
                credit_account_id: u128::from(credit).into(),
                amount: u128::from(1 + self.rng.below(100)).into(),
                ledger: LEDGER.into(),
                code: CODE.into(),
                ..TransferRecord::default()
            });
            self.transfer_id_next += 1;
        }
        let ids: Vec<u128> = records.iter().map(|record| record.id.get()).collect();
        self.history().transfers.attempted.extend(ids.iter().copied());
        let mut frame = Vec::new();
        encode_records(Kind::CreateTransfers, &records, &mut frame);
        for _ in 0..TRANSFER_ATTEMPTS_MAX {
            match self.send(frame.clone()).await {
                Outcome::Applied(BatchResponse::Codes(codes)) => {
                    self.acknowledge_transfers(&ids, &codes);
                    return;
                }
                Outcome::Applied(other) => {
                    self.trace.event(format_args!("client{} transfers refused: {other:?}", self.id));
                    self.history().counts.refused += 1;
                    return;
                }
                Outcome::Unknown(_) | Outcome::NotSent => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// Proposes `frame` and counts what became of it.
    async fn send(&self, frame: Vec<u8>) -> Outcome {
        let outcome = propose(&self.registry, &self.trace, self.id, frame).await;
        let mut history = self.history();
        match &outcome {
            Outcome::Applied(_) => {
                history.counts.sent += 1;
                history.counts.acknowledged += 1;
            }
            Outcome::Unknown(_) => {
                history.counts.sent += 1;
                history.counts.unknown += 1;
            }
            Outcome::NotSent => {}
        }
        outcome
    }

    fn acknowledge_transfers(&self, ids: &[u128], codes: &[u32]) {
        let mut history = self.history();
        for (id, code) in ids.iter().zip(codes) {
            if *code == CreateTransferResult::Ok as u32 || *code == CreateTransferResult::Exists as u32 {
                history.transfers.acknowledged.insert(*id);
            } else {
                history.counts.refused += 1;
            }
        }
    }

    async fn put(&mut self) {
        let key = format!("key-{}", self.rng.below(KEYS)).into_bytes();
        self.value_next += 1;
        let value = format!("c{}-{}", self.id, self.value_next).into_bytes();
        let mut frame = Vec::new();
        let mut writer = KvBatchWriter::new(&mut frame);
        writer.put(PutView { key: &key, value: &value, lease: 0, prev_kv: false }).expect("a small put encodes");
        writer.finish();
        let call = self.history().tick();
        let outcome = self.send(frame).await;
        let ret = match outcome {
            Outcome::Applied(BatchResponse::Kv(results)) if matches!(results[..], [KvResult::Put { .. }]) => {
                self.history().tick()
            }
            Outcome::NotSent => return,
            // Anything else may have been applied: the put stays open forever.
            _ => u64::MAX,
        };
        let operation = Operation { call, ret, input: KvInput::Put(value), output: KvOutput::Done };
        self.history().kv.push((key, operation));
    }

    async fn get(&mut self) {
        let key = format!("key-{}", self.rng.below(KEYS)).into_bytes();
        let mut frame = Vec::new();
        let mut writer = KvBatchWriter::new(&mut frame);
        let range = RangeView { key: &key, range_end: b"", limit: 0, keys_only: false, count_only: false };
        writer.range(range).expect("a small range encodes");
        writer.finish();
        let call = self.history().tick();
        let Outcome::Applied(BatchResponse::Kv(results)) = self.send(frame).await else {
            return;
        };
        let [KvResult::Range { kvs, .. }] = &results[..] else { return };
        let mut history = self.history();
        let ret = history.tick();
        let output = KvOutput::Value(kvs.first().map(|pair| pair.value.clone()));
        history.kv.push((key, Operation { call, ret, input: KvInput::Get, output }));
    }
}

/// Proposes `frame` to the current leader and waits (bounded) for the outcome.
pub async fn propose(registry: &Registry, trace: &Trace, client: u64, frame: Vec<u8>) -> Outcome {
    let Some((node, handle)) = registry.leader() else { return Outcome::NotSent };
    let batch = Batch { timestamp_ns: clock_ns(registry, trace, node), frame: frame.into() };
    let outcome = match tokio::time::timeout(WRITE_TIMEOUT, handle.raft.client_write(batch)).await {
        Ok(Ok(response)) => Outcome::Applied(response.data),
        Ok(Err(error)) => Outcome::Unknown(error.to_string()),
        Err(_) => Outcome::Unknown("timed out".to_string()),
    };
    let summary = match &outcome {
        Outcome::Applied(response) => format!("applied {}", describe(response)),
        Outcome::Unknown(reason) => format!("unknown: {reason}"),
        Outcome::NotSent => unreachable!("a proposal was sent"),
    };
    trace.event(format_args!("client{client} via n{node}: {summary}"));
    outcome
}

fn describe(response: &BatchResponse) -> String {
    match response {
        BatchResponse::Codes(codes) => format!("codes{codes:?}"),
        BatchResponse::Kv(results) => format!("kv{results:?}"),
        other => format!("{other:?}"),
    }
}

/// Node `node`'s wall clock: the virtual time plus the node's clock jumps.
fn clock_ns(registry: &Registry, trace: &Trace, node: NodeId) -> u64 {
    let virtual_ns = EPOCH_NS + trace.elapsed().as_nanos() as u64;
    let offset_ns = registry.clock_offset_ms(node).saturating_mul(1_000_000);
    virtual_ns.saturating_add_signed(offset_ns)
}

/// Creates accounts `1..=ACCOUNTS` (zero balances, no limits); retried
/// until every account reports created or existing, or `until` passes.
pub async fn create_accounts(registry: &Registry, trace: &Trace, until: Instant) -> bool {
    let records: Vec<AccountRecord> = (1..=ACCOUNTS)
        .map(|id| AccountRecord {
            id: u128::from(id).into(),
            ledger: LEDGER.into(),
            code: CODE.into(),
            ..AccountRecord::default()
        })
        .collect();
    let mut frame = Vec::new();
    encode_records(Kind::CreateAccounts, &records, &mut frame);
    let created = |code: &u32| *code == CreateAccountResult::Ok as u32 || *code == CreateAccountResult::Exists as u32;
    while Instant::now() < until {
        if let Outcome::Applied(BatchResponse::Codes(codes)) = propose(registry, trace, 0, frame.clone()).await {
            return codes.iter().all(created);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
