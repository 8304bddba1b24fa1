//! The leader fails while tasks create transfers through the SDK.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyperraft_check::bank::{check, ClientRecord};
use hyperraft_client::{Client, CreateTransferResult};
use hyperraft_state::ledger::{Account, Transfer};

use crate::harness::{TestCluster, PATIENCE};
use crate::ledger::{account, transfer};

const ACCOUNTS: u128 = 16;
const WRITERS: u128 = 8;

/// One writer: creates transfers with ids `writer, writer + WRITERS, ...`
/// until told to stop; records every id it sent and every one acknowledged.
async fn write_until_stopped(client: Client, writer: u128, stop: Arc<AtomicBool>, acked: Arc<AtomicU64>) -> Outcome {
    let mut outcome = Outcome::default();
    let mut id = writer;
    while !stop.load(Ordering::Relaxed) {
        let debit = 1 + id % ACCOUNTS;
        let credit = 1 + (id / ACCOUNTS + debit) % ACCOUNTS;
        let credit = if credit == debit { 1 + credit % ACCOUNTS } else { credit };
        outcome.attempted.insert(id);
        match client.create_transfer(transfer(id, debit, credit, 1 + id % 5)).await {
            Ok(CreateTransferResult::Ok) => {
                outcome.acknowledged.insert(id);
                acked.fetch_add(1, Ordering::Relaxed);
            }
            other => outcome.failures.push(format!("transfer {id}: {other:?}")),
        }
        id += WRITERS;
    }
    outcome
}

#[derive(Default)]
struct Outcome {
    attempted: BTreeSet<u128>,
    acknowledged: BTreeSet<u128>,
    failures: Vec<String>,
}

async fn wait_for_acks(acked: &AtomicU64, at_least: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while acked.load(Ordering::Relaxed) < at_least {
        assert!(tokio::time::Instant::now() < deadline, "writes stalled at {}", acked.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_a_leader_failure_exactly_once_and_money_is_conserved() {
    // Proves transparent failover: the leader stops while 8 tasks create transfers; no caller sees an error, and afterwards every acknowledged transfer exists exactly once, nothing unsent exists, and balances match the stored transfers (bank invariant).
    let mut cluster = TestCluster::start(3).await;
    let client = cluster.client(&[1, 2, 3]).await;
    let accounts: Vec<_> = (1..=ACCOUNTS).map(account).collect();
    assert!(client.create_accounts(&accounts).await.expect("accounts").is_empty());

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (1..=WRITERS)
        .map(|writer| tokio::spawn(write_until_stopped(client.clone(), writer, stop.clone(), acked.clone())))
        .collect();
    wait_for_acks(&acked, 300).await;
    let leader = cluster.leader().await;
    let before = acked.load(Ordering::Relaxed);
    cluster.stop(leader).await;
    // Writes go on through the new leader.
    wait_for_acks(&acked, before + 300).await;
    stop.store(true, Ordering::Relaxed);

    let record = Mutex::new(ClientRecord::default());
    for writer in writers {
        let outcome = writer.await.expect("writer");
        assert!(outcome.failures.is_empty(), "callers saw failures: {:?}", outcome.failures);
        let mut record = record.lock().unwrap();
        record.attempted.extend(outcome.attempted);
        record.acknowledged.extend(outcome.acknowledged);
    }
    let record = record.into_inner().unwrap();
    assert!(client.stats().retries > 0, "the leader's failure caused no retry: the test did not test failover");

    let ids: Vec<u128> = record.attempted.iter().copied().collect();
    let mut transfers = Vec::new();
    for chunk in ids.chunks(4096) {
        let found = client.lookup_transfers(chunk).await.expect("lookup transfers");
        transfers.extend(found.iter().map(Transfer::from_record));
    }
    let account_ids: Vec<u128> = (1..=ACCOUNTS).collect();
    let found = client.lookup_accounts(&account_ids).await.expect("lookup accounts");
    let accounts: Vec<Account> = found.iter().map(Account::from_record).collect();
    assert_eq!(accounts.len(), ACCOUNTS as usize);
    let violations = check(&accounts, &transfers, &record);
    assert!(violations.is_empty(), "bank invariant broken: {violations:?}");
    drop(client);
    cluster.shutdown().await;
}
