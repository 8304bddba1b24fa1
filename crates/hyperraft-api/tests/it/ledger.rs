//! The Ledger service: plain protobuf batches and packed wire frames,
//! per-item result codes, lookups.

use hyperraft_api::proto::{
    Account, CreateAccountResult, CreateAccountsRequest, CreateAccountsResult, CreateTransferResult,
    CreateTransfersRequest, CreateTransfersResult, LookupAccountsRequest, LookupTransfersRequest, Transfer, Uint128,
};
use hyperraft_api::ApiConfig;
use hyperraft_wire::{encode_ids, encode_records, AccountRecord, Kind, TransferRecord};
use zerocopy::byteorder::little_endian::{U128, U16, U32};
use zerocopy::FromBytes;

use crate::harness::ApiCluster;

pub fn id(value: u128) -> Option<Uint128> {
    Some(Uint128 { high: (value >> 64) as u64, low: value as u64 })
}

pub fn value(number: &Option<Uint128>) -> u128 {
    number.as_ref().map_or(0, |number| (u128::from(number.high) << 64) | u128::from(number.low))
}

pub fn account(account_id: u128) -> Account {
    Account { id: id(account_id), ledger: 1, code: 1, ..Default::default() }
}

pub fn transfer(transfer_id: u128, debit: u128, credit: u128, amount: u128) -> Transfer {
    Transfer {
        id: id(transfer_id),
        debit_account_id: id(debit),
        credit_account_id: id(credit),
        amount: id(amount),
        ledger: 1,
        code: 1,
        ..Default::default()
    }
}

/// An id above 2^64, so both halves of `Uint128` matter.
const WIDE: u128 = (7 << 64) | 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_batches_create_and_look_up_with_sparse_per_item_codes() {
    // Proves the message path end to end: accounts and transfers are created, only failed items come back (with their index and code), balances move, lookups skip missing ids, and a retried batch answers EXISTS.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let mut ledger = cluster.ledger(cluster.leader().await).await;
    let accounts = vec![account(1), account(WIDE)];
    let created = ledger.create_accounts(CreateAccountsRequest { accounts: accounts.clone(), ..Default::default() });
    assert_eq!(created.await.unwrap().into_inner().results, vec![]);

    let transfers = vec![transfer(10, 1, WIDE, 25), transfer(11, 1, 99, 5), transfer(0, 1, WIDE, 5)];
    let request = CreateTransfersRequest { transfers, ..Default::default() };
    let results = ledger.create_transfers(request).await.unwrap().into_inner().results;
    assert_eq!(
        results,
        vec![
            CreateTransfersResult { index: 1, code: CreateTransferResult::CreditAccountNotFound as i32 },
            CreateTransfersResult { index: 2, code: CreateTransferResult::IdMustNotBeZero as i32 },
        ]
    );

    let lookup =
        LookupAccountsRequest { ids: vec![id(1).unwrap(), id(99).unwrap(), id(WIDE).unwrap()], ..Default::default() };
    let found = ledger.lookup_accounts(lookup).await.unwrap().into_inner();
    assert!(found.records.is_empty(), "a message request is answered with messages");
    let balances: Vec<(u128, u128, u128)> =
        found.accounts.iter().map(|a| (value(&a.id), value(&a.debits_posted), value(&a.credits_posted))).collect();
    assert_eq!(balances, vec![(1, 25, 0), (WIDE, 0, 25)]);
    assert!(found.accounts.iter().all(|a| a.timestamp > 0), "the cluster assigns timestamps");

    let lookup = LookupTransfersRequest {
        ids: vec![id(10).unwrap(), id(11).unwrap()],
        serializable: true,
        ..Default::default()
    };
    let found = ledger.lookup_transfers(lookup).await.unwrap().into_inner().transfers;
    assert_eq!(found.iter().map(|t| (value(&t.id), value(&t.amount))).collect::<Vec<_>>(), vec![(10, 25)]);

    let retried = ledger.create_accounts(CreateAccountsRequest { accounts, ..Default::default() });
    let exists = CreateAccountResult::Exists as i32;
    assert_eq!(
        retried.await.unwrap().into_inner().results,
        vec![CreateAccountsResult { index: 0, code: exists }, CreateAccountsResult { index: 1, code: exists }]
    );
    drop(ledger);
    cluster.shutdown().await;
}

fn account_record(account_id: u128) -> AccountRecord {
    AccountRecord { id: U128::new(account_id), ledger: U32::new(1), code: U16::new(1), ..Default::default() }
}

fn transfer_record(transfer_id: u128, debit: u128, credit: u128, amount: u128) -> TransferRecord {
    TransferRecord {
        id: U128::new(transfer_id),
        debit_account_id: U128::new(debit),
        credit_account_id: U128::new(credit),
        amount: U128::new(amount),
        ledger: U32::new(1),
        code: U16::new(1),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_frames_create_and_look_up_and_agree_with_the_message_path() {
    // Proves the packed path: wire frames create accounts and transfers (failures still come back per item), packed lookups answer raw records, and a message lookup of the same ids agrees.
    let cluster = ApiCluster::start(1, ApiConfig::default()).await;
    let mut ledger = cluster.ledger(cluster.leader().await).await;
    let mut frame = Vec::new();
    encode_records(Kind::CreateAccounts, &[account_record(1), account_record(2), account_record(WIDE)], &mut frame);
    let request = CreateAccountsRequest { frame: frame.into(), ..Default::default() };
    assert_eq!(ledger.create_accounts(request).await.unwrap().into_inner().results, vec![]);

    let mut frame = Vec::new();
    let transfers = [transfer_record(20, 1, 2, 7), transfer_record(21, 2, 2, 1), transfer_record(22, WIDE, 1, 3)];
    encode_records(Kind::CreateTransfers, &transfers, &mut frame);
    let request = CreateTransfersRequest { frame: frame.into(), ..Default::default() };
    let results = ledger.create_transfers(request).await.unwrap().into_inner().results;
    let different = CreateTransferResult::AccountsMustBeDifferent as i32;
    assert_eq!(results, vec![CreateTransfersResult { index: 1, code: different }]);

    let mut frame = Vec::new();
    encode_ids(Kind::LookupAccounts, &[1, 2, 3, WIDE], &mut frame);
    let found = ledger.lookup_accounts(LookupAccountsRequest { frame: frame.into(), ..Default::default() }).await;
    let found = found.unwrap().into_inner();
    assert!(found.accounts.is_empty(), "a packed request is answered with records");
    let records = <[AccountRecord]>::ref_from_bytes(&found.records).expect("whole account records");
    let packed: Vec<(u128, u128, u128)> =
        records.iter().map(|r| (r.id.get(), r.debits_posted.get(), r.credits_posted.get())).collect();
    assert_eq!(packed, vec![(1, 7, 3), (2, 0, 7), (WIDE, 3, 0)]);

    let ids = [1, 2, WIDE].map(|n| id(n).unwrap()).to_vec();
    let messages = ledger.lookup_accounts(LookupAccountsRequest { ids, ..Default::default() }).await.unwrap();
    let from_messages: Vec<(u128, u128, u128)> = messages
        .into_inner()
        .accounts
        .iter()
        .map(|a| (value(&a.id), value(&a.debits_posted), value(&a.credits_posted)))
        .collect();
    assert_eq!(from_messages, packed);

    let mut frame = Vec::new();
    encode_ids(Kind::LookupTransfers, &[20, 21, 22], &mut frame);
    let found = ledger.lookup_transfers(LookupTransfersRequest { frame: frame.into(), ..Default::default() }).await;
    let found = found.unwrap().into_inner();
    let records = <[TransferRecord]>::ref_from_bytes(&found.records).expect("whole transfer records");
    assert_eq!(records.iter().map(|r| r.id.get()).collect::<Vec<_>>(), vec![20, 22]);
    drop(ledger);
    cluster.shutdown().await;
}
