//! The leader fails while tasks write through the SDK.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyperraft_check::bank::{check, ClientRecord};
use hyperraft_client::{prefix_end, Client, CreateTransferResult};
use hyperraft_state::ledger::{Account, Transfer};
use tokio_stream::StreamExt;

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

/// One key/value writer: puts `task/seq` values to its own key until told
/// to stop; answers the values acknowledged and those of unknown outcome.
async fn put_until_stopped(client: Client, task: u32, stop: Arc<AtomicBool>, acked: Arc<AtomicU64>) -> KvOutcome {
    let mut outcome = KvOutcome::default();
    let mut sequence = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let value = format!("{task}/{sequence}");
        match client.put(format!("failover/{task}"), value.clone()).await {
            Ok(_) => {
                outcome.acknowledged.insert(value);
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) if error.is_outcome_unknown() => {
                outcome.unknown.insert(value);
            }
            Err(error) => outcome.failures.push(format!("{value}: {error}")),
        }
        sequence += 1;
    }
    outcome
}

#[derive(Default)]
struct KvOutcome {
    acknowledged: BTreeSet<String>,
    unknown: BTreeSet<String>,
    failures: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_value_writes_through_a_leader_failure_are_never_applied_twice() {
    // Proves the key/value retry rule under failover: every put either succeeds, or fails as OutcomeUnknown (never another error); the store's history (read back through a watch from revision 1) holds every acknowledged put, nothing unsent, and no put twice.
    let mut cluster = TestCluster::start(3).await;
    let client = cluster.client(&[1, 2, 3]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> =
        (0..4).map(|task| tokio::spawn(put_until_stopped(client.clone(), task, stop.clone(), acked.clone()))).collect();
    wait_for_acks(&acked, 100).await;
    let leader = cluster.leader().await;
    let before = acked.load(Ordering::Relaxed);
    cluster.stop(leader).await;
    wait_for_acks(&acked, before + 100).await;
    stop.store(true, Ordering::Relaxed);
    let (mut acknowledged, mut unknown) = (BTreeSet::new(), BTreeSet::new());
    for writer in writers {
        let outcome = writer.await.expect("writer");
        assert!(outcome.failures.is_empty(), "puts failed other than with an unknown outcome: {:?}", outcome.failures);
        acknowledged.extend(outcome.acknowledged);
        unknown.extend(outcome.unknown);
    }

    // A last put marks where the history read back ends.
    let last = client.put("failover/end", "end").await.expect("put").header.expect("header").revision;
    let mut history = client.watch("failover/", prefix_end(b"failover/"), 1).await.expect("watch");
    let mut seen = BTreeSet::new();
    loop {
        let event =
            tokio::time::timeout(PATIENCE, history.next()).await.expect("history").expect("open").expect("event");
        let pair = event.kv.expect("a pair");
        if pair.mod_revision == last {
            break;
        }
        let value = String::from_utf8(pair.value.to_vec()).expect("text");
        assert!(seen.insert(value.clone()), "put {value} was applied twice");
        assert!(acknowledged.contains(&value) || unknown.contains(&value), "put {value} was never sent");
    }
    let missing: Vec<&String> = acknowledged.difference(&seen).collect();
    assert!(missing.is_empty(), "acknowledged puts are missing: {missing:?}");
    drop(history);
    drop(client);
    cluster.shutdown().await;
}
