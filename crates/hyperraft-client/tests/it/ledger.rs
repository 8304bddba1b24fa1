//! Ledger calls through the SDK: packed creates and lookups, per-item
//! failures, and auto-batching of single transfers.

use std::sync::Arc;
use std::time::Duration;

use hyperraft_client::wire::{AccountRecord, TransferRecord};
use hyperraft_client::{Client, ClientConfig, CreateAccountResult, CreateTransferResult};

use crate::harness::TestCluster;

pub fn account(id: u128) -> AccountRecord {
    AccountRecord { id: id.into(), ledger: 1.into(), code: 1.into(), ..AccountRecord::default() }
}

pub fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> TransferRecord {
    TransferRecord {
        id: id.into(),
        debit_account_id: debit.into(),
        credit_account_id: credit.into(),
        amount: amount.into(),
        ledger: 1.into(),
        code: 1.into(),
        ..TransferRecord::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_and_lookups_round_trip_with_per_item_failures() {
    // Proves the packed create and lookup calls: created items read back with their balances, and each refused item is reported with its index and code.
    let cluster = TestCluster::start(3).await;
    let client = cluster.client(&[1, 2, 3]).await;

    assert_eq!(client.create_accounts(&[account(1), account(2)]).await.expect("create accounts"), vec![]);
    let again = client.create_accounts(&[account(2), account(0)]).await.expect("create accounts");
    let codes: Vec<(u32, CreateAccountResult)> = again.iter().map(|failure| (failure.index, failure.code)).collect();
    assert_eq!(codes, vec![(0, CreateAccountResult::Exists), (1, CreateAccountResult::IdMustNotBeZero)]);

    let transfers = [transfer(10, 1, 2, 7), transfer(11, 1, 99, 1), transfer(12, 2, 1, 3)];
    let failures = client.create_transfers(&transfers).await.expect("create transfers");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!((failures[0].index, failures[0].code), (1, CreateTransferResult::CreditAccountNotFound));

    let accounts = client.lookup_accounts(&[1, 2, 3]).await.expect("lookup accounts");
    let balances: Vec<(u128, u128, u128)> =
        accounts.iter().map(|a| (a.id.get(), a.debits_posted.get(), a.credits_posted.get())).collect();
    assert_eq!(balances, vec![(1, 7, 3), (2, 3, 7)]);
    let found = client.lookup_transfers(&[10, 11, 12]).await.expect("lookup transfers");
    let ids: Vec<u128> = found.iter().map(|t| t.id.get()).collect();
    assert_eq!(ids, vec![10, 12]);
    assert_eq!(found[0].amount.get(), 7);
    assert!(found[0].timestamp.get() > 0, "the cluster stamps created transfers");

    let empty = client.create_transfers(&[]).await;
    assert!(matches!(empty, Err(hyperraft_client::Error::InvalidArgument { ref field, .. }) if field == "transfers"));
    drop(client);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_single_transfers_share_batches_and_each_caller_gets_its_result() {
    // Proves auto-batching: 200 concurrent create_transfer calls travel in fewer RPC batches than calls, and every caller gets its own outcome (the ones naming a missing account get that code, the rest Ok).
    let cluster = TestCluster::start(3).await;
    let addresses: Vec<String> = cluster.addresses.values().cloned().collect();
    let mut config = ClientConfig::new(addresses);
    config.batching.max_items = 64;
    config.batching.max_delay = Duration::from_millis(20);
    let client = Arc::new(Client::connect(config).await.expect("connect"));
    assert!(client.create_accounts(&[account(1), account(2)]).await.expect("accounts").is_empty());

    let callers = 200u128;
    let mut tasks = Vec::new();
    for id in 1..=callers {
        let client = client.clone();
        // Every tenth transfer credits an account that does not exist.
        let credit = if id % 10 == 0 { 404 } else { 2 };
        tasks.push(tokio::spawn(async move { (id, client.create_transfer(transfer(id, 1, credit, 1)).await) }));
    }
    for task in tasks {
        let (id, result) = task.await.expect("task");
        let expected =
            if id % 10 == 0 { CreateTransferResult::CreditAccountNotFound } else { CreateTransferResult::Ok };
        assert_eq!(result.expect("no transport error"), expected, "transfer {id}");
    }
    let stats = client.stats();
    assert_eq!(stats.transfers_batched, callers as u64);
    assert!(stats.transfer_batches < callers as u64, "no batching happened: {stats:?}");
    assert!(stats.transfer_batches >= callers as u64 / 64, "a batch exceeded max_items: {stats:?}");
    let debited = client.lookup_accounts(&[1]).await.expect("lookup")[0].debits_posted.get();
    assert_eq!(debited, 180, "each created transfer moved 1");

    let linked = TransferRecord { flags: 1.into(), ..transfer(1000, 1, 2, 1) };
    assert!(matches!(client.create_transfer(linked).await, Err(hyperraft_client::Error::InvalidArgument { .. })));
    drop(client);
    cluster.shutdown().await;
}
