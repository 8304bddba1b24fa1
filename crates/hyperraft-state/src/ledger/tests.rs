//! Unit tests of the ledger: every result code, linked chains, retries,
//! bounds, and the parallel path against the sequential one.

use hyperraft_wire::records::{account_flags, transfer_flags};
use hyperraft_wire::{AccountRecord, TransferRecord};
use proptest::prelude::*;

use super::*;

const TIMESTAMP: u64 = 1_000;

fn account(id: u128, ledger: u32, flags: u16) -> AccountRecord {
    AccountRecord { id: id.into(), ledger: ledger.into(), code: 7.into(), flags: flags.into(), ..Default::default() }
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> TransferRecord {
    TransferRecord {
        id: id.into(),
        debit_account_id: debit.into(),
        credit_account_id: credit.into(),
        amount: amount.into(),
        ledger: 1.into(),
        code: 9.into(),
        ..Default::default()
    }
}

fn linked(mut record: TransferRecord) -> TransferRecord {
    record.flags = (record.flags.get() | transfer_flags::LINKED).into();
    record
}

fn create_accounts(ledger: &mut Ledger, records: &[AccountRecord]) -> Vec<CreateAccountResult> {
    let mut results = Vec::new();
    ledger.create_accounts(records, TIMESTAMP, &mut results);
    results
}

fn create_transfers(ledger: &mut Ledger, records: &[TransferRecord]) -> Vec<CreateTransferResult> {
    let mut results = Vec::new();
    ledger.create_transfers(records, TIMESTAMP, None, &mut results);
    results
}

/// Accounts 1..=count on ledger 1 with no limits.
fn ledger_with(count: u128, config: LedgerConfig) -> Ledger {
    let mut ledger = Ledger::new(config);
    let records: Vec<_> = (1..=count).map(|id| account(id, 1, 0)).collect();
    assert!(create_accounts(&mut ledger, &records).iter().all(|r| r.is_ok()));
    ledger
}

fn state(ledger: &Ledger) -> (Vec<Account>, Vec<Transfer>) {
    (ledger.accounts().to_vec(), ledger.transfers().copied().collect())
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool")
}

#[test]
fn every_transfer_error_code_is_reported_and_changes_nothing() {
    // Proves each transfer check fires with its own code and a failed item leaves state as it was.
    use CreateTransferResult as R;
    let mut ledger = ledger_with(4, LedgerConfig::default());
    create_accounts(&mut ledger, &[account(5, 1, account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS)]);
    create_accounts(&mut ledger, &[account(6, 1, account_flags::CREDITS_MUST_NOT_EXCEED_DEBITS)]);
    create_accounts(&mut ledger, &[account(7, 2, 0)]);
    assert_eq!(create_transfers(&mut ledger, &[transfer(100, 1, 2, u128::MAX)]), [R::Ok]);
    let with = |f: fn(&mut TransferRecord)| {
        let mut record = transfer(200, 3, 4, 1);
        f(&mut record);
        record
    };
    let cases: Vec<(TransferRecord, R)> = vec![
        (with(|r| r.timestamp = 1.into()), R::TimestampMustBeZero),
        (with(|r| r.flags = (1u16 << 15).into()), R::ReservedFlag),
        (with(|r| r.id = 0.into()), R::IdMustNotBeZero),
        (with(|r| r.debit_account_id = 0.into()), R::DebitAccountIdMustNotBeZero),
        (with(|r| r.credit_account_id = 0.into()), R::CreditAccountIdMustNotBeZero),
        (with(|r| r.credit_account_id = 3.into()), R::AccountsMustBeDifferent),
        (with(|r| r.amount = 0.into()), R::AmountMustNotBeZero),
        (with(|r| r.ledger = 0.into()), R::LedgerMustNotBeZero),
        (with(|r| r.code = 0.into()), R::CodeMustNotBeZero),
        (transfer(100, 1, 2, 5), R::ExistsWithDifferentFields),
        (transfer(100, 1, 2, u128::MAX), R::Exists),
        (with(|r| r.debit_account_id = 99.into()), R::DebitAccountNotFound),
        (with(|r| r.credit_account_id = 99.into()), R::CreditAccountNotFound),
        (with(|r| r.credit_account_id = 7.into()), R::AccountsMustHaveTheSameLedger),
        (with(|r| r.ledger = 2.into()), R::TransferMustHaveTheSameLedgerAsAccounts),
        (transfer(201, 1, 3, 1), R::OverflowsDebitsPosted),
        (transfer(202, 3, 2, 1), R::OverflowsCreditsPosted),
        (transfer(203, 5, 3, 1), R::ExceedsCredits),
        (transfer(204, 3, 6, 1), R::ExceedsDebits),
    ];
    for (record, expected) in cases {
        let before = state(&ledger);
        assert_eq!(create_transfers(&mut ledger, &[record]), [expected], "{record:?}");
        assert!(before == state(&ledger), "{expected:?} changed the state");
    }
}

#[test]
fn transfers_full_is_reported_at_the_bound() {
    // Proves the transfer count bound gives TransfersFull instead of growing, and retries still answer Exists.
    let config = LedgerConfig { transfers_max: 2, ..LedgerConfig::default() };
    let mut ledger = ledger_with(2, config);
    let batch = [transfer(1, 1, 2, 1), transfer(2, 1, 2, 1), transfer(3, 1, 2, 1), transfer(1, 1, 2, 1)];
    use CreateTransferResult as R;
    assert_eq!(create_transfers(&mut ledger, &batch), [R::Ok, R::Ok, R::TransfersFull, R::Exists]);
    assert_eq!(ledger.transfers_len(), 2);
}

#[test]
fn every_account_error_code_is_reported_and_changes_nothing() {
    // Proves each account check fires with its own code, including the capacity bound.
    use CreateAccountResult as R;
    let config = LedgerConfig { accounts_max: 2, ..LedgerConfig::default() };
    let mut ledger = ledger_with(1, config);
    let with = |f: fn(&mut AccountRecord)| {
        let mut record = account(50, 1, 0);
        f(&mut record);
        record
    };
    let both = account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS | account_flags::CREDITS_MUST_NOT_EXCEED_DEBITS;
    let cases: Vec<(AccountRecord, R)> = vec![
        (with(|r| r.timestamp = 1.into()), R::TimestampMustBeZero),
        (with(|r| r.flags = (1u16 << 14).into()), R::ReservedFlag),
        (with(|r| r.id = 0.into()), R::IdMustNotBeZero),
        (account(50, 1, both), R::FlagsAreMutuallyExclusive),
        (with(|r| r.debits_posted = 1.into()), R::DebitsPostedMustBeZero),
        (with(|r| r.credits_posted = 1.into()), R::CreditsPostedMustBeZero),
        (with(|r| r.ledger = 0.into()), R::LedgerMustNotBeZero),
        (with(|r| r.code = 0.into()), R::CodeMustNotBeZero),
        (account(1, 3, 0), R::ExistsWithDifferentFields),
        (account(1, 1, 0), R::Exists),
    ];
    for (record, expected) in cases {
        let before = state(&ledger);
        assert_eq!(create_accounts(&mut ledger, &[record]), [expected], "{record:?}");
        assert!(before == state(&ledger));
    }
    assert_eq!(create_accounts(&mut ledger, &[account(2, 1, 0), account(3, 1, 0)]), [R::Ok, R::AccountsFull]);
    assert_eq!(ledger.account(2).map(|a| a.timestamp), Some(TIMESTAMP));
}

#[test]
fn a_linked_chain_succeeds_or_fails_as_a_whole() {
    // Proves a failing chain member rolls back earlier members and fails later ones, and others are unaffected.
    use CreateTransferResult as R;
    let mut ledger = ledger_with(3, LedgerConfig::default());
    create_accounts(&mut ledger, &[account(4, 1, account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS)]);
    let batch = [
        linked(transfer(1, 1, 2, 10)),
        linked(transfer(2, 2, 3, 10)),
        transfer(3, 4, 1, 1), // fails: account 4 has no credits
        transfer(4, 1, 3, 5),
        linked(transfer(5, 3, 4, 7)),
        transfer(6, 4, 2, 7), // succeeds: account 4 got 7 credits just before
    ];
    let results = create_transfers(&mut ledger, &batch);
    assert_eq!(results, [R::LinkedEventFailed, R::LinkedEventFailed, R::ExceedsCredits, R::Ok, R::Ok, R::Ok]);
    assert!(ledger.transfer(1).is_none() && ledger.transfer(2).is_none() && ledger.transfer(3).is_none());
    let balances = |id| ledger.account(id).map(|a| (a.debits_posted, a.credits_posted)).unwrap();
    assert_eq!(balances(1), (5, 0));
    assert_eq!(balances(2), (0, 7));
    assert_eq!(balances(3), (7, 5));
    assert_eq!(balances(4), (7, 7));
    assert_eq!(ledger.transfer(6).map(|t| t.timestamp), Some(TIMESTAMP + 5));
}

/// Proves a chunk shared with a snapshot never changes: after sharing, the
/// store undoes a failed linked chain in that chunk and appends more, and the
/// shared chunks still hold exactly the transfers of the moment they were
/// shared, while the store holds the ones created since.
#[test]
fn chunks_shared_with_a_snapshot_keep_their_transfers() {
    use CreateTransferResult as R;
    let mut ledger = ledger_with(3, LedgerConfig::default());
    assert_eq!(create_transfers(&mut ledger, &[transfer(1, 1, 2, 5), transfer(2, 2, 3, 5)]), [R::Ok, R::Ok]);
    let (_, at_share) = state(&ledger);
    let shared = ledger.share_transfer_chunks();
    let chain = [linked(transfer(3, 1, 2, 1)), transfer(4, 1, 9, 1)];
    assert_eq!(create_transfers(&mut ledger, &chain), [R::LinkedEventFailed, R::CreditAccountNotFound]);
    assert_eq!(create_transfers(&mut ledger, &[transfer(5, 3, 1, 1)]), [R::Ok]);
    let still_shared: Vec<Transfer> = shared.iter().flat_map(|chunk| chunk.iter()).copied().collect();
    assert_eq!(still_shared, at_share);
    let ids: Vec<u128> = ledger.transfers().map(|transfer| transfer.id).collect();
    assert_eq!(ids, [1, 2, 5]);
    assert!(ledger.transfer(3).is_none() && ledger.transfer(5).is_some());
}

#[test]
fn a_chain_left_open_by_the_batch_fails_whole() {
    // Proves a batch ending inside a chain fails every member, the last with LinkedEventChainOpen.
    use CreateTransferResult as R;
    let mut ledger = ledger_with(2, LedgerConfig::default());
    let batch = [transfer(1, 1, 2, 1), linked(transfer(2, 1, 2, 1)), linked(transfer(3, 2, 1, 1))];
    assert_eq!(create_transfers(&mut ledger, &batch), [R::Ok, R::LinkedEventFailed, R::LinkedEventChainOpen]);
    assert_eq!(ledger.transfers_len(), 1);
}

#[test]
fn a_failing_linked_account_chain_creates_nothing() {
    // Proves account chains roll back: no member of a failed chain exists afterwards.
    use CreateAccountResult as R;
    let mut ledger = Ledger::new(LedgerConfig::default());
    let mut first = account(1, 1, account_flags::LINKED);
    first.user_data = 5.into();
    let batch = [first, account(2, 0, 0), account(3, 1, 0)];
    assert_eq!(create_accounts(&mut ledger, &batch), [R::LinkedEventFailed, R::LedgerMustNotBeZero, R::Ok]);
    assert!(ledger.account(1).is_none());
    assert_eq!(ledger.accounts_len(), 1);
}

#[test]
fn retrying_a_batch_changes_nothing_and_answers_exists() {
    // Proves idempotency by id: the same batch applied twice posts once and the retry answers Exists.
    let mut ledger = ledger_with(10, LedgerConfig::default());
    let batch: Vec<_> = (1..=20).map(|id| transfer(id, id % 10 + 1, (id + 3) % 10 + 1, id)).collect();
    assert!(create_transfers(&mut ledger, &batch).iter().all(|r| r.is_ok()));
    let after_first = state(&ledger);
    let retry = create_transfers(&mut ledger, &batch);
    assert!(retry.iter().all(|r| *r == CreateTransferResult::Exists), "{retry:?}");
    assert!(after_first == state(&ledger));
}

#[test]
fn a_duplicate_id_inside_one_batch_sees_the_first() {
    // Proves the second use of an id in the same batch answers Exists, on both paths.
    let mut records: Vec<_> = (1..=400).map(|id| transfer(id, 1 + id % 50, 1 + (id + 1) % 50, 1)).collect();
    // Same id as item 7, same accounts as the formula above gives it.
    records.push(transfer(7, 8, 9, 1));
    for threads in [1, 2] {
        let mut ledger = ledger_with(50, LedgerConfig::default());
        let mut results = Vec::new();
        ledger.create_transfers(&records, TIMESTAMP, Some(&pool(threads)), &mut results);
        assert_eq!(results.last(), Some(&CreateTransferResult::Exists));
        assert_eq!(ledger.transfers_len(), 400);
    }
}

#[test]
fn a_wide_batch_runs_in_parallel_levels() {
    // Proves the default tuning runs a large uniform batch in parallel levels (so the property test covers real parallel work).
    let mut ledger = ledger_with(10_000, LedgerConfig::default());
    let batch: Vec<_> = (1..=4096u128)
        .map(|id| transfer(id, 1 + (id * 7919) % 10_000, 1 + (id * 7919 + 1 + id % 5_000) % 10_000, 3))
        .collect();
    let mut results = Vec::new();
    let outcome = ledger.create_transfers_planned(&batch, TIMESTAMP, Some(&pool(2)), &mut results);
    assert_eq!(outcome, PlannedOutcome::AppliedInLevels);
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(ledger.transfers_len(), 4096);
}

/// How batches pick accounts in generated workloads.
#[derive(Clone, Copy, Debug)]
enum Access {
    Uniform,
    /// A power law: a few accounts get most transfers.
    Hot,
}

fn pick(access: Access, accounts: u128, unit: f64) -> u128 {
    match access {
        Access::Uniform => 1 + (unit * accounts as f64) as u128 % accounts,
        Access::Hot => 1 + (unit.powi(4) * accounts as f64) as u128 % accounts,
    }
}

/// A random batch: transfers over `accounts` accounts, some linked, some
/// invalid (zero amount), some large enough to hit limits. Ids are the
/// position plus one, except a few that repeat an earlier position's id.
fn batch_strategy(accounts: u128, len: usize) -> impl Strategy<Value = Vec<TransferRecord>> {
    let access = prop_oneof![Just(Access::Uniform), Just(Access::Hot)];
    (access, prop::collection::vec((0.0..1.0f64, 0.0..1.0f64, 0u128..60, 0u16..400), len)).prop_map(
        move |(access, items)| {
            let mut records: Vec<TransferRecord> = Vec::with_capacity(items.len());
            for (position, (debit, credit, amount, kind)) in items.into_iter().enumerate() {
                let (debit, credit) = (pick(access, accounts, debit), pick(access, accounts, credit));
                let id = if kind == 0 { 1 + (amount % (position as u128 + 1)) } else { position as u128 + 1 };
                let record = transfer(id, debit, credit, amount);
                records.push(if kind < 40 { linked(record) } else { record });
            }
            records
        },
    )
}

/// Accounts where every third one cannot go negative, so limits fail some transfers.
fn limited_ledger(accounts: u128, tuning: ParallelTuning) -> Ledger {
    let mut ledger = Ledger::new(LedgerConfig { parallel: tuning, ..LedgerConfig::default() });
    let records: Vec<_> = (1..=accounts)
        .map(|id| account(id, 1, if id % 3 == 0 { account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS } else { 0 }))
        .collect();
    create_accounts(&mut ledger, &records);
    ledger
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn parallel_apply_equals_sequential_apply(
        accounts in 4u128..400,
        batches in prop::collection::vec(batch_strategy(400, 300), 1..4),
        threads in 1usize..4,
    ) {
        // Proves the planned path (in order with 1 thread, in parallel levels with 2-3) gives the
        // item-by-item results and state, with thresholds lowered so small batches use levels too.
        let tuning = ParallelTuning { batch_min: 1, level_width_min: 1 };
        let mut sequential = limited_ledger(accounts, tuning);
        let mut parallel = limited_ledger(accounts, tuning);
        let pool = pool(threads);
        let pool = (threads > 1).then_some(&pool);
        for (index, batch) in batches.iter().enumerate() {
            // Each batch gets its own ids, except every 50th item, which reuses an id of
            // batch 0 so retries across batches (Exists) run on the parallel path too.
            let batch: Vec<_> = batch.iter().enumerate().map(|(position, r)| {
                let mut r = *r;
                if position % 50 != 49 {
                    r.id = (r.id.get() + 1_000 * index as u128).into();
                }
                r.debit_account_id = (1 + r.debit_account_id.get() % accounts).into();
                r.credit_account_id = (1 + r.credit_account_id.get() % accounts).into();
                r
            }).collect();
            let timestamp = TIMESTAMP + 10_000 * index as u64;
            let (mut expected, mut actual) = (Vec::new(), Vec::new());
            sequential.create_transfers_sequential(&batch, timestamp, &mut expected);
            let outcome = parallel.create_transfers_planned(&batch, timestamp, pool, &mut actual);
            let expected_in_levels = threads > 1 && outcome != PlannedOutcome::Declined;
            prop_assert_eq!(outcome == PlannedOutcome::AppliedInLevels, expected_in_levels);
            if outcome == PlannedOutcome::Declined {
                let mut ids: Vec<_> = batch.iter().map(|r| r.id.get()).collect();
                ids.sort_unstable();
                ids.dedup();
                let longest_chain = batch.split(|r| r.flags.get() & transfer_flags::LINKED == 0).map(<[_]>::len).max();
                prop_assert!(
                    ids.len() < batch.len() || longest_chain >= Some(64),
                    "declined a batch without repeated ids or long chains"
                );
                parallel.create_transfers_sequential(&batch, timestamp, &mut actual);
            }
            prop_assert_eq!(&expected, &actual);
            prop_assert!(state(&sequential) == state(&parallel));
        }
    }

    #[test]
    fn money_is_conserved_and_results_match_the_ledger(
        batch in batch_strategy(50, 200),
    ) {
        // Proves Σdebits == Σcredits after any batch, every Ok transfer is stored and posted, and no failed one is.
        let mut ledger = limited_ledger(50, ParallelTuning::default());
        let mut results = Vec::new();
        ledger.create_transfers(&batch, TIMESTAMP, Some(&pool(2)), &mut results);
        let (debits, credits) = ledger.totals();
        prop_assert_eq!(debits, credits);
        let posted: u128 = batch.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(t, _)| t.amount.get()).sum();
        prop_assert_eq!(debits, posted);
        let stored = results.iter().filter(|r| r.is_ok()).count() as u64;
        prop_assert_eq!(ledger.transfers_len(), stored);
        for (index, (record, result)) in batch.iter().zip(&results).enumerate() {
            if result.is_ok() {
                let stored = ledger.transfer(record.id.get()).expect("an Ok transfer is stored");
                prop_assert_eq!(stored.timestamp, TIMESTAMP + index as u64);
            }
        }
    }
}
