//! The client workload of a chaos run: ledger transfers, key/value puts and
//! linearizable gets through the SDK, each recorded in a shared history.
//!
//! A transfer batch the SDK could not get acknowledged may still have been
//! applied (the ledger's creates are idempotent, so the SDK retried it; an
//! error after the retries leaves the outcome open): its ids are attempted,
//! not acknowledged. A put that failed may also have been applied: it is
//! recorded as returning at the end of time. A failed get is left out.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyperraft_check::bank::ClientRecord;
use hyperraft_check::linearizability::{KvInput, KvOutput, Operation};
use hyperraft_client::Client;
use hyperraft_load::{Rng, CODE, LEDGER};
use hyperraft_wire::TransferRecord;

/// Accounts `1..=ACCOUNTS` exist before the workload starts.
pub const ACCOUNTS: u64 = 16;
/// Keys the clients contend on.
const KEYS: u64 = 8;

/// Everything the clients did, for the checkers.
#[derive(Default)]
pub struct History {
    pub transfers: ClientRecord,
    pub kv: Vec<(Vec<u8>, Operation<KvInput, KvOutput>)>,
    pub counts: Counts,
}

/// Operations by outcome.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub transfer_batches: u64,
    pub transfer_batches_failed: u64,
    pub puts: u64,
    pub puts_unknown: u64,
    pub gets: u64,
    pub gets_failed: u64,
}

/// Shared by the clients; `start` is the zero of the history's clock.
pub struct Recorder {
    pub history: Mutex<History>,
    start: Instant,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder { history: Mutex::new(History::default()), start: Instant::now() }
    }

    /// Nanoseconds since the run began; strictly after every earlier reading's event.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one key/value operation.
    pub fn kv(&self, key: Vec<u8>, call: u64, ret: u64, input: KvInput, output: KvOutput) {
        self.history().kv.push((key, Operation { call, ret, input, output }));
    }
}

/// One client's loop: operations until `stop`.
pub async fn client(id: u64, seed: u64, sdk: Client, recorder: Arc<Recorder>, stop: Arc<AtomicBool>) {
    let mut rng = Rng::new(seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    // Disjoint transfer ids per client; never 0.
    let mut transfer_id = (u128::from(id) << 64) + 1;
    let mut value = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(1 + rng.below(10))).await;
        match rng.below(10) {
            0..=3 => transfers(&sdk, &recorder, &mut rng, &mut transfer_id).await,
            4..=6 => {
                value += 1;
                let key = format!("chaos/{}", rng.below(KEYS)).into_bytes();
                put(&sdk, &recorder, key, format!("c{id}-{value}").into_bytes()).await;
            }
            _ => {
                let key = format!("chaos/{}", rng.below(KEYS)).into_bytes();
                get(&sdk, &recorder, key).await;
            }
        }
    }
}

async fn transfers(sdk: &Client, recorder: &Recorder, rng: &mut Rng, next_id: &mut u128) {
    let count = 1 + rng.below(8);
    let mut records = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let debit = 1 + rng.below(ACCOUNTS);
        let credit = 1 + (debit + rng.below(ACCOUNTS - 1)) % ACCOUNTS;
        records.push(TransferRecord {
            id: (*next_id).into(),
            debit_account_id: u128::from(debit).into(),
            credit_account_id: u128::from(credit).into(),
            amount: u128::from(1 + rng.below(100)).into(),
            ledger: LEDGER.into(),
            code: CODE.into(),
            ..TransferRecord::default()
        });
        *next_id += 1;
    }
    recorder.history().transfers.attempted.extend(records.iter().map(|record| record.id.get()));
    let result = sdk.create_transfers(&records).await;
    let mut history = recorder.history();
    history.counts.transfer_batches += 1;
    match result {
        Ok(failures) => {
            let failed: BTreeSet<usize> = failures.iter().map(|failure| failure.index as usize).collect();
            let acknowledged = records.iter().enumerate().filter(|(index, _)| !failed.contains(index));
            history.transfers.acknowledged.extend(acknowledged.map(|(_, record)| record.id.get()));
        }
        Err(_) => history.counts.transfer_batches_failed += 1,
    }
}

/// One put; an error leaves its outcome open (it returns at the end of time).
pub async fn put(sdk: &Client, recorder: &Recorder, key: Vec<u8>, value: Vec<u8>) -> bool {
    let call = recorder.now();
    let result = sdk.put(key.clone(), value.clone()).await;
    let ret = if result.is_ok() { recorder.now() } else { u64::MAX };
    recorder.kv(key, call, ret, KvInput::Put(value), KvOutput::Done);
    let mut history = recorder.history();
    history.counts.puts += 1;
    if result.is_err() {
        history.counts.puts_unknown += 1;
    }
    result.is_ok()
}

/// One linearizable get; a failed one is not recorded.
pub async fn get(sdk: &Client, recorder: &Recorder, key: Vec<u8>) -> bool {
    let call = recorder.now();
    let result = sdk.get(key.clone()).await;
    let ret = recorder.now();
    let ok = result.is_ok();
    if let Ok(found) = result {
        recorder.kv(key, call, ret, KvInput::Get, KvOutput::Value(found.map(|pair| pair.value.to_vec())));
    }
    let mut history = recorder.history();
    history.counts.gets += 1;
    if !ok {
        history.counts.gets_failed += 1;
    }
    ok
}
