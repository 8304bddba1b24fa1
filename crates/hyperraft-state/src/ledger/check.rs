//! Pure checks of one create request against the state it reads.
//!
//! Both the sequential and the parallel paths call these, so the two can
//! only differ in which state they pass in, never in the rules.

use hyperraft_wire::records::{account_flags, transfer_flags};

use super::account::Account;
use super::result::{CreateAccountResult, CreateTransferResult};
use super::transfer::Transfer;

/// Checks that need nothing but the request itself.
pub(crate) fn transfer_fields(request: &Transfer) -> CreateTransferResult {
    use CreateTransferResult as R;
    if request.timestamp != 0 {
        return R::TimestampMustBeZero;
    }
    if request.flags & !transfer_flags::ALL != 0 {
        return R::ReservedFlag;
    }
    if request.id == 0 {
        return R::IdMustNotBeZero;
    }
    if request.debit_account_id == 0 {
        return R::DebitAccountIdMustNotBeZero;
    }
    if request.credit_account_id == 0 {
        return R::CreditAccountIdMustNotBeZero;
    }
    if request.debit_account_id == request.credit_account_id {
        return R::AccountsMustBeDifferent;
    }
    if request.amount == 0 {
        return R::AmountMustNotBeZero;
    }
    if request.ledger == 0 {
        return R::LedgerMustNotBeZero;
    }
    if request.code == 0 {
        return R::CodeMustNotBeZero;
    }
    R::Ok
}

/// The answer to a create request whose id is already taken by `stored`.
pub(crate) fn transfer_exists(stored: &Transfer, request: &Transfer) -> CreateTransferResult {
    if stored.same_request(request) {
        CreateTransferResult::Exists
    } else {
        CreateTransferResult::ExistsWithDifferentFields
    }
}

/// Checks on the accounts that do not depend on their balances.
pub(crate) fn transfer_accounts(
    request: &Transfer,
    debit: Option<&Account>,
    credit: Option<&Account>,
) -> CreateTransferResult {
    use CreateTransferResult as R;
    let Some(debit) = debit else {
        return R::DebitAccountNotFound;
    };
    let Some(credit) = credit else {
        return R::CreditAccountNotFound;
    };
    if debit.ledger != credit.ledger {
        return R::AccountsMustHaveTheSameLedger;
    }
    if request.ledger != debit.ledger {
        return R::TransferMustHaveTheSameLedgerAsAccounts;
    }
    R::Ok
}

/// Posts `request` against the current balances: the new debit account's
/// `debits_posted` and the new credit account's `credits_posted`, or why not.
pub(crate) fn transfer_balances(
    request: &Transfer,
    debit: &Account,
    credit: &Account,
) -> Result<(u128, u128), CreateTransferResult> {
    use CreateTransferResult as R;
    let debits_posted = debit.debits_posted.checked_add(request.amount).ok_or(R::OverflowsDebitsPosted)?;
    let credits_posted = credit.credits_posted.checked_add(request.amount).ok_or(R::OverflowsCreditsPosted)?;
    if debit.debit_exceeds_limit(debits_posted) {
        return Err(R::ExceedsCredits);
    }
    if credit.credit_exceeds_limit(credits_posted) {
        return Err(R::ExceedsDebits);
    }
    Ok((debits_posted, credits_posted))
}

/// Checks that need nothing but the account request itself.
pub(crate) fn account_fields(request: &Account) -> CreateAccountResult {
    use CreateAccountResult as R;
    if request.timestamp != 0 {
        return R::TimestampMustBeZero;
    }
    if request.flags & !account_flags::ALL != 0 {
        return R::ReservedFlag;
    }
    if request.id == 0 {
        return R::IdMustNotBeZero;
    }
    let both_limits = account_flags::DEBITS_MUST_NOT_EXCEED_CREDITS | account_flags::CREDITS_MUST_NOT_EXCEED_DEBITS;
    if request.flags & both_limits == both_limits {
        return R::FlagsAreMutuallyExclusive;
    }
    if request.debits_posted != 0 {
        return R::DebitsPostedMustBeZero;
    }
    if request.credits_posted != 0 {
        return R::CreditsPostedMustBeZero;
    }
    if request.ledger == 0 {
        return R::LedgerMustNotBeZero;
    }
    if request.code == 0 {
        return R::CodeMustNotBeZero;
    }
    R::Ok
}

/// The answer to an account request whose id is already taken by `stored`.
pub(crate) fn account_exists(stored: &Account, request: &Account) -> CreateAccountResult {
    let same = stored.user_data == request.user_data
        && stored.ledger == request.ledger
        && stored.code == request.code
        && stored.flags == request.flags;
    if same {
        CreateAccountResult::Exists
    } else {
        CreateAccountResult::ExistsWithDifferentFields
    }
}
