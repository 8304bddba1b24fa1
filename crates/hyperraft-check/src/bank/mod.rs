//! The bank invariant over a ledger's final state and a client's record.

use std::collections::{BTreeMap, BTreeSet};

use hyperraft_state::ledger::{Account, Transfer};

/// What clients did during a run.
#[derive(Clone, Debug, Default)]
pub struct ClientRecord {
    /// Ids of transfers whose creation a client saw succeed.
    pub acknowledged: BTreeSet<u128>,
    /// Ids of every transfer a client sent, whatever happened to it.
    pub attempted: BTreeSet<u128>,
}

/// One way the final state breaks the bank invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Σ debits_posted ≠ Σ credits_posted.
    Unbalanced { debits: u128, credits: u128 },
    /// An acknowledged transfer is not in the ledger.
    AcknowledgedMissing { id: u128 },
    /// A stored transfer nobody sent.
    Phantom { id: u128 },
    /// A transfer id stored more than once.
    AppliedTwice { id: u128 },
    /// An account's balances differ from the sum of its stored transfers.
    BalanceMismatch { account: u128, expected: (u128, u128), found: (u128, u128) },
    /// An account with a limit flag that its balances break.
    LimitBroken { account: u128 },
    /// A stored transfer names an account that does not exist.
    UnknownAccount { transfer: u128, account: u128 },
}

/// Checks a ledger's final `accounts` and `transfers` against the client
/// record. Accounts must have started with zero balances (as created).
pub fn check(accounts: &[Account], transfers: &[Transfer], record: &ClientRecord) -> Vec<Violation> {
    let mut violations = Vec::new();
    let (debits, credits) = accounts.iter().fold((0u128, 0u128), |(d, c), account| {
        (d.wrapping_add(account.debits_posted), c.wrapping_add(account.credits_posted))
    });
    if debits != credits {
        violations.push(Violation::Unbalanced { debits, credits });
    }
    let mut stored = BTreeSet::new();
    let mut expected: BTreeMap<u128, (u128, u128)> = accounts.iter().map(|account| (account.id, (0, 0))).collect();
    for transfer in transfers {
        if !stored.insert(transfer.id) {
            violations.push(Violation::AppliedTwice { id: transfer.id });
        }
        if !record.attempted.contains(&transfer.id) {
            violations.push(Violation::Phantom { id: transfer.id });
        }
        post(&mut expected, transfer, &mut violations);
    }
    for &id in record.acknowledged.difference(&stored) {
        violations.push(Violation::AcknowledgedMissing { id });
    }
    for account in accounts {
        let found = (account.debits_posted, account.credits_posted);
        let expected = expected[&account.id];
        if found != expected {
            violations.push(Violation::BalanceMismatch { account: account.id, expected, found });
        }
        if account.debit_exceeds_limit(account.debits_posted) || account.credit_exceeds_limit(account.credits_posted) {
            violations.push(Violation::LimitBroken { account: account.id });
        }
    }
    violations
}

fn post(expected: &mut BTreeMap<u128, (u128, u128)>, transfer: &Transfer, violations: &mut Vec<Violation>) {
    for (account, debit) in [(transfer.debit_account_id, true), (transfer.credit_account_id, false)] {
        match expected.get_mut(&account) {
            Some((debits, credits)) => {
                let side = if debit { debits } else { credits };
                *side = side.wrapping_add(transfer.amount);
            }
            None => violations.push(Violation::UnknownAccount { transfer: transfer.id, account }),
        }
    }
}

#[cfg(test)]
mod tests;
