//! The bank checker passes a real ledger's state and catches each kind of damage.

use hyperraft_state::ledger::{Ledger, LedgerConfig};
use hyperraft_wire::records::account_flags;
use hyperraft_wire::{AccountRecord, TransferRecord};

use super::*;

fn ledger_after_transfers() -> (Ledger, ClientRecord) {
    let mut ledger = Ledger::new(LedgerConfig::default());
    let mut accounts: Vec<AccountRecord> = (1..=5u128)
        .map(|id| AccountRecord { id: id.into(), ledger: 1.into(), code: 1.into(), ..AccountRecord::default() })
        .collect();
    accounts[4].flags = account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS.into();
    let mut results = Vec::new();
    ledger.create_accounts(&accounts, 1, &mut results);
    let transfer = |id: u128, debit: u128, credit: u128, amount: u128| TransferRecord {
        id: id.into(),
        debit_account_id: debit.into(),
        credit_account_id: credit.into(),
        amount: amount.into(),
        ledger: 1.into(),
        code: 1.into(),
        ..TransferRecord::default()
    };
    let batch = [transfer(10, 1, 2, 5), transfer(11, 2, 3, 7), transfer(12, 5, 1, 1), transfer(13, 3, 4, 2)];
    let mut record = ClientRecord::default();
    let mut codes = Vec::new();
    ledger.create_transfers(&batch, 100, None, &mut codes);
    for (transfer, code) in batch.iter().zip(&codes) {
        record.attempted.insert(transfer.id.get());
        if code.is_ok() {
            record.acknowledged.insert(transfer.id.get());
        }
    }
    assert_eq!(record.acknowledged.len(), 3, "account 5 cannot go negative");
    (ledger, record)
}

#[test]
fn a_real_ledger_passes() {
    // Proves no false alarms: the state a ledger reaches satisfies every bank check.
    let (ledger, record) = ledger_after_transfers();
    let transfers: Vec<Transfer> = ledger.transfers().copied().collect();
    assert_eq!(check(ledger.accounts(), &transfers, &record), Vec::new());
}

#[test]
fn each_kind_of_damage_is_reported() {
    // Proves each violation is detected: a lost acknowledged transfer, a phantom, a duplicate, a bent balance, a broken limit.
    let (ledger, record) = ledger_after_transfers();
    let accounts = ledger.accounts().to_vec();
    let transfers: Vec<Transfer> = ledger.transfers().copied().collect();

    let lost: Vec<Transfer> = transfers[1..].to_vec();
    let violations = check(&accounts, &lost, &record);
    assert!(violations.contains(&Violation::AcknowledgedMissing { id: transfers[0].id }), "{violations:?}");

    let mut phantom = transfers.clone();
    phantom.push(Transfer { id: 99, ..transfers[0] });
    assert!(check(&accounts, &phantom, &record).contains(&Violation::Phantom { id: 99 }));

    let mut twice = transfers.clone();
    twice.push(transfers[0]);
    assert!(check(&accounts, &twice, &record).contains(&Violation::AppliedTwice { id: transfers[0].id }));

    let mut bent = accounts.clone();
    bent[0].credits_posted += 1;
    let violations = check(&bent, &transfers, &record);
    assert!(violations.iter().any(|v| matches!(v, Violation::Unbalanced { .. })));
    assert!(violations.iter().any(|v| matches!(v, Violation::BalanceMismatch { account: 1, .. })));

    let mut overdrawn = accounts.clone();
    overdrawn[4].debits_posted += 1;
    overdrawn[0].credits_posted += 1;
    assert!(check(&overdrawn, &transfers, &record).contains(&Violation::LimitBroken { account: 5 }));
}
